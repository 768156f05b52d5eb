-- A wait is one row per key (issue: the engine core, rebuilt for cost).
--
-- A workflow that waits for a callback usually waits for several titles under one key:
-- `user_approved`, `user_rejected` or `user_blocked`, by the borrower's user id. That was a
-- row per title in `workflow_waits`, each with an entry in the primary key (workflow, event,
-- key, value) and one in the look-up index (event, key, value), and every step's commit
-- deletes a waiting workflow's rows and inserts the new ones: an onboarding wrote six rows,
-- twelve index entries and six deletions, about 400 bytes of WAL a row, an eighth of a
-- step's WAL.
--
-- Now a row per workflow and key, with the titles waited for under it in `events` (sorted,
-- each once): an onboarding writes two. The primary key is (workflow, key, value) and the
-- look-up index (key, value); a callback finds the rows with its keys' values by that index
-- and keeps those whose `events` hold its title. The statements that write or read the waits
-- are as before otherwise: the step's commit (`finflow_commit_step`, `finflow_commit_steps`,
-- their arguments and answers unchanged, so workers of the build before call them through a
-- rolling deploy), the callbacks' match (`finflow_record_callbacks`), and the announcement
-- of a workflow's end to those waiting for it.
--
-- The waits in place are regrouped under the table's lock: a workflow waiting at the upgrade
-- still waits for the same titles under the same keys, registered when it first was.

CREATE TABLE workflow_waits_by_key (
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    key_name    text        NOT NULL,
    key_value   text        NOT NULL,
    events      text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workflow_waits_key_name_check CHECK (key_name IN (
        'identity_number', 'user_id', 'kyc_id', 'loan_unique_id', 'external_id'
    )),
    CONSTRAINT workflow_waits_events_check CHECK (cardinality(events) > 0)
);

LOCK TABLE workflow_waits IN ACCESS EXCLUSIVE MODE;
INSERT INTO workflow_waits_by_key (workflow_id, key_name, key_value, events, created_at)
SELECT workflow_id, key_name, key_value, array_agg(DISTINCT event ORDER BY event),
    min(created_at)
FROM workflow_waits
GROUP BY workflow_id, key_name, key_value;
DROP TABLE workflow_waits;
ALTER TABLE workflow_waits_by_key RENAME TO workflow_waits;
ALTER TABLE workflow_waits RENAME CONSTRAINT workflow_waits_by_key_workflow_id_fkey
    TO workflow_waits_workflow_id_fkey;
ALTER TABLE workflow_waits ADD PRIMARY KEY (workflow_id, key_name, key_value);
CREATE INDEX workflow_waits_lookup_idx ON workflow_waits (key_name, key_value);

COMMENT ON TABLE workflow_waits IS 'Wait registrations, one row per workflow and correlation key, replaced by every step commit; a callback with one of the titles in events and this key wakes the workflow (migration 0032).';
COMMENT ON COLUMN workflow_waits.key_name IS 'identity_number | user_id | kyc_id | loan_unique_id | external_id: the callback_inbox column to match.';
COMMENT ON COLUMN workflow_waits.key_value IS 'The value that column must have.';
COMMENT ON COLUMN workflow_waits.events IS 'Callback titles waited for under this key, e.g. {user_approved,user_blocked,user_rejected}: sorted, each once.';
COMMENT ON COLUMN workflow_waits.created_at IS 'When the wait was registered.';

-- 0025's, its waits one row per key.
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
        -- (4) The workflow's waits were all deleted just above: one row per key, with the
        -- events waited for under it (0032).
        INSERT INTO workflow_waits (workflow_id, key_name, key_value, events)
        SELECT p_workflow_id, k, v, array_agg(DISTINCT e ORDER BY e)
        FROM unnest(p_wait_events, p_wait_keys, p_wait_values) AS t(e, k, v)
        GROUP BY k, v;
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
            SELECT 'internal', p_workflow_id::text || ':' || w.workflow_id, p_a_title,
                w.key_value, p_a_payload, w.workflow_id, now()
            FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
            WHERE p_a_title = ANY(w.events) AND w.key_name = 'external_id'
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
            AND a.title = ANY(w.events) AND a.source = 'internal' AND a.matched_workflow_id IS NULL
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

