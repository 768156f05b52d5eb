-- finflow's durable state on PostgreSQL: workflows, their step journal, what they wait for,
-- the callback inbox and the fleet's shared rate limiter.
--
-- Table, column and view names are a contract with operators and with the SQL function
-- `finflow_submit`: renaming one needs a new migration and a test. Every timestamp is
-- `timestamptz`. apalis keeps its own tables in schema `apalis`; ours live in the default
-- schema and our migration history is `finflow_migrations`.

-- One row per unit of work ("onboard this borrower"): a durable state machine.
CREATE TABLE workflows (
    id                 uuid        PRIMARY KEY,
    kind               text        NOT NULL,
    business_key       text        NOT NULL,
    definition_name    text        NOT NULL,
    definition_version integer,
    status             text        NOT NULL DEFAULT 'pending',
    state              text        NOT NULL,
    context            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    input              jsonb       NOT NULL,
    input_hash         text        NOT NULL,
    attempt            integer     NOT NULL DEFAULT 0,
    next_run_at        timestamptz,
    waiting_for        text,
    deadline           timestamptz,
    last_error         text,
    lease_owner        text,
    lease_until        timestamptz,
    version            bigint      NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    CONSTRAINT workflows_kind_business_key_key UNIQUE (kind, business_key),
    CONSTRAINT workflows_status_check CHECK (status IN (
        'pending', 'running', 'waiting', 'sleeping', 'needs_attention',
        'completed', 'failed', 'cancelled'
    )),
    CONSTRAINT workflows_finished_check CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL)
    )
);

COMMENT ON TABLE workflows IS 'One durable state machine per (kind, business_key); advanced by finflow workers one step at a time.';
COMMENT ON COLUMN workflows.id IS 'Workflow id (random UUID), printed by `finflow submit`.';
COMMENT ON COLUMN workflows.kind IS 'Workflow kind, e.g. onboard-borrower, originate-loan.';
COMMENT ON COLUMN workflows.business_key IS 'The submitter''s key; (kind, business_key) is unique: submitting it again returns the same workflow.';
COMMENT ON COLUMN workflows.definition_name IS 'Name of the workflows/*.toml definition this workflow runs.';
COMMENT ON COLUMN workflows.definition_version IS 'Pinned definition version; NULL until the first step pins the current one (SQL submissions may omit it).';
COMMENT ON COLUMN workflows.status IS 'pending | running | waiting | sleeping | needs_attention | completed | failed | cancelled. The last three are terminal.';
COMMENT ON COLUMN workflows.state IS 'The state machine''s state name (the workflow crate''s contract).';
COMMENT ON COLUMN workflows.context IS 'The state machine''s data (JSON), e.g. the Finfra user id once known.';
COMMENT ON COLUMN workflows.input IS 'The submitted input (JSON), validated by the worker as the first step.';
COMMENT ON COLUMN workflows.input_hash IS 'sha256 (hex) of input::text; a resubmission with the same key but a different input is a conflict.';
COMMENT ON COLUMN workflows.attempt IS 'Attempt number of the current step (0 before the first attempt).';
COMMENT ON COLUMN workflows.next_run_at IS 'When the workflow is due next (the source of truth for wake-ups); NULL when nothing is scheduled (finished, needs_attention).';
COMMENT ON COLUMN workflows.waiting_for IS 'Human-readable summary of what a waiting workflow waits for, e.g. user_verified; details in workflow_waits.';
COMMENT ON COLUMN workflows.deadline IS 'When the current wait or step times out (the worker then polls Finfra instead).';
COMMENT ON COLUMN workflows.last_error IS 'Last error or the reason a person is needed (needs_attention) or the workflow failed or was cancelled.';
COMMENT ON COLUMN workflows.lease_owner IS 'Worker id holding the lease while it runs a step.';
COMMENT ON COLUMN workflows.lease_until IS 'Lease expiry; an expired lease may be taken over by any worker.';
COMMENT ON COLUMN workflows.version IS 'Optimistic concurrency counter, bumped by every claim, step commit and cancel.';
COMMENT ON COLUMN workflows.created_at IS 'When the workflow was submitted.';
COMMENT ON COLUMN workflows.updated_at IS 'Last change of this row.';
COMMENT ON COLUMN workflows.finished_at IS 'When the workflow reached a terminal status.';

