//! What the demo reads from the store besides `Store::get`: this run's workflows (their
//! business keys share a prefix, so a PostgreSQL database that already holds other work is
//! left out of the counts), the callbacks received and the journal's outcomes. Plain SQL
//! on the operator views and tables, the same on both backends.

use store::{Backend, StatusCount, Store};

/// One of this run's workflows, as the summary needs it.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: String,
    pub business_key: String,
    pub status: String,
    pub state: String,
    pub last_error: Option<String>,
}

/// Reads about the workflows whose business key starts with a prefix.
pub struct RunDb {
    store: Store,
    /// `LIKE` pattern: `demo-ab12cd-%`.
    pattern: String,
}

/// Runs `sql` (its parameter `$1`, which both backends read) on the store's pool, binding
/// `bind` if any.
async fn fetch<T>(
    store: &Store,
    sql: &'static str,
    bind: Option<&str>,
) -> Result<Vec<T>, sqlx::Error>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    match store.backend() {
        Backend::Postgres(pool) => {
            let mut query = sqlx::query_as::<_, T>(sql);
            if let Some(value) = bind {
                query = query.bind(value.to_owned());
            }
            query.fetch_all(pool).await
        }
        Backend::Sqlite(pool) => {
            let mut query = sqlx::query_as::<_, T>(sql);
            if let Some(value) = bind {
                query = query.bind(value.to_owned());
            }
            query.fetch_all(pool).await
        }
    }
}

impl RunDb {
    /// The workflows whose business key starts with `prefix` (made of letters, digits and
    /// `-` only, so no `LIKE` wildcard hides in it).
    pub fn new(store: Store, prefix: &str) -> Self {
        Self {
            store,
            pattern: format!("{prefix}%"),
        }
    }

    /// Counts per kind, state and status, as `Store::status_counts` gives them for the whole
    /// database.
    ///
    /// # Errors
    /// The database fails.
    pub async fn counts(&self) -> anyhow::Result<Vec<StatusCount>> {
        let rows: Vec<(String, String, String, i64)> = fetch(
            &self.store,
            "SELECT kind, state, status, count(*) FROM workflows WHERE business_key LIKE $1 \
             GROUP BY kind, state, status ORDER BY kind, state, status",
            Some(&self.pattern),
        )
        .await?;
        rows.into_iter()
            .map(|(kind, state, status, count)| {
                Ok(StatusCount {
                    kind,
                    state,
                    status: status.parse()?,
                    count,
                })
            })
            .collect()
    }

    /// Every workflow of the run, by business key then kind.
    ///
    /// # Errors
    /// The database fails.
    pub async fn rows(&self) -> anyhow::Result<Vec<Row>> {
        let rows: Vec<(String, String, String, String, Option<String>)> = fetch(
            &self.store,
            "SELECT kind, business_key, status, state, last_error FROM workflows \
             WHERE business_key LIKE $1 ORDER BY business_key, kind",
            Some(&self.pattern),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, business_key, status, state, last_error)| Row {
                kind,
                business_key,
                status,
                state,
                last_error,
            })
            .collect())
    }

    /// Journal rows of the run's workflows per outcome (`ok`, `retry`, `ambiguous`,
    /// `rate_limited`, `callback` ...).
    ///
    /// # Errors
    /// The database fails.
    pub async fn journal_outcomes(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(fetch(
            &self.store,
            "SELECT j.outcome, count(*) FROM step_journal j JOIN workflows w ON w.id = j.workflow_id \
             WHERE w.business_key LIKE $1 GROUP BY j.outcome ORDER BY j.outcome",
            Some(&self.pattern),
        )
        .await?)
    }

    /// Finfra callbacks stored in the inbox so far (each event once), whoever they were for.
    ///
    /// # Errors
    /// The database fails.
    pub async fn callbacks_stored(&self) -> anyhow::Result<i64> {
        const SQL: &str = "SELECT count(*) FROM callback_inbox \
                           WHERE source IN ('status', 'virtual_account', 'invoice', 'didit')";
        let rows: Vec<(i64,)> = fetch(&self.store, SQL, None).await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }
}
