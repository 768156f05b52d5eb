//! The step journal: one row per attempt of a step, written in the transaction that commits
//! the step's outcome, numbered 1, 2, 3… per workflow. It is the audit trail ("was the
//! borrower created twice?", "how many 429s in the last hour?") and where a non-idempotent
//! call's operation key is kept.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{At, Columns, Conn, Doc, Id, each_backend, each_conn};
use crate::error::{StoreError, decode_error};

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

impl JournalEntry {
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            step: row.read("step")?,
            action: row.read("action")?,
            outcome: Outcome::parse(&row.read::<String>("outcome")?)?,
            attempt: row.read("attempt")?,
            started_at: row.at("started_at")?,
            finished_at: row.at("finished_at")?,
            finfra_status: row.read("finfra_status")?,
            error: row.read("error")?,
            operation_key: row.read("operation_key")?,
            request_summary: row.doc_opt("request_summary")?,
            response_summary: row.doc_opt("response_summary")?,
        })
    }
}

impl JournalRow {
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.read("id")?,
            workflow_id: row.id("workflow_id")?,
            seq: row.read("seq")?,
            entry: JournalEntry::from_row(row)?,
            duration_ms: row.read("duration_ms")?,
            worker_id: row.read("worker_id")?,
        })
    }
}

/// Appends a journal row with the next `seq`. The caller holds the workflow row (it just
/// updated it), so no other transaction computes the same `seq`; the unique index is the
/// backstop. (A step's commit on PostgreSQL appends its row inside `finflow_commit_step`.)
///
/// # Errors
/// [`StoreError::Database`] when the insert fails.
pub(crate) async fn append(
    conn: Conn<'_>,
    workflow_id: Uuid,
    worker_id: &str,
    entry: &JournalEntry,
) -> Result<i32, StoreError> {
    const SQL: &str = "INSERT INTO step_journal (workflow_id, seq, step, action, outcome, \
         attempt, started_at, finished_at, duration_ms, finfra_status, error, operation_key, \
         request_summary, response_summary, worker_id) \
         SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14 FROM step_journal WHERE workflow_id = $1 \
         RETURNING seq";
    let seq: i32 = each_conn!(conn, |c, d| sqlx::query_scalar(SQL)
        .bind(Id(workflow_id))
        .bind(&entry.step)
        .bind(&entry.action)
        .bind(entry.outcome.as_str())
        .bind(entry.attempt)
        .bind(At(entry.started_at))
        .bind(At(entry.finished_at))
        .bind(entry.duration_ms())
        .bind(entry.finfra_status)
        .bind(&entry.error)
        .bind(&entry.operation_key)
        .bind(entry.request_summary.as_ref().map(Doc))
        .bind(entry.response_summary.as_ref().map(Doc))
        .bind(worker_id)
        .fetch_one(c)
        .await?);
    Ok(seq)
}

impl Store {
    /// The workflow's journal, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn journal(&self, workflow_id: Uuid) -> Result<Vec<JournalRow>, StoreError> {
        const SQL: &str = concat!(
            "SELECT id, workflow_id, seq, step, action, outcome, attempt, started_at, ",
            "finished_at, duration_ms, finfra_status, error, operation_key, ",
            "request_summary, response_summary, worker_id FROM step_journal ",
            "WHERE workflow_id = $1 ORDER BY seq"
        );
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL)
                .bind(Id(workflow_id))
                .fetch_all(pool)
                .await?;
            rows.iter().map(JournalRow::from_row).collect()
        })
    }
}
