-- A wait's match reads only the key columns its waits name (issue: the engine core, rebuilt
-- for cost).
--
-- finflow_commit_step (0023) matched the callbacks stored before a wait began with one
-- statement of five branches, one per key column (identity_number, user_id, kyc_id,
-- loan_unique_id, external_id), each joining the workflow's waits read back from
-- `workflow_waits`. A wait names one key column, two at most, yet every branch was set up
-- and run: 0.29 ms a call in a bench of 1,500 onboardings, the costliest statement of a
-- step's commit after the row update and the journal row.
--
-- (1) and (2) in the function's comments are 0023's (the guard, the row written once).
--
-- 3. The match is one statement per key column the waits name, each guarded by that name
--    being in `p_wait_keys`, and reads the waits from the arrays the step passed (what it
--    has just inserted) instead of reading them back.
-- 4. The waits are inserted without `ON CONFLICT`: the workflow's waits were deleted by the
--    statement before, so only a wait named twice in the arrays could conflict, and
--    `DISTINCT` drops it (a speculative insertion writes one more WAL record a row).
--
-- Everything else as in 0023; same signature and results, so finflow_commit_steps (0022)
-- calls it unchanged, and so do workers of the build before through a rolling deploy.

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
    v_next timestamptz := CASE WHEN p_next_run_at <= p_caller_now
        THEN least(p_next_run_at, now()) ELSE p_next_run_at END;
    v_keep boolean;
BEGIN
    IF coalesce(cardinality(p_lock_keys), 0) > 0 THEN
        -- A function scan emits the array in order: the locks are taken in sorted order.
        PERFORM pg_advisory_xact_lock(k) FROM unnest(p_lock_keys) AS t(k);
    END IF;

    -- (1) The guard, and the row lock the update would have taken (held to the commit), so
    -- the one update at the end finds the row as checked. The journal row is numbered after
    -- it, by a statement of its own: a journal row appended while this waited for the lock
    -- (`Store::append_journal` takes the same lock) is counted.
    PERFORM 1 FROM workflows
    WHERE id = p_workflow_id AND lease_owner = p_worker_id AND version = p_expected_version
    FOR NO KEY UPDATE;
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
        -- (4) The workflow's waits were all deleted just above: only a wait named twice in
        -- the arrays could conflict, and DISTINCT drops it.
        INSERT INTO workflow_waits (workflow_id, event, key_name, key_value)
        SELECT DISTINCT p_workflow_id, e, k, v
        FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS t(e, k, v);
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
        -- (3) Each key column the waits name, by its own statement: one indexed look-up
        -- of the unmatched callbacks with that key, for the waits' titles and values as the
        -- arrays give them (what was just inserted). A wait names one or two key columns; the
        -- others cost nothing. `= ANY(ARRAY(...))`, not `IN (...)`: the ids are read first
        -- and the rows found by key (as in 0018).
        IF 'identity_number' = ANY(p_wait_keys) THEN
            UPDATE callback_inbox SET matched_workflow_id = p_workflow_id, matched_at = now()
            WHERE id = ANY(ARRAY(
                SELECT i.id FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS w(e, k, v)
                JOIN callback_inbox i ON i.identity_number = w.v AND i.title = w.e
                WHERE w.k = 'identity_number'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL));
        END IF;
        IF 'user_id' = ANY(p_wait_keys) THEN
            UPDATE callback_inbox SET matched_workflow_id = p_workflow_id, matched_at = now()
            WHERE id = ANY(ARRAY(
                SELECT i.id FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS w(e, k, v)
                JOIN callback_inbox i ON i.user_id = w.v AND i.title = w.e
                WHERE w.k = 'user_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL));
        END IF;
        IF 'kyc_id' = ANY(p_wait_keys) THEN
            UPDATE callback_inbox SET matched_workflow_id = p_workflow_id, matched_at = now()
            WHERE id = ANY(ARRAY(
                SELECT i.id FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS w(e, k, v)
                JOIN callback_inbox i ON i.kyc_id = w.v AND i.title = w.e
                WHERE w.k = 'kyc_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL));
        END IF;
        IF 'loan_unique_id' = ANY(p_wait_keys) THEN
            UPDATE callback_inbox SET matched_workflow_id = p_workflow_id, matched_at = now()
            WHERE id = ANY(ARRAY(
                SELECT i.id FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS w(e, k, v)
                JOIN callback_inbox i ON i.loan_unique_id = w.v AND i.title = w.e
                WHERE w.k = 'loan_unique_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL));
        END IF;
        IF 'external_id' = ANY(p_wait_keys) THEN
            UPDATE callback_inbox SET matched_workflow_id = p_workflow_id, matched_at = now()
            WHERE id = ANY(ARRAY(
                SELECT i.id FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS w(e, k, v)
                JOIN callback_inbox i ON i.external_id = w.v AND i.title = w.e
                WHERE w.k = 'external_id'
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL));
        END IF;
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO pending_events
        FROM callback_inbox
        WHERE matched_workflow_id = p_workflow_id AND processed_at IS NULL;
    END IF;

    -- (2) The workflow's row, written once: kept for its holder when it parks with callbacks
    -- waiting (0022), due now when it is released with some, as the step says otherwise.
    -- Kept, it stays running and keeps the time it became due (a held workflow's, already
    -- past), so that update can be HOT.
    v_keep := cardinality(pending_events) > 0 AND p_release AND p_hold_secs IS NOT NULL;
    UPDATE workflows SET
        status = CASE WHEN v_keep THEN 'running' ELSE p_status END,
        state = p_state, context = p_context, attempt = p_attempt,
        next_run_at = CASE
            WHEN v_keep THEN least(coalesce(next_run_at, now()), now())
            WHEN cardinality(pending_events) > 0 THEN least(coalesce(v_next, now()), now())
            ELSE v_next END,
        waiting_for = p_waiting_for, deadline = p_deadline, last_error = p_last_error,
        definition_name = CASE WHEN definition_version IS NULL
            THEN coalesce(p_pin_name, definition_name) ELSE definition_name END,
        definition_version = coalesce(definition_version, p_pin_version),
        lease_owner = CASE WHEN p_release AND NOT v_keep THEN NULL ELSE lease_owner END,
        lease_until = CASE WHEN v_keep THEN now() + make_interval(secs => p_hold_secs)
            WHEN p_release THEN NULL ELSE lease_until END,
        finished_at = CASE WHEN p_terminal THEN now() ELSE NULL END,
        -- Kept, the step and the holder's claim: two versions on, as before this migration.
        facts = p_facts, version = version + CASE WHEN v_keep THEN 2 ELSE 1 END,
        updated_at = now()
    WHERE id = p_workflow_id
    RETURNING version, next_run_at, kind, business_key
        INTO new_version, stored_next_run_at, v_kind, v_business_key;

    IF v_keep THEN
        SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.received_at, i.id), '[]'::jsonb)
        INTO kept_events
        FROM callback_inbox i
        WHERE i.matched_workflow_id = p_workflow_id AND i.processed_at IS NULL;
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
    'One step of one workflow, with its lifecycle events, committed in one call, its workflow''s row written once, the callbacks waiting for it matched by the key columns its waits name; with p_hold_secs a parking step that finds callbacks waiting keeps the workflow for its holder (see migrations 0007, 0009, 0018, 0022, 0023 and 0025, and store::commit).';