-- 0027's, its waits one row per key.
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

        -- The waits: the workflows' old ones deleted, the new ones inserted, one row per
        -- workflow and key with the events waited for under it (0032).
        DELETE FROM workflow_waits WHERE workflow_id = ANY(v_ok);
        SELECT array_agg(s.workflow_id), array_agg(w.e), array_agg(w.k), array_agg(w.v)
        INTO v_w_wf, v_w_e, v_w_k, v_w_v
        FROM unnest(v_steps) AS s,
            unnest(s.wait_events, s.wait_keys, s.wait_values) AS w(e, k, v)
        WHERE s.workflow_id = ANY(v_live);
        IF v_w_wf IS NOT NULL THEN
            INSERT INTO workflow_waits (workflow_id, key_name, key_value, events)
            SELECT wf, k, v, array_agg(DISTINCT e ORDER BY e)
            FROM unnest(v_w_wf, v_w_e, v_w_k, v_w_v) AS t(wf, e, k, v)
            GROUP BY wf, k, v;
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
                    SELECT 'internal', c.workflow_id::text || ':' || w.workflow_id, c.a_title,
                        w.key_value, c.a_payload, w.workflow_id, now()
                    FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
                    WHERE c.a_title = ANY(w.events) AND w.key_name = 'external_id'
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

-- 0028's, its match reading a row's titles.
CREATE OR REPLACE FUNCTION finflow_record_callbacks(p_batch jsonb)
RETURNS TABLE (idx integer, inbox_id bigint, duplicate boolean, woke uuid)
LANGUAGE plpgsql
VOLATILE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_callbacks finflow_callback_params[] := ARRAY(
        SELECT s FROM jsonb_populate_recordset(NULL::finflow_callback_params, p_batch) AS s);
    v_keys bigint[] := ARRAY(
        SELECT k FROM unnest(v_callbacks) AS c, unnest(c.lock_keys) AS k);
    v_stored integer[];
    v_ids bigint[];
    v_woke uuid[];
BEGIN
    IF cardinality(v_keys) > 0 THEN
        PERFORM finflow_lock_keys(v_keys);
    END IF;

    WITH batch AS (
        SELECT (t.n - 1)::integer AS i, t.source, t.event_id, t.title, t.user_id,
               t.identity_number, t.kyc_id, t.loan_unique_id, t.external_id, t.payload,
               row_number() OVER (PARTITION BY t.source, t.event_id ORDER BY t.n) = 1 AS first
        FROM unnest(v_callbacks) WITH ORDINALITY AS t(lock_keys, source, event_id, title,
            user_id, identity_number, kyc_id, loan_unique_id, external_id, payload, n)
    ),
    matched AS (
        SELECT b.*, m.workflow_id AS waiter
        FROM batch b
        LEFT JOIN LATERAL (
            SELECT w.workflow_id
            FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
            WHERE b.title = ANY(w.events) AND f.status NOT IN ('completed', 'failed', 'cancelled')
              AND ((w.key_name = 'identity_number' AND w.key_value = b.identity_number)
                OR (w.key_name = 'user_id' AND w.key_value = b.user_id)
                OR (w.key_name = 'kyc_id' AND w.key_value = b.kyc_id)
                OR (w.key_name = 'loan_unique_id' AND w.key_value = b.loan_unique_id)
                OR (w.key_name = 'external_id' AND w.key_value = b.external_id))
            ORDER BY w.created_at, w.workflow_id
            LIMIT 1
        ) m ON true
        WHERE b.first
    ),
    inserted AS (
        INSERT INTO callback_inbox (source, event_id, title, user_id, identity_number, kyc_id,
            loan_unique_id, external_id, payload, matched_workflow_id, matched_at)
        SELECT m.source, m.event_id, m.title, m.user_id, m.identity_number, m.kyc_id,
               m.loan_unique_id, m.external_id, m.payload, m.waiter,
               CASE WHEN m.waiter IS NOT NULL THEN now() END
        FROM matched m
        ORDER BY m.i
        ON CONFLICT (source, event_id) DO NOTHING
        RETURNING id, source, event_id, matched_workflow_id
    )
    SELECT array_agg(m.i), array_agg(s.id), array_agg(s.matched_workflow_id)
    INTO v_stored, v_ids, v_woke
    FROM inserted s JOIN matched m ON m.source = s.source AND m.event_id = s.event_id;

    IF v_woke IS NOT NULL THEN
        UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now()),
            updated_at = now()
        WHERE id = ANY (v_woke);
        PERFORM finflow_schedule_wakeup(w, now())
        FROM (SELECT DISTINCT u.w FROM unnest(v_woke) AS u(w) WHERE u.w IS NOT NULL) AS d;
    END IF;

    RETURN QUERY
    SELECT (t.n - 1)::integer,
           coalesce(s.id, (SELECT x.id FROM callback_inbox x
                           WHERE x.source = t.source AND x.event_id = t.event_id)),
           s.id IS NULL,
           s.woke
    FROM unnest(v_callbacks) WITH ORDINALITY AS t(lock_keys, source, event_id, title,
        user_id, identity_number, kyc_id, loan_unique_id, external_id, payload, n)
    LEFT JOIN unnest(v_stored, v_ids, v_woke) AS s(i, id, woke) ON s.i = t.n - 1;
END;
$$;