-- "Due" lookups (claim_due, stuck_workflows): only scheduled rows are indexed.
CREATE INDEX workflows_due_idx ON workflows (next_run_at) WHERE next_run_at IS NOT NULL;
-- Operator filters and the status-count view.
CREATE INDEX workflows_kind_status_idx ON workflows (kind, status);

-- Every attempt of every step, in order: the audit trail of what finflow did and saw.
CREATE TABLE step_journal (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id      uuid        NOT NULL REFERENCES workflows (id),
    seq              integer     NOT NULL,
    step             text        NOT NULL,
    action           text        NOT NULL,
    outcome          text        NOT NULL,
    attempt          integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    duration_ms      bigint      NOT NULL,
    finfra_status    integer,
    error            text,
    operation_key    text,
    request_summary  jsonb,
    response_summary jsonb,
    worker_id        text        NOT NULL,
    CONSTRAINT step_journal_workflow_seq_key UNIQUE (workflow_id, seq)
);

COMMENT ON TABLE step_journal IS 'One row per attempt of a step, written in the same transaction as the state change it caused.';
COMMENT ON COLUMN step_journal.seq IS '1, 2, 3... per workflow, in commit order.';
COMMENT ON COLUMN step_journal.step IS 'State (step) the attempt ran in.';
COMMENT ON COLUMN step_journal.action IS 'What was done, e.g. create_borrower, wait_callback, cancel.';
COMMENT ON COLUMN step_journal.outcome IS 'ok | retry | ambiguous | reconciled | failed | rate_limited | waiting | callback | timeout | cancelled | resolved | ... (free text; see store::outcome).';
COMMENT ON COLUMN step_journal.attempt IS 'Attempt number of this step.';
COMMENT ON COLUMN step_journal.duration_ms IS 'finished_at - started_at in milliseconds.';
COMMENT ON COLUMN step_journal.finfra_status IS 'HTTP status Finfra answered, NULL when no answer (timeout, reset) or no call.';
COMMENT ON COLUMN step_journal.error IS 'Error message, if any (never secrets or raw PII).';
COMMENT ON COLUMN step_journal.operation_key IS 'Idempotency/operation key of a non-idempotent call: created once per logical operation, reused on retries.';
COMMENT ON COLUMN step_journal.request_summary IS 'What was sent, PII masked by the caller.';
COMMENT ON COLUMN step_journal.response_summary IS 'What came back, PII masked by the caller.';
COMMENT ON COLUMN step_journal.worker_id IS 'Worker (or operator, for cancel) that wrote the row.';

CREATE INDEX step_journal_operation_key_idx ON step_journal (operation_key)
    WHERE operation_key IS NOT NULL;
CREATE INDEX step_journal_finished_at_idx ON step_journal (finished_at);

-- What a waiting workflow waits for: an event title under one correlation key. A workflow may
-- wait for several (user_verified OR user_rejected; by identity_number until the user id is
-- known). Kept apart from `workflows` so a callback finds its workflow through an index.
CREATE TABLE workflow_waits (
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    event       text        NOT NULL,
    key_name    text        NOT NULL,
    key_value   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, event, key_name, key_value),
    CONSTRAINT workflow_waits_key_name_check CHECK (key_name IN (
        'identity_number', 'user_id', 'kyc_id', 'loan_unique_id', 'external_id'
    ))
);

COMMENT ON TABLE workflow_waits IS 'Wait registrations, replaced by every step commit; a callback with this event title and key wakes the workflow.';
COMMENT ON COLUMN workflow_waits.event IS 'Callback title waited for, e.g. user_verified.';
COMMENT ON COLUMN workflow_waits.key_name IS 'identity_number | user_id | kyc_id | loan_unique_id | external_id: the callback_inbox column to match.';
COMMENT ON COLUMN workflow_waits.key_value IS 'The value that column must have.';

CREATE INDEX workflow_waits_lookup_idx ON workflow_waits (event, key_name, key_value);

