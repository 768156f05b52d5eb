//! Read-only queries for operators (`finflow inspect`, `finflow status`): what a workflow
//! waits for, the inbox events matched to it, the workflows sharing a business key, what
//! waits on what across the fleet, and the oldest stuck workflows. Nothing here writes.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{Columns, Dialect, Id, each_backend};
use crate::error::{StoreError, decode_error};
use crate::inbox::{CorrelationKey, Source};
use crate::workflow::{Status, Workflow, workflow_columns};

/// One `workflow_waits` row: the workflow waits for `event` carrying `key_name` =
/// `key_value`. The value may be PII (a NIK under `identity_number`): mask it before showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRow {
    pub event: String,
    pub key_name: CorrelationKey,
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

fn key_name(s: &str) -> Result<CorrelationKey, StoreError> {
    CorrelationKey::from_name(s)
        .ok_or_else(|| decode_error(format!("unknown correlation key {s:?}")))
}

/// A workflow's waits, one row per title waited for (a `workflow_waits` row lists the titles
/// under its key).
fn waits_sql(d: Dialect) -> String {
    format!(
        "SELECT e.value AS event, w.key_name, w.key_value, w.created_at \
         FROM workflow_waits w, {} WHERE w.workflow_id = $1 \
         ORDER BY w.created_at, event, w.key_name",
        d.elements("w.events", "e")
    )
}

const MATCHED_SQL: &str = "SELECT id, source, event_id, title, payload, received_at, matched_at, \
                           processed_at FROM callback_inbox WHERE matched_workflow_id = $1 \
                           ORDER BY id";

fn waiting_sql(d: Dialect) -> String {
    format!(
        "SELECT kind, waiting_for, count(*) AS count, min(deadline) AS earliest_deadline \
         FROM workflows WHERE {} GROUP BY kind, waiting_for ORDER BY kind, waiting_for",
        d.status_is(Some(Status::Waiting), "'waiting'")
    )
}

// The whole `last_error` from the table: the view shows only its code (migration 0013).
const STUCK_SQL: &str = "SELECT s.id, s.kind, s.business_key, s.status, s.state, s.attempt, \
                         s.next_run_at, s.lease_owner, s.lease_until, w.last_error, s.reason, \
                         w.updated_at AS since FROM stuck_workflows s \
                         JOIN workflows w ON w.id = s.id \
                         ORDER BY w.updated_at, s.id LIMIT $1";

impl MatchedEvent {
    pub(crate) fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.read("id")?,
            source: row.read::<String>("source")?.parse()?,
            event_id: row.read("event_id")?,
            title: row.read("title")?,
            payload: row.doc("payload")?,
            received_at: row.at("received_at")?,
            matched_at: row.at_opt("matched_at")?,
            processed_at: row.at_opt("processed_at")?,
        })
    }
}

impl StuckWorkflow {
    pub(crate) fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id("id")?,
            kind: row.read("kind")?,
            business_key: row.read("business_key")?,
            status: row.read::<String>("status")?.parse()?,
            state: row.read("state")?,
            attempt: row.read("attempt")?,
            next_run_at: row.at_opt("next_run_at")?,
            lease_owner: row.read("lease_owner")?,
            lease_until: row.at_opt("lease_until")?,
            last_error: row.read("last_error")?,
            reason: row.read("reason")?,
            since: row.at("since")?,
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
        const SQL: &str = concat!(
            "SELECT ",
            workflow_columns!(),
            " FROM workflows WHERE business_key = $1 ORDER BY kind"
        );
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL).bind(business_key).fetch_all(pool).await?;
            rows.iter().map(Workflow::from_row).collect()
        })
    }

    /// What the workflow waits for now (its `workflow_waits` rows; none unless it waits).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn waits(&self, workflow_id: Uuid) -> Result<Vec<WaitRow>, StoreError> {
        let rows = each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(waits_sql(d)))
                .bind(Id(workflow_id))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(WaitRow {
                        event: row.read("event")?,
                        key_name: key_name(&row.read::<String>("key_name")?)?,
                        key_value: row.read("key_value")?,
                        created_at: row.at("created_at")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        Ok(rows)
    }

    /// Every inbox event matched to the workflow (callbacks, announcements, operator
    /// commands), processed or not, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn matched_events(&self, workflow_id: Uuid) -> Result<Vec<MatchedEvent>, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(MATCHED_SQL)
                .bind(Id(workflow_id))
                .fetch_all(pool)
                .await?;
            rows.iter().map(MatchedEvent::from_row).collect()
        })
    }

    /// Waiting workflows counted per kind and `waiting_for`, ordered by both.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn waiting_counts(&self) -> Result<Vec<WaitingCount>, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(waiting_sql(d)))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(WaitingCount {
                        kind: row.read("kind")?,
                        waiting_for: row.read("waiting_for")?,
                        count: row.read("count")?,
                        earliest_deadline: row.at_opt("earliest_deadline")?,
                    })
                })
                .collect()
        })
    }

    /// The `limit` stuck workflows (view `stuck_workflows`) that changed longest ago, and how
    /// many are stuck in all.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn oldest_stuck(&self, limit: u32) -> Result<(Vec<StuckWorkflow>, i64), StoreError> {
        const COUNT: &str = "SELECT count(*) FROM stuck_workflows";
        let limit = i64::from(limit);
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(STUCK_SQL).bind(limit).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(COUNT).fetch_one(pool).await?;
            let rows = rows
                .iter()
                .map(StuckWorkflow::from_row)
                .collect::<Result<_, _>>()?;
            Ok((rows, total))
        })
    }
}
