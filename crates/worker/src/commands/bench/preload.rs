//! `--preload N`: a store with history. N finished workflows, each a copy of a real one (the
//! run's warm-up onboarding, with its context, input, facts, journal and matched callbacks),
//! inserted in bulk before the measurements, so the run measures a store whose tables and
//! indexes hold that history.
//!
//! The copies are made by SQL from the template's rows, column by column as the database
//! lists them (`information_schema` on PostgreSQL, `pragma_table_info` on SQLite), so a
//! column added by a migration is copied too. Per copy `n` (1..=N) only what must differ
//! differs: a new id, business key `bench-preload-<n>`, an identity key of its own, distinct
//! callback event ids and operation keys, and every timestamp moved `n` seconds into the
//! past (the history spreads over N seconds, in the same order). PostgreSQL numbers the
//! copies with `generate_series` and draws ids with `gen_random_uuid()`; SQLite takes the ids
//! from here in batched `VALUES` lists. Batches (of [`PG_BATCH`] or [`SQLITE_BATCH`]
//! workflows) commit one by one, the template's rows read once per statement (SQLite joins
//! in the order written: template rows outside, copies inside);
//! then the tables are analysed (and vacuumed on PostgreSQL, so the run does not meet
//! autovacuum working through the load) and the loading time includes that.

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, PgConnection, SqliteConnection};
use uuid::Uuid;

/// PostgreSQL: workflows per committed batch.
const PG_BATCH: u64 = 20_000;
/// SQLite: workflows per committed batch, small enough that the engine running beside it
/// (idle, but polling) does not wait its busy timeout out for the write lock.
const SQLITE_BATCH: u64 = 2_000;
/// Workflows between two progress lines (a multiple of both batch sizes).
const PROGRESS_EVERY: u64 = 100_000;
/// SQLite: ids per `VALUES` list (two parameters each).
const SQLITE_IDS_PER_STATEMENT: usize = 400;

/// What was loaded.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Preloaded {
    /// Finished workflows inserted.
    pub workflows: u64,
    /// Their journal rows.
    pub journal_rows: u64,
    /// Their (processed) callback inbox rows.
    pub inbox_rows: u64,
    /// Inserting, analysing and (PostgreSQL) vacuuming, in seconds.
    pub seconds: f64,
}

/// How one table is copied from the template's rows.
struct Table {
    name: &'static str,
    /// The column that names the workflow (`id` for `workflows` itself).
    owner: &'static str,
}

const WORKFLOWS: Table = Table {
    name: "workflows",
    owner: "id",
};
const JOURNAL: Table = Table {
    name: "step_journal",
    owner: "workflow_id",
};
const INBOX: Table = Table {
    name: "callback_inbox",
    owner: "matched_workflow_id",
};

/// A column as the database lists it.
struct Column {
    name: String,
    /// PostgreSQL: `timestamp with time zone` and the like; SQLite: the declared type.
    timestamp: bool,
    /// Filled by the database (identity, generated, SQLite's rowid alias).
    generated: bool,
}

