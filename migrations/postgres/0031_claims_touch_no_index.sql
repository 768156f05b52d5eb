-- A claim's update touches no index (issue: the engine core, rebuilt for cost).
--
-- PostgreSQL 15 writes an update into every index of the table, instead of as a heap-only
-- (HOT) update, when it changes a column any index reads. `workflows_finished_idx (kind,
-- status, finished_at)` reads `status`, which a claim changes (`waiting` or `pending` to
-- `running`) with nothing else an index reads: so every claim wrote an entry into each of
-- the table's ten indexes.
--
-- What that index serves are the statuses a workflow rests in: finished (the overview's
-- counts of completed onboardings and loans since a time, the console's filters) and
-- needing attention (the stuck list, the console's filters). So the index reads them
-- from a column that holds only those: `status_settled`, the status when it is
-- `needs_attention`, `completed`, `failed` or `cancelled`, NULL while the workflow moves on
-- by itself (`pending`, `running`, `waiting`, `sleeping`). A claim, a wait and a wake-up
-- leave it NULL; a claim, which changes no other indexed column (a held workflow keeps its
-- `next_run_at`), is HOT. A query for a moving status reads the index's NULL entries and
-- then the row's `status` (`store::list`).
--
-- Stored, as PostgreSQL 15 can index only a stored generated column; adding it rewrites the
-- table once, under its exclusive lock, as 0024 and 0030 did. A NULL takes no bytes in the
-- row, so for a moving workflow the context is still the row's last bytes (0030).
ALTER TABLE workflows
    ADD COLUMN status_settled text GENERATED ALWAYS AS (
        CASE WHEN status IN ('needs_attention', 'completed', 'failed', 'cancelled')
             THEN status END) STORED,
    ALTER COLUMN status_settled SET STORAGE MAIN;

COMMENT ON COLUMN workflows.status_settled IS
    'status when the workflow rests in it (needs_attention, completed, failed, cancelled); NULL while it moves on by itself. Indexed instead of status, so that a claim is a HOT update (migration 0031).';

CREATE INDEX workflows_settled_idx ON workflows (status_settled, kind, finished_at);
COMMENT ON INDEX workflows_settled_idx IS
    'Workflows by the status they rest in, kind and end: the overview''s counts, the stuck list, the console''s status filter (migration 0031).';

DROP INDEX IF EXISTS workflows_finished_idx;
