-- Definitions stored once, by pin: the same table as
-- migrations/postgres/0012_definitions.sql (read its comments).
CREATE TABLE definitions (
    digest      TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    file_digest TEXT    NOT NULL,
    body        TEXT    NOT NULL CHECK (json_valid(body)),
    stored_at   TEXT    NOT NULL
);
CREATE INDEX definitions_name_version ON definitions (name, version);
