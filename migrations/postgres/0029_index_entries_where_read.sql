-- Index entries only where something reads them (issue: the engine core, rebuilt for cost,
-- WAL per step).
--
-- 1. `step_journal (step, finished_at)` took an entry from every journal row, one a step
--    (about 80 bytes of WAL each), for one reader: the overview's funnel, which counts the
--    loans that reached two steps, `disburse_loan` and `request_virtual_account`, since a
--    time (`store::overview::FUNNEL_SQL`). It now holds the rows of those two steps only:
--    two a loan, none for an onboarding. The funnel's conditions (`step = 'disburse_loan'`)
--    imply the index's, so it reads the same index as before. A funnel that counts another
--    step names it here too (a new migration), or reads that step through the journal's
--    time index (BRIN, 0026) and filters.
-- 2. `step_journal (operation_key)` took an entry from every step with an operation key
--    (about half of them) for no reader: a retry takes its key from the workflow's state,
--    not from the journal, and the key is finflow's own (Finfra never sees it), so nothing
--    outside finds a row by it either. An operator reads a workflow's journal by its id (the
--    journal's key, as `finflow inspect` and the console do) and finds the key there; a
--    query by operation key alone now reads the table, as one by the journal's `id` has
--    since 0026.
-- 3. `callback_inbox (received_at)` took an entry from every callback for one reader: the
--    overview's callbacks per minute of the last hour. The inbox is appended in time order,
--    as the journal is, so it is now indexed by block range (BRIN) as the journal's
--    `finished_at` is since 0026: a callback costs no entry until VACUUM summarises its
--    range, and a "since" query reads the table's last blocks.
--
-- The two indexes are rebuilt under the lock CREATE INDEX takes: steps and callbacks wait for
-- it and go on (the journal is read once, as 0026 read it). SQLite writes whole pages; its
-- indexes stay as they are.
DROP INDEX IF EXISTS step_journal_step_finished_idx;
CREATE INDEX step_journal_step_finished_idx ON step_journal (step, finished_at)
    WHERE step IN ('disburse_loan', 'request_virtual_account');
COMMENT ON INDEX step_journal_step_finished_idx IS
    'The overview''s funnel: journal rows of the steps it counts (store::overview::FUNNEL_SQL), by time.';

DROP INDEX IF EXISTS step_journal_operation_key_idx;

DROP INDEX IF EXISTS callback_inbox_received_at_idx;
CREATE INDEX callback_inbox_received_at_idx ON callback_inbox USING brin (received_at);
COMMENT ON INDEX callback_inbox_received_at_idx IS
    'The overview''s callbacks per minute since a time: block ranges of the inbox, appended in time order.';
