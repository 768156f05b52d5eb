-- A worker's own due hints in-process, and the inbox matched by key (issue: the engine core,
-- rebuilt for cost).
--
-- 1. What a worker process makes due itself (a callback its receiver stored, a step it
--    released with events waiting, a workflow it submitted) it hands to its own runner in
--    memory after the commit (store::due). Its sessions say so by their application_name,
--    `finflow-worker:<pid>-<tag>` (store::connect; a plain startup parameter, which
--    connection poolers pass on), and for them finflow_schedule_wakeup sends no NOTIFY.
--    Workers of earlier builds named theirs `finflow-worker:<12 hex digits>`, without a
--    `-` after the prefix: they keep their own notifications through a rolling deploy.
--    A NOTIFY costs more than the message: commits of notifying transactions are
--    serialized on one lock of the database (with their WAL flush), and every listening
--    session of the database runs a transaction to read the queue, whatever the channel.
--    Other sessions (`finflow submit`, SQL's finflow_submit, the console, workers of
--    earlier builds) still notify, and a worker still listens for those hints. The due
--    scan stays the truth for anything a hint missed.
-- 2. finflow_notify_due: the NOTIFY itself, for what a worker makes due for others (the
--    workflows an announcement wakes, an operator's command, a reconciliation's nudge).
-- 3. finflow_commit_step: as in 0009, with the announcement's waiters notified by (2), and
--    the inbox events a new wait finds read as an id array, so that they are fetched by
--    primary key instead of by hashing the ids over a scan of the whole inbox (what the
--    planner chose for `IN (...)` while statistics were stale, growing with the inbox).

CREATE FUNCTION finflow_notify_due(p_workflow_id uuid)
RETURNS void
LANGUAGE sql
VOLATILE
AS $$
    SELECT pg_notify(
        'finflow_due',
        p_workflow_id::text || ' ' || coalesce(current_setting('application_name', true), '')
    );
$$;

COMMENT ON FUNCTION finflow_notify_due(uuid) IS
    'NOTIFY finflow_due for a workflow due now, delivered when the caller''s transaction commits (migration 0018).';

CREATE OR REPLACE FUNCTION finflow_schedule_wakeup(p_workflow_id uuid, p_run_at timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    IF (p_run_at IS NULL OR p_run_at <= now())
        AND coalesce(current_setting('application_name', true), '') NOT LIKE 'finflow-worker:%-%' THEN
        PERFORM finflow_notify_due(p_workflow_id);
    END IF;
END;
$$;

COMMENT ON FUNCTION finflow_schedule_wakeup(uuid, timestamptz) IS
    'Tell the finflow fleet that a workflow is due now (NOTIFY finflow_due when the caller''s transaction commits), unless the session hands its own hints over in-process; a later time is left to the due scan.';

-- As in 0009, with (2) and (3) above.
CREATE OR REPLACE FUNCTION finflow_commit_step(
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
    OUT result text,
    OUT new_version bigint,
    OUT journal_seq integer,
    OUT stored_next_run_at timestamptz,
    OUT pending_events bigint[]
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

    IF cardinality(pending_events) > 0 THEN
        UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now())
        WHERE id = p_workflow_id
        RETURNING next_run_at INTO stored_next_run_at;
    END IF;

    IF p_release THEN
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
    'One step of one workflow, with its lifecycle events, committed in one call (see migrations 0007, 0009 and 0018, and store::commit).';
