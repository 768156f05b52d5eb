//! The store's test suite: every test runs on SQLite and on PostgreSQL, each on a fresh
//! database (see `store::testing`). Tests are silent unless `TEST_LOG` is set.

mod approval;
mod claim;
mod commit;
mod dispatch;
mod error;
mod events;
mod group;
mod hot;
mod inbox;
mod internal;
mod migrate;
mod overview;
mod personal;
mod privacy_views;
mod rate_limit;
mod reconcile;
mod submit;
mod views;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use store::testing::TestBackend;
use store::{
    Claimed, JournalEntry, NewWorkflow, Outcome, Status, StepCommit, Store, StoreTx, Submitted,
};
use uuid::Uuid;

pub const LEASE: Duration = Duration::from_secs(30);

/// A workflow of kind `onboard-borrower` with a small input naming `key`.
pub fn new_workflow(key: &str) -> NewWorkflow {
    NewWorkflow::new(
        "onboard-borrower",
        key,
        json!({ "borrower": { "name": "A. Borrower", "type": "PERSONAL" }, "key": key }),
    )
}

/// Submits and claims a fresh workflow for `worker`.
pub async fn submit_and_claim(store: &Store, key: &str, worker: &str) -> Claimed {
    let Submitted { id, .. } = store.submit(&new_workflow(key)).await.expect("submit");
    store
        .claim(id, worker, LEASE)
        .await
        .expect("claim")
        .expect("a freshly submitted workflow is due")
}

/// A commit of `claimed` to `state`/`status`, scheduled at `next`, releasing the lease.
pub fn step(
    claimed: &Claimed,
    state: &str,
    status: Status,
    next: Option<DateTime<Utc>>,
) -> StepCommit {
    let mut journal = JournalEntry::new(&claimed.workflow.state, "test_step", Outcome::Ok);
    journal.attempt = 1;
    StepCommit {
        workflow_id: claimed.workflow.id,
        worker_id: claimed
            .workflow
            .lease_owner
            .clone()
            .expect("claimed rows have an owner"),
        expected_version: claimed.workflow.version,
        status,
        state: state.to_owned(),
        context: json!({ "step": state }),
        facts: json!({}),
        attempt: 1,
        next_run_at: next,
        waiting_for: None,
        waits: Vec::new(),
        deadline: None,
        last_error: None,
        journal,
        processed_events: Vec::new(),
        pin_definition_version: Some(1),
        pin_definition_name: None,
        release_lease: true,
        hold_for_events: None,
        announce: None,
        observed: store::Observed::default(),
        events: Vec::new(),
    }
}

/// The due hints a store's changes send, as a worker would hear them: PostgreSQL's
/// `finflow_due` notifications (any sender), SQLite's in-process hand-over of this store.
/// Start it before the changes.
pub struct Hints {
    pg: Option<sqlx::postgres::PgListener>,
    local: Option<tokio::sync::broadcast::Receiver<Uuid>>,
    heard: Vec<Uuid>,
}

impl Hints {
    pub async fn start(store: &Store) -> Self {
        match store.backend() {
            store::Backend::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool)
                    .await
                    .expect("listener");
                listener.listen(store::DUE_CHANNEL).await.expect("listen");
                Self {
                    pg: Some(listener),
                    local: None,
                    heard: Vec::new(),
                }
            }
            store::Backend::Sqlite(_) => Self {
                pg: None,
                local: Some(store.due_now()),
                heard: Vec::new(),
            },
        }
    }

    /// Takes in what was sent so far (on PostgreSQL, until 200 ms pass without a hint).
    async fn collect(&mut self) {
        if let Some(listener) = &mut self.pg {
            while let Ok(Ok(notification)) =
                tokio::time::timeout(Duration::from_millis(200), listener.recv()).await
            {
                let notice = store::DueNotice::parse(notification.payload()).expect("a due notice");
                self.heard.push(notice.workflow_id);
            }
        }
        if let Some(local) = &mut self.local {
            while let Ok(id) = local.try_recv() {
                self.heard.push(id);
            }
        }
    }

    /// Hints heard for `workflow_id` since the start.
    pub async fn count(&mut self, workflow_id: Uuid) -> usize {
        self.collect().await;
        self.heard.iter().filter(|id| **id == workflow_id).count()
    }

    /// Hints heard, of any workflow, since the start.
    pub async fn total(&mut self) -> usize {
        self.collect().await;
        self.heard.len()
    }
}

/// The PostgreSQL pool of `store`, with the contrib extension `name` (`pg_walinspect`,
/// `pageinspect`) created in its database.
pub async fn pg_with_extension<'a>(store: &'a Store, name: &str) -> &'a sqlx::PgPool {
    let pool = store.pg_pool().expect("a PostgreSQL store");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE EXTENSION IF NOT EXISTS {name}"
    )))
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("{name} (PostgreSQL's contrib): {e}"));
    pool
}