-- Every callback Finfra delivered, once per (source, event_id), kept after processing.
CREATE TABLE callback_inbox (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source              text        NOT NULL,
    event_id            text        NOT NULL,
    title               text        NOT NULL,
    user_id             text,
    identity_number     text,
    kyc_id              text,
    loan_unique_id      text,
    external_id         text,
    payload             jsonb       NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    matched_workflow_id uuid        REFERENCES workflows (id),
    matched_at          timestamptz,
    processed_at        timestamptz,
    CONSTRAINT callback_inbox_source_event_key UNIQUE (source, event_id),
    CONSTRAINT callback_inbox_source_check CHECK (source IN (
        'status', 'virtual_account', 'invoice', 'didit'
    ))
);

COMMENT ON TABLE callback_inbox IS 'Callbacks received, deduplicated on (source, event_id); matched to the workflow waiting for them.';
COMMENT ON COLUMN callback_inbox.source IS 'status | virtual_account | invoice | didit: which of the four callback paths.';
COMMENT ON COLUMN callback_inbox.event_id IS 'Finfra''s event id (status callbacks) or payment id; unique per source.';
COMMENT ON COLUMN callback_inbox.title IS 'callback_title (user_created, loan_signed, ...) or the receiver''s name for a payment event.';
COMMENT ON COLUMN callback_inbox.user_id IS 'Correlation key: Finfra user id.';
COMMENT ON COLUMN callback_inbox.identity_number IS 'Correlation key: NIK (PII: do not export).';
COMMENT ON COLUMN callback_inbox.kyc_id IS 'Correlation key: KYC session id.';
COMMENT ON COLUMN callback_inbox.loan_unique_id IS 'Correlation key: the loan''s unique_id.';
COMMENT ON COLUMN callback_inbox.external_id IS 'Correlation key: payment external id / Didit session id.';
COMMENT ON COLUMN callback_inbox.payload IS 'The callback body as received (JSON).';
COMMENT ON COLUMN callback_inbox.matched_workflow_id IS 'The workflow it woke; NULL until a workflow waits for it.';
COMMENT ON COLUMN callback_inbox.matched_at IS 'When it was matched.';
COMMENT ON COLUMN callback_inbox.processed_at IS 'When the matched workflow consumed it (in the same transaction as the transition it caused).';

CREATE INDEX callback_inbox_user_id_idx ON callback_inbox (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX callback_inbox_identity_number_idx ON callback_inbox (identity_number)
    WHERE identity_number IS NOT NULL;
CREATE INDEX callback_inbox_kyc_id_idx ON callback_inbox (kyc_id) WHERE kyc_id IS NOT NULL;
CREATE INDEX callback_inbox_loan_unique_id_idx ON callback_inbox (loan_unique_id)
    WHERE loan_unique_id IS NOT NULL;
CREATE INDEX callback_inbox_external_id_idx ON callback_inbox (external_id)
    WHERE external_id IS NOT NULL;
-- A workflow's events not yet consumed (pending_events).
CREATE INDEX callback_inbox_pending_idx ON callback_inbox (matched_workflow_id)
    WHERE processed_at IS NULL;

-- The fleet's shared rate limiter, one row per scope (e.g. finfra:<client_id>).
CREATE TABLE rate_limits (
    scope        text             PRIMARY KEY,
    paused_until timestamptz,
    tokens       double precision,
    refilled_at  timestamptz,
    updated_at   timestamptz      NOT NULL DEFAULT now()
);

COMMENT ON TABLE rate_limits IS 'Shared rate limiter: a pause (after a 429) and an optional token bucket per scope.';
COMMENT ON COLUMN rate_limits.scope IS 'What is limited, e.g. finfra:<client_id>.';
COMMENT ON COLUMN rate_limits.paused_until IS 'No request in this scope before this instant (Retry-After of a 429); only ever moves later.';
COMMENT ON COLUMN rate_limits.tokens IS 'Token bucket: tokens left at refilled_at.';
COMMENT ON COLUMN rate_limits.refilled_at IS 'Token bucket: when tokens was last computed.';
