-- A wait finds its callbacks through indexes of the unmatched ones only (issue: the engine
-- core, rebuilt for cost).
--
-- The callbacks a new wait takes (finflow_commit_step's match, 0018; its twin on SQLite,
-- store::inbox) are the unmatched ones with the wait's key. The key indexes held every
-- callback, and the pending index (matched_workflow_id, unprocessed) every unmatched one
-- under NULL, so the planner could read "unmatched" from the pending index and filter on the
-- key: every callback nobody waits for (a title no definition waits on) stays unmatched for
-- good, and each wait's match read all of them (0.76 ms a wait in a bench of 600
-- onboardings, and growing with the inbox; 12 % of the server's CPU).
--   * Each key index now holds only the unmatched callbacks with that key: what a match and
--     an announcement's copies (`a.matched_workflow_id IS NULL`) look up. A callback leaves
--     them when a workflow takes it (its new row version is not indexed there), so they stay
--     small however large the inbox grows, and matching a callback writes none of their
--     entries.
--   * The pending index holds only matched, unprocessed callbacks: what the claim, the
--     commit and `pending_events` read (`matched_workflow_id = $1`), and nothing a match can
--     take for its own.
-- Rebuilding them holds the inbox's writes (callbacks stored, steps committed by workers of
-- the build before) for as long as it takes: seconds for millions of callbacks.
DROP INDEX IF EXISTS callback_inbox_identity_number_idx;
CREATE INDEX callback_inbox_identity_number_idx ON callback_inbox (identity_number)
    WHERE identity_number IS NOT NULL AND matched_workflow_id IS NULL;
DROP INDEX IF EXISTS callback_inbox_user_id_idx;
CREATE INDEX callback_inbox_user_id_idx ON callback_inbox (user_id)
    WHERE user_id IS NOT NULL AND matched_workflow_id IS NULL;
DROP INDEX IF EXISTS callback_inbox_kyc_id_idx;
CREATE INDEX callback_inbox_kyc_id_idx ON callback_inbox (kyc_id)
    WHERE kyc_id IS NOT NULL AND matched_workflow_id IS NULL;
DROP INDEX IF EXISTS callback_inbox_loan_unique_id_idx;
CREATE INDEX callback_inbox_loan_unique_id_idx ON callback_inbox (loan_unique_id)
    WHERE loan_unique_id IS NOT NULL AND matched_workflow_id IS NULL;
DROP INDEX IF EXISTS callback_inbox_external_id_idx;
CREATE INDEX callback_inbox_external_id_idx ON callback_inbox (external_id)
    WHERE external_id IS NOT NULL AND matched_workflow_id IS NULL;
DROP INDEX IF EXISTS callback_inbox_pending_idx;
CREATE INDEX callback_inbox_pending_idx ON callback_inbox (matched_workflow_id)
    WHERE matched_workflow_id IS NOT NULL AND processed_at IS NULL;
