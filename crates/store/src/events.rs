//! The lifecycle event feed (`events`): written only by [`Store::commit_step`], in the
//! step's own transaction (an outbox), one row per (workflow, journal seq, position), and
//! read by consumers with a cursor: `SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT
//! 500`. Ids become visible in id order on both backends (PostgreSQL: the advisory lock
//! `(20260009, 1)` held from the insert to the commit, see migration 0009, which any other
//! writer of events must take too; SQLite: one writer), so a cursor never skips an event. PostgreSQL also announces each step's last id on [`EVENTS_CHANNEL`].
//!
//! Which events a step emits is decided by `workflow::lifecycle_events`; this module only
//! stores and reads them, and prunes them after their retention.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{At, Columns, Conn, Id, each_backend};
use crate::error::StoreError;
use crate::time::to_sqlite;

/// The PostgreSQL channel on which each step that wrote events notifies its last event id.
pub const EVENTS_CHANNEL: &str = "finflow_events";

/// The most rows one read of the feed returns.
pub const EVENTS_PAGE_MAX: i64 = 500;

/// An event a step emits, as the step's commit carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// e.g. `loan.disbursed` (see `workflow::EventType`).
    pub event_type: String,
    /// A JSON object without personal data beyond ids.
    pub payload: Value,
}

/// One row of `events`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub workflow_id: Option<Uuid>,
    pub journal_seq: Option<i32>,
    pub kind: Option<String>,
    pub business_key: Option<String>,
    pub event_type: String,
    pub payload: Value,
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, occurred_at, workflow_id, journal_seq, kind, business_key, event_type, payload";

impl EventRow {
    pub(crate) fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.read("id")?,
            occurred_at: row.at("occurred_at")?,
            workflow_id: row.id_opt("workflow_id")?,
            journal_seq: row.read("journal_seq")?,
            kind: row.read("kind")?,
            business_key: row.read("business_key")?,
            event_type: row.read("event_type")?,
            payload: row.doc("payload")?,
        })
    }
}

/// Writes events outside a step's commit (a cancel before the start, an operator's
/// command), inside the caller's transaction: on PostgreSQL under the lock that keeps ids in
/// commit order, announced on [`EVENTS_CHANNEL`].
///
/// # Errors
/// [`StoreError::Database`] when the insert fails.
pub(crate) async fn append(
    conn: Conn<'_>,
    workflow_id: Uuid,
    seq: i32,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    match conn {
        Conn::Postgres(conn) => append_pg(conn, workflow_id, seq, events).await,
        Conn::Sqlite(conn) => {
            append_sqlite(conn, workflow_id, seq, events, &to_sqlite(Utc::now())).await
        }
    }
}

/// Writes a step's events on SQLite, inside the commit's transaction.
pub(crate) async fn append_sqlite(
    conn: &mut sqlx::SqliteConnection,
    workflow_id: Uuid,
    seq: i32,
    events: &[NewEvent],
    at: &str,
) -> Result<(), StoreError> {
    for (position, event) in events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (occurred_at, workflow_id, journal_seq, position, kind, \
             business_key, event_type, payload) \
             SELECT $1, id, $2, $3, kind, business_key, $4, $5 FROM workflows WHERE id = $6",
        )
        .bind(at)
        .bind(seq)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&event.event_type)
        .bind(event.payload.to_string())
        .bind(workflow_id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Writes events on PostgreSQL outside `finflow_commit_step`, under the same ordering lock,
/// announced the same way.
async fn append_pg(
    conn: &mut sqlx::PgConnection,
    workflow_id: Uuid,
    seq: i32,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock(20260009, 1)")
        .execute(&mut *conn)
        .await?;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let payloads: Vec<&Value> = events.iter().map(|e| &e.payload).collect();
    sqlx::query(
        "WITH written AS (              INSERT INTO events (workflow_id, journal_seq, position, kind, business_key,                  event_type, payload)              SELECT w.id, $2, (t.n - 1)::smallint, w.kind, w.business_key, t.ty,                  coalesce(($4::jsonb[])[t.n], '{}'::jsonb)              FROM workflows w, unnest($3::text[]) WITH ORDINALITY AS t(ty, n)              WHERE w.id = $1 ORDER BY t.n RETURNING id)          SELECT pg_notify($5, max(id)::text) FROM written",
    )
    .bind(workflow_id)
    .bind(seq)
    .bind(&types)
    .bind(&payloads)
    .bind(EVENTS_CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Up to `limit` (at most [`EVENTS_PAGE_MAX`]) events after id `after`, oldest first:
    /// the feed's cursor read.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let limit = limit.clamp(1, EVENTS_PAGE_MAX);
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(EventRow::from_row)
                .collect()
        })
    }

    /// Up to `limit` (at most [`EVENTS_PAGE_MAX`]) events with an id below `before` (the
    /// newest with `None`), newest first: of one `event_type` and with a business key
    /// starting with `key_prefix` when given. The console's keyset pages.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn events_before(
        &self,
        before: Option<i64>,
        event_type: Option<&str>,
        key_prefix: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let limit = limit.clamp(1, EVENTS_PAGE_MAX);
        let before = before.unwrap_or(i64::MAX);
        let event_type = event_type.unwrap_or("");
        let prefix = key_prefix.unwrap_or("");
        // A range on the key's bytes, as the workflow list filters: no LIKE escaping.
        let high = format!("{prefix}\u{10FFFF}");
        each_backend!(&self.backend, |pool, d| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id < $1 AND ($2 = '' OR event_type = $2) \
                 AND ($3 = '' OR (business_key{bytes} >= $3 AND business_key{bytes} < $4)) \
                 ORDER BY id DESC LIMIT $5",
                bytes = d.bytes()
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(before)
                .bind(event_type)
                .bind(prefix)
                .bind(&high)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(EventRow::from_row)
                .collect()
        })
    }

    /// The events of one workflow, in commit order.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn workflow_events(&self, workflow_id: Uuid) -> Result<Vec<EventRow>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = $1 ORDER BY id");
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(workflow_id))
                .fetch_all(pool)
                .await?
                .iter()
                .map(EventRow::from_row)
                .collect()
        })
    }

    /// Deletes the events that occurred before `before`, except those a webhook has yet to
    /// deliver (status `pending`); their delivery records go with them. Returns how many
    /// events were deleted. Ids are never reused, so consumers' cursors stay valid.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        const KEEP_PENDING: &str = "NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                                    WHERE d.event_id = events.id AND d.status = 'pending')";
        let sql = format!("DELETE FROM events WHERE occurred_at < $1 AND {KEEP_PENDING}");
        let deleted = each_backend!(&self.backend, |pool, d| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(At(before))
                .execute(pool)
                .await?
                .rows_affected()
        });
        tracing::info!(events.deleted = deleted, before = %before, "events pruned");
        Ok(deleted)
    }
}
