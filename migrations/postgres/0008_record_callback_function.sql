-- A callback stored (and its waiting workflow woken) in one round trip: the receiver calls
-- this once, in autocommit, before it answers Finfra 200. In order: lock the event's
-- correlation keys (the same advisory locks a step's commit takes for its new waits, so
-- neither misses the other); insert the event once per (source, event_id), or return the
-- stored one as a duplicate; match it to the oldest running workflow waiting for it under
-- any of its keys, make that workflow due now and schedule its wake-up.
CREATE FUNCTION finflow_record_callback(
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
BEGIN
    IF coalesce(cardinality(p_lock_keys), 0) > 0 THEN
        PERFORM pg_advisory_xact_lock(k) FROM unnest(p_lock_keys) AS t(k);
    END IF;

    INSERT INTO callback_inbox (source, event_id, title, user_id, identity_number, kyc_id,
        loan_unique_id, external_id, payload)
    VALUES (p_source, p_event_id, p_title, p_user_id, p_identity_number, p_kyc_id,
        p_loan_unique_id, p_external_id, p_payload)
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING id INTO inbox_id;
    IF inbox_id IS NULL THEN
        SELECT i.id INTO inbox_id FROM callback_inbox i
        WHERE i.source = p_source AND i.event_id = p_event_id;
        duplicate := true;
        RETURN;
    END IF;
    duplicate := false;

    SELECT w.workflow_id INTO woke
    FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id
    WHERE w.event = p_title AND f.status NOT IN ('completed', 'failed', 'cancelled') AND (
           (w.key_name = 'identity_number' AND w.key_value = p_identity_number)
        OR (w.key_name = 'user_id' AND w.key_value = p_user_id)
        OR (w.key_name = 'kyc_id' AND w.key_value = p_kyc_id)
        OR (w.key_name = 'loan_unique_id' AND w.key_value = p_loan_unique_id)
        OR (w.key_name = 'external_id' AND w.key_value = p_external_id))
    ORDER BY w.created_at, w.workflow_id
    LIMIT 1;
    IF woke IS NOT NULL THEN
        UPDATE callback_inbox SET matched_workflow_id = woke, matched_at = now()
        WHERE id = inbox_id;
        UPDATE workflows SET next_run_at = least(coalesce(next_run_at, now()), now()),
            updated_at = now()
        WHERE id = woke;
        PERFORM finflow_schedule_wakeup(woke, now());
    END IF;
END;
$$;

COMMENT ON FUNCTION finflow_record_callback IS
    'Store one callback and wake the workflow waiting for it, in one call (see store::inbox).';
