//! What an operator would ask the database, in plain SQL that runs on both backends:
//! where each workflow ended, who held what when a worker died, what the journal says.

use std::collections::BTreeMap;

use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use store::{Backend, NewWorkflow, Store};

use super::applicants::Applicant;

/// One workflow as SQL shows it (ids as text: `uuid` on PostgreSQL, text on SQLite).
#[derive(Debug, Clone, FromRow)]
pub struct WorkflowRow {
    pub id: String,
    pub business_key: String,
    pub status: String,
    pub state: String,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    /// The state machine's data, JSON text.
    pub context: String,
}

impl WorkflowRow {
    /// Finfra's user id, as the workflow recorded it (`$.borrower.user_id`).
    pub fn user_id(&self) -> Option<String> {
        let context: serde_json::Value =
            serde_json::from_str(&self.context).expect("context is JSON");
        context["borrower"]["user_id"].as_str().map(str::to_owned)
    }
}

/// A journal row, as SQL shows it.
#[derive(Debug, Clone, FromRow)]
pub struct JournalRow {
    pub workflow_id: String,
    pub seq: i32,
    pub step: String,
    pub action: String,
    pub outcome: String,
    pub error: Option<String>,
    pub worker_id: String,
    /// JSON text; `{"decision": {"next": "call", ...}, ...}` once committed.
    pub response_summary: Option<String>,
}

impl JournalRow {
    /// Whether the decision committed with this row was to call Finfra.
    pub fn decided_to_call(&self) -> bool {
        decided_to_call(self.response_summary.as_deref())
    }
}

/// Whether a journal row's `response_summary` (JSON text) holds a decision to call Finfra.
fn decided_to_call(response_summary: Option<&str>) -> bool {
    response_summary
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .is_some_and(|v| v["decision"]["next"] == "call")
}

/// A workflow held by a worker, with its last journal row's `seq` and `response_summary`.
#[derive(Debug, FromRow)]
struct HeldRow {
    #[sqlx(flatten)]
    workflow: WorkflowRow,
    last_seq: i32,
    last_summary: Option<String>,
}

/// The test's own connection to the run's database.
#[derive(Clone)]
pub struct Db {
    pub store: Store,
}

const WORKFLOWS: &str = "SELECT CAST(id AS TEXT) AS id, business_key, status, state, \
     last_error, lease_owner, CAST(context AS TEXT) AS context FROM workflows";

impl Db {
    /// The database's tables (not views).
    pub async fn tables(&self) -> Vec<String> {
        match self.store.backend() {
            store::Backend::Postgres(pool) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(pool)
            .await
            .expect("tables"),
            store::Backend::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(pool)
            .await
            .expect("tables"),
        }
    }

