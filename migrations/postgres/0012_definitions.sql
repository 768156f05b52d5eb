-- Definitions stored once, by pin (issue: slim state).
--
-- A running workflow's context used to carry a copy of the definition it pinned (about
-- 1.3 KB) and of its request, rewritten on every step. Now the context names the definition
-- by its pin (`context->>'definition'`, the SHA-256 of the definition's JSON with keys
-- sorted) and the request is read from `workflows.input`. A worker stores each definition
-- it pins here before the first context that names it; a row is never changed.
CREATE TABLE definitions (
    digest      TEXT        PRIMARY KEY,
    name        TEXT        NOT NULL,
    version     INTEGER     NOT NULL,
    file_digest TEXT        NOT NULL,
    body        JSONB       NOT NULL,
    stored_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE definitions IS 'Every definition a workflow pinned, once, by pin (the SHA-256 of its JSON): workflows.context->>''definition'' names the row.';
COMMENT ON COLUMN definitions.file_digest IS 'SHA-256 of the workflows/*.toml file it was read from.';
CREATE INDEX definitions_name_version ON definitions (name, version);
