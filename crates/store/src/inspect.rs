//! Read-only queries for operators (`finflow inspect`, `finflow status`): what a workflow
//! waits for, the inbox events matched to it, the workflows sharing a business key, what
//! waits on what across the fleet, and the oldest stuck workflows. Nothing here writes.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::error::{StoreError, decode_error};
use crate::inbox::{KeyName, Source};
use crate::time::{from_sqlite, from_sqlite_opt};
use crate::workflow::{Status, Workflow, json_from_sqlite, uuid_from_sqlite, workflow_columns};
use crate::{Backend, Store};

/// One `workflow_waits` row: the workflow waits for `event` carrying `key_name` =
/// `key_value`. The value may be PII (a NIK under `identity_number`): mask it before showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRow {
    pub event: String,
    pub key_name: KeyName,
    pub key_value: String,
    pub created_at: DateTime<Utc>,
}

/// A `callback_inbox` row matched to a workflow, without its correlation keys (the NIK is
/// one of them).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedEvent {
    pub id: i64,
    pub source: Source,
    pub event_id: String,
    pub title: String,
    /// The body as received; a Finfra callback's may carry PII.
    pub payload: Value,
    pub received_at: DateTime<Utc>,
    pub matched_at: Option<DateTime<Utc>>,
    pub processed_at: Option<DateTime<Utc>>,
}

/// How many workflows of a kind wait (status `waiting`) for the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCount {
    pub kind: String,
    /// The workflow's `waiting_for`, e.g. `user_created or user_verified`.
    pub waiting_for: Option<String>,
    pub count: i64,
    /// The earliest deadline among them (after it, they poll Finfra instead).
    pub earliest_deadline: Option<DateTime<Utc>>,
}

/// One row of the `stuck_workflows` view, with when the workflow last changed and its whole
/// `last_error` (the view has only its code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckWorkflow {
    pub id: Uuid,
    pub kind: String,
    pub business_key: String,
    pub status: Status,
    pub state: String,
    pub attempt: i32,
    pub next_run_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// `needs_attention`, `lease_expired` or `overdue`.
    pub reason: String,
    /// The workflow's `updated_at`: stuck since at least then.
    pub since: DateTime<Utc>,
}

fn key_name(s: &str) -> Result<KeyName, StoreError> {
    [
        KeyName::IdentityNumber,
        KeyName::UserId,
        KeyName::KycId,
        KeyName::LoanUniqueId,
        KeyName::ExternalId,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
    .ok_or_else(|| decode_error(format!("unknown correlation key {s:?}")))
}

/// A `WAITING_SQL` row on PostgreSQL: kind, waiting_for, count, earliest deadline.
type WaitingRowPg = (String, Option<String>, i64, Option<DateTime<Utc>>);

const WAITS_SQL: &str = "SELECT event, key_name, key_value, created_at FROM workflow_waits \
                         WHERE workflow_id = $1 ORDER BY created_at, event, key_name";

const MATCHED_SQL: &str = "SELECT id, source, event_id, title, payload, received_at, matched_at, \
                           processed_at FROM callback_inbox WHERE matched_workflow_id = $1 \
                           ORDER BY id";

const WAITING_SQL: &str = "SELECT kind, waiting_for, count(*) AS count, \
                           min(deadline) AS earliest_deadline FROM workflows \
                           WHERE status = 'waiting' GROUP BY kind, waiting_for \
                           ORDER BY kind, waiting_for";

// The whole `last_error` from the table: the view shows only its code (migration 0013).
const STUCK_SQL: &str = "SELECT s.id, s.kind, s.business_key, s.status, s.state, s.attempt, \
                         s.next_run_at, s.lease_owner, s.lease_until, w.last_error, s.reason, \
                         w.updated_at AS since FROM stuck_workflows s \
                         JOIN workflows w ON w.id = s.id \
                         ORDER BY w.updated_at, s.id LIMIT $1";

impl MatchedEvent {
    pub(crate) fn from_pg(row: &PgRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get("id")?,
            source: row.try_get::<String, _>("source")?.parse()?,
            event_id: row.try_get("event_id")?,
            title: row.try_get("title")?,
            payload: row.try_get("payload")?,
            received_at: row.try_get("received_at")?,
            matched_at: row.try_get("matched_at")?,
            processed_at: row.try_get("processed_at")?,
        })
    }

    pub(crate) fn from_sqlite(row: &SqliteRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get("id")?,
            source: row.try_get::<String, _>("source")?.parse()?,
            event_id: row.try_get("event_id")?,
            title: row.try_get("title")?,
            payload: json_from_sqlite(&row.try_get::<String, _>("payload")?)?,
            received_at: from_sqlite(&row.try_get::<String, _>("received_at")?)?,
            matched_at: from_sqlite_opt(row.try_get("matched_at")?)?,
            processed_at: from_sqlite_opt(row.try_get("processed_at")?)?,
        })
    }
}

