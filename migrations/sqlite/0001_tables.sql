-- finflow's durable state on SQLite: workflows, their step journal, what they wait for, the
-- callback inbox and the shared rate limiter. Same tables, columns and meaning as
-- migrations/postgres (read its COMMENTs too); names are a contract.
--
-- SQLite representation (chosen so `sqlite3 finflow.db` is readable as is):
--   * timestamps: TEXT, UTC ISO-8601 with milliseconds, always 24 characters:
--     2026-11-24T05:50:00.123Z (what strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes). The
--     fixed width makes text order chronological order, so comparisons and indexes work.
--   * ids: TEXT, hyphenated lowercase UUID.  * JSON: TEXT holding valid JSON.
-- apalis keeps its own tables (Jobs, Workers) and history (_sqlx_migrations) in this file;
-- ours is finflow_migrations.

-- One row per unit of work: a durable state machine.
CREATE TABLE workflows (
    id                 TEXT    NOT NULL PRIMARY KEY,           -- uuid
    kind               TEXT    NOT NULL,                       -- onboard-borrower, originate-loan, ...
    business_key       TEXT    NOT NULL,                       -- submitter's key; unique with kind
    definition_name    TEXT    NOT NULL,                       -- workflows/*.toml definition
    definition_version INTEGER,                                -- pinned version; NULL until pinned
    status             TEXT    NOT NULL DEFAULT 'pending'      -- see CHECK; last three terminal
        CHECK (status IN ('pending', 'running', 'waiting', 'sleeping', 'needs_attention',
                          'completed', 'failed', 'cancelled')),
    state              TEXT    NOT NULL,                       -- state machine's state name
    context            TEXT    NOT NULL DEFAULT '{}'           -- state machine's data (JSON)
        CHECK (json_valid(context)),
    input              TEXT    NOT NULL CHECK (json_valid(input)),  -- submitted input, canonical JSON
    input_hash         TEXT    NOT NULL,                       -- sha256 hex of input
    attempt            INTEGER NOT NULL DEFAULT 0,             -- attempt of the current step
    next_run_at        TEXT,                                   -- when due; NULL = nothing scheduled
    waiting_for        TEXT,                                   -- summary of the wait, e.g. user_verified
    deadline           TEXT,                                   -- when the current wait/step times out
    last_error         TEXT,                                   -- last error / reason for attention
    lease_owner        TEXT,                                   -- worker running a step
    lease_until        TEXT,                                   -- lease expiry
    version            INTEGER NOT NULL DEFAULT 0,             -- optimistic concurrency counter
    created_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at        TEXT,                                   -- set with a terminal status
    UNIQUE (kind, business_key),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
) STRICT;

CREATE INDEX workflows_due_idx ON workflows (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX workflows_kind_status_idx ON workflows (kind, status);

-- Every attempt of every step, in order, written with the state change it caused.
CREATE TABLE step_journal (
    id               INTEGER NOT NULL PRIMARY KEY,
    workflow_id      TEXT    NOT NULL REFERENCES workflows (id),
    seq              INTEGER NOT NULL,                         -- 1, 2, 3... per workflow
    step             TEXT    NOT NULL,                         -- state the attempt ran in
    action           TEXT    NOT NULL,                         -- create_borrower, wait_callback, cancel...
    outcome          TEXT    NOT NULL,                         -- ok | retry | ambiguous | reconciled | failed |
                                                               -- rate_limited | waiting | callback | timeout |
                                                               -- cancelled | resolved | ... (store::outcome)
    attempt          INTEGER NOT NULL,
    started_at       TEXT    NOT NULL,
    finished_at      TEXT    NOT NULL,
    duration_ms      INTEGER NOT NULL,
    finfra_status    INTEGER,                                  -- Finfra's HTTP status; NULL if none
    error            TEXT,                                     -- never secrets or raw PII
    operation_key    TEXT,                                     -- idempotency key, reused on retries
    request_summary  TEXT CHECK (request_summary IS NULL OR json_valid(request_summary)),   -- PII masked
    response_summary TEXT CHECK (response_summary IS NULL OR json_valid(response_summary)), -- PII masked
    worker_id        TEXT    NOT NULL,                         -- worker (or operator) that wrote it
    UNIQUE (workflow_id, seq)
) STRICT;

CREATE INDEX step_journal_operation_key_idx ON step_journal (operation_key)
    WHERE operation_key IS NOT NULL;
CREATE INDEX step_journal_finished_at_idx ON step_journal (finished_at);

-- What a waiting workflow waits for: an event title under one correlation key; several per
-- workflow (user_verified OR user_rejected, by NIK until the user id is known). A table of
-- its own so a callback finds its workflow through an index. Replaced by every step commit.
CREATE TABLE workflow_waits (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,                                 -- callback title, e.g. user_verified
    key_name    TEXT NOT NULL                                  -- callback_inbox column to match
        CHECK (key_name IN ('identity_number', 'user_id', 'kyc_id', 'loan_unique_id', 'external_id')),
    key_value   TEXT NOT NULL,                                 -- value it must have
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (workflow_id, event, key_name, key_value)
) STRICT;

CREATE INDEX workflow_waits_lookup_idx ON workflow_waits (event, key_name, key_value);

-- Every callback received, once per (source, event_id), kept after processing.
CREATE TABLE callback_inbox (
    id                  INTEGER NOT NULL PRIMARY KEY,
    source              TEXT    NOT NULL                       -- which callback path
        CHECK (source IN ('status', 'virtual_account', 'invoice', 'didit')),
    event_id            TEXT    NOT NULL,                      -- Finfra's event / payment id
    title               TEXT    NOT NULL,                      -- callback_title or payment event name
    user_id             TEXT,                                  -- correlation keys...
    identity_number     TEXT,                                  -- NIK (PII: do not export)
    kyc_id              TEXT,
    loan_unique_id      TEXT,
    external_id         TEXT,
    payload             TEXT    NOT NULL CHECK (json_valid(payload)),  -- body as received
    received_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    matched_workflow_id TEXT    REFERENCES workflows (id),     -- NULL until a workflow waits for it
    matched_at          TEXT,
    processed_at        TEXT,                                  -- consumed with the transition it caused
    UNIQUE (source, event_id)
) STRICT;

CREATE INDEX callback_inbox_user_id_idx ON callback_inbox (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX callback_inbox_identity_number_idx ON callback_inbox (identity_number)
    WHERE identity_number IS NOT NULL;
CREATE INDEX callback_inbox_kyc_id_idx ON callback_inbox (kyc_id) WHERE kyc_id IS NOT NULL;
CREATE INDEX callback_inbox_loan_unique_id_idx ON callback_inbox (loan_unique_id)
    WHERE loan_unique_id IS NOT NULL;
CREATE INDEX callback_inbox_external_id_idx ON callback_inbox (external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX callback_inbox_pending_idx ON callback_inbox (matched_workflow_id)
    WHERE processed_at IS NULL;

-- The shared rate limiter, one row per scope (e.g. finfra:<client_id>).
CREATE TABLE rate_limits (
    scope        TEXT NOT NULL PRIMARY KEY,
    paused_until TEXT,                                         -- no request before; only moves later
    tokens       REAL,                                         -- token bucket: tokens at refilled_at
    refilled_at  TEXT,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
