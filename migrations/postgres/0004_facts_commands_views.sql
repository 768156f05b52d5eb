-- Business facts on workflows, events from inside finflow in the inbox, and the operator
-- views over them. Same names, columns and meaning as migrations/sqlite/0003.

ALTER TABLE workflows ADD COLUMN facts jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN workflows.facts IS 'What the workflow has established, for SQL, written with every step: onboard-borrower: user_id, borrower_type, borrower_status, credit_score, approved; originate-loan: loan_unique_id, loan_status, amounts, disbursement, virtual account (views borrowers, loans).';

ALTER TABLE callback_inbox DROP CONSTRAINT callback_inbox_source_check;
ALTER TABLE callback_inbox ADD CONSTRAINT callback_inbox_source_check CHECK (source IN (
    'status', 'virtual_account', 'invoice', 'didit', 'internal', 'operator'
));
COMMENT ON COLUMN callback_inbox.source IS 'status | virtual_account | invoice | didit: which of the four callback paths; internal: another workflow finished (title workflow_finished, external_id <kind>/<business key>; one processed, unmatched announcement plus one copy per waiter, event_id <finished id>:<waiter id>); operator: a person''s command (title cancel | resolve, payload {by, reason, data}), matched to its workflow when recorded.';

CREATE VIEW borrowers AS
SELECT
    id                                   AS workflow_id,
    business_key,
    definition_name,
    status,
    state,
    facts->>'user_id'                    AS user_id,
    facts->>'borrower_type'              AS borrower_type,
    facts->>'borrower_status'            AS borrower_status,
    (facts->>'credit_score')::numeric    AS credit_score,
    (facts->>'approved')::boolean        AS approved,
    last_error,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'onboard-borrower';

COMMENT ON VIEW borrowers IS 'One row per onboard-borrower workflow: the borrower at Finfra (user id, status, credit score, decision).';

CREATE VIEW loans AS
SELECT
    id                                           AS workflow_id,
    business_key,
    definition_name,
    status,
    state,
    input->'borrower'->>'onboarding'             AS onboarding_business_key,
    facts->>'user_id'                            AS user_id,
    facts->>'loan_unique_id'                     AS loan_unique_id,
    facts->>'loan_type'                          AS loan_type,
    facts->>'loan_status'                        AS loan_status,
    (facts->>'total_amount')::numeric            AS total_amount,
    facts->>'disbursement_status'                AS disbursement_status,
    facts->>'disbursement_reference'             AS disbursement_reference,
    (facts->>'disbursement_failures')::integer   AS disbursement_failures,
    facts->>'virtual_account_bank'               AS virtual_account_bank,
    facts->>'virtual_account_number'             AS virtual_account_number,
    facts->>'virtual_account_external_id'        AS virtual_account_external_id,
    (facts->>'payments')::integer                AS payments,
    (facts->>'amount_paid')::numeric             AS amount_paid,
    (facts->>'amount_outstanding')::numeric      AS amount_outstanding,
    facts->'overdue_installments'                AS overdue_installments,
    last_error,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'originate-loan';

COMMENT ON VIEW loans IS 'One row per originate-loan workflow: the loan at Finfra, its disbursement, repayment account and amounts paid.';

CREATE VIEW unmatched_callbacks AS
SELECT id, source, event_id, title, user_id, kyc_id, loan_unique_id, external_id, received_at
FROM callback_inbox
WHERE matched_workflow_id IS NULL AND processed_at IS NULL
ORDER BY id;

COMMENT ON VIEW unmatched_callbacks IS 'Callbacks received that no workflow has taken (yet), oldest first; without the NIK.';
