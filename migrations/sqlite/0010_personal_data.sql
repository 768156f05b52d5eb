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
