//! Durable webhook deliveries (`webhook_deliveries`, `webhook_cursors`; migration
//! postgres/0009, sqlite/0005).
//!
//! The webhooks themselves live in `finflow.toml`, not in the database, so deliveries are
//! made by a dispatcher rather than by the step's commit: [`Store::dispatch_webhook`] turns
//! the events after the webhook's cursor into one `pending` delivery each (the types it
//! subscribes to) and moves the cursor, in one transaction. The feed's ids are visible in
//! commit order, so the cursor never passes an event that is not yet visible.
//!
//! A deliverer [`Store::claim_deliveries`] due ones under a lease (`FOR UPDATE SKIP LOCKED`
//! on PostgreSQL: a fleet never sends one delivery twice at the same time), posts them and
//! records the result: [`Store::delivery_succeeded`], or [`Store::delivery_failed`] with the
//! next attempt (or none: given up, status `failed`). A delivery is due only when no earlier
//! delivery of the same workflow to the same webhook is still `pending`: order per workflow.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::dialect::{At, Columns, Id, each_backend};
use crate::error::StoreError;
use crate::events::{EVENT_COLUMNS, EventRow};
use crate::time::{delta, to_sqlite};
use crate::tx::SQLITE_BEGIN;
use crate::{Backend, Store};

/// How many events one dispatch reads.
const DISPATCH_PAGE: i64 = 500;

/// `webhook_deliveries.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet delivered; attempted at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after the retry period (replayable).
    Failed,
}

impl DeliveryStatus {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(crate::error::decode_error(format!(
                "unknown delivery status {other:?}"
            ))),
        }
    }
}

/// One row of `webhook_deliveries`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryRow {
    /// Stable across attempts and replays: `<webhook>-<event id>`.
    pub id: String,
    pub webhook: String,
    pub event_id: i64,
    pub event_type: String,
    pub workflow_id: Option<Uuid>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery claimed for sending, with its event.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub id: String,
    pub webhook: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub event: EventRow,
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook, d.event_id, e.event_type, d.workflow_id, \
     d.status, d.attempts, d.next_attempt_at, d.last_error, d.last_status, d.created_at, \
     d.delivered_at";

impl DeliveryRow {
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.read("id")?,
            webhook: row.read("webhook")?,
            event_id: row.read("event_id")?,
            event_type: row.read("event_type")?,
            workflow_id: row.id_opt("workflow_id")?,
            status: DeliveryStatus::parse(&row.read::<String>("status")?)?,
            attempts: row.read("attempts")?,
            next_attempt_at: row.at("next_attempt_at")?,
            last_error: row.read("last_error")?,
            last_status: row.read("last_status")?,
            created_at: row.at("created_at")?,
            delivered_at: row.at_opt("delivered_at")?,
        })
    }
}

impl ClaimedDelivery {
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.read("delivery_id")?,
            webhook: row.read("webhook")?,
            attempts: row.read("attempts")?,
            created_at: row.at("delivery_created_at")?,
            event: EventRow::from_row(row)?,
        })
    }
}

/// The delivery id of `event_id` for `webhook`: stable, so a receiver deduplicates on it.
#[must_use]
pub fn delivery_id(webhook: &str, event_id: i64) -> String {
    format!("{webhook}-{event_id}")
}

