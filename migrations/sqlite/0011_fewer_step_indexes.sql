-- Fewer indexes written by the steps (PostgreSQL migration 0017 says why):
--   * the stuck list reads the workflows needing attention through a partial index that a
--     step of a running workflow never touches, instead of (status, updated_at), which every
--     step rewrote;
--   * (kind, status) is the prefix of (kind, status, finished_at), which serves its queries.
-- (kind, state, status) stays on SQLite: it answers the console's counts by state from the
-- index alone (a table scan takes 5 times longer on 100,000 workflows), and SQLite has no
-- HOT updates for its absence to enable.
DROP INDEX IF EXISTS workflows_status_updated_idx;
CREATE INDEX workflows_attention_idx ON workflows (updated_at) WHERE status = 'needs_attention';
DROP INDEX IF EXISTS workflows_kind_status_idx;
