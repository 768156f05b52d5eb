-- What people read through SQL holds no personal data, and two roles give them only that.
-- Same views, columns and meaning as migrations/sqlite/0009 (SQLite has no roles).
--
-- Personal data (NIKs, names, birth dates, phones, e-mails, addresses, bank account
-- numbers, KTP images) lives in `workflows.input` and `workflows.context`, in the inbox's
-- `payload` and `identity_number` (a NIK), in `workflow_waits.key_value` (a NIK when
-- `key_name = 'identity_number'`), in `command_requests.payload`, `events.payload` and in
-- free text (`last_error`, `step_journal.error`, operators' reasons). Those columns are
-- about to hold ciphertext or keyed hashes, so no view reads them, not even to derive
-- something, with one exception: whether the inbox's `identity_number` is NULL, which
-- encryption keeps. Views carry ids, statuses, amounts, dates and codes only:
--
-- * `last_error` and `last_step_error` (free text that may quote input or a person's
--   reason) become `last_error_code` and `last_step_error_code`: the text before the first
--   colon when it is a code (1 to 64 of a-z, 0-9, _: `retries_exhausted`, `422`,
--   `timeout`; `invalid input` becomes `invalid_input`), else NULL. The full text stays in
--   `workflows.last_error` and `step_journal.error` (`finflow inspect`).
-- * `loans.onboarding_business_key` is read from `facts` (written with every step since
--   the workflow crate puts it there), filled below for existing loans from their input.
--   A loan submitted but not yet started shows NULL until its first step.
-- * `unmatched_callbacks` loses the correlation key values that may be a NIK (it never had
--   the NIK column) and gains `correlation_keys` (which keys a callback carries, e.g.
--   `identity_number` or `user_id,loan_unique_id`) and `age_seconds`. The other key values
--   (Finfra user id, KYC id, loan unique id, external id) are Finfra's or finflow's ids.
-- * Business keys stay: the lender chooses them, and must not put personal data in them
--   (README "Who can read what").
-- * Unchanged: workflow_status_counts (kind, state, status, count) and
--   reconciliation_findings (ids, statuses, amounts and disbursement references).
--
-- Any later migration that drops and recreates a view must grant SELECT on it to
-- finflow_reader again (crates/store/tests/store/privacy_views.rs checks every view).

-- Facts of existing loans: the onboarding their input names (JSON null for a user id).
UPDATE workflows
SET facts = facts || jsonb_build_object('onboarding_business_key',
    CASE WHEN jsonb_typeof(input #> '{borrower,onboarding}') = 'string'
         THEN input #> '{borrower,onboarding}' ELSE 'null'::jsonb END)
WHERE kind = 'originate-loan' AND NOT facts ? 'onboarding_business_key';

-- The code of a free-text error (see above), NULL when it starts with none. IMMUTABLE: the
-- same text always gives the same code.
CREATE FUNCTION finflow_error_code(p_error text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE
        WHEN p_error LIKE 'invalid input:%' THEN 'invalid_input'
        ELSE substring(p_error from '^([a-z0-9_]{1,64}):')
    END;
$$;

COMMENT ON FUNCTION finflow_error_code(text) IS
    'The code an error text starts with (retries_exhausted, 422, timeout, invalid_input, ...), never the rest, which may quote personal data; NULL when it starts with none.';

DROP VIEW workflow_overview;
DROP VIEW stuck_workflows;
DROP VIEW borrowers;
DROP VIEW loans;
DROP VIEW unmatched_callbacks;

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
    finflow_error_code(w.last_error) AS last_error_code,
    w.lease_owner,
    w.lease_until,
    w.created_at,
    w.updated_at,
    w.finished_at,
    j.seq                           AS last_seq,
    j.step                          AS last_step,
    j.action                        AS last_action,
    j.outcome                       AS last_outcome,
    j.finfra_status                 AS last_finfra_status,
    finflow_error_code(j.error)     AS last_step_error_code,
    j.finished_at                   AS last_step_at
FROM workflows w
LEFT JOIN step_journal j
    ON j.workflow_id = w.id
   AND j.seq = (SELECT max(seq) FROM step_journal WHERE workflow_id = w.id);

COMMENT ON VIEW workflow_overview IS 'One row per workflow with its latest journal step; errors as codes only (the text is in workflows.last_error and step_journal.error, or finflow inspect).';

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
    finflow_error_code(last_error) AS last_error_code,
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

COMMENT ON VIEW stuck_workflows IS 'Workflows needing attention, overdue by over a minute, or held by a lease expired over a minute ago; last_error_code says why (finflow inspect shows the whole text).';

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
    finflow_error_code(last_error)       AS last_error_code,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'onboard-borrower';

COMMENT ON VIEW borrowers IS 'One row per onboard-borrower workflow: the borrower at Finfra (user id, status, credit score, decision); no name, NIK or other personal data.';

CREATE VIEW loans AS
SELECT
    id                                           AS workflow_id,
    business_key,
    definition_name,
    status,
    state,
    facts->>'onboarding_business_key'            AS onboarding_business_key,
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
    finflow_error_code(last_error)               AS last_error_code,
    created_at,
    finished_at
FROM workflows
WHERE kind = 'originate-loan';

COMMENT ON VIEW loans IS 'One row per originate-loan workflow: the loan at Finfra, its disbursement, repayment virtual account (a payment reference) and amounts paid; never the disbursement bank account.';

CREATE VIEW unmatched_callbacks AS
SELECT
    id,
    source,
    event_id,
    title,
    -- Which correlation keys it carries, never the NIK's value.
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
    floor(extract(epoch FROM now() - received_at))::bigint AS age_seconds
FROM callback_inbox
WHERE matched_workflow_id IS NULL AND processed_at IS NULL
ORDER BY id;

COMMENT ON VIEW unmatched_callbacks IS 'Callbacks received that no workflow has taken (yet), oldest first: which correlation keys each carries, without the NIK or the payload.';

-- An operator's command from SQL: always a request a second person approves (finflow's
-- `approve` in the CLI or the console), whatever the command, since SQL cannot ask the
-- workflow's state machine whether four-eyes applies. The requester is the login role
-- (session_user), not a name the caller picks, so nobody approves their own request.
-- SECURITY DEFINER: finflow_operator has no privilege on workflows or command_requests;
-- the function reads only the workflow's status and writes only the request. Its search
-- path is pinned below.
CREATE FUNCTION finflow_request_command(
    p_workflow_id uuid,
    p_title text,
    p_reason text,
    p_data jsonb DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
AS $$
DECLARE
    v_status text;
    v_payload jsonb;
    v_id bigint;
BEGIN
    IF p_title IS NULL OR p_title NOT IN ('cancel', 'resolve') THEN
        RAISE EXCEPTION 'finflow_request_command: the command is cancel or resolve (a retry is resolve with {"retry": true})'
            USING ERRCODE = '22023';
    END IF;
    IF coalesce(btrim(p_reason), '') = '' THEN
        RAISE EXCEPTION 'finflow_request_command: give a reason'
            USING ERRCODE = '22023';
    END IF;
    SELECT status INTO v_status FROM workflows WHERE id = p_workflow_id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'finflow_request_command: no workflow %', p_workflow_id
            USING ERRCODE = 'P0002';
    END IF;
    IF v_status IN ('completed', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'finflow_request_command: workflow % has finished (%)', p_workflow_id, v_status
            USING ERRCODE = '55000';
    END IF;
    -- As store::command_payload builds it.
    v_payload := jsonb_build_object('by', session_user::text, 'reason', p_reason);
    IF p_data IS NOT NULL THEN
        v_payload := v_payload || jsonb_build_object('data', p_data);
    END IF;
    INSERT INTO command_requests (workflow_id, title, payload, requested_by, reason,
        needs_approval, expires_at)
    VALUES (p_workflow_id, p_title, v_payload, session_user, p_reason,
        'requested in SQL: a second person approves every command requested there',
        now() + interval '24 hours')
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;

COMMENT ON FUNCTION finflow_request_command(uuid, text, text, jsonb) IS
    'An operator''s cancel or resolve from SQL, stored in command_requests pending a second person''s approval (24 hours), requested_by = the login role. Returns the request id.';

-- The roles are cluster-wide and many databases may run this migration at once: whoever
-- creates a role also comments it (and makes the operator a reader); whoever finds it made
-- by another (pg_roles, or the unique index after waiting for the other's commit) leaves
-- it as it is.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finflow_reader') THEN
        BEGIN
            CREATE ROLE finflow_reader NOLOGIN;
            COMMENT ON ROLE finflow_reader IS
                'finflow: SELECT on the views (no personal data) of every finflow database, nothing on tables. GRANT finflow_reader TO a login role.';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finflow_operator') THEN
        BEGIN
            CREATE ROLE finflow_operator NOLOGIN IN ROLE finflow_reader;
            COMMENT ON ROLE finflow_operator IS
                'finflow: finflow_reader plus finflow_request_command (cancel or resolve, approved by a second person). GRANT finflow_operator TO a login role.';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END;
$$;

-- Grants are per database: every migrated database gets them.
DO $$
BEGIN
    -- The views live in the schema the migration runs in (public by default): USAGE lets
    -- the roles name them. Nothing on the tables: a view runs with its owner's rights
    -- (no security_invoker), so the reader sees the view's columns and nothing else.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO finflow_reader', current_schema());
    -- The function's search path: this schema, then pg_temp last (a caller's temporary
    -- objects must not stand in for the tables it reads and writes).
    EXECUTE format('ALTER FUNCTION finflow_request_command(uuid, text, text, jsonb) SET search_path = %I, pg_temp',
        current_schema());
END;
$$;

-- Reading: every view, nothing else.
GRANT SELECT ON workflow_status_counts, workflow_overview, stuck_workflows, borrowers, loans,
    unmatched_callbacks, reconciliation_findings TO finflow_reader;

-- The views call it: functions in a view run with the reader's rights (PUBLIC may execute
-- it by default; granted too in case a hardened database revoked that).
GRANT EXECUTE ON FUNCTION finflow_error_code(text) TO finflow_reader;

-- Commanding: only the request for a second person's approval. Functions are executable by
-- PUBLIC by default; this one runs with its owner's rights, so only operators get it.
-- (finflow_submit and the worker's functions run with the caller's rights and need the
-- tables, input included: submitting is the lender's system's job, not an operator's.)
REVOKE EXECUTE ON FUNCTION finflow_request_command(uuid, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION finflow_request_command(uuid, text, text, jsonb) TO finflow_operator;
