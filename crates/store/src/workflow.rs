//! The `workflows` row: its Rust shape, decoding from either backend, and the reads operators
//! and the engine use (`get`, `find_by_business_key`, `status_counts`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{Columns, Id, each_backend};
use crate::error::{StoreError, decode_error};

/// Where a workflow is in its life. Stored as the lower-case name (a contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Submitted, not yet started.
    Pending,
    /// A worker holds it and runs a step.
    Running,
    /// Waits for a callback (with a deadline after which it polls).
    Waiting,
    /// Waits for a time (backoff, `Retry-After`, a scheduled poll).
    Sleeping,
    /// Stopped until a person resolves it; `last_error` says why.
    NeedsAttention,
    /// Terminal: reached its goal.
    Completed,
    /// Terminal: cannot reach its goal (e.g. invalid input, borrower rejected).
    Failed,
    /// Terminal: an operator cancelled it.
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Running,
        Status::Waiting,
        Status::Sleeping,
        Status::NeedsAttention,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Sleeping => "sleeping",
            Self::NeedsAttention => "needs_attention",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// `true` for completed, failed and cancelled: nothing runs any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Whether a workflow rests in this status until something from outside moves it (an
    /// operator, for `needs_attention`) or for good (finished): PostgreSQL's
    /// `workflows.status_settled` holds these and is NULL for the others (migration 0031).
    #[must_use]
    pub fn is_settled(self) -> bool {
        self == Self::NeedsAttention || self.is_terminal()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| decode_error(format!("unknown workflow status {s:?}")))
    }
}

/// One `workflows` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub id: Uuid,
    pub kind: String,
    pub business_key: String,
    pub definition_name: String,
    /// `None` until the first step pins it (SQL submissions may omit it).
    pub definition_version: Option<i32>,
    pub status: Status,
    pub state: String,
    pub context: Value,
    /// What the workflow has established, for SQL (the machine's summary facts).
    pub facts: Value,
    /// As stored: sealed (`{"$sealed": ...}`) when `data_key` is set; read it with
    /// [`Store::input`](crate::Store::input).
    pub input: Value,
    pub input_hash: String,
    /// The wrapped data key sealing the input, `"erased"` after erasure, `None` for a plain
    /// input.
    pub data_key: Option<String>,
    /// When its personal data was erased.
    pub erased_at: Option<DateTime<Utc>>,
    pub attempt: i32,
    pub next_run_at: Option<DateTime<Utc>>,
    pub waiting_for: Option<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// Pass it back as `StepCommit::expected_version`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The columns of a [`Workflow`], as a literal for `concat!` (SQL stays `&'static str`).
macro_rules! workflow_columns {
    () => {
        "id, kind, business_key, definition_name, definition_version, status, state, context, \
         facts, input, input_hash, attempt, next_run_at, waiting_for, deadline, last_error, \
         lease_owner, lease_until, version, created_at, updated_at, finished_at, data_key, \
         erased_at"
    };
}
pub(crate) use workflow_columns;

impl Workflow {
    /// # Errors
    /// A decode error for an unknown status, a column of the wrong type, malformed JSON, a
    /// malformed timestamp or id.
    pub(crate) fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id("id")?,
            kind: row.read("kind")?,
            business_key: row.read("business_key")?,
            definition_name: row.read("definition_name")?,
            definition_version: row.read("definition_version")?,
            status: row.read::<String>("status")?.parse()?,
            state: row.read("state")?,
            context: row.doc("context")?,
            facts: row.doc("facts")?,
            input: row.doc("input")?,
            input_hash: row.read("input_hash")?,
            data_key: row.read("data_key")?,
            erased_at: row.at_opt("erased_at")?,
            attempt: row.read("attempt")?,
            next_run_at: row.at_opt("next_run_at")?,
            waiting_for: row.read("waiting_for")?,
            deadline: row.at_opt("deadline")?,
            last_error: row.read("last_error")?,
            lease_owner: row.read("lease_owner")?,
            lease_until: row.at_opt("lease_until")?,
            version: row.read("version")?,
            created_at: row.at("created_at")?,
            updated_at: row.at("updated_at")?,
            finished_at: row.at_opt("finished_at")?,
        })
    }
}

/// # Errors
/// A decode error when the text is not a UUID.
pub(crate) fn uuid_from_sqlite(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| decode_error(format!("uuid {s:?}: {e}")))
}

/// One row of the `workflow_status_counts` view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub kind: String,
    pub state: String,
    pub status: Status,
    pub count: i64,
}

impl Store {
    /// The workflow with this id, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn get(&self, id: Uuid) -> Result<Option<Workflow>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            workflow_columns!(),
            " FROM workflows WHERE id = $1"
        );
        each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(SQL).bind(Id(id)).fetch_optional(pool).await?;
            row.as_ref().map(Workflow::from_row).transpose()
        })
    }

    /// The workflow of this kind with this business key, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn find_by_business_key(
        &self,
        kind: &str,
        business_key: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            workflow_columns!(),
            " FROM workflows WHERE kind = $1 AND business_key = $2"
        );
        each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(SQL)
                .bind(kind)
                .bind(business_key)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(Workflow::from_row).transpose()
        })
    }

    /// The `limit` newest workflows of `kind`.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn latest(&self, kind: &str, limit: u32) -> Result<Vec<Workflow>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            workflow_columns!(),
            " FROM workflows WHERE kind = $1 ORDER BY created_at DESC, id LIMIT $2"
        );
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL)
                .bind(kind)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter().map(Workflow::from_row).collect()
        })
    }

    /// How many workflows are due now and free: what the due scan ([`Store::claim_due`])
    /// would claim, counted with the same predicate (one indexed count).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn due_count(&self) -> Result<i64, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let sql = format!(
                "SELECT count(*) FROM workflows WHERE next_run_at <= {now} \
                 AND status NOT IN ('completed', 'failed', 'cancelled') \
                 AND (lease_until IS NULL OR lease_until <= {now})",
                now = d.now()
            );
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?)
        })
    }

    /// Counts per kind, state and status, from the `workflow_status_counts` view, ordered by
    /// kind, state, status.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        const SQL: &str = "SELECT kind, state, status, count FROM workflow_status_counts \
                           ORDER BY kind, state, status";
        let rows: Vec<(String, String, String, i64)> =
            each_backend!(&self.backend, |pool, d| sqlx::query_as(SQL)
                .fetch_all(pool)
                .await?);
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
}
