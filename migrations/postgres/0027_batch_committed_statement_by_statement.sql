-- A batch of step commits written statement by statement, not step by step (issue: the
-- engine core, rebuilt for cost).
--
-- finflow_commit_steps (0016, 0020, 0022) called finflow_commit_step once per step of the
-- batch: a call and some nine statements a step (the guard, the journal row, the waits, the
-- match, the pending callbacks, the row, ...), each with its own executor start-up for a row
-- or two. Under the bench a batch carries about four steps.
--
-- Here each of those statements runs once for the whole batch, over its steps:
--
-- 1. The guards, in one statement that locks the rows it finds in id order (as a batch of
--    claims does); a step whose guard fails is left out of every statement after it, and
--    nothing of it is written.
-- 2. The journal rows, the waits, the consumed callbacks, the match of the new waits and the
--    pending callbacks: each one statement for the steps whose guard held. A terminal step's
--    announcement (rare: one a workflow) is still written step by step, between them.
-- 3. The workflows' rows, written once each, in one statement; then the callbacks of the
--    workflows kept for their holders, the wake-ups and the lifecycle events.
--
-- Each step's answer is as finflow_commit_step's (a test writes twin batches both ways and
-- compares). A batch naming one workflow twice (its steps' order matters) is written step by
-- step as before (finflow_commit_steps_in_turn). A callback that two of the batch's new waits
-- would match goes to one of them (step by step it went to the first in the batch, itself an
-- order of arrival); an announcement reaches a new wait of the same batch whichever comes
-- first in it. Same signature and results, so workers of the build before call it unchanged.

-- 0022's loop, taking the parsed batch.
CREATE FUNCTION finflow_commit_steps_in_turn(p_steps finflow_step_params[])
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
    FOREACH c IN ARRAY p_steps LOOP
        IF coalesce(cardinality(c.lock_keys), 0) > 0 THEN
            v_keys := v_keys || c.lock_keys;
            v_keyed := v_keyed + 1;
        END IF;
    END LOOP;
    IF v_keyed > 1 THEN
        PERFORM finflow_lock_keys(v_keys);
    END IF;

    FOREACH c IN ARRAY p_steps LOOP
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

COMMENT ON FUNCTION finflow_commit_steps_in_turn IS
    'A batch of step commits written step by step with finflow_commit_step (0022''s finflow_commit_steps): what finflow_commit_steps does with a batch whose steps'' order matters (migration 0027).';

-- How the statements below are planned. Each finds its rows by key: the batch's few steps,
-- looked up by the primary keys and the inbox's key-column indexes, the look-ups written as
-- `= ANY(array)` conditions so that the index is always the way in. PL/pgSQL plans a
-- statement with the values of each call (custom plans) or once for any values (a generic
-- plan), as its plan cache estimates. Measured under the bench, both went wrong: planned
-- every call, these statements cost more server time than the step-by-step loop saved
-- (0.77 ms a step against 0.66); planned once on a store that started empty, the plans were
-- scans of whole tables and indexes (auto_explain: the guard, the row update, the pending and
-- the consumed callbacks), kept until the next ANALYZE. So the function keeps one generic plan
-- per statement, planned without whole-table scans and without hash or merge joins: the
-- keyed look-ups they are, whatever the statistics say.
CREATE OR REPLACE FUNCTION finflow_commit_steps(p_batch jsonb)
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
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_steps finflow_step_params[] :=
        ARRAY(SELECT s FROM jsonb_populate_recordset(NULL::finflow_step_params, p_batch) AS s);
    c finflow_step_params;
    v_keys bigint[];
    -- The workflows whose guard held, and of those the ones not ending.
    v_ok uuid[];
    v_live uuid[];
    -- Their new waits, flattened: workflow, event, key column, value.
    v_w_wf uuid[];
    v_w_e text[];
    v_w_k text[];
    v_w_v text[];
    -- Callbacks by id with the workflow each goes to: consumed, matched.
    v_c_id bigint[];
    v_c_wf uuid[];
    v_waiters uuid[];
    -- Journal rows written, pending callbacks, rows written, callbacks kept: by workflow.
    v_j_wf uuid[];
    v_j_seq integer[];
    v_p_wf uuid[];
    v_p_ids text[];
    v_u_wf uuid[];
    v_u_version bigint[];
    v_u_next timestamptz[];
    -- Released to the fleet (not kept for their holders).
    v_u_released boolean[];
    v_u_pending text[];
    v_kept uuid[];
    v_k_wf uuid[];
    v_k_events jsonb[];
    v_last_event bigint;
    v_known uuid[];
BEGIN
    IF coalesce(cardinality(v_steps), 0) = 0 THEN
        RETURN;
    END IF;
    IF (SELECT count(DISTINCT s.workflow_id) FROM unnest(v_steps) AS s) < cardinality(v_steps)
    THEN
        RETURN QUERY SELECT * FROM finflow_commit_steps_in_turn(v_steps);
        RETURN;
    END IF;

    -- The correlation keys of every step, in sorted order, before any row.
    v_keys := ARRAY(SELECT k FROM unnest(v_steps) AS s, unnest(s.lock_keys) AS k);
    IF cardinality(v_keys) > 0 THEN
        PERFORM finflow_lock_keys(v_keys);
    END IF;

    -- (1) The guards: each row locked as the update would lock it (held to the commit), in
    -- id order. The journal rows are numbered after it (`Store::append_journal` takes the
    -- same row lock).
    v_ok := ARRAY(
        SELECT w.id FROM workflows w
        JOIN unnest(v_steps) AS s ON w.id = s.workflow_id AND w.lease_owner = s.worker_id
            AND w.version = s.expected_version
        WHERE w.id = ANY(ARRAY(SELECT s.workflow_id FROM unnest(v_steps) AS s))
        ORDER BY w.id
        FOR NO KEY UPDATE OF w);
    IF cardinality(v_ok) > 0 THEN
        v_live := ARRAY(SELECT s.workflow_id FROM unnest(v_steps) AS s
            WHERE s.workflow_id = ANY(v_ok) AND NOT s.terminal);

        -- (2) The journal rows.
        WITH written AS (
            INSERT INTO step_journal (workflow_id, seq, step, action, outcome, attempt,
                started_at, finished_at, duration_ms, finfra_status, error, operation_key,
                request_summary, response_summary, worker_id)
            SELECT s.workflow_id,
                (SELECT coalesce(max(j.seq), 0) + 1 FROM step_journal j
                 WHERE j.workflow_id = s.workflow_id),
                s.j_step, s.j_action, s.j_outcome, s.j_attempt, s.j_started_at,
                s.j_finished_at, s.j_duration_ms, s.j_finfra_status, s.j_error,
                s.j_operation_key, s.j_request_summary, s.j_response_summary, s.worker_id
            FROM unnest(v_steps) WITH ORDINALITY AS s
            WHERE s.workflow_id = ANY(v_ok)
            ORDER BY s.ordinality
            RETURNING workflow_id, seq
        )
        SELECT array_agg(workflow_id), array_agg(seq) INTO v_j_wf, v_j_seq FROM written;

        -- The waits: the workflows' old ones deleted, the new ones inserted (a wait named
        -- twice by one step is inserted once).
        DELETE FROM workflow_waits WHERE workflow_id = ANY(v_ok);
        SELECT array_agg(s.workflow_id), array_agg(w.e), array_agg(w.k), array_agg(w.v)
        INTO v_w_wf, v_w_e, v_w_k, v_w_v
        FROM unnest(v_steps) AS s,
            unnest(s.wait_events, s.wait_keys, s.wait_values) AS w(e, k, v)
        WHERE s.workflow_id = ANY(v_live);
        IF v_w_wf IS NOT NULL THEN
            INSERT INTO workflow_waits (workflow_id, event, key_name, key_value)
            SELECT DISTINCT wf, e, k, v FROM unnest(v_w_wf, v_w_e, v_w_k, v_w_v) AS t(wf, e, k, v);
        END IF;

        -- The callbacks the steps consumed, each only as its own workflow's.
        SELECT array_agg(p.id), array_agg(s.workflow_id) INTO v_c_id, v_c_wf
        FROM unnest(v_steps) AS s, unnest(s.processed) AS p(id)
        WHERE s.workflow_id = ANY(v_ok);
        IF v_c_id IS NOT NULL THEN
            UPDATE callback_inbox i SET processed_at = now()
            WHERE i.id = ANY(v_c_id) AND i.processed_at IS NULL
              AND EXISTS (SELECT 1 FROM unnest(v_c_id, v_c_wf) AS p(id, wf)
                          WHERE p.id = i.id AND p.wf = i.matched_workflow_id);
        END IF;

        -- A workflow that ends announces it (0009), step by step: its announcement stored,
        -- copied to each workflow waiting for it, which is woken (the batch's own have their
        -- row written below, with the copy among their pending callbacks).
        FOREACH c IN ARRAY v_steps LOOP
            IF c.terminal AND c.a_title IS NOT NULL AND c.workflow_id = ANY(v_ok) THEN
                INSERT INTO callback_inbox (source, event_id, title, external_id, payload,
                    processed_at)
                VALUES ('internal', c.workflow_id::text, c.a_title, c.a_external_id, c.a_payload,
                    now())
                ON CONFLICT (source, event_id) DO NOTHING;
                WITH copies AS (
                    INSERT INTO callback_inbox (source, event_id, title, external_id, payload,
                        matched_workflow_id, matched_at)
                    SELECT 'internal', c.workflow_id::text || ':' || w.workflow_id, w.event,
                        w.key_value, c.a_payload, w.workflow_id, now()
                    FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
                    WHERE w.event = c.a_title AND w.key_name = 'external_id'
                      AND w.key_value = c.a_external_id
                      AND f.status NOT IN ('completed', 'failed', 'cancelled')
                    ON CONFLICT (source, event_id) DO NOTHING
                    RETURNING matched_workflow_id
                )
                SELECT array_agg(matched_workflow_id) INTO v_waiters FROM copies
                WHERE NOT matched_workflow_id = ANY(v_ok);
                IF v_waiters IS NOT NULL THEN
                    UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now()),
                        updated_at = now()
                    WHERE id = ANY(v_waiters);
                    PERFORM finflow_notify_due(w) FROM unnest(v_waiters) AS t(w);
                END IF;
            END IF;
        END LOOP;

        -- A new wait for another workflow's end finds the announcement if it was made.
        IF 'external_id' = ANY(v_w_k) THEN
            INSERT INTO callback_inbox (source, event_id, title, external_id, payload,
                matched_workflow_id, matched_at)
            SELECT a.source, a.event_id || ':' || w.wf::text, a.title, a.external_id,
                a.payload, w.wf, now()
            FROM unnest(v_w_wf, v_w_e, v_w_k, v_w_v) AS w(wf, e, k, v)
            JOIN callback_inbox a ON a.external_id = w.v AND a.title = w.e
            WHERE w.k = 'external_id' AND a.external_id = ANY(v_w_v)
              AND a.source = 'internal' AND a.matched_workflow_id IS NULL
            ON CONFLICT (source, event_id) DO NOTHING;
        END IF;

        -- (0025's match, for the whole batch) The unmatched callbacks with a new wait's title
        -- and value in the key column it names, found by the key columns' indexes; each is
        -- given to one waiting workflow.
        IF v_w_wf IS NOT NULL THEN
            SELECT array_agg(m.id), array_agg(m.wf) INTO v_c_id, v_c_wf
            FROM (SELECT DISTINCT ON (i.id) i.id, w.wf
                  FROM callback_inbox i
                  JOIN unnest(v_w_wf, v_w_e, v_w_k, v_w_v) AS w(wf, e, k, v)
                    ON i.title = w.e AND w.v = CASE w.k
                        WHEN 'identity_number' THEN i.identity_number
                        WHEN 'user_id' THEN i.user_id
                        WHEN 'kyc_id' THEN i.kyc_id
                        WHEN 'loan_unique_id' THEN i.loan_unique_id
                        WHEN 'external_id' THEN i.external_id END
                  WHERE (i.identity_number = ANY(v_w_v) OR i.user_id = ANY(v_w_v)
                         OR i.kyc_id = ANY(v_w_v) OR i.loan_unique_id = ANY(v_w_v)
                         OR i.external_id = ANY(v_w_v))
                    AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL
                  ORDER BY i.id, w.wf) AS m;
            IF v_c_id IS NOT NULL THEN
                UPDATE callback_inbox i SET matched_workflow_id = m.wf, matched_at = now()
                FROM unnest(v_c_id, v_c_wf) AS m(id, wf)
                WHERE i.id = ANY(v_c_id) AND i.id = m.id
                  AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL;
            END IF;
        END IF;

        -- Each live workflow's unconsumed callbacks (matched before or just now).
        IF cardinality(v_live) > 0 THEN
            SELECT array_agg(p.wf), array_agg(p.ids::text) INTO v_p_wf, v_p_ids
            FROM (SELECT i.matched_workflow_id AS wf, array_agg(i.id ORDER BY i.id) AS ids
                  FROM callback_inbox i
                  WHERE i.matched_workflow_id = ANY(v_live)
                    AND i.matched_workflow_id IS NOT NULL AND i.processed_at IS NULL
                  GROUP BY i.matched_workflow_id) AS p;
        END IF;

        -- (3) The workflows' rows, each written once: kept for its holder when it parks with
        -- callbacks waiting (0022), due now when it is released with some, as the step says
        -- otherwise (0025's update, for the whole batch).
        WITH s AS (
            SELECT st.*, coalesce(p.ids, '{}')::bigint[] AS pending,
                coalesce(p.ids <> '{}', false) AND st.release AND st.hold_secs IS NOT NULL
                    AS keep,
                CASE WHEN st.next_run_at <= st.caller_now
                    THEN least(st.next_run_at, now()) ELSE st.next_run_at END AS next
            FROM unnest(v_steps) AS st
            LEFT JOIN unnest(v_p_wf, v_p_ids) AS p(wf, ids) ON p.wf = st.workflow_id
            WHERE st.workflow_id = ANY(v_ok)
        ), written AS (
            UPDATE workflows w SET
                status = CASE WHEN s.keep THEN 'running' ELSE s.status END,
                state = s.state, context = s.context, attempt = s.attempt,
                next_run_at = CASE
                    WHEN s.keep THEN least(coalesce(w.next_run_at, now()), now())
                    WHEN cardinality(s.pending) > 0 THEN least(coalesce(s.next, now()), now())
                    ELSE s.next END,
                waiting_for = s.waiting_for, deadline = s.deadline, last_error = s.last_error,
                definition_name = CASE WHEN w.definition_version IS NULL
                    THEN coalesce(s.pin_name, w.definition_name) ELSE w.definition_name END,
                definition_version = coalesce(w.definition_version, s.pin_version),
                lease_owner = CASE WHEN s.release AND NOT s.keep THEN NULL ELSE w.lease_owner END,
                lease_until = CASE WHEN s.keep THEN now() + make_interval(secs => s.hold_secs)
                    WHEN s.release THEN NULL ELSE w.lease_until END,
                finished_at = CASE WHEN s.terminal THEN now() ELSE NULL END,
                facts = s.facts, version = w.version + CASE WHEN s.keep THEN 2 ELSE 1 END,
                updated_at = now()
            FROM s
            WHERE w.id = ANY(v_ok) AND w.id = s.workflow_id
            RETURNING w.id, w.version, w.next_run_at, s.keep, s.release, s.pending
        )
        SELECT array_agg(id), array_agg(version), array_agg(next_run_at),
            array_agg(release AND NOT keep), array_agg(pending::text),
            array_agg(id) FILTER (WHERE keep)
        INTO v_u_wf, v_u_version, v_u_next, v_u_released, v_u_pending, v_kept
        FROM written;

        -- The callbacks of the workflows kept for their holders, for them to go on with.
        IF v_kept IS NOT NULL THEN
            SELECT array_agg(k.wf), array_agg(k.events) INTO v_k_wf, v_k_events
            FROM (SELECT i.matched_workflow_id AS wf,
                      jsonb_agg(to_jsonb(i) ORDER BY i.received_at, i.id) AS events
                  FROM callback_inbox i
                  WHERE i.matched_workflow_id = ANY(v_kept)
                    AND i.matched_workflow_id IS NOT NULL AND i.processed_at IS NULL
                  GROUP BY i.matched_workflow_id) AS k;
        END IF;

        -- The wake-ups of the released workflows, as finflow_commit_step schedules them.
        PERFORM finflow_schedule_wakeup(u.wf,
            CASE WHEN u.pending <> '{}' THEN now() ELSE u.next END)
        FROM unnest(v_u_wf, v_u_next, v_u_released, v_u_pending)
            AS u(wf, next, released, pending)
        WHERE u.released AND (u.pending <> '{}' OR u.next IS NOT NULL);

        -- The lifecycle events, last, in the batch's order: the lock that orders them is
        -- held only from here to the commit.
        IF EXISTS (SELECT 1 FROM unnest(v_steps) AS s
                   WHERE s.workflow_id = ANY(v_ok) AND cardinality(s.event_types) > 0) THEN
            PERFORM pg_advisory_xact_lock(20260009, 1);
            WITH written AS (
                INSERT INTO events (workflow_id, journal_seq, position, kind, business_key,
                    event_type, payload)
                SELECT f.id, j.seq, (t.n - 1)::smallint, f.kind, f.business_key, t.ty,
                    coalesce(nullif(s.event_payloads->((t.n - 1)::integer), 'null'::jsonb),
                        '{}'::jsonb)
                FROM unnest(v_steps) WITH ORDINALITY AS s
                CROSS JOIN LATERAL unnest(s.event_types) WITH ORDINALITY AS t(ty, n)
                JOIN unnest(v_j_wf, v_j_seq) AS j(wf, seq) ON j.wf = s.workflow_id
                JOIN workflows f ON f.id = s.workflow_id
                WHERE f.id = ANY(v_ok)
                ORDER BY s.ordinality, t.n
                RETURNING id
            )
            SELECT max(id) INTO v_last_event FROM written;
            PERFORM pg_notify('finflow_events', v_last_event::text);
        END IF;
    END IF;

    -- The workflows of the steps whose guard failed that exist (their lease was lost), by
    -- key (an EXISTS per step could be planned as one scan of the whole table).
    IF coalesce(cardinality(v_ok), 0) < cardinality(v_steps) THEN
        v_known := ARRAY(SELECT x.id FROM workflows x
            WHERE x.id = ANY(ARRAY(SELECT s.workflow_id FROM unnest(v_steps) AS s)));
    END IF;

    RETURN QUERY
    SELECT (s.ordinality - 1)::integer,
        CASE WHEN u.wf IS NOT NULL THEN 'ok'
             WHEN s.workflow_id = ANY(v_known) THEN 'lease_lost'
             ELSE 'not_found' END,
        u.version, j.seq, u.next, u.pending::bigint[], k.events
    FROM unnest(v_steps) WITH ORDINALITY AS s
    LEFT JOIN unnest(v_u_wf, v_u_version, v_u_next, v_u_pending)
        AS u(wf, version, next, pending) ON u.wf = s.workflow_id
    LEFT JOIN unnest(v_j_wf, v_j_seq) AS j(wf, seq) ON j.wf = s.workflow_id
    LEFT JOIN unnest(v_k_wf, v_k_events) AS k(wf, events) ON k.wf = s.workflow_id
    ORDER BY s.ordinality;
END;
$$;

COMMENT ON FUNCTION finflow_commit_steps IS
    'Several steps of different workflows, each behind its own guard, committed in one call (group commit), each of its statements once for the whole batch; a batch whose steps'' order matters goes step by step (finflow_commit_steps_in_turn). See migrations 0016, 0020, 0022 and 0027, and store::group.';
