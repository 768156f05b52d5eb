-- What people read through SQL holds no personal data: same views, columns and meaning as
-- migrations/postgres/0013_reader_roles.sql (read its comments). SQLite has no roles: the
-- file is everything, protect it with file permissions (README "Who can read what").
--
-- * last_error / last_step_error become last_error_code / last_step_error_code: the text
--   before the first colon when it is 1 to 64 of a-z, 0-9, _ (`invalid input` becomes
--   `invalid_input`), else NULL. PostgreSQL's finflow_error_code; SQLite has no regular
--   expressions, so the same rule is written with instr and GLOB (both case-sensitive).
-- * loans.onboarding_business_key is read from facts, filled below for existing loans.
-- * unmatched_callbacks gains correlation_keys and age_seconds.

UPDATE workflows
SET facts = json_set(facts, '$.onboarding_business_key',
    CASE WHEN json_type(input, '$.borrower.onboarding') = 'text'
         THEN json_extract(input, '$.borrower.onboarding') END)
WHERE kind = 'originate-loan' AND json_type(facts, '$.onboarding_business_key') IS NULL;

DROP VIEW workflow_overview;
DROP VIEW stuck_workflows;
DROP VIEW borrowers;
DROP VIEW loans;
DROP VIEW unmatched_callbacks;

-- One row per workflow with its latest journal step; errors as codes only.
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
    j.finished_at   AS last_step_at
FROM workflows w
LEFT JOIN step_journal j
    ON j.workflow_id = w.id
   AND j.seq = (SELECT max(seq) FROM step_journal WHERE workflow_id = w.id);

-- Needing attention, overdue by more than a minute, or held by a lease expired over a minute.
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
    CASE
        WHEN last_error GLOB 'invalid input:*' THEN 'invalid_input'
        WHEN instr(last_error, ':') BETWEEN 2 AND 65
             AND substr(last_error, 1, instr(last_error, ':') - 1) NOT GLOB '*[^a-z0-9_]*'
            THEN substr(last_error, 1, instr(last_error, ':') - 1)
    END AS last_error_code,
    CASE
        WHEN status = 'needs_attention' THEN 'needs_attention'
        WHEN lease_until IS NOT NULL
             AND lease_until < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 minute')
            THEN 'lease_expired'
        ELSE 'overdue'
    END AS reason
FROM workflows
WHERE status NOT IN ('completed', 'failed', 'cancelled')
  AND (
        status = 'needs_attention'
     OR (next_run_at IS NOT NULL
         AND next_run_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 minute')
         AND (lease_until IS NULL OR lease_until < strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
     OR (lease_until IS NOT NULL
         AND lease_until < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 minute'))
  );

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
    CASE
        WHEN last_error GLOB 'invalid input:*' THEN 'invalid_input'
        WHEN instr(last_error, ':') BETWEEN 2 AND 65
             AND substr(last_error, 1, instr(last_error, ':') - 1) NOT GLOB '*[^a-z0-9_]*'
            THEN substr(last_error, 1, instr(last_error, ':') - 1)
    END AS last_error_code,
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
    json_extract(facts, '$.onboarding_business_key')      AS onboarding_business_key,
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
    CASE
        WHEN last_error GLOB 'invalid input:*' THEN 'invalid_input'
        WHEN instr(last_error, ':') BETWEEN 2 AND 65
             AND substr(last_error, 1, instr(last_error, ':') - 1) NOT GLOB '*[^a-z0-9_]*'
            THEN substr(last_error, 1, instr(last_error, ':') - 1)
    END AS last_error_code,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'originate-loan';

-- Callbacks no workflow has taken: received but unmatched (yet), oldest first; which
-- correlation keys each carries, without the NIK or the payload.
CREATE VIEW unmatched_callbacks AS
SELECT
    id,
    source,
    event_id,
    title,
    nullif(substr(
        CASE WHEN identity_number IS NOT NULL THEN ',identity_number' ELSE '' END
     || CASE WHEN user_id IS NOT NULL THEN ',user_id' ELSE '' END
     || CASE WHEN kyc_id IS NOT NULL THEN ',kyc_id' ELSE '' END
     || CASE WHEN loan_unique_id IS NOT NULL THEN ',loan_unique_id' ELSE '' END
     || CASE WHEN external_id IS NOT NULL THEN ',external_id' ELSE '' END, 2), '') AS correlation_keys,
    user_id,
    kyc_id,
    loan_unique_id,
    external_id,
    received_at,
    CAST((julianday('now') - julianday(received_at)) * 86400 AS INTEGER) AS age_seconds
FROM callback_inbox
WHERE matched_workflow_id IS NULL AND processed_at IS NULL
ORDER BY id;