/// Inserts `n` copies of the finished workflow `template` into the database at `url` (the
/// store's URL), on a connection of its own whose statements are not logged as slow (a
/// batch takes seconds by design).
///
/// # Errors
/// The template is not finished, or the database fails.
pub async fn preload(url: &str, template: Uuid, n: u64) -> anyhow::Result<Preloaded> {
    let clock = Instant::now();
    let (journal_rows, inbox_rows) = if url.starts_with("postgres") {
        let options = PgConnectOptions::from_str(url)?
            .application_name("finflow-bench-preload")
            .disable_statement_logging();
        let mut conn = PgConnection::connect_with(&options).await?;
        let loaded = postgres(&mut conn, template, n).await;
        let _ = conn.close().await;
        loaded?
    } else {
        // As the store opens SQLite (store::connect): WAL, synchronous=FULL, foreign keys.
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .disable_statement_logging();
        let mut conn = SqliteConnection::connect_with(&options).await?;
        let loaded = sqlite(&mut conn, template, n).await;
        let _ = conn.close().await;
        loaded?
    };
    Ok(Preloaded {
        workflows: n,
        journal_rows,
        inbox_rows,
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// The SELECT list copying `table`'s columns from `t` for copy `p` (`p.n`, `p.id`), and the
/// column list to insert into.
fn copy_list(table: &Table, columns: &[Column], sqlite: bool) -> (String, String) {
    let (mut names, mut values) = (Vec::new(), Vec::new());
    for column in columns.iter().filter(|c| !c.generated) {
        let name = column.name.as_str();
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let value = match (table.name, name) {
            (_, owner) if owner == table.owner => "p.id".to_owned(),
            ("workflows", "business_key") => "'bench-preload-' || p.n".to_owned(),
            ("workflows", "identity_key") if sqlite => {
                "CASE WHEN t.identity_key IS NULL THEN NULL ELSE lower(hex(randomblob(32))) END"
                    .to_owned()
            }
            ("workflows", "identity_key") => "CASE WHEN t.identity_key IS NULL THEN NULL \
                 ELSE encode(sha256(convert_to('bench-preload-' || p.n, 'UTF8')), 'hex') END"
                .to_owned(),
            ("step_journal", "operation_key") => {
                "t.operation_key || ':bench-preload-' || p.n".to_owned()
            }
            ("callback_inbox", "event_id") => "t.event_id || ':bench-preload-' || p.n".to_owned(),
            _ if column.timestamp && sqlite => {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', t.{quoted}, '-' || p.n || ' seconds')")
            }
            _ if column.timestamp => format!("t.{quoted} - p.n * interval '1 second'"),
            _ => format!("t.{quoted}"),
        };
        names.push(quoted);
        values.push(value);
    }
    (names.join(", "), values.join(", "))
}

async fn postgres(conn: &mut PgConnection, template: Uuid, n: u64) -> anyhow::Result<(u64, u64)> {
    let finished: Option<bool> =
        sqlx::query_scalar("SELECT finished_at IS NOT NULL FROM workflows WHERE id = $1")
            .bind(template)
            .fetch_optional(&mut *conn)
            .await?;
    check_template(template, finished)?;
    sqlx::query("CREATE TEMP TABLE finflow_bench_preload (n bigint PRIMARY KEY, id uuid NOT NULL)")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO finflow_bench_preload \
         SELECT g, gen_random_uuid() FROM generate_series(1::bigint, $1) g",
    )
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await
    .context("cannot number the preloaded workflows")?;
    let mut statements = Vec::new();
    for table in [WORKFLOWS, JOURNAL, INBOX] {
        let columns: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity::text, is_generated::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             ORDER BY ordinal_position",
        )
        .bind(table.name)
        .fetch_all(&mut *conn)
        .await?;
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(name, data_type, identity, generated)| Column {
                timestamp: data_type.starts_with("timestamp"),
                generated: identity == "YES" || generated == "ALWAYS",
                name,
            })
            .collect();
        let (names, values) = copy_list(&table, &columns, false);
        statements.push(format!(
            "INSERT INTO {table} ({names}) SELECT {values} \
             FROM {table} t CROSS JOIN finflow_bench_preload p \
             WHERE t.{owner} = $1 AND p.n BETWEEN $2 AND $3",
            table = table.name,
            owner = table.owner,
        ));
    }
    let (mut journal, mut inbox) = (0, 0);
    let mut first = 1;
    while first <= n {
        let last = (first + PG_BATCH - 1).min(n);
        let mut tx = conn.begin().await?;
        let mut inserted = [0u64; 3];
        for (count, statement) in inserted.iter_mut().zip(&statements) {
            *count = sqlx::query(AssertSqlSafe(statement.clone()))
                .bind(template)
                .bind(i64::try_from(first).unwrap_or(i64::MAX))
                .bind(i64::try_from(last).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .context("cannot insert the preloaded workflows")?
                .rows_affected();
        }
        tx.commit().await?;
        journal += inserted[1];
        inbox += inserted[2];
        first = last + 1;
        progress(last, n);
    }
    sqlx::query("DROP TABLE finflow_bench_preload")
        .execute(&mut *conn)
        .await?;
    // Simple protocol: VACUUM refuses to run in the implicit block of an extended batch.
    sqlx::raw_sql("VACUUM (ANALYZE) workflows, step_journal, callback_inbox")
        .execute(&mut *conn)
        .await
        .context("cannot vacuum after preloading")?;
    Ok((journal, inbox))
}

/// A progress line on stderr every 100,000 workflows of a large preload.
fn progress(done: u64, n: u64) {
    if n > PROGRESS_EVERY && (done.is_multiple_of(PROGRESS_EVERY) || done == n) {
        eprintln!("finflow bench: preloaded {done}/{n} workflows");
    }
}

/// `finished`: whether the template is finished, `None` when it is not there.
fn check_template(template: Uuid, finished: Option<bool>) -> anyhow::Result<()> {
    match finished {
        Some(true) => Ok(()),
        Some(false) => anyhow::bail!("the preload template {template} is not finished"),
        None => anyhow::bail!("the preload template {template} is not in the store"),
    }
}

async fn sqlite(conn: &mut SqliteConnection, template: Uuid, n: u64) -> anyhow::Result<(u64, u64)> {
    let template_id = template.hyphenated().to_string();
    let finished: Option<bool> =
        sqlx::query_scalar("SELECT finished_at IS NOT NULL FROM workflows WHERE id = ?")
            .bind(&template_id)
            .fetch_optional(&mut *conn)
            .await?;
    check_template(template, finished)?;
    sqlx::query(
        "CREATE TEMP TABLE finflow_bench_preload (n INTEGER NOT NULL PRIMARY KEY, id TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let mut statements = Vec::new();
    for table in [WORKFLOWS, JOURNAL, INBOX] {
        let columns: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, upper(type), pk FROM pragma_table_info(?) ORDER BY cid")
                .bind(table.name)
                .fetch_all(&mut *conn)
                .await?;
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(name, declared, pk)| Column {
                // Timestamps are TEXT here (migrations/sqlite/0001): known by their names.
                timestamp: declared == "TEXT"
                    && (name.ends_with("_at") || name == "deadline" || name == "lease_until"),
                // `INTEGER PRIMARY KEY` is the rowid: SQLite numbers it.
                generated: pk > 0 && declared == "INTEGER",
                name,
            })
            .collect();
        let (names, values) = copy_list(&table, &columns, true);
        statements.push(format!(
            "INSERT INTO {table} ({names}) SELECT {values} \
             FROM {table} t CROSS JOIN finflow_bench_preload p \
             WHERE t.{owner} = ? AND p.n BETWEEN ? AND ?",
            table = table.name,
            owner = table.owner,
        ));
    }
    let (mut journal, mut inbox) = (0, 0);
    let mut first = 1;
    while first <= n {
        let last = (first + SQLITE_BATCH - 1).min(n);
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut next = first;
        while next <= last {
            let end = (next + SQLITE_IDS_PER_STATEMENT as u64 - 1).min(last);
            let placeholders = vec!["(?, ?)"; usize::try_from(end - next + 1).unwrap_or(0)];
            let sql = format!(
                "INSERT INTO finflow_bench_preload (n, id) VALUES {}",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for k in next..=end {
                query = query
                    .bind(i64::try_from(k).unwrap_or(i64::MAX))
                    .bind(Uuid::new_v4().hyphenated().to_string());
            }
            query.execute(&mut *tx).await?;
            next = end + 1;
        }
        let mut inserted = [0u64; 3];
        for (count, statement) in inserted.iter_mut().zip(&statements) {
            *count = sqlx::query(AssertSqlSafe(statement.clone()))
                .bind(&template_id)
                .bind(i64::try_from(first).unwrap_or(i64::MAX))
                .bind(i64::try_from(last).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .context("cannot insert the preloaded workflows")?
                .rows_affected();
        }
        tx.commit().await?;
        journal += inserted[1];
        inbox += inserted[2];
        first = last + 1;
        progress(last, n);
    }
    sqlx::query("DROP TABLE finflow_bench_preload")
        .execute(&mut *conn)
        .await?;
    sqlx::query("ANALYZE").execute(&mut *conn).await?;
    // The load's pages go into the database file now, not during the run.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    Ok((journal, inbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, timestamp: bool, generated: bool) -> Column {
        Column {
            name: name.to_owned(),
            timestamp,
            generated,
        }
    }

    #[test]
    fn a_copy_differs_only_where_it_must() {
        let columns = [
            column("id", false, true),
            column("workflow_id", false, false),
            column("operation_key", false, false),
            column("started_at", true, false),
            column("outcome", false, false),
        ];
        let (names, values) = copy_list(&JOURNAL, &columns, false);
        assert_eq!(
            names,
            "\"workflow_id\", \"operation_key\", \"started_at\", \"outcome\""
        );
        assert_eq!(
            values,
            "p.id, t.operation_key || ':bench-preload-' || p.n, \
             t.\"started_at\" - p.n * interval '1 second', t.\"outcome\""
        );
        let (_, values) = copy_list(&WORKFLOWS, &[column("id", false, false)], true);
        assert_eq!(values, "p.id");
    }
}
