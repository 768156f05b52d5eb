-- Fewer index entries a step (issue: the engine core, rebuilt for cost, WAL per step).
--
-- A quarter of a step's WAL is B-tree entries: 14 a step (pg_waldump --stats of a bench of
-- 600 onboardings at 0025). Every journal row wrote four or five (its id, its
-- (workflow_id, seq), its finished_at, its (step, finished_at), its operation key if any),
-- and a callback's mark as consumed wrote three (a new row version on another page, in every
-- index of the inbox whose predicate it meets). This migration takes three away:
--
-- 1. The journal's key is (workflow_id, seq), how every reader finds a row (a workflow's
--    timeline, its last step); the `id` column stays, numbered as before, without an index
--    of its own (nothing of finflow reads a journal row by it).
-- 2. `finished_at` is indexed by block range (BRIN) instead of row by row: the journal is
--    appended in time order, so the blocks of a time window are found from each range's
--    least and greatest time, and a new row costs no index entry until VACUUM summarises
--    its range (a range not yet summarised is read by every query, which for the last
--    blocks is what a "since" query reads anyway). The overview's rates of the last hour
--    and the steps of each worker read the table's tail through it; the funnel's counts by
--    step keep their B-tree (step, finished_at).
-- 3. Marking a callback consumed (`processed_at`) is a heap-only update: no index reads
--    `processed_at` any more, and the inbox's pages keep room for the new version
--    (fillfactor 70, for pages filled from now on). A workflow's unconsumed callbacks are
--    found by its id among all its callbacks (a handful), the operators' unanswered commands
--    among the operators' rows received lately (an index of their own, below).
--
-- A worker of the build before runs its statements unchanged on this schema. Replacing the
-- journal's unique index reads the whole journal under an exclusive lock: steps wait for it
-- and go on (13 s for 13 million journal rows on a 2-core machine).

ALTER TABLE step_journal DROP CONSTRAINT step_journal_pkey;
ALTER TABLE step_journal DROP CONSTRAINT step_journal_workflow_seq_key,
    ADD CONSTRAINT step_journal_pkey PRIMARY KEY (workflow_id, seq);
COMMENT ON COLUMN step_journal.id IS
    'Row number in insertion order (not indexed: a row is found by workflow_id and seq).';

DROP INDEX step_journal_finished_at_idx;
CREATE INDEX step_journal_finished_at_idx ON step_journal USING brin (finished_at);

DROP INDEX callback_inbox_pending_idx;
DROP INDEX callback_inbox_operator_unprocessed_idx;
CREATE INDEX callback_inbox_matched_idx ON callback_inbox (matched_workflow_id)
    WHERE matched_workflow_id IS NOT NULL;
ALTER TABLE callback_inbox SET (fillfactor = 70);
-- The operators' commands in the order they were received (an entry for an operator's row
-- only): `Store::answer_late_commands` finds the unanswered commands of finished workflows
-- among those received lately (the last day; all of them when a worker starts, and hourly).
CREATE INDEX callback_inbox_operator_received_idx ON callback_inbox (received_at, id)
    WHERE source = 'operator';