impl StuckWorkflow {
    pub(crate) fn from_pg(row: &PgRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            business_key: row.try_get("business_key")?,
            status: row.try_get::<String, _>("status")?.parse()?,
            state: row.try_get("state")?,
            attempt: row.try_get("attempt")?,
            next_run_at: row.try_get("next_run_at")?,
            lease_owner: row.try_get("lease_owner")?,
            lease_until: row.try_get("lease_until")?,
            last_error: row.try_get("last_error")?,
            reason: row.try_get("reason")?,
            since: row.try_get("since")?,
        })
    }

    pub(crate) fn from_sqlite(row: &SqliteRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: uuid_from_sqlite(&row.try_get::<String, _>("id")?)?,
            kind: row.try_get("kind")?,
            business_key: row.try_get("business_key")?,
            status: row.try_get::<String, _>("status")?.parse()?,
            state: row.try_get("state")?,
            attempt: row.try_get("attempt")?,
            next_run_at: from_sqlite_opt(row.try_get("next_run_at")?)?,
            lease_owner: row.try_get("lease_owner")?,
            lease_until: from_sqlite_opt(row.try_get("lease_until")?)?,
            last_error: row.try_get("last_error")?,
            reason: row.try_get("reason")?,
            since: from_sqlite(&row.try_get::<String, _>("since")?)?,
        })
    }
}

impl Store {
    /// Every workflow with this business key, whatever its kind, ordered by kind (a key is
    /// unique per kind only).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn find_by_key_any_kind(
        &self,
        business_key: &str,
    ) -> Result<Vec<Workflow>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    workflow_columns!(),
                    " FROM workflows WHERE business_key = $1 ORDER BY kind"
                ))
                .bind(business_key)
                .fetch_all(pool)
                .await?;
                rows.iter().map(Workflow::from_pg).collect()
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    workflow_columns!(),
                    " FROM workflows WHERE business_key = ?1 ORDER BY kind"
                ))
                .bind(business_key)
                .fetch_all(pool)
                .await?;
                rows.iter().map(Workflow::from_sqlite).collect()
            }
        }
    }

    /// What the workflow waits for now (its `workflow_waits` rows; none unless it waits).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn waits(&self, workflow_id: Uuid) -> Result<Vec<WaitRow>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows: Vec<(String, String, String, DateTime<Utc>)> = sqlx::query_as(WAITS_SQL)
                    .bind(workflow_id)
                    .fetch_all(pool)
                    .await?;
                rows.into_iter()
                    .map(|(event, key, key_value, created_at)| {
                        Ok(WaitRow {
                            event,
                            key_name: key_name(&key)?,
                            key_value,
                            created_at,
                        })
                    })
                    .collect()
            }
            Backend::Sqlite(pool) => {
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(WAITS_SQL)
                    .bind(workflow_id.to_string())
                    .fetch_all(pool)
                    .await?;
                rows.into_iter()
                    .map(|(event, key, key_value, created_at)| {
                        Ok(WaitRow {
                            event,
                            key_name: key_name(&key)?,
                            key_value,
                            created_at: from_sqlite(&created_at)?,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Every inbox event matched to the workflow (callbacks, announcements, operator
    /// commands), processed or not, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn matched_events(&self, workflow_id: Uuid) -> Result<Vec<MatchedEvent>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(MATCHED_SQL)
                    .bind(workflow_id)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(MatchedEvent::from_pg).collect()
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(MATCHED_SQL)
                    .bind(workflow_id.to_string())
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(MatchedEvent::from_sqlite).collect()
            }
        }
    }

    /// Waiting workflows counted per kind and `waiting_for`, ordered by both.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn waiting_counts(&self) -> Result<Vec<WaitingCount>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows: Vec<WaitingRowPg> = sqlx::query_as(WAITING_SQL).fetch_all(pool).await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(kind, waiting_for, count, earliest_deadline)| WaitingCount {
                            kind,
                            waiting_for,
                            count,
                            earliest_deadline,
                        },
                    )
                    .collect())
            }
            Backend::Sqlite(pool) => {
                let rows: Vec<(String, Option<String>, i64, Option<String>)> =
                    sqlx::query_as(WAITING_SQL).fetch_all(pool).await?;
                rows.into_iter()
                    .map(|(kind, waiting_for, count, earliest_deadline)| {
                        Ok(WaitingCount {
                            kind,
                            waiting_for,
                            count,
                            earliest_deadline: from_sqlite_opt(earliest_deadline)?,
                        })
                    })
                    .collect()
            }
        }
    }

    /// The `limit` stuck workflows (view `stuck_workflows`) that changed longest ago, and how
    /// many are stuck in all.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn oldest_stuck(&self, limit: u32) -> Result<(Vec<StuckWorkflow>, i64), StoreError> {
        const COUNT: &str = "SELECT count(*) FROM stuck_workflows";
        let limit = i64::from(limit);
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(STUCK_SQL).bind(limit).fetch_all(pool).await?;
                let total: i64 = sqlx::query_scalar(COUNT).fetch_one(pool).await?;
                let rows = rows
                    .iter()
                    .map(StuckWorkflow::from_pg)
                    .collect::<Result<_, _>>()?;
                Ok((rows, total))
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(STUCK_SQL).bind(limit).fetch_all(pool).await?;
                let total: i64 = sqlx::query_scalar(COUNT).fetch_one(pool).await?;
                let rows = rows
                    .iter()
                    .map(StuckWorkflow::from_sqlite)
                    .collect::<Result<_, _>>()?;
                Ok((rows, total))
            }
        }
    }
}
