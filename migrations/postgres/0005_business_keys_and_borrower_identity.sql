-- A rule for business keys, and one onboarding per borrower at a time. Same columns and
-- meaning as migrations/sqlite/0004.
--
-- * Business keys: 1 to 200 printable characters without surrounding whitespace
--   (`finflow_business_key_problem`, the same checks in the same order and words as the
--   Rust store's `check_business_key`). Existing rows keep their keys.
-- * `workflows.identity_key`: for onboard-borrower workflows the lowercase hex SHA-256 of the
--   borrower's NIK (`finflow_identity_key`, the same derivation as the Rust store's
--   `store::identity_key`), never the NIK itself. Filled below for existing onboardings.
-- * `finflow_submit_workflow` (and so `finflow_submit` and `Store::submit`) checks the key,
--   then refuses a new onboarding whose borrower has an unfinished onboarding under another
--   business key: SQLSTATE FF423.

ALTER TABLE workflows ADD COLUMN identity_key text;
COMMENT ON COLUMN workflows.identity_key IS 'onboard-borrower: sha256 (lowercase hex) of the borrower''s NIK (input borrower.authorised_signatory.documents.ktp.number, a JSON string), never the NIK itself; NULL for other kinds or without a NIK. One unfinished onboarding per identity key (finflow_submit refuses another with SQLSTATE FF423); earlier completed ones make the borrower a returning borrower.';
COMMENT ON COLUMN workflows.business_key IS 'The submitter''s key; (kind, business_key) is unique: submitting it again returns the same workflow. 1 to 200 printable characters without surrounding whitespace (checked on submit; rows stored before the rule keep theirs).';

