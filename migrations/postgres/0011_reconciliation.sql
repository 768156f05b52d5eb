-- Reconciliation with Finfra's books (workflow kind reconcile-loans).
--
-- A finding is one discrepancy between one loan at Finfra and finflow's record of it. It is
-- open until a later page that shows the loan no longer finds it (resolved_at). At most one
-- open finding per loan and kind: a later run that finds it again updates it (run_id,
-- last_seen_at, the values) and keeps first_seen_at.
CREATE TABLE reconcile_findings (
    id              BIGSERIAL   PRIMARY KEY,
    run_id          UUID        NOT NULL,
    first_run_id    UUID        NOT NULL,
    loan_unique_id  TEXT        NOT NULL,
    workflow_id     UUID,
    kind            TEXT        NOT NULL,
    ours            TEXT,
    theirs          TEXT,
    money           BOOLEAN     NOT NULL DEFAULT false,
    first_seen_at   TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ,
    resolved_by_run UUID
);

CREATE UNIQUE INDEX reconcile_findings_open_idx
    ON reconcile_findings (loan_unique_id, kind) WHERE resolved_at IS NULL;
CREATE INDEX reconcile_findings_run_idx ON reconcile_findings (run_id);

COMMENT ON TABLE reconcile_findings IS 'Discrepancies between Finfra''s loans and finflow''s, written by reconcile-loans runs with the step that found them; read the view reconciliation_findings.';
COMMENT ON COLUMN reconcile_findings.kind IS 'status_differs, amount_paid_differs, disbursement_reference_missing, disbursement_reference_differs, disbursed_without_request, orphan, missing_at_finfra.';
COMMENT ON COLUMN reconcile_findings.money IS 'Money may have moved without finflow (a second disbursement reference, a disbursement finflow never asked for, a disbursed orphan): the run stops in needs_attention.';

-- The loans a run has compared, so that its end can read the loans finflow created in its
-- window that no page showed. Deleted when the run ends.
CREATE TABLE reconcile_seen (
    run_id         UUID NOT NULL,
    loan_unique_id TEXT NOT NULL,
    PRIMARY KEY (run_id, loan_unique_id)
);

-- finflow's record of a loan is looked up by its unique id for every page: through
-- workflows_loan_unique_id_idx (migration 0010).

CREATE VIEW reconciliation_findings AS
SELECT id,
       run_id          AS run,
       loan_unique_id,
       workflow_id     AS workflow,
       kind,
       ours            AS finflow_value,
       theirs          AS finfra_value,
       money,
       first_seen_at,
       last_seen_at,
       resolved_at
FROM reconcile_findings;

COMMENT ON VIEW reconciliation_findings IS 'One row per discrepancy found by a reconcile-loans run; open while resolved_at is NULL.';
