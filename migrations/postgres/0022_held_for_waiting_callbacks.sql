-- A step that finds callbacks waiting keeps its workflow instead of handing it over (issue:
-- the engine core, rebuilt for cost).
--
-- When a step parks (it waits, sleeps or needs a person) and its commit finds callbacks
-- already matched to the workflow and not yet processed (one that arrived while the step
-- ran, or before its new wait began: with a partner that answers at once, about one in
-- every onboarding), the commit released the lease, made the workflow due now, and its
-- worker claimed it again: one more transaction and row version, and the row, its input and
-- its events read back into the process that had just written them.
--
-- 1. finflow_commit_step takes the holder's lease length (p_hold_secs, last, defaulting to
--    NULL): with it, a releasing commit that finds such events keeps the workflow for its
--    holder instead, as a claim would have (status running, the lease renewed, due now,
--    the version moved on), and returns the events as a claim returns them (kept_events,
--    oldest first). The holder goes on with them at once; if it dies, the lease ends and
--    the due scan takes the workflow, as after any claim. Without it (a worker of the build
--    before, through a rolling deploy: its batches carry no `hold_secs`) the commit
--    releases as it always did.
-- 2. finflow_commit_steps passes each element's `hold_secs` and returns `kept_events`; the
--    columns it returned before are unchanged.
--
-- Both functions change their result columns, so both are dropped and created again
-- (inside the migration's transaction: no caller sees them missing).

ALTER TYPE finflow_step_params ADD ATTRIBUTE hold_secs double precision;

DROP FUNCTION finflow_commit_steps(jsonb);
DROP FUNCTION finflow_commit_step(uuid, text, bigint, text, text, jsonb, integer, timestamptz,
    timestamptz, text, timestamptz, text, integer, text, boolean, boolean, jsonb, bigint[],
    text[], text[], text[], bigint[], text, text, text, integer, timestamptz, timestamptz,
    bigint, integer, text, text, jsonb, jsonb, text, text, jsonb, text[], jsonb[]);

-- As in 0018, with (1) above.
CREATE FUNCTION finflow_commit_step(
    p_workflow_id uuid,
    p_worker_id text,
    p_expected_version bigint,
    p_status text,
    p_state text,
    p_context jsonb,
    p_attempt integer,
    p_next_run_at timestamptz,
    p_caller_now timestamptz,
    p_waiting_for text,
    p_deadline timestamptz,
    p_last_error text,
    p_pin_version integer,
    p_pin_name text,
    p_release boolean,
    p_terminal boolean,
    p_facts jsonb,
    p_lock_keys bigint[],
    p_wait_events text[],
    p_wait_keys text[],
    p_wait_values text[],
    p_processed bigint[],
    p_j_step text,
    p_j_action text,
    p_j_outcome text,
    p_j_attempt integer,
    p_j_started_at timestamptz,
    p_j_finished_at timestamptz,
    p_j_duration_ms bigint,
    p_j_finfra_status integer,
    p_j_error text,
    p_j_operation_key text,
    p_j_request_summary jsonb,
    p_j_response_summary jsonb,
    p_a_title text,
    p_a_external_id text,
    p_a_payload jsonb,
    p_event_types text[] DEFAULT '{}',
    p_event_payloads jsonb[] DEFAULT '{}',
    p_hold_secs double precision DEFAULT NULL,
    OUT result text,
    OUT new_version bigint,
    OUT journal_seq integer,
    OUT stored_next_run_at timestamptz,
    OUT pending_events bigint[],
    OUT kept_events jsonb
)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_has_waits boolean := coalesce(cardinality(p_wait_events), 0) > 0;
    v_waiters uuid[];
    v_kind text;
    v_business_key text;
    v_last_event bigint;
BEGIN
    IF coalesce(cardinality(p_lock_keys), 0) > 0 THEN
        -- A function scan emits the array in order: the locks are taken in sorted order.
        PERFORM pg_advisory_xact_lock(k) FROM unnest(p_lock_keys) AS t(k);
    END IF;

    UPDATE workflows SET
        status = p_status, state = p_state, context = p_context, attempt = p_attempt,
        next_run_at = CASE WHEN p_next_run_at <= p_caller_now
            THEN least(p_next_run_at, now()) ELSE p_next_run_at END,
        waiting_for = p_waiting_for, deadline = p_deadline, last_error = p_last_error,
        definition_name = CASE WHEN definition_version IS NULL
            THEN coalesce(p_pin_name, definition_name) ELSE definition_name END,
        definition_version = coalesce(definition_version, p_pin_version),
        lease_owner = CASE WHEN p_release THEN NULL ELSE lease_owner END,
        lease_until = CASE WHEN p_release THEN NULL ELSE lease_until END,
        finished_at = CASE WHEN p_terminal THEN now() ELSE NULL END,
        facts = p_facts, version = version + 1, updated_at = now()
    WHERE id = p_workflow_id AND lease_owner = p_worker_id AND version = p_expected_version
    RETURNING version, next_run_at, kind, business_key
        INTO new_version, stored_next_run_at, v_kind, v_business_key;
    IF NOT FOUND THEN
        result := CASE WHEN EXISTS (SELECT 1 FROM workflows WHERE id = p_workflow_id)
            THEN 'lease_lost' ELSE 'not_found' END;
        RETURN;
    END IF;

    INSERT INTO step_journal (workflow_id, seq, step, action, outcome, attempt, started_at,
        finished_at, duration_ms, finfra_status, error, operation_key, request_summary,
        response_summary, worker_id)
    SELECT p_workflow_id, coalesce(max(s.seq), 0) + 1, p_j_step, p_j_action, p_j_outcome,
        p_j_attempt, p_j_started_at, p_j_finished_at, p_j_duration_ms, p_j_finfra_status,
        p_j_error, p_j_operation_key, p_j_request_summary, p_j_response_summary, p_worker_id
    FROM step_journal s WHERE s.workflow_id = p_workflow_id
    RETURNING seq INTO journal_seq;

    DELETE FROM workflow_waits WHERE workflow_id = p_workflow_id;
    IF v_has_waits THEN
        INSERT INTO workflow_waits (workflow_id, event, key_name, key_value)
        SELECT p_workflow_id, e, k, v
        FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS t(e, k, v)
        ON CONFLICT DO NOTHING;
    END IF;

    IF coalesce(cardinality(p_processed), 0) > 0 THEN
        UPDATE callback_inbox SET processed_at = now()
        WHERE id = ANY(p_processed) AND matched_workflow_id = p_workflow_id
          AND processed_at IS NULL;
    END IF;

    IF p_terminal AND p_a_title IS NOT NULL THEN
        INSERT INTO callback_inbox (source, event_id, title, external_id, payload, processed_at)
        VALUES ('internal', p_workflow_id::text, p_a_title, p_a_external_id, p_a_payload, now())
        ON CONFLICT (source, event_id) DO NOTHING;
        WITH copies AS (
            INSERT INTO callback_inbox (source, event_id, title, external_id, payload,
                matched_workflow_id, matched_at)
            SELECT 'internal', p_workflow_id::text || ':' || w.workflow_id, w.event,
                w.key_value, p_a_payload, w.workflow_id, now()
            FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
            WHERE w.event = p_a_title AND w.key_name = 'external_id'
              AND w.key_value = p_a_external_id
              AND f.status NOT IN ('completed', 'failed', 'cancelled')
            ON CONFLICT (source, event_id) DO NOTHING
            RETURNING matched_workflow_id
        )
        SELECT array_agg(matched_workflow_id) INTO v_waiters FROM copies;
        IF coalesce(cardinality(v_waiters), 0) > 0 THEN
            UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now()),
                updated_at = now()
            WHERE id = ANY(v_waiters);
            -- Workflows of any worker: a NOTIFY whatever this session's hints are.
            PERFORM finflow_notify_due(w) FROM unnest(v_waiters) AS t(w);
        END IF;
    END IF;

    IF v_has_waits THEN
        INSERT INTO callback_inbox (source, event_id, title, external_id, payload,
            matched_workflow_id, matched_at)
        SELECT a.source, a.event_id || ':' || p_workflow_id::text, a.title, a.external_id,
            a.payload, p_workflow_id, now()
        FROM workflow_waits w JOIN callback_inbox a ON a.external_id = w.key_value
            AND a.title = w.event AND a.source = 'internal' AND a.matched_workflow_id IS NULL
        WHERE w.workflow_id = p_workflow_id AND w.key_name = 'external_id'
        ON CONFLICT (source, event_id) DO NOTHING;
    END IF;

    pending_events := '{}';
    IF NOT p_terminal THEN
        IF v_has_waits THEN
            -- One indexed branch per key column (an OR across columns would defeat them).
            -- `= ANY(ARRAY(...))`, not `IN (...)`: the ids are read first and the rows found
            -- by key; `IN` let the planner hash the ids and scan the whole inbox.
            UPDATE callback_inbox SET matched_workflow_id = p_workflow_id, matched_at = now()
            WHERE id = ANY(ARRAY(
                SELECT i.id FROM workflow_waits w JOIN callback_inbox i
                    ON i.identity_number = w.key_value AND i.title = w.event
                WHERE w.workflow_id = p_workflow_id AND w.key_name = 'identity_number'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL
                UNION ALL
                SELECT i.id FROM workflow_waits w JOIN callback_inbox i
                    ON i.user_id = w.key_value AND i.title = w.event
                WHERE w.workflow_id = p_workflow_id AND w.key_name = 'user_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL
                UNION ALL
                SELECT i.id FROM workflow_waits w JOIN callback_inbox i
                    ON i.kyc_id = w.key_value AND i.title = w.event
                WHERE w.workflow_id = p_workflow_id AND w.key_name = 'kyc_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL
                UNION ALL
                SELECT i.id FROM workflow_waits w JOIN callback_inbox i
                    ON i.loan_unique_id = w.key_value AND i.title = w.event
                WHERE w.workflow_id = p_workflow_id AND w.key_name = 'loan_unique_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL
                UNION ALL
                SELECT i.id FROM workflow_waits w JOIN callback_inbox i
                    ON i.external_id = w.key_value AND i.title = w.event
                WHERE w.workflow_id = p_workflow_id AND w.key_name = 'external_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL
            ));
        END IF;
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO pending_events
        FROM callback_inbox
        WHERE matched_workflow_id = p_workflow_id AND processed_at IS NULL;
    END IF;

    IF cardinality(pending_events) > 0 AND p_release AND p_hold_secs IS NOT NULL THEN
        -- (1) Held on for the events instead of released: claimed by its holder, as
        -- finflow's claim does, and the events returned as the claim returns them.
        UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now()),
            status = 'running', lease_owner = p_worker_id,
            lease_until = now() + make_interval(secs => p_hold_secs),
            version = version + 1
        WHERE id = p_workflow_id
        RETURNING version, next_run_at INTO new_version, stored_next_run_at;
        SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.received_at, i.id), '[]'::jsonb)
        INTO kept_events
        FROM callback_inbox i
        WHERE i.matched_workflow_id = p_workflow_id AND i.processed_at IS NULL;
    ELSIF cardinality(pending_events) > 0 THEN
        UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now())
        WHERE id = p_workflow_id
        RETURNING next_run_at INTO stored_next_run_at;
    END IF;

    IF p_release AND kept_events IS NULL THEN
        IF cardinality(pending_events) > 0 THEN
            PERFORM finflow_schedule_wakeup(p_workflow_id, now());
        ELSIF stored_next_run_at IS NOT NULL THEN
            PERFORM finflow_schedule_wakeup(p_workflow_id, stored_next_run_at);
        END IF;
    END IF;

    -- 10. The step's lifecycle events, last: the lock that orders them is held only from
    --     here to the commit, and nothing after it waits for another lock.
    IF coalesce(cardinality(p_event_types), 0) > 0 THEN
        -- The two-key form: a key space apart from the one-key locks (correlation keys,
        -- identity keys, sqlx's migrator), so it can collide with none of them.
        PERFORM pg_advisory_xact_lock(20260009, 1);
        WITH written AS (
            INSERT INTO events (workflow_id, journal_seq, position, kind, business_key,
                event_type, payload)
            SELECT p_workflow_id, journal_seq, (t.n - 1)::smallint, v_kind, v_business_key,
                t.ty, coalesce(p_event_payloads[t.n], '{}'::jsonb)
            FROM unnest(p_event_types) WITH ORDINALITY AS t(ty, n)
            ORDER BY t.n
            RETURNING id
        )
        SELECT max(id) INTO v_last_event FROM written;
        PERFORM pg_notify('finflow_events', v_last_event::text);
    END IF;

    result := 'ok';
END;
$$;

COMMENT ON FUNCTION finflow_commit_step IS
    'One step of one workflow, with its lifecycle events, committed in one call; with p_hold_secs a parking step that finds callbacks waiting keeps the workflow for its holder (see migrations 0007, 0009, 0018 and 0022, and store::commit).';

CREATE FUNCTION finflow_commit_steps(p_batch jsonb)
RETURNS TABLE (
    idx integer,
    result text,
    new_version bigint,
    journal_seq integer,
    stored_next_run_at timestamptz,
    pending_events bigint[],
    kept_events jsonb
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
            '{}'::text[], '{}'::jsonb[], c.hold_secs);
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
        kept_events := r.kept_events;
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
    'Several steps of different workflows, each behind its own guard, committed in one call (group commit; see migrations 0016, 0020 and 0022, and store::group).';