-- The identity key of a workflow of kind p_kind with input p_input (see the column comment).
CREATE FUNCTION finflow_identity_key(p_kind text, p_input jsonb)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT CASE
        WHEN p_kind = 'onboard-borrower'
             AND jsonb_typeof(p_input #> '{borrower,authorised_signatory,documents,ktp,number}') = 'string'
        THEN encode(sha256(convert_to(
                 p_input #>> '{borrower,authorised_signatory,documents,ktp,number}', 'UTF8')), 'hex')
    END;
$$;

COMMENT ON FUNCTION finflow_identity_key(text, jsonb) IS
    'workflows.identity_key of a workflow: sha256 hex of the NIK of an onboard-borrower input, else NULL.';

-- Existing onboardings. Two unfinished ones of one borrower may already exist: the index is
-- not unique, and the rule applies to new submits only.
UPDATE workflows
SET identity_key = finflow_identity_key(kind, input)
WHERE kind = 'onboard-borrower' AND identity_key IS NULL;

CREATE INDEX workflows_identity_key_idx ON workflows (identity_key)
    WHERE identity_key IS NOT NULL;

-- What is wrong with a business key, NULL when nothing: 'it is empty', 'it has 5000
-- characters', 'it has a newline at position 5', 'it starts with whitespace'... Printable:
-- no control character (U+0001-U+001F, U+007F-U+009F) and no U+2028/U+2029. Whitespace:
-- Unicode White_Space (what Rust's char::is_whitespace says). Positions count characters
-- from 1 (the database is UTF8: ascii() is the code point).
CREATE FUNCTION finflow_business_key_problem(p_key text)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_length integer := coalesce(char_length(p_key), 0);
    v_code integer;
BEGIN
    IF v_length = 0 THEN
        RETURN 'it is empty';
    END IF;
    IF v_length > 200 THEN
        RETURN format('it has %s characters', v_length);
    END IF;
    FOR v_position IN 1..v_length LOOP
        v_code := ascii(substr(p_key, v_position, 1));
        IF v_code < 32 OR v_code BETWEEN 127 AND 159 OR v_code IN (8232, 8233) THEN
            RETURN format('it has %s at position %s',
                CASE v_code
                    WHEN 10 THEN 'a newline'
                    WHEN 13 THEN 'a carriage return'
                    WHEN 9 THEN 'a tab'
                    ELSE format('a non-printable character (U+%s)', upper(lpad(to_hex(v_code), 4, '0')))
                END,
                v_position);
        END IF;
    END LOOP;
    -- White_Space minus what the loop refused already.
    IF ascii(p_key) IN (32, 160, 5760, 8239, 8287, 12288) OR ascii(p_key) BETWEEN 8192 AND 8202 THEN
        RETURN 'it starts with whitespace';
    END IF;
    v_code := ascii(right(p_key, 1));
    IF v_code IN (32, 160, 5760, 8239, 8287, 12288) OR v_code BETWEEN 8192 AND 8202 THEN
        RETURN 'it ends with whitespace';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION finflow_business_key_problem(text) IS
    'Why a business key breaks the rule (1 to 200 printable characters without surrounding whitespace), NULL when it follows it.';

-- Submit a workflow: returns its id and whether this call created it.
--
-- * a business key that breaks the rule: SQLSTATE 22023, the rule and the problem;
-- * the key's workflow exists: same input (jsonb equality) returns it, created = false;
--   another input raises SQLSTATE FF409 (finflow conflict), naming the key;
-- * a new onboard-borrower whose borrower (identity key) has an unfinished onboarding
--   (status not completed, failed or cancelled) under another key: SQLSTATE FF423, the
--   message and DETAIL name that workflow and its key (DETAIL: 'workflow <uuid> holds this
--   borrower under business key <key>', the key verbatim to the end; the Rust store reads it);
-- * otherwise inserts the workflow (status pending, due now) and its wake-up.
--
-- Concurrency: submits of one key wait on the unique index, the loser then sees the winner's
-- row. Submits of one borrower take a transaction-level advisory lock on its identity key
-- before looking, so the second waits for the first to commit and then sees it (READ
-- COMMITTED takes a new snapshot per statement; under SERIALIZABLE the loser may get a
-- serialization failure instead). REPEATABLE READ keeps the snapshot taken before the lock,
-- which would miss the first: an onboarding submitted there is refused (SQLSTATE 0A000).
CREATE OR REPLACE FUNCTION finflow_submit_workflow(
    p_kind text,
    p_business_key text,
    p_input jsonb,
    p_definition_name text DEFAULT NULL,
    p_definition_version integer DEFAULT NULL,
    p_state text DEFAULT 'new',
    p_context jsonb DEFAULT '{}'::jsonb,
    OUT workflow_id uuid,
    OUT created boolean
)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_existing_input jsonb;
    v_key_problem text;
    v_identity_key text;
    v_holder_id uuid;
    v_holder_key text;
BEGIN
    IF coalesce(p_kind, '') = '' THEN
        RAISE EXCEPTION 'finflow_submit: kind must not be empty'
            USING ERRCODE = '22023';
    END IF;
    v_key_problem := finflow_business_key_problem(p_business_key);
    IF v_key_problem IS NOT NULL THEN
        RAISE EXCEPTION 'finflow_submit: business key must be 1 to 200 printable characters without surrounding whitespace: %',
            v_key_problem
            USING ERRCODE = '22023';
    END IF;
    IF p_input IS NULL THEN
        RAISE EXCEPTION 'finflow_submit: input must not be NULL (use ''{}''::jsonb)'
            USING ERRCODE = '22004';
    END IF;

    v_identity_key := finflow_identity_key(p_kind, p_input);
    IF v_identity_key IS NOT NULL THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'finflow_submit: an onboard-borrower cannot be submitted in a REPEATABLE READ transaction'
                USING ERRCODE = '0A000',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE: the check for another onboarding of the borrower must see what committed while it waited.';
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('finflow identity_key ' || v_identity_key, 0));
    END IF;

    SELECT w.id, w.input INTO workflow_id, v_existing_input
    FROM workflows w
    WHERE w.kind = p_kind AND w.business_key = p_business_key;

    IF workflow_id IS NULL THEN
        IF v_identity_key IS NOT NULL THEN
            SELECT w.id, w.business_key INTO v_holder_id, v_holder_key
            FROM workflows w
            WHERE w.kind = 'onboard-borrower' AND w.identity_key = v_identity_key
              AND w.business_key <> p_business_key
              AND w.status NOT IN ('completed', 'failed', 'cancelled')
            ORDER BY w.created_at, w.id
            LIMIT 1;
            IF v_holder_id IS NOT NULL THEN
                RAISE EXCEPTION 'finflow_submit: borrower already being onboarded under business key "%" (workflow %): wait for it to finish or cancel it',
                    v_holder_key, v_holder_id
                    USING ERRCODE = 'FF423',
                          DETAIL = format('workflow %s holds this borrower under business key %s',
                                          v_holder_id, v_holder_key),
                          HINT = 'One onboarding per borrower (NIK) at a time: cancel the other one or wait until it completes, fails or is cancelled.';
            END IF;
        END IF;

        INSERT INTO workflows (
            id, kind, business_key, definition_name, definition_version, status, state,
            context, input, input_hash, identity_key, next_run_at
        )
        VALUES (
            gen_random_uuid(), p_kind, p_business_key, coalesce(p_definition_name, p_kind),
            p_definition_version, 'pending', coalesce(p_state, 'new'),
            coalesce(p_context, '{}'::jsonb), p_input,
            encode(sha256(convert_to(p_input::text, 'UTF8')), 'hex'), v_identity_key, now()
        )
        ON CONFLICT (kind, business_key) DO NOTHING
        RETURNING id INTO workflow_id;

        IF workflow_id IS NOT NULL THEN
            created := true;
            PERFORM finflow_schedule_wakeup(workflow_id, now());
            RETURN;
        END IF;

        -- Another submit of the key committed after our first look.
        SELECT w.id, w.input INTO workflow_id, v_existing_input
        FROM workflows w
        WHERE w.kind = p_kind AND w.business_key = p_business_key;

        IF workflow_id IS NULL THEN
            -- Only if the conflicting row vanished between the two statements.
            RAISE EXCEPTION 'finflow_submit: workflow (kind %, business key %) disappeared during submit',
                p_kind, p_business_key
                USING ERRCODE = '40001';
        END IF;
    END IF;

    IF v_existing_input IS DISTINCT FROM p_input THEN
        RAISE EXCEPTION 'finflow_submit: a % workflow with business key % already exists with a different input',
            p_kind, p_business_key
            USING ERRCODE = 'FF409',
                  DETAIL = format('existing workflow id: %s', workflow_id),
                  HINT = 'Submit the same input to get the existing workflow, or use another business key.';
    END IF;

    created := false;
END;
$$;

COMMENT ON FUNCTION finflow_submit_workflow(text, text, jsonb, text, integer, text, jsonb) IS
    'Submit a workflow idempotently; returns (workflow_id, created). A business key that breaks the rule raises SQLSTATE 22023; the same key with another input FF409; a new onboard-borrower of a borrower with an unfinished onboarding under another key FF423.';

COMMENT ON FUNCTION finflow_submit(text, text, jsonb, text, integer) IS
    'Submit a workflow idempotently inside the caller''s transaction; returns its id. Business keys: 1 to 200 printable characters without surrounding whitespace (else SQLSTATE 22023). Same key with another input raises SQLSTATE FF409; an onboard-borrower whose borrower (NIK) has an unfinished onboarding under another key FF423. Input is validated by the worker as its first step.';
