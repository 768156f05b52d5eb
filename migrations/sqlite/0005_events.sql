-- The lifecycle event feed and outbound webhooks. Same tables and meaning as
-- migrations/postgres/0009 (read its header). SQLite has one writer at a time, so ids are
-- visible in id order without a lock; AUTOINCREMENT keeps an id from ever being reused after
-- the newest events are pruned (a consumer's cursor stays valid). Times are the store's
-- fixed-width UTC text (store::time). The store writes the events in the step's own
-- BEGIN IMMEDIATE ... COMMIT (store::commit).
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at  TEXT    NOT NULL,
    workflow_id  TEXT,
    journal_seq  INTEGER,
    position     INTEGER NOT NULL DEFAULT 0,
    kind         TEXT,
    business_key TEXT,
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL DEFAULT '{}',
    UNIQUE (workflow_id, journal_seq, position)
);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);

CREATE TABLE webhook_cursors (
    webhook       TEXT    PRIMARY KEY,
    last_event_id INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT    NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    webhook         TEXT    NOT NULL,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    workflow_id     TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    claimed_by      TEXT,
    claimed_until   TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    delivered_at    TEXT,
    UNIQUE (webhook, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, event_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (webhook, workflow_id, event_id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_failed_idx ON webhook_deliveries (updated_at)
    WHERE status = 'failed';