    /// Every row of `table` as text (PostgreSQL: the row; SQLite: its columns' JSON).
    pub async fn table_text(&self, table: &str) -> Vec<String> {
        match self.store.backend() {
            store::Backend::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM {table} t"
            )))
            .fetch_all(pool)
            .await
            .expect(table),
            store::Backend::Sqlite(pool) => {
                let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{table}')"
                )))
                .fetch_all(pool)
                .await
                .expect(table);
                let list = columns
                    .iter()
                    // A BLOB (a migration's checksum) is not text: left out.
                    .map(|c| {
                        format!(
                            "CASE typeof(\"{c}\") WHEN 'blob' THEN '' \
                             ELSE coalesce(CAST(\"{c}\" AS TEXT), '') END"
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT {list} FROM \"{table}\""
                )))
                .fetch_all(pool)
                .await
                .expect(table)
            }
        }
    }

    async fn rows<T>(&self, sql: &str, bind: Option<&str>) -> Vec<T>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let text = sql;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let result = match self.store.backend() {
            Backend::Postgres(pool) => {
                let query = sqlx::query_as::<_, T>(sql);
                match bind {
                    Some(value) => query.bind(value.to_owned()).fetch_all(pool).await,
                    None => query.fetch_all(pool).await,
                }
            }
            Backend::Sqlite(pool) => {
                let query = sqlx::query_as::<_, T>(sql);
                match bind {
                    Some(value) => query.bind(value.to_owned()).fetch_all(pool).await,
                    None => query.fetch_all(pool).await,
                }
            }
        };
        result.unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Every workflow, by business key.
    pub async fn workflows(&self) -> BTreeMap<String, WorkflowRow> {
        self.rows::<WorkflowRow>(WORKFLOWS, None)
            .await
            .into_iter()
            .map(|w| (w.business_key.clone(), w))
            .collect()
    }

    /// The workflows `worker` holds whose last committed decision was to call Finfra: the
    /// request is about to leave, in flight, or answered but the answer not yet recorded.
    /// Killing the worker now interrupts those calls.
    pub async fn held_mid_call(&self, worker: &str) -> Vec<WorkflowRow> {
        self.held_mid_call_after(worker)
            .await
            .into_iter()
            .map(|(workflow, _)| workflow)
            .collect()
    }

    /// [`Self::held_mid_call`], each with the `seq` of its journal row that decided the call.
    /// Each row is read with its last journal row in one statement, so both are of one moment
    /// (read one after the other, a workflow released and taken up by another worker between
    /// the two reads would look held by this one with the other's decision).
    pub async fn held_mid_call_after(&self, worker: &str) -> Vec<(WorkflowRow, i32)> {
        let sql = format!(
            "SELECT w.*, j.seq AS last_seq, CAST(j.response_summary AS TEXT) AS last_summary \
             FROM ({WORKFLOWS} WHERE lease_owner = $1 AND status = 'running') w \
             JOIN step_journal j ON CAST(j.workflow_id AS TEXT) = w.id \
             AND j.seq = (SELECT max(l.seq) FROM step_journal l WHERE l.workflow_id = j.workflow_id)"
        );
        self.rows::<HeldRow>(&sql, Some(worker))
            .await
            .into_iter()
            .filter(|held| decided_to_call(held.last_summary.as_deref()))
            .map(|held| (held.workflow, held.last_seq))
            .collect()
    }

    /// PostgreSQL: the transactions in which `worker` committed the steps of more than one
    /// workflow (a group commit; rows one transaction inserted share its `xmin`), over the
    /// whole run or, with `within_ms`, among the rows of steps that finished that recently.
    /// SQLite: 0 (it commits each step alone).
    pub async fn batched_commits(&self, worker: &str, within_ms: Option<i64>) -> i64 {
        let Some(pool) = self.store.pg_pool() else {
            return 0;
        };
        sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT xmin::text FROM step_journal              WHERE worker_id = $1                AND ($2::bigint IS NULL OR finished_at > now() - $2 * interval '1 millisecond')              GROUP BY 1 HAVING count(DISTINCT workflow_id) > 1) t",
        )
        .bind(worker)
        .bind(within_ms)
        .fetch_one(pool)
        .await
        .expect("batched commits")
    }

    /// PostgreSQL: waits (at most 10 s) until no backend of the SIGKILLed worker process
    /// `pid` is left. A backend runs what its client had sent before it died, even a
    /// statement it had not begun to read when the client died (a step, or a whole batch of
    /// steps, which commits), and leaves once it reads the end of the connection: only then
    /// is what the dead worker left behind fixed. SQLite: nothing to wait for (its writer
    /// died with it).
    pub async fn wait_for_backends_of(&self, pid: u32) {
        let Some(pool) = self.store.pg_pool() else {
            return;
        };
        let name = format!("{}{pid}-%", store::WORKER_ORIGIN_PREFIX);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
            )
            .bind(&name)
            .fetch_one(pool)
            .await
            .expect("pg_stat_activity");
            if left == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{left} backends of the worker killed as process {pid} still run after 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// `(terminal, all)` workflow counts.
    pub async fn progress(&self) -> (i64, i64) {
        #[derive(FromRow)]
        struct Progress {
            terminal: i64,
            total: i64,
        }
        let rows: Vec<Progress> = self
            .rows(
                "SELECT CAST(count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) \
                 AS BIGINT) AS terminal, CAST(count(*) AS BIGINT) AS total FROM workflows",
                None,
            )
            .await;
        rows.first().map_or((0, 0), |p| (p.terminal, p.total))
    }

    /// Workflows that stopped for a person: never expected in this run.
    pub async fn needing_attention(&self) -> Vec<WorkflowRow> {
        let sql = format!("{WORKFLOWS} WHERE status = 'needs_attention'");
        self.rows(&sql, None).await
    }

    /// The whole journal of one workflow, in order.
    pub async fn journal(&self, workflow_id: &str) -> Vec<JournalRow> {
        self.rows(
            "SELECT CAST(workflow_id AS TEXT) AS workflow_id, seq, step, action, outcome, error, \
             worker_id, CAST(response_summary AS TEXT) AS response_summary FROM step_journal \
             WHERE CAST(workflow_id AS TEXT) = $1 ORDER BY seq",
            Some(workflow_id),
        )
        .await
    }

    /// Journal rows with `outcome`, across all workflows.
    pub async fn journal_with_outcome(&self, outcome: &str) -> Vec<JournalRow> {
        self.rows(
            "SELECT CAST(workflow_id AS TEXT) AS workflow_id, seq, step, action, outcome, error, \
             worker_id, CAST(response_summary AS TEXT) AS response_summary FROM step_journal \
             WHERE outcome = $1 ORDER BY workflow_id, seq",
            Some(outcome),
        )
        .await
    }

    /// `workflow_status_counts`: `(kind, state, status) → count`.
    pub async fn status_view(&self) -> BTreeMap<(String, String, String), i64> {
        #[derive(FromRow)]
        struct Count {
            kind: String,
            state: String,
            status: String,
            count: i64,
        }
        self.rows::<Count>(
            "SELECT kind, state, status, CAST(count AS BIGINT) AS count FROM workflow_status_counts",
            None,
        )
        .await
        .into_iter()
        .map(|c| ((c.kind, c.state, c.status), c.count))
        .collect()
    }

    /// Submits through the Rust API, as another Rust service of the lender would.
    pub async fn submit_rust(&self, applicant: &Applicant) {
        let mut new = NewWorkflow::new(
            "onboard-borrower",
            applicant.business_key.clone(),
            applicant.input(),
        );
        new.definition_name = applicant.product.definition().to_owned();
        let submitted = self.store.submit(&new).await.expect("Store::submit");
        assert!(submitted.created, "{} was new", applicant.business_key);
    }

    /// Submits through `finflow_submit(...)`, as another system's SQL would (PostgreSQL only).
    pub async fn submit_sql(&self, applicant: &Applicant) {
        let pool = self
            .store
            .pg_pool()
            .expect("finflow_submit is PostgreSQL's");
        let _: uuid::Uuid = sqlx::query_scalar("SELECT finflow_submit($1, $2, $3, $4)")
            .bind("onboard-borrower")
            .bind(&applicant.business_key)
            .bind(applicant.input())
            .bind(applicant.product.definition())
            .fetch_one(pool)
            .await
            .expect("SELECT finflow_submit(...)");
    }
}
