-- Step updates that touch no index, and fewer bytes per step (issue: the engine core,
-- rebuilt for cost, "slim state").
--
-- PostgreSQL writes an entry into every index of a table for an update that changes a
-- column any index reads (key, expression or predicate); an update that changes none of
-- them, and whose new row fits on the same page, is a HOT update: no index entry at all, and
-- the WAL carries only the bytes of the row that changed. A step that continues inline (the
-- common case) changes `state`, `context`, `updated_at`, `version` and the lease; it keeps
-- `status` (running) and, since this build, `next_run_at` (a workflow held through inline
-- calls keeps the time it became due: the worker's executor, `record::next_run_at`).
--
-- 1. No index reads `state` or `updated_at` any more:
--    * (kind, state, status): the console's state filter runs inside (kind, status, ...),
--      which the status and kind filters it comes with narrow; counts by state are views an
--      operator reads, not pages.
--    * (status, updated_at): the stuck list reads the few workflows needing attention and
--      orders them by `updated_at`.
DROP INDEX IF EXISTS workflows_kind_state_status_idx;
DROP INDEX IF EXISTS workflows_status_updated_idx;

-- 2. A step that changes the status (a claim, a wait, an end) cannot be HOT: it writes an
--    entry into every index. Fewer of them:
--    * (kind, status) is the prefix of (kind, status, finished_at), which serves its queries.
--    * the facts' user and loan ids are indexed only where the workflow has one (a lookup by
--      id implies it is not null, so the partial index still serves it, generic plans too).
DROP INDEX IF EXISTS workflows_kind_status_idx;
DROP INDEX IF EXISTS workflows_user_id_idx;
CREATE INDEX workflows_user_id_idx ON workflows ((facts->>'user_id'))
    WHERE (facts->>'user_id') IS NOT NULL;
DROP INDEX IF EXISTS workflows_loan_unique_id_idx;
CREATE INDEX workflows_loan_unique_id_idx ON workflows ((facts->>'loan_unique_id'))
    WHERE (facts->>'loan_unique_id') IS NOT NULL;

-- 3. Pages keep room for the new version of a row (fillfactor), so a step's update stays on
--    its page; that applies to pages filled from now on.
ALTER TABLE workflows SET (fillfactor = 70);

-- 4. The context is the one large value every step rewrites, and a step's WAL carries it
--    whole. PostgreSQL compresses a row's values only when the row passes
--    `toast_tuple_target` (2 KB by default), and then moves the largest out of line first (a
--    TOAST row written again by every step). From 1.5 KB on, the context is compressed in
--    place instead: every column but the input is stored MAIN (compressed inline, out of line
--    only when a row would not fit a page), so the toaster's first rounds leave them alone
--    and its round for MAIN values compresses the largest, the context, first; once the row is
--    below 1.5 KB, `facts` stays as it is, which keeps its indexed value comparable for HOT.
--    With lz4 where the server has it: several times faster than the default pglz.
ALTER TABLE workflows SET (toast_tuple_target = 1536);
ALTER TABLE workflows
    ALTER COLUMN kind SET STORAGE MAIN,
    ALTER COLUMN business_key SET STORAGE MAIN,
    ALTER COLUMN definition_name SET STORAGE MAIN,
    ALTER COLUMN status SET STORAGE MAIN,
    ALTER COLUMN state SET STORAGE MAIN,
    ALTER COLUMN context SET STORAGE MAIN,
    ALTER COLUMN input_hash SET STORAGE MAIN,
    ALTER COLUMN waiting_for SET STORAGE MAIN,
    ALTER COLUMN last_error SET STORAGE MAIN,
    ALTER COLUMN lease_owner SET STORAGE MAIN,
    ALTER COLUMN facts SET STORAGE MAIN,
    ALTER COLUMN identity_key SET STORAGE MAIN,
    ALTER COLUMN data_key SET STORAGE MAIN,
    ALTER COLUMN nik_last4 SET STORAGE MAIN;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE workflows ALTER COLUMN context SET COMPRESSION lz4;
    END IF;
END;
$$;
