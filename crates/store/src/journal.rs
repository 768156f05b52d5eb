//! The step journal: one row per attempt of a step, written in the transaction that commits
//! the step's outcome, numbered 1, 2, 3… per workflow. It is the audit trail ("was the
//! borrower created twice?", "how many 429s in the last hour?") and where a non-idempotent
//! call's operation key is kept.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgConnection, Row, SqliteConnection};
use uuid::Uuid;

use crate::error::{StoreError, decode_error};
use crate::time::{from_sqlite, to_sqlite};
use crate::workflow::{json_from_sqlite, uuid_from_sqlite};
use crate::{Backend, Store};

/// `step_journal.outcome`: what came of one journaled step. Every value the engine writes
/// is here and nothing else; the names are a contract with operators (SQL, the cookbook,
/// metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A workflow started: its input validated, its definition pinned.
    Started,
    /// A call was answered as the step expected.
    Ok,
    /// A call failed in a way another attempt may fix; the next attempt is scheduled.
    Retry,
    /// A call that changes something may or may not have been applied (timeout, reset,
    /// `5xx` after sending): Finfra is read before anything is sent again.
    Ambiguous,
    /// Finfra answered `429`, or the request was held back inside a known `Retry-After`
    /// window; sent again after the window, without using up an attempt.
    RateLimited,
    /// A call failed for good (a final `4xx`, bad credentials).
    Failed,
    /// A callback (or the end of a workflow this one waits for) was delivered.
    Callback,
    /// A callback was consumed but is of no use to this workflow.
    Ignored,
    /// A timer fired: a backoff, a poll or a deadline was due.
    Woken,
    /// A worker found a call its predecessor decided on but never recorded the answer to:
    /// the workflow heard that its outcome is unknown.
    Interrupted,
    /// An operator's command (`finflow cancel`, `resolve`, `retry`) was delivered and
    /// applied (`request_summary` has who, why and what).
    Command,
    /// An operator's command was delivered, but the workflow refused it: it had moved on
    /// since the command was checked (`error` says why).
    CommandRefused,
    /// A workflow that had not started was cancelled by an operator.
    Cancelled,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 13] = [
        Outcome::Started,
        Outcome::Ok,
        Outcome::Retry,
        Outcome::Ambiguous,
        Outcome::RateLimited,
        Outcome::Failed,
        Outcome::Callback,
        Outcome::Ignored,
        Outcome::Woken,
        Outcome::Interrupted,
        Outcome::Command,
        Outcome::CommandRefused,
        Outcome::Cancelled,
    ];

    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::Ambiguous => "ambiguous",
            Self::RateLimited => "rate_limited",
            Self::Failed => "failed",
            Self::Callback => "callback",
            Self::Ignored => "ignored",
            Self::Woken => "woken",
            Self::Interrupted => "interrupted",
            Self::Command => "command",
            Self::CommandRefused => "command_refused",
            Self::Cancelled => "cancelled",
        }
    }

    /// The outcome stored as `name`.
    ///
    /// # Errors
    /// A decode error ([`StoreError::Database`]) when no outcome has that name.
    pub fn parse(name: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == name)
            .ok_or_else(|| decode_error(format!("unknown journal outcome {name:?}")))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened in one attempt of a step, as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The state the attempt ran in.
    pub step: String,
    /// What was done: `create_borrower`, `wait_callback`, `poll_kyc`, ...
    pub action: String,
    /// What came of it.
    pub outcome: Outcome,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Finfra's HTTP status, if it answered.
    pub finfra_status: Option<i32>,
    /// Error message, never secrets or raw PII.
    pub error: Option<String>,
    /// The operation (idempotency) key of a non-idempotent call: created once per logical
    /// operation, the same on every retry.
    pub operation_key: Option<String>,
    /// What was sent, PII masked by the caller.
    pub request_summary: Option<Value>,
    /// What came back, PII masked by the caller.
    pub response_summary: Option<Value>,
}

impl JournalEntry {
    /// An entry for `step`/`action` with `outcome`, attempt 0, now, and nothing else.
    pub fn new(step: impl Into<String>, action: impl Into<String>, outcome: Outcome) -> Self {
        let now = Utc::now();
        Self {
            step: step.into(),
            action: action.into(),
            outcome,
            attempt: 0,
            started_at: now,
            finished_at: now,
            finfra_status: None,
            error: None,
            operation_key: None,
            request_summary: None,
            response_summary: None,
        }
    }

    pub(crate) fn duration_ms(&self) -> i64 {
        (self.finished_at - self.started_at)
            .num_milliseconds()
            .max(0)
    }
}

/// A `step_journal` row.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    pub id: i64,
    pub workflow_id: Uuid,
    pub seq: i32,
    pub entry: JournalEntry,
    pub duration_ms: i64,
    pub worker_id: String,
}

/// Reading the entry's columns, per backend.
trait RowFields {
    fn entry(&self) -> Result<JournalEntry, StoreError>;
}

impl RowFields for PgRow {
    fn entry(&self) -> Result<JournalEntry, StoreError> {
        Ok(JournalEntry {
            step: self.try_get("step")?,
            action: self.try_get("action")?,
            outcome: Outcome::parse(&self.try_get::<String, _>("outcome")?)?,
            attempt: self.try_get("attempt")?,
            started_at: self.try_get("started_at")?,
            finished_at: self.try_get("finished_at")?,
            finfra_status: self.try_get("finfra_status")?,
            error: self.try_get("error")?,
            operation_key: self.try_get("operation_key")?,
            request_summary: self.try_get("request_summary")?,
            response_summary: self.try_get("response_summary")?,
        })
    }
}

