-- Group commits that cost the server less per step, and a callback stored in one write
-- (issue: the engine core, rebuilt for cost).
--
-- Measured with pg_stat_statements (`track = all`) over `finflow bench`: inside
-- finflow_commit_steps (0016), the statement that called finflow_commit_step for one element
-- cost more than the step's own UPDATE, INSERT and DELETE together (0.50 ms a call against
-- 0.12 + 0.07 + 0.004): 39 values read out of the element's JSON one by one, five arrays
-- built by subqueries over it, and the function run as a table (a result set materialized
-- for its one row); and every batch ran a statement to lock the keys of all its elements,
-- even alone or with none. The same for finflow_record_callbacks.
--
-- 1. Each batch is parsed once, by jsonb_populate_recordset into a row type whose fields are
--    the keys the store writes (store::commit::Params, store::inbox::StoredCallback; a key
--    it does not send is NULL), and each element is committed by a plain call of
--    finflow_commit_step (finflow_record_callback) with that row's fields: an expression
--    PL/pgSQL evaluates without starting an executor. Same JSON, same result rows: workers
--    of the build before call these functions unchanged through a rolling deploy.
-- 2. The batch's keys are locked first only when more than one element has keys: a lone
--    element (most batches) takes its own, sorted, before it writes anything, as a single
--    commit always did (finflow_lock_keys, used by both batches).
-- 3. finflow_record_callback finds the waiting workflow before it inserts the callback, and
--    inserts it matched: one row version instead of an insert and an update, and a matched
--    callback never enters the indexes of unmatched ones (0019). Under the same locks as
--    before (the callback's correlation keys, which a commit registering a wait takes too),
--    so what it finds is what it would have found after the insert; a duplicate (same
--    source and event id) is still stored once, matched to nothing new, and wakes nothing.

CREATE TYPE finflow_step_params AS (
    workflow_id uuid,
    worker_id text,
    expected_version bigint,
    status text,
    state text,
    context jsonb,
    attempt integer,
    next_run_at timestamptz,
    caller_now timestamptz,
    waiting_for text,
    deadline timestamptz,
    last_error text,
    pin_version integer,
    pin_name text,
    release boolean,
    terminal boolean,
    facts jsonb,
    lock_keys bigint[],
    wait_events text[],
    wait_keys text[],
    wait_values text[],
    processed bigint[],
    j_step text,
    j_action text,
    j_outcome text,
    j_attempt integer,
    j_started_at timestamptz,
    j_finished_at timestamptz,
    j_duration_ms bigint,
    j_finfra_status integer,
    j_error text,
    j_operation_key text,
    j_request_summary jsonb,
    j_response_summary jsonb,
    a_title text,
    a_external_id text,
    a_payload jsonb,
    event_types text[],
    event_payloads jsonb
);

COMMENT ON TYPE finflow_step_params IS
    'One element of finflow_commit_steps'' batch: the parameters of finflow_commit_step by name (migration 0020, store::commit::Params).';

CREATE TYPE finflow_callback_params AS (
    lock_keys bigint[],
    source text,
    event_id text,
    title text,
    user_id text,
    identity_number text,
    kyc_id text,
    loan_unique_id text,
    external_id text,
    payload jsonb
);

COMMENT ON TYPE finflow_callback_params IS
    'One element of finflow_record_callbacks'' batch: the parameters of finflow_record_callback by name (migration 0020, store::inbox::StoredCallback).';

-- The correlation-key locks of a whole batch, taken first and in sorted order: the order a
-- single commit or stored callback takes its own.
CREATE FUNCTION finflow_lock_keys(p_keys bigint[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    -- A function scan emits the array in order: the locks are taken in sorted order.
    PERFORM pg_advisory_xact_lock(k)
    FROM unnest(ARRAY(SELECT DISTINCT x FROM unnest(p_keys) AS u(x) ORDER BY x)) AS t(k);
END;
$$;

DROP FUNCTION finflow_lock_batch_keys(jsonb);

CREATE OR REPLACE FUNCTION finflow_commit_steps(p_batch jsonb)
RETURNS TABLE (
    idx integer,
    result text,
    new_version bigint,
    journal_seq integer,
    stored_next_run_at timestamptz,
    pending_events bigint[]
)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_steps finflow_step_params[] :=
        ARRAY(SELECT s FROM jsonb_populate_recordset(NULL::finflow_step_params, p_batch) AS s);
    c finflow_step_params;
    v_keys bigint[] := '{}';
    v_keyed integer := 0;
    n integer := 0;
    r record;
    v_ev_workflow uuid[] := '{}';
    v_ev_seq integer[] := '{}';
    v_ev_position smallint[] := '{}';
    v_ev_type text[] := '{}';
    v_ev_payload jsonb[] := '{}';
    v_last_event bigint;
BEGIN
    FOREACH c IN ARRAY v_steps LOOP
        IF coalesce(cardinality(c.lock_keys), 0) > 0 THEN
            v_keys := v_keys || c.lock_keys;
            v_keyed := v_keyed + 1;
        END IF;
    END LOOP;
    IF v_keyed > 1 THEN
        PERFORM finflow_lock_keys(v_keys);
    END IF;

    FOREACH c IN ARRAY v_steps LOOP
        r := finflow_commit_step(
            c.workflow_id, c.worker_id, c.expected_version, c.status, c.state, c.context,
            c.attempt, c.next_run_at, c.caller_now, c.waiting_for, c.deadline, c.last_error,
            c.pin_version, c.pin_name, c.release, c.terminal, c.facts, c.lock_keys,
            c.wait_events, c.wait_keys, c.wait_values, c.processed, c.j_step, c.j_action,
            c.j_outcome, c.j_attempt, c.j_started_at, c.j_finished_at, c.j_duration_ms,
            c.j_finfra_status, c.j_error, c.j_operation_key, c.j_request_summary,
            c.j_response_summary, c.a_title, c.a_external_id, c.a_payload,
            '{}'::text[], '{}'::jsonb[]);
        IF r.result = 'ok' AND coalesce(cardinality(c.event_types), 0) > 0 THEN
            SELECT v_ev_workflow || array_agg(c.workflow_id ORDER BY t.n),
                   v_ev_seq || array_agg(r.journal_seq ORDER BY t.n),
                   v_ev_position || array_agg((t.n - 1)::smallint ORDER BY t.n),
                   v_ev_type || array_agg(t.ty ORDER BY t.n),
                   v_ev_payload || array_agg(
                       coalesce(nullif(c.event_payloads->((t.n - 1)::integer), 'null'::jsonb),
                           '{}'::jsonb) ORDER BY t.n)
            INTO v_ev_workflow, v_ev_seq, v_ev_position, v_ev_type, v_ev_payload
            FROM unnest(c.event_types) WITH ORDINALITY AS t(ty, n);
        END IF;
        idx := n;
        result := r.result;
        new_version := r.new_version;
        journal_seq := r.journal_seq;
        stored_next_run_at := r.stored_next_run_at;
        pending_events := r.pending_events;
        RETURN NEXT;
        n := n + 1;
    END LOOP;

    IF cardinality(v_ev_type) > 0 THEN
        PERFORM pg_advisory_xact_lock(20260009, 1);
        WITH written AS (
            INSERT INTO events (workflow_id, journal_seq, position, kind, business_key,
                event_type, payload)
            SELECT e.w, e.s, e.p, f.kind, f.business_key, e.ty, e.pl
            FROM unnest(v_ev_workflow, v_ev_seq, v_ev_position, v_ev_type, v_ev_payload)
                WITH ORDINALITY AS e(w, s, p, ty, pl, n)
            JOIN workflows f ON f.id = e.w
            ORDER BY e.n
            RETURNING id
        )
        SELECT max(id) INTO v_last_event FROM written;
        PERFORM pg_notify('finflow_events', v_last_event::text);
    END IF;
END;
$$;

COMMENT ON FUNCTION finflow_commit_steps IS
    'Several steps of different workflows, each behind its own guard, committed in one call (group commit; see migrations 0016 and 0020, and store::group).';

CREATE OR REPLACE FUNCTION finflow_record_callbacks(p_batch jsonb)
RETURNS TABLE (idx integer, inbox_id bigint, duplicate boolean, woke uuid)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_callbacks finflow_callback_params[] := ARRAY(
        SELECT s FROM jsonb_populate_recordset(NULL::finflow_callback_params, p_batch) AS s);
    c finflow_callback_params;
    v_keys bigint[] := '{}';
    v_keyed integer := 0;
    n integer := 0;
    r record;
BEGIN
    FOREACH c IN ARRAY v_callbacks LOOP
        IF coalesce(cardinality(c.lock_keys), 0) > 0 THEN
            v_keys := v_keys || c.lock_keys;
            v_keyed := v_keyed + 1;
        END IF;
    END LOOP;
    IF v_keyed > 1 THEN
        PERFORM finflow_lock_keys(v_keys);
    END IF;

    FOREACH c IN ARRAY v_callbacks LOOP
        r := finflow_record_callback(c.lock_keys, c.source, c.event_id, c.title, c.user_id,
            c.identity_number, c.kyc_id, c.loan_unique_id, c.external_id, c.payload);
        idx := n;
        inbox_id := r.inbox_id;
        duplicate := coalesce(r.duplicate, false);
        woke := r.woke;
        RETURN NEXT;
        n := n + 1;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION finflow_record_callbacks IS
    'Several callbacks stored in one call (group commit; see migrations 0016 and 0020, and store::group).';

-- As in 0008, with (3) above.
CREATE OR REPLACE FUNCTION finflow_record_callback(
    p_lock_keys bigint[],
    p_source text,
    p_event_id text,
    p_title text,
    p_user_id text,
    p_identity_number text,
    p_kyc_id text,
    p_loan_unique_id text,
    p_external_id text,
    p_payload jsonb,
    OUT inbox_id bigint,
    OUT duplicate boolean,
    OUT woke uuid
)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_waiter uuid;
BEGIN
    IF coalesce(cardinality(p_lock_keys), 0) > 0 THEN
        PERFORM pg_advisory_xact_lock(k) FROM unnest(p_lock_keys) AS t(k);
    END IF;

    SELECT w.workflow_id INTO v_waiter
    FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
    WHERE w.event = p_title AND f.status NOT IN ('completed', 'failed', 'cancelled') AND (
           (w.key_name = 'identity_number' AND w.key_value = p_identity_number)
        OR (w.key_name = 'user_id' AND w.key_value = p_user_id)
        OR (w.key_name = 'kyc_id' AND w.key_value = p_kyc_id)
        OR (w.key_name = 'loan_unique_id' AND w.key_value = p_loan_unique_id)
        OR (w.key_name = 'external_id' AND w.key_value = p_external_id))
    ORDER BY w.created_at, w.workflow_id
    LIMIT 1;

    INSERT INTO callback_inbox (source, event_id, title, user_id, identity_number, kyc_id,
        loan_unique_id, external_id, payload, matched_workflow_id, matched_at)
    VALUES (p_source, p_event_id, p_title, p_user_id, p_identity_number, p_kyc_id,
        p_loan_unique_id, p_external_id, p_payload, v_waiter,
        CASE WHEN v_waiter IS NOT NULL THEN now() END)
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING id INTO inbox_id;
    IF inbox_id IS NULL THEN
        SELECT i.id INTO inbox_id FROM callback_inbox i
        WHERE i.source = p_source AND i.event_id = p_event_id;
        duplicate := true;
        RETURN;
    END IF;
    duplicate := false;

    woke := v_waiter;
    IF woke IS NOT NULL THEN
        UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now()),
            updated_at = now()
        WHERE id = woke;
        PERFORM finflow_schedule_wakeup(woke, now());
    END IF;
END;
$$;

COMMENT ON FUNCTION finflow_record_callback IS
    'Store one callback and wake the workflow waiting for it, in one call (see migrations 0008 and 0020, and store::inbox).';
