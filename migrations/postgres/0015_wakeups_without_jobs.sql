-- Wake-ups without a job row (issue: the engine core, rebuilt for cost).
--
-- `workflows.next_run_at` is the truth about when a workflow is due; every worker's due scan
-- claims what is due straight from `workflows` (FOR UPDATE SKIP LOCKED). A wake-up is now
-- only a hint that makes a worker look at once: a NOTIFY on channel `finflow_due`, sent when
-- the caller's transaction commits (a rollback sends nothing), with the payload
-- "<workflow id> <application_name of the sender>". No apalis task is inserted, fetched,
-- acknowledged or claimed in vain any more.
--
-- Who answers it: a worker process (application_name `finflow-worker:<tag>`) answers its
-- own wake-ups (a callback its receiver stored, an announcement its commit made) and those
-- of anything that is not a worker (`finflow submit`, SQL's `finflow_submit`, the console);
-- it leaves other workers' wake-ups to them, so a fleet does not claim each workflow once
-- per worker. A wake-up for later (p_run_at in the future) sends nothing: the due scan
-- takes the workflow when its time comes.
--
-- apalis tasks of queue `finflow-wakeups` written by earlier builds stay harmless: workers
-- of this build no longer consume them and prune the finished ones; the workflows they
-- pointed at are due and taken by the due scan.
CREATE OR REPLACE FUNCTION finflow_schedule_wakeup(p_workflow_id uuid, p_run_at timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    IF p_run_at IS NULL OR p_run_at <= now() THEN
        PERFORM pg_notify(
            'finflow_due',
            p_workflow_id::text || ' ' || coalesce(current_setting('application_name', true), '')
        );
    END IF;
END;
$$;

COMMENT ON FUNCTION finflow_schedule_wakeup(uuid, timestamptz) IS
    'Tell the finflow fleet that a workflow is due now (NOTIFY finflow_due when the caller''s transaction commits); a later time is left to the due scan.';