impl RowFields for SqliteRow {
    fn entry(&self) -> Result<JournalEntry, StoreError> {
        let json = |col: &str| -> Result<Option<Value>, StoreError> {
            self.try_get::<Option<String>, _>(col)?
                .as_deref()
                .map(json_from_sqlite)
                .transpose()
        };
        Ok(JournalEntry {
            step: self.try_get("step")?,
            action: self.try_get("action")?,
            outcome: Outcome::parse(&self.try_get::<String, _>("outcome")?)?,
            attempt: self.try_get("attempt")?,
            started_at: from_sqlite(&self.try_get::<String, _>("started_at")?)?,
            finished_at: from_sqlite(&self.try_get::<String, _>("finished_at")?)?,
            finfra_status: self.try_get("finfra_status")?,
            error: self.try_get("error")?,
            operation_key: self.try_get("operation_key")?,
            request_summary: json("request_summary")?,
            response_summary: json("response_summary")?,
        })
    }
}

/// Appends a journal row with the next `seq`. The caller holds the workflow row (it just
/// updated it), so no other transaction computes the same `seq`; the unique index is the
/// backstop.
///
/// # Errors
/// [`StoreError::Database`] when the insert fails.
pub(crate) async fn append_pg(
    conn: &mut PgConnection,
    workflow_id: Uuid,
    worker_id: &str,
    entry: &JournalEntry,
) -> Result<i32, StoreError> {
    let seq: i32 = sqlx::query_scalar(
        "INSERT INTO step_journal (workflow_id, seq, step, action, outcome, attempt, started_at, \
         finished_at, duration_ms, finfra_status, error, operation_key, request_summary, \
         response_summary, worker_id) \
         SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14 FROM step_journal WHERE workflow_id = $1 \
         RETURNING seq",
    )
    .bind(workflow_id)
    .bind(&entry.step)
    .bind(&entry.action)
    .bind(entry.outcome.as_str())
    .bind(entry.attempt)
    .bind(entry.started_at)
    .bind(entry.finished_at)
    .bind(entry.duration_ms())
    .bind(entry.finfra_status)
    .bind(&entry.error)
    .bind(&entry.operation_key)
    .bind(&entry.request_summary)
    .bind(&entry.response_summary)
    .bind(worker_id)
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

/// SQLite version of [`append_pg`].
///
/// # Errors
/// [`StoreError::Database`] when the insert fails.
pub(crate) async fn append_sqlite(
    conn: &mut SqliteConnection,
    workflow_id: Uuid,
    worker_id: &str,
    entry: &JournalEntry,
) -> Result<i32, StoreError> {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let seq: i32 = sqlx::query_scalar(
        "INSERT INTO step_journal (workflow_id, seq, step, action, outcome, attempt, started_at, \
         finished_at, duration_ms, finfra_status, error, operation_key, request_summary, \
         response_summary, worker_id) \
         SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
         ?13, ?14 FROM step_journal WHERE workflow_id = ?1 \
         RETURNING seq",
    )
    .bind(workflow_id.to_string())
    .bind(&entry.step)
    .bind(&entry.action)
    .bind(entry.outcome.as_str())
    .bind(entry.attempt)
    .bind(to_sqlite(entry.started_at))
    .bind(to_sqlite(entry.finished_at))
    .bind(entry.duration_ms())
    .bind(entry.finfra_status)
    .bind(&entry.error)
    .bind(&entry.operation_key)
    .bind(json(&entry.request_summary))
    .bind(json(&entry.response_summary))
    .bind(worker_id)
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

impl Store {
    /// The workflow's journal, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn journal(&self, workflow_id: Uuid) -> Result<Vec<JournalRow>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(concat!(
                    "SELECT id, workflow_id, seq, step, action, outcome, attempt, started_at, ",
                    "finished_at, duration_ms, finfra_status, error, operation_key, ",
                    "request_summary, response_summary, worker_id FROM step_journal ",
                    "WHERE workflow_id = $1 ORDER BY seq"
                ))
                .bind(workflow_id)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(JournalRow {
                            id: row.try_get("id")?,
                            workflow_id: row.try_get("workflow_id")?,
                            seq: row.try_get("seq")?,
                            entry: row.entry()?,
                            duration_ms: row.try_get("duration_ms")?,
                            worker_id: row.try_get("worker_id")?,
                        })
                    })
                    .collect()
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(concat!(
                    "SELECT id, workflow_id, seq, step, action, outcome, attempt, started_at, ",
                    "finished_at, duration_ms, finfra_status, error, operation_key, ",
                    "request_summary, response_summary, worker_id FROM step_journal ",
                    "WHERE workflow_id = ?1 ORDER BY seq"
                ))
                .bind(workflow_id.to_string())
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(JournalRow {
                            id: row.try_get("id")?,
                            workflow_id: uuid_from_sqlite(
                                &row.try_get::<String, _>("workflow_id")?,
                            )?,
                            seq: row.try_get("seq")?,
                            entry: row.entry()?,
                            duration_ms: row.try_get("duration_ms")?,
                            worker_id: row.try_get("worker_id")?,
                        })
                    })
                    .collect()
            }
        }
    }
}