/// Where PostgreSQL's WAL insertion stands now, as text (`pg_lsn`).
pub async fn wal_insert_lsn(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(pool)
        .await
        .expect("lsn")
}

/// The heap updates of `workflows` written into the WAL from `start` to now (record type,
/// length, full-page image length), read with `pg_walinspect` once the WAL is flushed that
/// far: a claim commits without waiting for its flush, which the WAL writer makes within a
/// few `wal_writer_delay`s.
pub async fn workflow_updates_since(pool: &sqlx::PgPool, start: &str) -> Vec<(String, i32, i32)> {
    let end = wal_insert_lsn(pool).await;
    for _ in 0..500 {
        let flushed: bool = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn")
            .bind(&end)
            .fetch_one(pool)
            .await
            .expect("flushed");
        if flushed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::query_as::<_, (String, i32, i32)>(
        "SELECT record_type, record_length, fpi_length \
         FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) \
         WHERE resource_manager = 'Heap' AND record_type LIKE '%UPDATE%' \
           AND block_ref LIKE format('%%rel %s/%s/%s %%', \
               (SELECT dattablespace FROM pg_database WHERE datname = current_database()), \
               (SELECT oid FROM pg_database WHERE datname = current_database()), \
               pg_relation_filenode('workflows'))",
    )
    .bind(start)
    .bind(&end)
    .fetch_all(pool)
    .await
    .expect("the WAL records of workflows' updates")
}

/// 2 KB of random hex digits: a context value compression cannot shrink (lz4 finds nothing
/// to repeat in it), so the row stores it as it is.
pub fn incompressible_hex() -> String {
    (0..64)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect()
}

/// The stored size of `workflows.context` of `id` (`pg_column_size`: as stored, compressed
/// or not).
pub async fn stored_context_bytes(pool: &sqlx::PgPool, id: Uuid) -> i32 {
    sqlx::query_scalar("SELECT pg_column_size(context) FROM workflows WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("context size")
}

/// The WAL records since `start` (as far as it is flushed) that change a block of a table or
/// index of this database's schema whose name is `LIKE` one of `relations`, as "relation
/// rmgr/type", in order.
pub async fn wal_records_since(
    pool: &sqlx::PgPool,
    start: &str,
    relations: &[&str],
) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname || ' ' || r.resource_manager || '/' || r.record_type \
         FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn()) r \
         JOIN pg_class c ON r.block_ref LIKE format('%%rel %s/%s/%s %%', \
             (SELECT dattablespace FROM pg_database WHERE datname = current_database()), \
             (SELECT oid FROM pg_database WHERE datname = current_database()), \
             pg_relation_filenode(c.oid)) \
         WHERE c.relnamespace = current_schema()::regnamespace \
           AND c.relname LIKE ANY($2) \
         ORDER BY r.start_lsn",
    )
    .bind(start)
    .bind(relations)
    .fetch_all(pool)
    .await
    .expect("WAL records")
}

/// The B-tree entries among `records` (from [`wal_records_since`]: an insertion; a page's
/// vacuum, which a busier database might run meanwhile, is not one).
pub fn btree_entries(records: &[String]) -> Vec<&String> {
    records
        .iter()
        .filter(|r| r.contains(" Btree/INSERT"))
        .collect()
}

/// `records` (from [`workflow_updates_since`]) are one update of the row, with no full-page
/// image, of under `limit` bytes; `what` names the update in a failure.
pub fn assert_one_update_under(records: &[(String, i32, i32)], limit: i32, what: &str) {
    assert_eq!(records.len(), 1, "one update of the row: {records:?}");
    let (kind, length, fpi) = &records[0];
    assert_eq!(*fpi, 0, "no full-page image in three rounds: {records:?}");
    assert!(
        *length < limit,
        "{what}'s {kind} record is {length} bytes, not under {limit}"
    );
}

/// A scalar from a SQL query without parameters (row counts in assertions).
pub async fn count(store: &Store, sql: &'static str) -> i64 {
    match store.backend() {
        store::Backend::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        store::Backend::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` with one text parameter inside the transaction (a caller's own write).
pub async fn execute_in(tx: &mut StoreTx<'_>, sql: &'static str, param: String) {
    let done = match tx {
        StoreTx::Postgres(tx) => sqlx::query(sql)
            .bind(param)
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected()),
        StoreTx::Sqlite(tx) => sqlx::query(sql)
            .bind(param)
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected()),
    };
    done.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `true` when `at` is at most `slack` away from now.
pub fn is_about_now(at: DateTime<Utc>, slack: Duration) -> bool {
    let delta = (Utc::now() - at).abs();
    delta.to_std().is_ok_and(|d| d <= slack)
}

/// The input of `new_workflow(key)` with its keys in another order (same value).
pub fn same_input_reordered(key: &str) -> Value {
    json!({ "key": key, "borrower": { "type": "PERSONAL", "name": "A. Borrower" } })
}

pub fn is_postgres(backend: TestBackend) -> bool {
    backend == TestBackend::Postgres
}
