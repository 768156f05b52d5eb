//! What the console's overview shows beyond the status counts and the stuck list: the
//! funnel of the last day, per-minute rates of the last hour, the workers seen and the
//! rate governor. Each is one indexed query over a time range.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use crate::dialect::{At, Columns, Dialect, each_backend};
use crate::error::StoreError;
use crate::workflow::Status;
use crate::{Backend, Store};

/// How far work got since a time: each count is of workflows that reached the stage then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Funnel {
    /// Workflows submitted.
    pub submitted: i64,
    /// Onboardings completed (borrower approved or decided).
    pub onboarded: i64,
    /// Loans that went on to their disbursement (the borrower signed).
    pub signed: i64,
    /// Loans that went on to their repayment account (the money was disbursed).
    pub disbursed: i64,
    /// Loans repaid in full.
    pub paid: i64,
}

/// Counts per minute, oldest first: `(minute as "YYYY-MM-DDTHH:MM", count)`.
pub type PerMinute = Vec<(String, i64)>;

/// The last hour's rates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rates {
    /// Journal rows (steps) per minute.
    pub steps: PerMinute,
    /// Finfra `429` answers per minute.
    pub rate_limited: PerMinute,
    /// Finfra callbacks received per minute.
    pub callbacks: PerMinute,
}

/// A worker of the fleet, by its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSeen {
    pub worker_id: String,
    /// Its last heartbeat.
    pub last_seen: Option<DateTime<Utc>>,
    /// Steps it journaled in the recent window.
    pub steps: i64,
}

fn count_of(steps: &[(String, i64)], worker_id: &str) -> i64 {
    steps
        .iter()
        .find(|(id, _)| id == worker_id)
        .map_or(0, |(_, n)| *n)
}

/// One scope of the shared rate governor.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernorRow {
    pub scope: String,
    pub paused_until: Option<DateTime<Utc>>,
    pub tokens: Option<f64>,
}

/// The funnel. The steps it counts are the ones PostgreSQL's `step_journal_step_finished_idx`
/// holds (migration 0029): a step counted here and not there is read through the journal's
/// time index instead.
fn funnel_sql(d: Dialect) -> String {
    let completed = d.status_is(Some(Status::Completed), "'completed'");
    format!(
        "SELECT \
    (SELECT count(*) FROM workflows WHERE created_at >= $1) AS submitted, \
    (SELECT count(*) FROM workflows WHERE kind = 'onboard-borrower' AND {completed} AND finished_at >= $1) AS onboarded, \
    (SELECT count(DISTINCT workflow_id) FROM step_journal WHERE finished_at >= $1 AND step = 'disburse_loan') AS signed, \
    (SELECT count(DISTINCT workflow_id) FROM step_journal WHERE finished_at >= $1 AND step = 'request_virtual_account') AS disbursed, \
    (SELECT count(*) FROM workflows WHERE kind = 'originate-loan' AND {completed} AND finished_at >= $1) AS paid"
    )
}

/// The `stuck_workflows` view's rows in two index-served parts: the workflows that need
/// attention (PostgreSQL by `status_settled`, SQLite by its partial index of them) and the
/// overdue ones (by `next_run_at`). Same conditions and reasons as the view; `$1` is now
/// less a minute, `$2` now.
fn stuck_parts(d: Dialect) -> String {
    let attention = d.status_is(Some(Status::NeedsAttention), "'needs_attention'");
    format!(
        "\
    SELECT id, kind, business_key, status, state, attempt, next_run_at, lease_owner, \
      lease_until, last_error, 'needs_attention' AS reason, updated_at AS since \
      FROM workflows WHERE {attention} \
    UNION ALL \
    SELECT id, kind, business_key, status, state, attempt, next_run_at, lease_owner, \
      lease_until, last_error, \
      CASE WHEN lease_until IS NOT NULL AND lease_until < $1 THEN 'lease_expired' \
           ELSE 'overdue' END AS reason, updated_at AS since \
      FROM workflows WHERE {OVERDUE}"
    )
}

/// The overdue part of [`stuck_parts`]: due over a minute ago, not held by a live lease,
/// neither finished nor needing attention.
const OVERDUE: &str = "next_run_at IS NOT NULL AND next_run_at < $1 \
      AND (lease_until IS NULL OR lease_until < $2) \
      AND status NOT IN ('completed', 'failed', 'cancelled', 'needs_attention')";

