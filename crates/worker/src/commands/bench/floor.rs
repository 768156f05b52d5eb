//! The database's own floor: how many minimal durable steps the same database does per
//! second at the benchmark's concurrency, measured in the same run as finflow's steps.
//!
//! A minimal durable step is one transaction with one journal insert and one row update,
//! as pgbench would run it with autocommit off: `BEGIN`, `INSERT`, `UPDATE`, `COMMIT`, each
//! statement its own round trip (four per transaction). Each of `concurrency` connections
//! updates rows of its own (as finflow's steps update their own workflow), so they never wait
//! for each other's row locks. The table pair is created in the benchmark's database before
//! and dropped after each measurement: PostgreSQL on the same server and database, SQLite in
//! the same file (`BEGIN IMMEDIATE`, WAL and `synchronous=FULL` as the store runs it).
//!
//! finflow's steps/s divided by the floor's transactions/s says how much of what the
//! database can do finflow turns into steps.

use std::path::Path;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, PgConnection, SqliteConnection};
use tokio::task::JoinSet;

use super::server_cpu::ServerCpu;

/// Rows updated by the floor's transactions, shared out among the connections.
const ROWS: usize = 1024;

/// One floor measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FloorRun {
    /// Committed transactions.
    pub transactions: u64,
    /// From the first transaction's start to the last one's end.
    pub seconds: f64,
    /// Transactions that failed (SQLite: the write lock not had within the busy timeout)
    /// and were rolled back; not counted in `transactions`.
    pub errors: u64,
    /// PostgreSQL on this machine: the server's CPU seconds over the same time
    /// (`server_cpu`).
    pub server_cpu_seconds: Option<f64>,
}

impl FloorRun {
    /// Committed transactions per second.
    pub fn tps(&self) -> f64 {
        self.transactions as f64 / self.seconds.max(1e-9)
    }
}

const PG_CREATE: &str = "\
CREATE TABLE finflow_bench_floor_rows (
    id         integer     PRIMARY KEY,
    counter    bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE finflow_bench_floor_journal (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    row_id     integer     NOT NULL,
    counter    bigint      NOT NULL,
    at         timestamptz NOT NULL
);
INSERT INTO finflow_bench_floor_rows SELECT g, 0, now() FROM generate_series(1, 1024) g;";

const PG_DROP: &str = "DROP TABLE IF EXISTS finflow_bench_floor_journal, finflow_bench_floor_rows";

const SQLITE_CREATE: &str = "\
CREATE TABLE finflow_bench_floor_rows (
    id         INTEGER NOT NULL PRIMARY KEY,
    counter    INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;
CREATE TABLE finflow_bench_floor_journal (
    id         INTEGER NOT NULL PRIMARY KEY,
    row_id     INTEGER NOT NULL,
    counter    INTEGER NOT NULL,
    at         TEXT    NOT NULL
) STRICT;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1024)
INSERT INTO finflow_bench_floor_rows SELECT n, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM g;";

const SQLITE_DROP: &str = "DROP TABLE IF EXISTS finflow_bench_floor_journal; \
                           DROP TABLE IF EXISTS finflow_bench_floor_rows;";

/// The row connection `worker` of `workers` updates in its `n`-th transaction.
fn row_of(worker: usize, workers: usize, n: u64) -> i32 {
    let own = (ROWS / workers.max(1)).max(1);
    let row = worker + workers * (usize::try_from(n).unwrap_or(0) % own);
    i32::try_from(row % ROWS + 1).unwrap_or(1)
}

