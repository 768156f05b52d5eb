-- A wait is one row per key (PostgreSQL migration 0032 says why): a row per workflow and
-- correlation key, with the titles waited for under it in `events`, a JSON array (sorted,
-- each once). A callback finds the rows with its keys' values by the look-up index (key,
-- value) and keeps those whose `events` hold its title. The waits in place are regrouped:
-- a workflow waiting at the upgrade still waits for the same titles under the same keys,
-- registered when it first was.
CREATE TABLE workflow_waits_by_key (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    key_name    TEXT NOT NULL                                  -- callback_inbox column to match
        CHECK (key_name IN ('identity_number', 'user_id', 'kyc_id', 'loan_unique_id', 'external_id')),
    key_value   TEXT NOT NULL,                                 -- value it must have
    events      TEXT NOT NULL                                  -- titles waited for, a JSON array
        CHECK (json_valid(events) AND json_type(events) = 'array' AND json_array_length(events) > 0),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (workflow_id, key_name, key_value)
) STRICT;

INSERT INTO workflow_waits_by_key (workflow_id, key_name, key_value, events, created_at)
SELECT workflow_id, key_name, key_value, json_group_array(event), min(created_at)
FROM (SELECT * FROM workflow_waits ORDER BY workflow_id, key_name, key_value, event)
GROUP BY workflow_id, key_name, key_value;

DROP TABLE workflow_waits;
ALTER TABLE workflow_waits_by_key RENAME TO workflow_waits;
CREATE INDEX workflow_waits_lookup_idx ON workflow_waits (key_name, key_value);