impl Store {
    /// Creates the `pending` deliveries of `webhook` (subscribed to `event_types`; empty:
    /// all) for the events after its cursor, up to a page, and moves the cursor past every
    /// event read. A webhook seen for the first time starts at the oldest event kept.
    /// Returns how many deliveries were created; call again while it returns a full page.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure (nothing was written).
    pub async fn dispatch_webhook(
        &self,
        webhook: &str,
        event_types: &[String],
    ) -> Result<u64, StoreError> {
        let wanted = |t: &str| event_types.is_empty() || event_types.iter().any(|w| w == t);
        let mut created = 0;
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let now = d.now();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO webhook_cursors (webhook, updated_at) VALUES ($1, {now}) \
                 ON CONFLICT DO NOTHING"
            )))
            .bind(webhook)
            .execute(&mut *tx)
            .await?;
            let cursor: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT last_event_id FROM webhook_cursors WHERE webhook = $1{}",
                d.for_update()
            )))
            .bind(webhook)
            .fetch_one(&mut *tx)
            .await?;
            let rows = sqlx::query(
                "SELECT id, workflow_id, event_type FROM events WHERE id > $1 \
                 ORDER BY id LIMIT $2",
            )
            .bind(cursor)
            .bind(DISPATCH_PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last().map(|r| r.read::<i64>("id")).transpose()? else {
                return Ok(0);
            };
            for row in &rows {
                if !wanted(&row.read::<String>("event_type")?) {
                    continue;
                }
                let id: i64 = row.read("id")?;
                created += sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO webhook_deliveries (id, webhook, event_id, workflow_id, \
                     next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, {now}, {now}, {now}) ON CONFLICT DO NOTHING"
                )))
                .bind(delivery_id(webhook, id))
                .bind(webhook)
                .bind(id)
                .bind(row.id_opt("workflow_id")?.map(Id))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE webhook_cursors SET last_event_id = $2, updated_at = {now} \
                 WHERE webhook = $1"
            )))
            .bind(webhook)
            .bind(last)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(created)
    }

    /// Claims up to `limit` due deliveries for `worker_id` for `lease`, oldest event first:
    /// `pending`, `next_attempt_at` passed, not claimed by anyone else (or their lease is
    /// over), and no earlier `pending` delivery of the same workflow to the same webhook.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn claim_deliveries(
        &self,
        worker_id: &str,
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        // `now` is the placeholder of the claim's clock.
        let due = |now: &str| {
            format!(
                "d.status = 'pending' AND d.next_attempt_at <= {now} \
                 AND (d.claimed_until IS NULL OR d.claimed_until < {now}) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
                     WHERE p.webhook = d.webhook AND p.workflow_id = d.workflow_id \
                     AND p.event_id < d.event_id AND p.status = 'pending')"
            )
        };
        let event_columns = EVENT_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let returning = format!(
            "SELECT c.id AS delivery_id, c.webhook, c.attempts, c.created_at AS delivery_created_at, \
             {event_columns} FROM claimed c JOIN events e ON e.id = c.event_id ORDER BY e.id"
        );
        // A fleet claims in one statement that skips the rows another deliverer is claiming;
        // SQLite's one writer reads, then marks, in its write transaction.
        match &self.backend {
            Backend::Postgres(pool) => {
                let sql = format!(
                    "WITH claimed AS (UPDATE webhook_deliveries SET claimed_by = $1, \
                     claimed_until = $2 + $4::interval, updated_at = $2 WHERE id IN ( \
                     SELECT d.id FROM webhook_deliveries d WHERE {} \
                     ORDER BY d.event_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, webhook, attempts, created_at, event_id) {returning}",
                    due("$2")
                );
                let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(worker_id)
                    .bind(now)
                    .bind(limit)
                    .bind(format!("{} milliseconds", lease.as_millis()))
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(ClaimedDelivery::from_row).collect()
            }
            Backend::Sqlite(pool) => {
                let now = Utc::now();
                let sql = format!(
                    "WITH claimed AS (SELECT d.id, d.webhook, d.attempts, d.created_at, \
                     d.event_id FROM webhook_deliveries d WHERE {} \
                     ORDER BY d.event_id LIMIT $2) {returning}",
                    due("$1")
                );
                let mut tx = pool.begin_with(SQLITE_BEGIN).await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(to_sqlite(now))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let claimed = rows
                    .iter()
                    .map(ClaimedDelivery::from_row)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                for delivery in &claimed {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET claimed_by = $2, claimed_until = $3, \
                         updated_at = $4 WHERE id = $1",
                    )
                    .bind(&delivery.id)
                    .bind(worker_id)
                    .bind(to_sqlite(now + delta(lease)))
                    .bind(to_sqlite(now))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(claimed)
            }
        }
    }

    /// Records that the receiver accepted delivery `id` (answer `status`).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delivery_succeeded(
        &self,
        id: &str,
        worker_id: &str,
        status: u16,
    ) -> Result<(), StoreError> {
        self.finish_delivery(
            id,
            worker_id,
            DeliveryStatus::Delivered,
            None,
            Some(status),
            None,
        )
        .await
    }

    /// Records a failed attempt of delivery `id`: `error` (and the receiver's `status`, if it
    /// answered); tried again at `retry_at`, or given up (`failed`) with `None`.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delivery_failed(
        &self,
        id: &str,
        worker_id: &str,
        error: &str,
        status: Option<u16>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let next = if retry_at.is_some() {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Failed
        };
        self.finish_delivery(id, worker_id, next, Some(error), status, retry_at)
            .await
    }

    async fn finish_delivery(
        &self,
        id: &str,
        worker_id: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        http_status: Option<u16>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // Only the claim's holder records its attempt (a lease that ran out was taken over).
        // A success keeps the last error: the history of a delivery that was retried.
        const SQL: &str = "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, \
             last_error = coalesce($4, last_error), last_status = $5, \
             next_attempt_at = coalesce($6, next_attempt_at), \
             claimed_by = NULL, claimed_until = NULL, updated_at = $7, \
             delivered_at = CASE WHEN $3 = 'delivered' THEN $7 ELSE delivered_at END \
             WHERE id = $1 AND claimed_by = $2";
        let http_status = http_status.map(i32::from);
        let now = Utc::now();
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(SQL)
                .bind(id)
                .bind(worker_id)
                .bind(status.as_str())
                .bind(error)
                .bind(http_status)
                .bind(retry_at.map(At))
                .bind(At(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Deliveries, newest event first: all, or only those given up (`failed_only`).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn deliveries(
        &self,
        failed_only: bool,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e \
             ON e.id = d.event_id WHERE ($1 = 0 OR d.status = 'failed') \
             ORDER BY d.event_id DESC, d.webhook LIMIT $2"
        );
        let failed = i32::from(failed_only);
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(failed)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(DeliveryRow::from_row)
                .collect()
        })
    }

    /// Makes delivery `id` due again now (whatever its status), keeping its id and its
    /// count of attempts. Returns `false` when there is no such delivery.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn replay_delivery(&self, id: &str) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE webhook_deliveries SET status = 'pending', \
             next_attempt_at = $2, claimed_by = NULL, claimed_until = NULL, updated_at = $2 \
             WHERE id = $1";
        let now = Utc::now();
        let found = each_backend!(&self.backend, |pool, d| {
            sqlx::query(SQL)
                .bind(id)
                .bind(At(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(found > 0)
    }
}
