-- Business facts on workflows, events from inside finflow in the inbox, and the operator
-- views over them. Same names, columns and meaning as migrations/postgres/0004.

-- What each workflow has established, for SQL (written with every step from the machine's
-- summary): onboard-borrower: user_id, borrower_type, borrower_status, credit_score,
-- approved; originate-loan: loan_unique_id, loan_status, amounts, disbursement, virtual
-- account (see the `borrowers` and `loans` views).
ALTER TABLE workflows ADD COLUMN facts TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(facts));

-- The inbox also holds two sources that are not Finfra's callback paths:
--   internal: another workflow finished (title workflow_finished, external_id
--             '<kind>/<business key>'); one announcement row (processed, unmatched) plus
--             one copy per workflow waiting for it (event_id '<finished id>:<waiter id>');
--   operator: a person's command to one workflow (title cancel | resolve), matched to it
--             when recorded; payload {"by", "reason", "data"}.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt with its rows and indexes.
CREATE TABLE callback_inbox_new (
    id                  INTEGER NOT NULL PRIMARY KEY,
    source              TEXT    NOT NULL
        CHECK (source IN ('status', 'virtual_account', 'invoice', 'didit', 'internal', 'operator')),
    event_id            TEXT    NOT NULL,
    title               TEXT    NOT NULL,
    user_id             TEXT,
    identity_number     TEXT,
    kyc_id              TEXT,
    loan_unique_id      TEXT,
    external_id         TEXT,
    payload             TEXT    NOT NULL CHECK (json_valid(payload)),
    received_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    matched_workflow_id TEXT    REFERENCES workflows (id),
    matched_at          TEXT,
    processed_at        TEXT,
    UNIQUE (source, event_id)
) STRICT;

INSERT INTO callback_inbox_new
SELECT id, source, event_id, title, user_id, identity_number, kyc_id, loan_unique_id,
       external_id, payload, received_at, matched_workflow_id, matched_at, processed_at
FROM callback_inbox;

DROP TABLE callback_inbox;
ALTER TABLE callback_inbox_new RENAME TO callback_inbox;

CREATE INDEX callback_inbox_user_id_idx ON callback_inbox (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX callback_inbox_identity_number_idx ON callback_inbox (identity_number)
    WHERE identity_number IS NOT NULL;
CREATE INDEX callback_inbox_kyc_id_idx ON callback_inbox (kyc_id) WHERE kyc_id IS NOT NULL;
CREATE INDEX callback_inbox_loan_unique_id_idx ON callback_inbox (loan_unique_id)
    WHERE loan_unique_id IS NOT NULL;
CREATE INDEX callback_inbox_external_id_idx ON callback_inbox (external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX callback_inbox_pending_idx ON callback_inbox (matched_workflow_id)
    WHERE processed_at IS NULL;

-- One row per onboarding: where the borrower stands at Finfra.
CREATE VIEW borrowers AS
SELECT
    id                                    AS workflow_id,
    business_key,
    definition_name,
    status,
    state,
    json_extract(facts, '$.user_id')         AS user_id,
    json_extract(facts, '$.borrower_type')   AS borrower_type,
    json_extract(facts, '$.borrower_status') AS borrower_status,
    json_extract(facts, '$.credit_score')    AS credit_score,
    json_extract(facts, '$.approved')        AS approved,
    last_error,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'onboard-borrower';

-- One row per loan: its status at Finfra, the disbursement, the repayment account and what
-- is paid. Amounts are exact decimal strings (SQLite has no decimal type).
CREATE VIEW loans AS
SELECT
    id                                                    AS workflow_id,
    business_key,
    definition_name,
    status,
    state,
    json_extract(input, '$.borrower.onboarding')          AS onboarding_business_key,
    json_extract(facts, '$.user_id')                      AS user_id,
    json_extract(facts, '$.loan_unique_id')               AS loan_unique_id,
    json_extract(facts, '$.loan_type')                    AS loan_type,
    json_extract(facts, '$.loan_status')                  AS loan_status,
    json_extract(facts, '$.total_amount')                 AS total_amount,
    json_extract(facts, '$.disbursement_status')          AS disbursement_status,
    json_extract(facts, '$.disbursement_reference')       AS disbursement_reference,
    json_extract(facts, '$.disbursement_failures')        AS disbursement_failures,
    json_extract(facts, '$.virtual_account_bank')         AS virtual_account_bank,
    json_extract(facts, '$.virtual_account_number')       AS virtual_account_number,
    json_extract(facts, '$.virtual_account_external_id')  AS virtual_account_external_id,
    json_extract(facts, '$.payments')                     AS payments,
    json_extract(facts, '$.amount_paid')                  AS amount_paid,
    json_extract(facts, '$.amount_outstanding')           AS amount_outstanding,
    json_extract(facts, '$.overdue_installments')         AS overdue_installments,
    last_error,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'originate-loan';

-- Callbacks no workflow has taken: received but unmatched (yet), oldest first. Without the
-- NIK column.
CREATE VIEW unmatched_callbacks AS
SELECT id, source, event_id, title, user_id, kyc_id, loan_unique_id, external_id, received_at
FROM callback_inbox
WHERE matched_workflow_id IS NULL AND processed_at IS NULL
ORDER BY id;