impl Store {
    /// What [`Store::oldest_stuck`] answers, for pages that must answer fast at any size:
    /// the `limit` stuck workflows that changed longest ago and how many are stuck, each
    /// part read through an index.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn stuck_page(
        &self,
        limit: u32,
    ) -> Result<(Vec<crate::StuckWorkflow>, i64), StoreError> {
        let now = Utc::now();
        let minute_ago = now - chrono::TimeDelta::minutes(1);
        let limit = i64::from(limit);
        each_backend!(&self.backend, |pool, d| {
            let list = format!(
                "SELECT * FROM ({}) s ORDER BY since, id LIMIT $3",
                stuck_parts(d)
            );
            let count = format!(
                "SELECT (SELECT count(*) FROM workflows WHERE {}) + \
                 (SELECT count(*) FROM workflows WHERE {OVERDUE})",
                d.status_is(Some(Status::NeedsAttention), "'needs_attention'")
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(list))
                .bind(At(minute_ago))
                .bind(At(now))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
                .bind(At(minute_ago))
                .bind(At(now))
                .fetch_one(pool)
                .await?;
            let rows = rows
                .iter()
                .map(crate::StuckWorkflow::from_row)
                .collect::<Result<_, _>>()?;
            Ok((rows, total))
        })
    }

    /// The funnel since `since`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn funnel(&self, since: DateTime<Utc>) -> Result<Funnel, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(sqlx::AssertSqlSafe(funnel_sql(d)))
                .bind(At(since))
                .fetch_one(pool)
                .await?;
            Ok(Funnel {
                submitted: row.read("submitted")?,
                onboarded: row.read("onboarded")?,
                signed: row.read("signed")?,
                disbursed: row.read("disbursed")?,
                paid: row.read("paid")?,
            })
        })
    }

    /// Steps, `429`s and callbacks per minute since `since`.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn rates(&self, since: DateTime<Utc>) -> Result<Rates, StoreError> {
        let d = Dialect::of(&self.backend);
        let (minute_j, minute_i) = (d.minute("finished_at"), d.minute("received_at"));
        let steps = format!(
            "SELECT {minute_j} AS m, count(*) AS n FROM step_journal WHERE finished_at >= $1 GROUP BY m ORDER BY m"
        );
        let limited = format!(
            "SELECT {minute_j} AS m, count(*) AS n FROM step_journal WHERE finished_at >= $1 \
             AND finfra_status = 429 GROUP BY m ORDER BY m"
        );
        let callbacks = format!(
            "SELECT {minute_i} AS m, count(*) AS n FROM callback_inbox WHERE received_at >= $1 \
             AND source NOT IN ('operator', 'internal') GROUP BY m ORDER BY m"
        );
        Ok(Rates {
            steps: self.per_minute(&steps, since).await?,
            rate_limited: self.per_minute(&limited, since).await?,
            callbacks: self.per_minute(&callbacks, since).await?,
        })
    }

    async fn per_minute(&self, sql: &str, since: DateTime<Utc>) -> Result<PerMinute, StoreError> {
        // Built from constant fragments only.
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(sql).bind(At(since)).fetch_all(pool).await?;
            rows.iter()
                .map(|r| Ok((r.read("m")?, r.read("n")?)))
                .collect()
        })
    }

    /// Workers whose heartbeat (their apalis registration, refreshed every few seconds
    /// while they run) is newer than `since`, most recent first, with the steps each
    /// journaled since `steps_since` (bounded: a short window of the journal's time index).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn workers_seen(
        &self,
        since: DateTime<Utc>,
        steps_since: DateTime<Utc>,
    ) -> Result<Vec<WorkerSeen>, StoreError> {
        let steps: Vec<(String, i64)> = each_backend!(&self.backend, |pool, d| {
            sqlx::query_as(
                "SELECT worker_id, count(*) FROM step_journal WHERE finished_at >= $1 \
                 GROUP BY worker_id",
            )
            .bind(At(steps_since))
            .fetch_all(pool)
            .await?
        });
        // apalis's own tables: its PostgreSQL schema keeps a `timestamptz`, its SQLite one
        // Unix seconds.
        match &self.backend {
            Backend::Postgres(pool) => sqlx::query(
                "SELECT id, last_seen FROM apalis.workers WHERE last_seen >= $1 \
                 ORDER BY last_seen DESC LIMIT 50",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                let worker_id: String = r.try_get("id")?;
                Ok(WorkerSeen {
                    steps: count_of(&steps, &worker_id),
                    worker_id,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect(),
            Backend::Sqlite(pool) => sqlx::query(
                "SELECT id, last_seen FROM Workers WHERE last_seen >= $1 \
                 ORDER BY last_seen DESC LIMIT 50",
            )
            .bind(since.timestamp())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                let worker_id: String = r.try_get("id")?;
                let secs: i64 = r.try_get("last_seen")?;
                Ok(WorkerSeen {
                    steps: count_of(&steps, &worker_id),
                    worker_id,
                    last_seen: DateTime::from_timestamp(secs, 0),
                })
            })
            .collect(),
        }
    }

    /// The shared rate governor's scopes.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn governor(&self) -> Result<Vec<GovernorRow>, StoreError> {
        const SQL: &str = "SELECT scope, paused_until, tokens FROM rate_limits ORDER BY scope";
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(SQL)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(GovernorRow {
                        scope: r.read("scope")?,
                        paused_until: r.at_opt("paused_until")?,
                        tokens: r.read("tokens")?,
                    })
                })
                .collect()
        })
    }
}
