-- Four-eyes approval of operators' commands that can make money move or stop it after
-- signing (a resolve or retry of a loan, a cancel of a signed loan: the workflow crate's
-- `Engine::needs_approval`). Such a command is stored here as pending, not in the inbox; a
-- second person with the approver role approves it (then it is queued in the inbox like
-- any command, and `inbox_id` names that row) or rejects it; it expires at `expires_at`.
-- Same names, columns and meaning as migrations/sqlite/0006.

CREATE TABLE command_requests (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id    uuid        NOT NULL REFERENCES workflows (id),
    title          text        NOT NULL CHECK (title IN ('cancel', 'resolve')),
    payload        jsonb       NOT NULL,
    requested_by   text        NOT NULL,
    reason         text        NOT NULL,
    needs_approval text        NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    status         text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by     text,
    decided_reason text,
    decided_at     timestamptz,
    inbox_id       bigint      REFERENCES callback_inbox (id),
    CONSTRAINT command_requests_decided_check CHECK (
        (status = 'pending') = (decided_at IS NULL)
    ),
    CONSTRAINT command_requests_approved_check CHECK (
        (status = 'approved') = (inbox_id IS NOT NULL)
    ),
    CONSTRAINT command_requests_four_eyes_check CHECK (
        decided_by IS NULL OR status = 'expired' OR decided_by <> requested_by
    )
);

COMMENT ON TABLE command_requests IS 'Operator commands waiting for (or decided by) a second person: four-eyes for money.';
COMMENT ON COLUMN command_requests.title IS 'cancel | resolve (a retry is a resolve with {"retry": true}).';
COMMENT ON COLUMN command_requests.payload IS 'The command as the inbox will hold it: {by, reason, data}.';
COMMENT ON COLUMN command_requests.needs_approval IS 'Why it needs a second person (the rule''s words).';
COMMENT ON COLUMN command_requests.status IS 'pending | approved (queued in the inbox: inbox_id) | rejected | expired.';
COMMENT ON COLUMN command_requests.decided_by IS 'Who approved or rejected it; never the requester.';
COMMENT ON COLUMN command_requests.inbox_id IS 'The operator inbox row queued on approval.';

CREATE INDEX command_requests_pending_idx ON command_requests (expires_at) WHERE status = 'pending';
CREATE INDEX command_requests_workflow_idx ON command_requests (workflow_id);
CREATE INDEX command_requests_inbox_idx ON command_requests (inbox_id) WHERE inbox_id IS NOT NULL;
-- The console's commands page and a workflow's commands: operator rows by recency.
CREATE INDEX callback_inbox_operator_idx ON callback_inbox (id) WHERE source = 'operator';
-- Commands that reached a finished workflow, answered by `Store::answer_late_commands`.
CREATE INDEX callback_inbox_operator_unprocessed_idx ON callback_inbox (matched_workflow_id)
    WHERE source = 'operator' AND processed_at IS NULL;

-- The console's workflow table: newest first by keyset, filtered by business-key prefix and
-- by what the workflow established at Finfra.
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);
CREATE INDEX workflows_business_key_prefix_idx ON workflows ((business_key COLLATE "C"));
CREATE INDEX workflows_user_id_idx ON workflows ((facts->>'user_id'));
CREATE INDEX workflows_loan_unique_id_idx ON workflows ((facts->>'loan_unique_id'));
-- The overview's callbacks per minute.
CREATE INDEX callback_inbox_received_at_idx ON callback_inbox (received_at);
-- The console's filter by the last 4 digits of an onboarding's NIK (store::list).
CREATE INDEX workflows_nik_last4_idx ON workflows
    ((right(input #>> '{borrower,authorised_signatory,documents,ktp,number}', 4)))
    WHERE kind = 'onboard-borrower';
-- The overview at 100,000 workflows: counts by kind, state and status from the index alone;
-- the stuck list among unfinished rows only; the day's funnel by range.
CREATE INDEX workflows_kind_state_status_idx ON workflows (kind, state, status);
CREATE INDEX workflows_status_updated_idx ON workflows (status, updated_at);
CREATE INDEX workflows_finished_idx ON workflows (kind, status, finished_at);
CREATE INDEX step_journal_step_finished_idx ON step_journal (step, finished_at);