/// The floor on the PostgreSQL database at `url`.
///
/// # Errors
/// A connection, the tables or a transaction fail.
pub async fn postgres(
    url: &str,
    concurrency: usize,
    duration: Duration,
    server: Option<ServerCpu>,
) -> anyhow::Result<FloorRun> {
    let options = PgConnectOptions::from_str(url)
        .context("the benchmark database's URL")?
        .application_name("finflow-bench-floor");
    let mut setup = PgConnection::connect_with(&options).await?;
    sqlx::raw_sql(PG_DROP).execute(&mut setup).await?;
    sqlx::raw_sql(PG_CREATE)
        .execute(&mut setup)
        .await
        .context("cannot create the floor's tables")?;
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        connections.push(PgConnection::connect_with(&options).await?);
    }
    let workers = connections.len();
    let cpu_before = server.and_then(|cpu| cpu.seconds());
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = JoinSet::new();
    for (worker, mut connection) in connections.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < end {
                let row = row_of(worker, workers, done);
                let mut tx = connection.begin().await?;
                sqlx::query(
                    "INSERT INTO finflow_bench_floor_journal (row_id, counter, at) \
                     VALUES ($1, $2, now())",
                )
                .bind(row)
                .bind(i64::try_from(done).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE finflow_bench_floor_rows SET counter = counter + 1, \
                     updated_at = now() WHERE id = $1",
                )
                .bind(row)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                done += 1;
            }
            let _ = connection.close().await;
            Ok::<u64, sqlx::Error>(done)
        });
    }
    let mut transactions = 0;
    while let Some(joined) = tasks.join_next().await {
        transactions += joined
            .context("a floor connection panicked")?
            .context("a floor transaction failed")?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = server.and_then(|cpu| cpu.seconds());
    sqlx::raw_sql(PG_DROP).execute(&mut setup).await?;
    let _ = setup.close().await;
    Ok(FloorRun {
        transactions,
        seconds,
        errors: 0,
        server_cpu_seconds: cpu_after.zip(cpu_before).map(|(a, b)| a - b),
    })
}

/// The floor in the SQLite database file at `path`.
///
/// # Errors
/// A connection or the tables fail.
pub async fn sqlite(
    path: &Path,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<FloorRun> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let mut setup = SqliteConnection::connect_with(&options).await?;
    sqlx::raw_sql(SQLITE_DROP).execute(&mut setup).await?;
    sqlx::raw_sql(SQLITE_CREATE)
        .execute(&mut setup)
        .await
        .context("cannot create the floor's tables")?;
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        connections.push(SqliteConnection::connect_with(&options).await?);
    }
    let workers = connections.len();
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = JoinSet::new();
    for (worker, mut connection) in connections.into_iter().enumerate() {
        tasks.spawn(async move {
            let (mut done, mut errors) = (0u64, 0u64);
            while Instant::now() < end {
                let row = row_of(worker, workers, done);
                let step = async {
                    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                    sqlx::query(
                        "INSERT INTO finflow_bench_floor_journal (row_id, counter, at) \
                         VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    )
                    .bind(row)
                    .bind(i64::try_from(done).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE finflow_bench_floor_rows SET counter = counter + 1, \
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                    )
                    .bind(row)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await
                }
                .await;
                match step {
                    Ok(()) => done += 1,
                    // The transaction was rolled back when dropped.
                    Err(_) => errors += 1,
                }
            }
            let _ = connection.close().await;
            (done, errors)
        });
    }
    let (mut transactions, mut errors) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (done, failed) = joined.context("a floor connection panicked")?;
        transactions += done;
        errors += failed;
    }
    let seconds = start.elapsed().as_secs_f64();
    sqlx::raw_sql(SQLITE_DROP).execute(&mut setup).await?;
    let _ = setup.close().await;
    Ok(FloorRun {
        transactions,
        seconds,
        errors,
        server_cpu_seconds: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_never_share_a_row() {
        for workers in [1, 2, 16, 64] {
            let mut owner = std::collections::HashMap::new();
            for worker in 0..workers {
                for n in 0..3000 {
                    let row = row_of(worker, workers, n);
                    assert!((1..=1024).contains(&row));
                    assert_eq!(*owner.entry(row).or_insert(worker), worker, "row {row}");
                }
            }
        }
    }

    #[tokio::test]
    async fn the_sqlite_floor_commits_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("finflow-floor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("floor.db");
        let run = sqlite(&path, 2, Duration::from_millis(200))
            .await
            .expect("floor");
        assert!(run.transactions > 0 && run.tps() > 0.0, "{run:?}");
        let options = SqliteConnectOptions::new().filename(&path);
        let mut check = SqliteConnection::connect_with(&options)
            .await
            .expect("open");
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'finflow_bench_floor%'",
        )
        .fetch_one(&mut check)
        .await
        .expect("count");
        assert_eq!(left, 0);
        let _ = check.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
