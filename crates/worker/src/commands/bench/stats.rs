//! What the database says about a run, read beside the store (never through it): the
//! benchmark's workflows by id, the stored size of their context, and on PostgreSQL the WAL
//! position and the `workflows` table's update counters.

use std::str::FromStr as _;

use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool, SqlitePool};
use store::{Status, Store};
use uuid::Uuid;

/// SQLite: ids per `IN (...)` list.
const SQLITE_IDS_PER_QUERY: usize = 500;

/// The state and status of each of `ids` the store holds.
///
/// # Errors
/// The database fails or holds a status this build does not know.
pub async fn states(store: &Store, ids: &[Uuid]) -> anyhow::Result<Vec<(Uuid, String, Status)>> {
    let rows: Vec<(String, String, String)> = match store.backend() {
        store::Backend::Postgres(pool) => {
            sqlx::query_as(
                "SELECT CAST(id AS text), state, status FROM workflows WHERE id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(pool)
            .await?
        }
        store::Backend::Sqlite(pool) => {
            let mut rows = Vec::new();
            for chunk in ids.chunks(SQLITE_IDS_PER_QUERY) {
                let sql = format!(
                    "SELECT CAST(id AS TEXT), state, status FROM workflows WHERE id IN ({})",
                    placeholders(chunk.len())
                );
                rows.extend(
                    bind_ids(sqlx::query_as(AssertSqlSafe(sql)), chunk)
                        .fetch_all(pool)
                        .await?,
                );
            }
            rows
        }
    };
    rows.into_iter()
        .map(|(id, state, status)| {
            let id = Uuid::parse_str(&id).with_context(|| format!("workflow id {id}"))?;
            Ok((id, state, status.parse()?))
        })
        .collect()
}

/// How many of `states` are in each (state, status).
pub fn tally(states: &[(Uuid, String, Status)]) -> Vec<(String, Status, i64)> {
    let mut tally: Vec<(String, Status, i64)> = Vec::new();
    for (_, state, status) in states {
        match tally.iter_mut().find(|(s, t, _)| s == state && t == status) {
            Some(entry) => entry.2 += 1,
            None => tally.push((state.clone(), *status, 1)),
        }
    }
    tally
}

/// The average stored size of `workflows.context` over `ids`, in bytes: PostgreSQL's
/// `pg_column_size` (after compression, TOASTed or inline), SQLite's length of the JSON text
/// in bytes (SQLite does not compress).
///
/// # Errors
/// The database fails.
pub async fn context_bytes_avg(store: &Store, ids: &[Uuid]) -> anyhow::Result<Option<f64>> {
    match store.backend() {
        store::Backend::Postgres(pool) => Ok(sqlx::query_scalar(
            "SELECT avg(pg_column_size(context))::float8 FROM workflows WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?),
        store::Backend::Sqlite(pool) => sqlite_context_bytes(pool, ids).await,
    }
}

async fn sqlite_context_bytes(pool: &SqlitePool, ids: &[Uuid]) -> anyhow::Result<Option<f64>> {
    let (mut bytes, mut rows) = (0i64, 0i64);
    for chunk in ids.chunks(SQLITE_IDS_PER_QUERY) {
        let sql = format!(
            "SELECT coalesce(sum(length(CAST(context AS BLOB))), 0), count(*) \
             FROM workflows WHERE id IN ({})",
            placeholders(chunk.len())
        );
        let (b, r): (i64, i64) = bind_ids(sqlx::query_as(AssertSqlSafe(sql)), chunk)
            .fetch_one(pool)
            .await?;
        bytes += b;
        rows += r;
    }
    Ok((rows > 0).then(|| bytes as f64 / rows as f64))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn bind_ids<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    ids: &[Uuid],
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
    for id in ids {
        query = query.bind(id.hyphenated().to_string());
    }
    query
}

/// The server's current WAL insert position (`pg_current_wal_lsn()`), as text.
///
/// # Errors
/// The server fails.
pub async fn wal_lsn(admin: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(admin)
        .await?)
}

/// WAL bytes written between two positions (`pg_wal_lsn_diff`).
///
/// # Errors
/// The server fails or a position does not parse.
pub async fn wal_bytes(admin: &PgPool, before: &str, after: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::bigint")
            .bind(after)
            .bind(before)
            .fetch_one(admin)
            .await?,
    )
}

/// `workflows`' row updates so far: all of them and the HOT ones (no index touched).
#[derive(Debug, Clone, Copy, Default)]
pub struct Updates {
    pub all: i64,
    pub hot: i64,
}

/// `n_tup_upd` and `n_tup_hot_upd` of `workflows` in the database at `url`, from
/// `pg_stat_user_tables` (a view of one database: read on a connection to it). Backends
/// report their counts when their transactions end (at most once a second) and when they
/// exit: read after the pools that worked on it have closed.
///
/// # Errors
/// The connection or the query fails.
pub async fn workflow_updates(url: &str) -> anyhow::Result<Updates> {
    let options = PgConnectOptions::from_str(url)
        .context("the benchmark database's URL")?
        .application_name("finflow-bench-stats");
    let mut conn = PgConnection::connect_with(&options).await?;
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
         WHERE relname = 'workflows' AND schemaname = current_schema()",
    )
    .fetch_optional(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(row.map_or_else(Updates::default, |(all, hot)| Updates { all, hot }))
}
