-- Operator views. Their names and columns are a contract (README queries, `finflow status`).

-- How many workflows are in each (kind, state, status).
CREATE VIEW workflow_status_counts AS
SELECT kind, state, status, count(*) AS count
FROM workflows
GROUP BY kind, state, status;

COMMENT ON VIEW workflow_status_counts IS 'Number of workflows per kind, state and status.';

-- One row per workflow with its latest journal step: "where is loan X and what happened last".
CREATE VIEW workflow_overview AS
SELECT
    w.id,
    w.kind,
    w.business_key,
    w.definition_name,
    w.definition_version,
    w.status,
    w.state,
    w.attempt,
    w.next_run_at,
    w.waiting_for,
    w.deadline,
    w.last_error,
    w.lease_owner,
    w.lease_until,
    w.created_at,
    w.updated_at,
    w.finished_at,
    j.seq           AS last_seq,
    j.step          AS last_step,
    j.action        AS last_action,
    j.outcome       AS last_outcome,
    j.finfra_status AS last_finfra_status,
    j.error         AS last_step_error,
    j.finished_at   AS last_step_at
FROM workflows w
LEFT JOIN step_journal j
    ON j.workflow_id = w.id
   AND j.seq = (SELECT max(seq) FROM step_journal WHERE workflow_id = w.id);

COMMENT ON VIEW workflow_overview IS 'One row per workflow with its latest journal step.';

-- What needs a look: waiting for a person, overdue by more than a minute (no worker took
-- it), or held by an expired lease (its worker probably died).
CREATE VIEW stuck_workflows AS
SELECT
    id,
    kind,
    business_key,
    status,
    state,
    attempt,
    next_run_at,
    lease_owner,
    lease_until,
    last_error,
    CASE
        WHEN status = 'needs_attention' THEN 'needs_attention'
        WHEN lease_until IS NOT NULL AND lease_until < now() - interval '1 minute'
            THEN 'lease_expired'
        ELSE 'overdue'
    END AS reason
FROM workflows
WHERE status NOT IN ('completed', 'failed', 'cancelled')
  AND (
        status = 'needs_attention'
     OR (next_run_at IS NOT NULL AND next_run_at < now() - interval '1 minute'
         AND (lease_until IS NULL OR lease_until < now()))
     OR (lease_until IS NOT NULL AND lease_until < now() - interval '1 minute')
  );

COMMENT ON VIEW stuck_workflows IS 'Workflows needing attention, overdue by over a minute, or held by a lease expired over a minute ago.';
