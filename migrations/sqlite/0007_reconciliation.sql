-- Reconciliation with Finfra's books: same tables and view as
-- migrations/postgres/0011_reconciliation.sql (read its comments).
CREATE TABLE reconcile_findings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT    NOT NULL,
    first_run_id    TEXT    NOT NULL,
    loan_unique_id  TEXT    NOT NULL,
    workflow_id     TEXT,
    kind            TEXT    NOT NULL,
    ours            TEXT,
    theirs          TEXT,
    money           INTEGER NOT NULL DEFAULT 0,
    first_seen_at   TEXT    NOT NULL,
    last_seen_at    TEXT    NOT NULL,
    resolved_at     TEXT,
    resolved_by_run TEXT
);

CREATE UNIQUE INDEX reconcile_findings_open_idx
    ON reconcile_findings (loan_unique_id, kind) WHERE resolved_at IS NULL;
CREATE INDEX reconcile_findings_run_idx ON reconcile_findings (run_id);

CREATE TABLE reconcile_seen (
    run_id         TEXT NOT NULL,
    loan_unique_id TEXT NOT NULL,
    PRIMARY KEY (run_id, loan_unique_id)
);

-- finflow's record of a loan is looked up through workflows_loan_unique_id_idx (0006).

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
