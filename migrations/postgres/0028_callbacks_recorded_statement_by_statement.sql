-- A batch of callbacks stored statement by statement, not callback by callback (issue: the
-- engine core, rebuilt for cost).
--
-- finflow_record_callbacks (0016, 0020) called finflow_record_callback once per callback of
-- the batch: a call and four statements a callback (the key locks, the match, the insert,
-- the wake-up), each with its own executor start-up for one row, as 0027 found for step
-- commits. Here each runs once for the whole batch:
--
-- 1. The correlation-key locks of all the batch's callbacks, in sorted order.
-- 2. The match (the oldest live workflow waiting for each callback) and the insert, in one
--    statement; of several copies of one callback (source, event id) in the batch the first
--    is inserted, and a copy stored before is left as it is (ON CONFLICT DO NOTHING).
-- 3. The wake-up of each matched workflow, once, and its hint to the fleet.
-- 4. The answers, with the stored id of each copy that was not inserted, read by a
--    statement of its own: it sees a copy that another batch committed while this one
--    waited for it at the insert.
--
-- Planned as 0027 plans finflow_commit_steps, and for the same reason (planned on every
-- call, these statements cost more server time than the loop they replace): one generic
-- plan per statement, keyed look-ups whatever the statistics say.
--
-- Each callback's answer is as before (the tests of concurrent and duplicate callbacks run
-- through this function); two callbacks matched to one workflow make it due once rather than
-- twice. Same signature and results: workers of the build before call it unchanged. No
-- build since 0016 calls finflow_record_callback itself: it goes.

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
            WHERE w.event = b.title AND f.status NOT IN ('completed', 'failed', 'cancelled')
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

COMMENT ON FUNCTION finflow_record_callbacks IS
    'Several callbacks stored in one call, statement by statement (group commit; see migrations 0016, 0020 and 0028, and store::group).';

DROP FUNCTION finflow_record_callback(bigint[], text, text, text, text, text, text, text, text,
    jsonb);
