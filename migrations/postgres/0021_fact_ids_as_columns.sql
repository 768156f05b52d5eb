-- A step that records a fact updates its workflow without an index entry (issue: the engine
-- core, rebuilt for cost).
--
-- PostgreSQL makes an update HOT (no index entry, only the row's changed bytes in the WAL)
-- when no column that an index reads changed. The indexes of 0017 on the facts' user and loan
-- ids read the whole `facts` column, so every step that added a fact (a KYC id, a credit
-- score, a document: about one step in five of an onboarding) wrote an entry into each of the
-- table's ten indexes, although neither id changed. Measured over `finflow bench` with a
-- trigger that classified the updates: 20 % of the updates of `workflows` changed `facts` and
-- nothing else an index reads, 5 % changed the user id itself.
--
-- The two ids become stored generated columns, computed by PostgreSQL from `facts` by every
-- writer (the step commit of this build and of the one before, cancel, erase), and the
-- indexes read those: an update whose facts keep both ids leaves both columns equal and can
-- be HOT. The store's lookups by these ids name the columns (store::dialect::fact_id).
--
-- Both are stored MAIN, like the other small columns (0017): a row above the toaster's
-- target would otherwise have its id moved out of line (it is the largest EXTENDED value
-- left once the input is), a new TOAST pointer at every update, which is a changed indexed
-- column and no HOT update at all. Set in the same statement, so the rewrite below already
-- stores them so.
--
-- Adding a stored generated column rewrites the table and its indexes once, under an
-- exclusive lock: workers wait for the migration (about 4 s per 100,000 workflows on the
-- 2-core development machine) and go on; nothing stored changes.

ALTER TABLE workflows
    ADD COLUMN user_id text GENERATED ALWAYS AS (facts->>'user_id') STORED,
    ADD COLUMN loan_unique_id text GENERATED ALWAYS AS (facts->>'loan_unique_id') STORED,
    ALTER COLUMN user_id SET STORAGE MAIN,
    ALTER COLUMN loan_unique_id SET STORAGE MAIN;

DROP INDEX IF EXISTS workflows_user_id_idx;
CREATE INDEX workflows_user_id_idx ON workflows (user_id) WHERE user_id IS NOT NULL;
DROP INDEX IF EXISTS workflows_loan_unique_id_idx;
CREATE INDEX workflows_loan_unique_id_idx ON workflows (loan_unique_id)
    WHERE loan_unique_id IS NOT NULL;
