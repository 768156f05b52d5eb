-- A wait finds its callbacks through indexes of the unmatched ones only (PostgreSQL
-- migration 0019 says why): each key index holds the callbacks with that key that no
-- workflow has taken, the pending index the matched ones not yet processed. A match
-- (store::inbox, `i.<key> = w.key_value AND i.matched_workflow_id IS NULL`) and the pending
-- events (`matched_workflow_id = $1 AND processed_at IS NULL`) imply their predicates.
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
