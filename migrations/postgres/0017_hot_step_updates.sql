-- Step updates that touch no index (issue: the engine core, rebuilt for cost, "slim state").
--
-- PostgreSQL rewrites every index of a table for an update that changes a column any index
-- reads (key, expression or predicate); an update that changes none of them, and whose new
-- row fits on the same page, is a HOT update: no index entry at all, and the WAL carries only
-- the bytes of the row that changed. A step that continues inline (the common case) changes
-- `state`, `context`, `updated_at`, `version` and the lease; it keeps `status` (running) and,
-- since this build, `next_run_at` (a workflow held through inline calls keeps the time it
-- became due: store::StepCommit::next_run_at, worker executor). Two of the console's indexes
-- read `state` and `updated_at`; with them every step wrote all thirteen indexes of
-- `workflows`. Both go:
--   * (kind, state, status): the console's state filter runs inside (kind, status), which
--     the status and kind filters it always comes with narrow; counts by state are views
--     an operator reads, not pages.
--   * (status, updated_at): the stuck list reads the workflows needing attention through
--     (kind, status) and orders those few by `updated_at`.
-- Pages keep room for the new version of a row (fillfactor), so a step's update stays on
-- its page; that applies to pages filled from now on.
DROP INDEX IF EXISTS workflows_kind_state_status_idx;
DROP INDEX IF EXISTS workflows_status_updated_idx;
ALTER TABLE workflows SET (fillfactor = 70);

