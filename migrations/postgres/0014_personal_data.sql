-- Personal data at rest (issue: personal data encrypted, kept out of what analysts read).
--
-- * workflows.data_key: the workflow's data key, wrapped by a key-encryption key of the
--   configuration ("<key label>:<base64>"), or 'erased' once crypto-shredded. With privacy
--   keys configured, finflow stores `input` sealed under it ({"$sealed": "xc1:..."}, bound
--   to the row); NULL means the input is plain (written by an earlier build, or submitted
--   through SQL: `finflow privacy seal` seals those in batches).
-- * workflows.erased_at: when its personal data was erased (purge or erase).
-- * workflows.nik_last4: the last 4 digits of an onboarding's NIK, the masked form the
--   console searches by (the index on the input's NIK cannot read a sealed input).
-- * callback_inbox.payload of a Finfra callback is sealed under a data key of its own that
--   travels with it ({"$key": "<wrapped>", "$data": {"$sealed": ...}}), and its
--   identity_number (a NIK) is stored as a keyed hash, as are waits on it.
-- * finflow_submit_workflow takes the input's hash, the borrower's identity key (a keyed
--   hash of the NIK), the wrapped data key and the NIK's last 4 from a caller that sealed
--   the input itself (finflow's own submit), and compares a resubmission by input hash
--   rather than by input (a sealed input differs at every seal).
ALTER TABLE workflows ADD COLUMN data_key TEXT;
ALTER TABLE workflows ADD COLUMN erased_at TIMESTAMPTZ;
ALTER TABLE workflows ADD COLUMN nik_last4 TEXT;

COMMENT ON COLUMN workflows.data_key IS 'The data key sealing this workflow''s personal data, wrapped by a configured key ("<label>:<base64>"); ''erased'' after crypto-shredding; NULL while the input is plain.';
COMMENT ON COLUMN workflows.erased_at IS 'When the personal data of this workflow was erased (finflow privacy purge / erase); its money record stays.';
COMMENT ON COLUMN workflows.nik_last4 IS 'onboard-borrower: the last 4 digits of the NIK (a masked form), for searching.';

CREATE FUNCTION finflow_nik_last4(p_kind text, p_input jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN p_kind = 'onboard-borrower'
             AND jsonb_typeof(p_input #> '{borrower,authorised_signatory,documents,ktp,number}') = 'string'
           THEN right(p_input #>> '{borrower,authorised_signatory,documents,ktp,number}', 4)
           END;
$$;

UPDATE workflows SET nik_last4 = finflow_nik_last4(kind, input)
WHERE kind = 'onboard-borrower' AND nik_last4 IS NULL;

DROP INDEX IF EXISTS workflows_nik_last4_idx;
CREATE INDEX workflows_nik_last4_idx ON workflows (nik_last4) WHERE nik_last4 IS NOT NULL;

DROP FUNCTION finflow_submit_workflow(text, text, jsonb, text, integer, text, jsonb);

CREATE FUNCTION finflow_submit_workflow(
    p_kind text,
    p_business_key text,
    p_input jsonb,
    p_definition_name text DEFAULT NULL,
    p_definition_version integer DEFAULT NULL,
    p_state text DEFAULT 'new',
    p_context jsonb DEFAULT '{}'::jsonb,
    p_input_hash text DEFAULT NULL,
    p_identity_key text DEFAULT NULL,
    p_data_key text DEFAULT NULL,
    p_nik_last4 text DEFAULT NULL,
    OUT workflow_id uuid,
    OUT created boolean
)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_existing_hash text;
    v_hash text;
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

    v_hash := coalesce(p_input_hash, encode(sha256(convert_to(p_input::text, 'UTF8')), 'hex'));
    v_identity_key := coalesce(p_identity_key, finflow_identity_key(p_kind, p_input));
    IF v_identity_key IS NOT NULL THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'finflow_submit: an onboard-borrower cannot be submitted in a REPEATABLE READ transaction'
                USING ERRCODE = '0A000',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE: the check for another onboarding of the borrower must see what committed while it waited.';
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('finflow identity_key ' || v_identity_key, 0));
    END IF;

    SELECT w.id, w.input_hash INTO workflow_id, v_existing_hash
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
            context, input, input_hash, identity_key, data_key, nik_last4, next_run_at
        )
        VALUES (
            gen_random_uuid(), p_kind, p_business_key, coalesce(p_definition_name, p_kind),
            p_definition_version, 'pending', coalesce(p_state, 'new'),
            coalesce(p_context, '{}'::jsonb), p_input,
            v_hash, v_identity_key, p_data_key,
            coalesce(p_nik_last4, finflow_nik_last4(p_kind, p_input)), now()
        )
        ON CONFLICT (kind, business_key) DO NOTHING
        RETURNING id INTO workflow_id;

        IF workflow_id IS NOT NULL THEN
            created := true;
            PERFORM finflow_schedule_wakeup(workflow_id, now());
            RETURN;
        END IF;

        -- Another submit of the key committed after our first look.
        SELECT w.id, w.input_hash INTO workflow_id, v_existing_hash
        FROM workflows w
        WHERE w.kind = p_kind AND w.business_key = p_business_key;

        IF workflow_id IS NULL THEN
            -- Only if the conflicting row vanished between the two statements.
            RAISE EXCEPTION 'finflow_submit: workflow (kind %, business key %) disappeared during submit',
                p_kind, p_business_key
                USING ERRCODE = '40001';
        END IF;
    END IF;

    IF v_existing_hash IS DISTINCT FROM v_hash THEN
        RAISE EXCEPTION 'finflow_submit: a % workflow with business key % already exists with a different input',
            p_kind, p_business_key
            USING ERRCODE = 'FF409',
                  DETAIL = format('existing workflow id: %s', workflow_id),
                  HINT = 'Submit the same input to get the existing workflow, or use another business key.';
    END IF;

    created := false;
END;
$$;

COMMENT ON FUNCTION finflow_submit_workflow(text, text, jsonb, text, integer, text, jsonb, text, text, text, text) IS
    'Submit a workflow idempotently; returns (workflow_id, created). A business key that breaks the rule raises SQLSTATE 22023; the same key with another input (by input hash) FF409; a new onboard-borrower of a borrower with an unfinished onboarding under another key FF423. finflow passes a sealed input with its hash, identity key, wrapped data key and NIK last 4.';

-- Who read a workflow's personal data in the clear, why and when (`finflow inspect --reveal`,
-- the console's reveal): kept with the workflow, also after erasure.
CREATE TABLE personal_data_reveals (
    id           BIGSERIAL   PRIMARY KEY,
    workflow_id  UUID        NOT NULL REFERENCES workflows (id),
    revealed_by  TEXT        NOT NULL,
    reason       TEXT        NOT NULL CHECK (btrim(reason) <> ''),
    via          TEXT        NOT NULL,
    revealed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX personal_data_reveals_workflow ON personal_data_reveals (workflow_id, id);
COMMENT ON TABLE personal_data_reveals IS 'Each time someone read a workflow''s personal data in the clear: who, why, when, through what (cli or console).';

-- The overview says what became of a workflow's personal data: sealed, plain (not yet
-- sealed), or erased (and when). Columns added at the end: the reader's grant stays.
CREATE OR REPLACE VIEW workflow_overview AS
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
    j.finished_at                   AS last_step_at,
    CASE WHEN w.erased_at IS NOT NULL THEN 'erased'
         WHEN w.data_key IS NOT NULL THEN 'sealed'
         ELSE 'plain' END           AS personal_data,
    w.erased_at
FROM workflows w
LEFT JOIN step_journal j
    ON j.workflow_id = w.id
   AND j.seq = (SELECT max(seq) FROM step_journal WHERE workflow_id = w.id);


