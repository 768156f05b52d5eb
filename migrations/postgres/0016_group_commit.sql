-- Group commit (issue: the engine core, rebuilt for cost): the steps that one worker
-- process finished at about the same moment, committed in ONE call and one transaction; and
-- the same for the callbacks its receiver was handed (finflow_record_callbacks, below).
-- Claims are batched with a plain statement (store::claim).
--
-- finflow_commit_steps(p_batch) takes a JSON array of step commits, each an object with the
-- parameters of finflow_commit_step (0009) by name (see store::commit::Params), and commits
-- each with that function, in the order given, each behind its own guard (lease holder and
-- version): a commit whose guard fails returns 'lease_lost' (or 'not_found') and writes
-- nothing, the others are written. One row per element: its position (`idx`, from 0) and
-- what finflow_commit_step returned for it.
--
-- The locks are taken in the order a single commit takes them, so a batch and a single
-- commit (or a stored callback) cannot wait for each other in a cycle:
--   1. the correlation keys of the whole batch, sorted, before anything is written (each
--      commit then takes its own again, which a transaction already holding them does at
--      once);
--   2. the rows the commits update, as each commit runs;
--   3. last, the lock that orders event ids (0009): the batch's lifecycle events are
--      written together after every commit of it, with the kind and business key of their
--      workflow, in the batch's order and each step's order; one NOTIFY finflow_events
--      carries the last id.
-- An error in any commit (not a failed guard: a constraint, a deadlock, a cancelled
-- statement) aborts the whole call and so writes nothing of any of them; the store then
-- commits each of them alone (store::group).

-- The correlation-key locks of a whole batch (the `lock_keys` of its elements), taken
-- first and in sorted order: the order a single commit or stored callback takes its own.
CREATE FUNCTION finflow_lock_batch_keys(p_batch jsonb)
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    -- A function scan emits the array in order: the locks are taken in sorted order.
    PERFORM pg_advisory_xact_lock(k)
    FROM unnest((
        SELECT array_agg(DISTINCT x.value::bigint ORDER BY x.value::bigint)
        FROM jsonb_array_elements(p_batch) AS e(item),
             jsonb_array_elements_text(e.item->'lock_keys') AS x(value)
    )) AS t(k);
END;
$$;

CREATE FUNCTION finflow_commit_steps(p_batch jsonb)
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
    c jsonb;
    n integer;
    r record;
    v_ev_workflow uuid[] := '{}';
    v_ev_seq integer[] := '{}';
    v_ev_position smallint[] := '{}';
    v_ev_type text[] := '{}';
    v_ev_payload jsonb[] := '{}';
    v_last_event bigint;
BEGIN
    PERFORM finflow_lock_batch_keys(p_batch);

    FOR c, n IN SELECT e.item, (e.ord - 1)::integer
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e(item, ord) ORDER BY e.ord
    LOOP
        SELECT * INTO r FROM finflow_commit_step(
            (c->>'workflow_id')::uuid,
            c->>'worker_id',
            (c->>'expected_version')::bigint,
            c->>'status',
            c->>'state',
            c->'context',
            (c->>'attempt')::integer,
            (c->>'next_run_at')::timestamptz,
            (c->>'caller_now')::timestamptz,
            c->>'waiting_for',
            (c->>'deadline')::timestamptz,
            c->>'last_error',
            (c->>'pin_version')::integer,
            c->>'pin_name',
            (c->>'release')::boolean,
            (c->>'terminal')::boolean,
            c->'facts',
            ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(c->'lock_keys') AS t(x)),
            ARRAY(SELECT jsonb_array_elements_text(c->'wait_events')),
            ARRAY(SELECT jsonb_array_elements_text(c->'wait_keys')),
            ARRAY(SELECT jsonb_array_elements_text(c->'wait_values')),
            ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(c->'processed') AS t(x)),
            c->>'j_step',
            c->>'j_action',
            c->>'j_outcome',
            (c->>'j_attempt')::integer,
            (c->>'j_started_at')::timestamptz,
            (c->>'j_finished_at')::timestamptz,
            (c->>'j_duration_ms')::bigint,
            (c->>'j_finfra_status')::integer,
            c->>'j_error',
            c->>'j_operation_key',
            nullif(c->'j_request_summary', 'null'::jsonb),
            nullif(c->'j_response_summary', 'null'::jsonb),
            c->>'a_title',
            c->>'a_external_id',
            nullif(c->'a_payload', 'null'::jsonb),
            '{}'::text[],
            '{}'::jsonb[]
        );
        IF r.result = 'ok' AND jsonb_array_length(c->'event_types') > 0 THEN
            SELECT v_ev_workflow || array_agg((c->>'workflow_id')::uuid ORDER BY t.n),
                   v_ev_seq || array_agg(r.journal_seq ORDER BY t.n),
                   v_ev_position || array_agg((t.n - 1)::smallint ORDER BY t.n),
                   v_ev_type || array_agg(t.ty ORDER BY t.n),
                   v_ev_payload || array_agg(
                       coalesce(nullif(c->'event_payloads'->((t.n - 1)::integer), 'null'::jsonb),
                           '{}'::jsonb) ORDER BY t.n)
            INTO v_ev_workflow, v_ev_seq, v_ev_position, v_ev_type, v_ev_payload
            FROM jsonb_array_elements_text(c->'event_types') WITH ORDINALITY AS t(ty, n);
        END IF;
        idx := n;
        result := r.result;
        new_version := r.new_version;
        journal_seq := r.journal_seq;
        stored_next_run_at := r.stored_next_run_at;
        pending_events := r.pending_events;
        RETURN NEXT;
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
    'Several steps of different workflows, each behind its own guard, committed in one call (group commit; see migration 0016 and store::group).';

-- The callbacks a receiver was handed at about the same moment, stored in ONE call and one
-- transaction (store::group): each element an object with the parameters of
-- finflow_record_callback (0008) by name (see store::inbox), stored with that function in
-- the order given; one row per element with its position (`idx`, from 0) and what the
-- function returned for it. The correlation keys of the whole batch are locked first, in
-- sorted order, as finflow_commit_steps does. A batch that fails as a whole stores nothing
-- (the store then stores each callback alone); the receiver answers Finfra only once its
-- callback's batch committed.
CREATE FUNCTION finflow_record_callbacks(p_batch jsonb)
RETURNS TABLE (idx integer, inbox_id bigint, duplicate boolean, woke uuid)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    c jsonb;
    n integer;
    r record;
BEGIN
    PERFORM finflow_lock_batch_keys(p_batch);

    FOR c, n IN SELECT e.item, (e.ord - 1)::integer
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS e(item, ord) ORDER BY e.ord
    LOOP
        SELECT * INTO r FROM finflow_record_callback(
            ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(c->'lock_keys') AS t(x)),
            c->>'source',
            c->>'event_id',
            c->>'title',
            c->>'user_id',
            c->>'identity_number',
            c->>'kyc_id',
            c->>'loan_unique_id',
            c->>'external_id',
            c->'payload'
        );
        idx := n;
        inbox_id := r.inbox_id;
        duplicate := coalesce(r.duplicate, false);
        woke := r.woke;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION finflow_record_callbacks IS
    'Several callbacks stored in one call (group commit; see migration 0016 and store::group).';
