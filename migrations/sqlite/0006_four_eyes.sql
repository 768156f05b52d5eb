-- Four-eyes approval of operators' commands that can make money move or stop it after
-- signing. Same names, columns and meaning as migrations/postgres/0010 (read it there).

CREATE TABLE command_requests (
    id             INTEGER NOT NULL PRIMARY KEY,
    workflow_id    TEXT    NOT NULL REFERENCES workflows (id),
    title          TEXT    NOT NULL CHECK (title IN ('cancel', 'resolve')),
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    requested_by   TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    needs_approval TEXT    NOT NULL,
    requested_at   TEXT    NOT NULL,
    expires_at     TEXT    NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by     TEXT,
    decided_reason TEXT,
    decided_at     TEXT,
    inbox_id       INTEGER REFERENCES callback_inbox (id),
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK ((status = 'approved') = (inbox_id IS NOT NULL)),
    CHECK (decided_by IS NULL OR status = 'expired' OR decided_by <> requested_by)
);

CREATE INDEX command_requests_pending_idx ON command_requests (expires_at) WHERE status = 'pending';
CREATE INDEX command_requests_workflow_idx ON command_requests (workflow_id);
CREATE INDEX command_requests_inbox_idx ON command_requests (inbox_id) WHERE inbox_id IS NOT NULL;
CREATE INDEX callback_inbox_operator_idx ON callback_inbox (id) WHERE source = 'operator';
-- Commands that reached a finished workflow, answered by `Store::answer_late_commands`.
CREATE INDEX callback_inbox_operator_unprocessed_idx ON callback_inbox (matched_workflow_id)
    WHERE source = 'operator' AND processed_at IS NULL;

-- The console's workflow table: newest first by keyset, filtered by business-key prefix and
-- by what the workflow established at Finfra.
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);
CREATE INDEX workflows_business_key_prefix_idx ON workflows (business_key);
CREATE INDEX workflows_user_id_idx ON workflows (json_extract(facts, '$.user_id'));
CREATE INDEX workflows_loan_unique_id_idx ON workflows (json_extract(facts, '$.loan_unique_id'));
-- The overview's callbacks per minute.
CREATE INDEX callback_inbox_received_at_idx ON callback_inbox (received_at);
-- The console's filter by the last 4 digits of an onboarding's NIK (store::list).
CREATE INDEX workflows_nik_last4_idx ON workflows
    (substr(json_extract(input, '$.borrower.authorised_signatory.documents.ktp.number'), -4))
    WHERE kind = 'onboard-borrower';
-- The overview at 100,000 workflows: counts by kind, state and status from the index alone;
-- the stuck list among unfinished rows only; the day's funnel by range.
CREATE INDEX workflows_kind_state_status_idx ON workflows (kind, state, status);
CREATE INDEX workflows_status_updated_idx ON workflows (status, updated_at);
CREATE INDEX workflows_finished_idx ON workflows (kind, status, finished_at);
CREATE INDEX step_journal_step_finished_idx ON step_journal (step, finished_at);
