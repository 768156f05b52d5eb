-- Submitting work from SQL, inside the caller's own transaction:
--
--     BEGIN;
--     INSERT INTO orders ...;
--     SELECT finflow_submit('onboard-borrower', 'order-42', '{"borrower": {...}}'::jsonb);
--     COMMIT;   -- or ROLLBACK: then neither the workflow nor its wake-up exists
--
-- The Rust API (`Store::submit`) calls `finflow_submit_workflow` too, so both paths share
-- one implementation of idempotence and conflicts.
--
-- These functions cannot validate kind-specific input: the worker validates it as the
-- workflow's first step and moves an invalid one to `failed` with every problem listed.

-- Schedule an "advance workflow X" wake-up for the finflow worker fleet: one apalis task in
-- queue `finflow-wakeups` with payload {"workflow_id": "..."}, the same row
-- `apalis_postgres::queries::push_tasks` writes from Rust. It is part of the caller's
-- transaction: a rollback removes it. A wake-up is only a hint; `workflows.next_run_at` is
-- the truth and the worker ignores one that finds nothing due.
CREATE FUNCTION finflow_schedule_wakeup(p_workflow_id uuid, p_run_at timestamptz DEFAULT now())
RETURNS void
LANGUAGE sql
VOLATILE
AS $$
    INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
    VALUES (
        apalis.generate_ulid(),
        'finflow-wakeups',
        convert_to(jsonb_build_object('workflow_id', p_workflow_id)::text, 'UTF8'),
        'Pending',
        0,
        10,
        p_run_at,
        0
    );
$$;

COMMENT ON FUNCTION finflow_schedule_wakeup(uuid, timestamptz) IS
    'Schedule a finflow wake-up task (apalis queue finflow-wakeups) for a workflow, in the caller''s transaction.';

-- Submit a workflow: returns its id and whether this call created it.
--
-- * new (kind, business_key): inserts the workflow (status pending, due now) and its wake-up;
-- * same key, same input (jsonb equality): returns the existing id, created = false;
-- * same key, different input: raises SQLSTATE FF409 (finflow conflict), naming the key.
--
-- Concurrent submissions of one key are safe: the unique index decides, the loser waits for
-- the winner's transaction and then sees its row.
CREATE FUNCTION finflow_submit_workflow(
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
BEGIN
    IF coalesce(p_kind, '') = '' OR coalesce(p_business_key, '') = '' THEN
        RAISE EXCEPTION 'finflow_submit: kind and business_key must not be empty'
            USING ERRCODE = '22023';
    END IF;
    IF p_input IS NULL THEN
        RAISE EXCEPTION 'finflow_submit: input must not be NULL (use ''{}''::jsonb)'
            USING ERRCODE = '22004';
    END IF;

    INSERT INTO workflows (
        id, kind, business_key, definition_name, definition_version, status, state,
        context, input, input_hash, next_run_at
    )
    VALUES (
        gen_random_uuid(), p_kind, p_business_key, coalesce(p_definition_name, p_kind),
        p_definition_version, 'pending', coalesce(p_state, 'new'),
        coalesce(p_context, '{}'::jsonb), p_input,
        encode(sha256(convert_to(p_input::text, 'UTF8')), 'hex'), now()
    )
    ON CONFLICT (kind, business_key) DO NOTHING
    RETURNING id INTO workflow_id;

    IF workflow_id IS NOT NULL THEN
        created := true;
        PERFORM finflow_schedule_wakeup(workflow_id, now());
        RETURN;
    END IF;

    SELECT w.id, w.input INTO workflow_id, v_existing_input
    FROM workflows w
    WHERE w.kind = p_kind AND w.business_key = p_business_key;

    IF workflow_id IS NULL THEN
        -- Only if the conflicting row vanished between the two statements.
        RAISE EXCEPTION 'finflow_submit: workflow (kind %, business key %) disappeared during submit',
            p_kind, p_business_key
            USING ERRCODE = '40001';
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
    'Submit a workflow idempotently; returns (workflow_id, created). Same key with another input raises SQLSTATE FF409.';

-- The form for other systems: returns the workflow id (new or existing).
CREATE FUNCTION finflow_submit(
    kind text,
    business_key text,
    input jsonb,
    definition_name text DEFAULT NULL,
    definition_version integer DEFAULT NULL
)
RETURNS uuid
LANGUAGE sql
VOLATILE
AS $$
    SELECT workflow_id
    FROM finflow_submit_workflow(kind, business_key, input, definition_name, definition_version);
$$;

COMMENT ON FUNCTION finflow_submit(text, text, jsonb, text, integer) IS
    'Submit a workflow idempotently inside the caller''s transaction; returns its id. Same key with another input raises SQLSTATE FF409. Input is validated by the worker as the first step.';
