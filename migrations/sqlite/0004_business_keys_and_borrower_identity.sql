-- One onboarding per borrower at a time. Same column and meaning as migrations/postgres/0005
-- (read its comments); the business-key rule lives in the store's Rust code on SQLite.
--
-- identity_key: onboard-borrower: sha256 (lowercase hex) of the borrower's NIK (input
-- borrower.authorised_signatory.documents.ktp.number, a JSON string), never the NIK itself;
-- NULL for other kinds or without a NIK. Set by Store::submit. SQLite has no SHA-256 in SQL:
-- existing onboardings are filled by the store in Rust right after the migrations, in the
-- same transaction (store::identity::backfill_sqlite).
ALTER TABLE workflows ADD COLUMN identity_key TEXT;

-- Not unique: a database from before the rule may hold two unfinished onboardings of one
-- borrower. Led by kind so that the backfill finds the onboardings still without a key
-- (NULLs are indexed in SQLite) without reading the other kinds' rows.
CREATE INDEX workflows_identity_key_idx ON workflows (kind, identity_key);
