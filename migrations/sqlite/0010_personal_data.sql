-- Personal data at rest: the same columns as migrations/postgres/0014_personal_data.sql
-- (read its comments).
ALTER TABLE workflows ADD COLUMN data_key TEXT;
ALTER TABLE workflows ADD COLUMN erased_at TEXT;
ALTER TABLE workflows ADD COLUMN nik_last4 TEXT;

UPDATE workflows
SET nik_last4 = substr(json_extract(input, '$.borrower.authorised_signatory.documents.ktp.number'), -4)
WHERE kind = 'onboard-borrower'
  AND json_type(input, '$.borrower.authorised_signatory.documents.ktp.number') = 'text';

DROP INDEX IF EXISTS workflows_nik_last4_idx;
CREATE INDEX workflows_nik_last4_idx ON workflows (nik_last4) WHERE nik_last4 IS NOT NULL;

-- Who read a workflow's personal data in the clear (see the PostgreSQL migration).
CREATE TABLE personal_data_reveals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id  TEXT    NOT NULL REFERENCES workflows (id),
    revealed_by  TEXT    NOT NULL,
    reason       TEXT    NOT NULL CHECK (trim(reason) <> ''),
    via          TEXT    NOT NULL,
    revealed_at  TEXT    NOT NULL
);
CREATE INDEX personal_data_reveals_workflow ON personal_data_reveals (workflow_id, id);

-- The overview says what became of a workflow's personal data (see the PostgreSQL
-- migration).
DROP VIEW workflow_overview;
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
    CASE
        WHEN w.last_error GLOB 'invalid input:*' THEN 'invalid_input'
        WHEN instr(w.last_error, ':') BETWEEN 2 AND 65
             AND substr(w.last_error, 1, instr(w.last_error, ':') - 1) NOT GLOB '*[^a-z0-9_]*'
            THEN substr(w.last_error, 1, instr(w.last_error, ':') - 1)
    END AS last_error_code,
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
    CASE
        WHEN j.error GLOB 'invalid input:*' THEN 'invalid_input'
        WHEN instr(j.error, ':') BETWEEN 2 AND 65
             AND substr(j.error, 1, instr(j.error, ':') - 1) NOT GLOB '*[^a-z0-9_]*'
            THEN substr(j.error, 1, instr(j.error, ':') - 1)
    END AS last_step_error_code,
    j.finished_at   AS last_step_at,
    CASE WHEN w.erased_at IS NOT NULL THEN 'erased'
         WHEN w.data_key IS NOT NULL THEN 'sealed'
         ELSE 'plain' END AS personal_data,
    w.erased_at
FROM workflows w
LEFT JOIN step_journal j
    ON j.workflow_id = w.id
   AND j.seq = (SELECT max(seq) FROM step_journal WHERE workflow_id = w.id);
