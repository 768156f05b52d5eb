//! Four-eyes: operators' commands that wait for a second person before they are queued.
//!
//! A command that can make money move or stop it after signing (the workflow crate's
//! `Engine::needs_approval` says which) is stored in `command_requests` as `pending` instead
//! of the inbox. A second person approves it ([`Store::approve_command`]: it is then queued
//! in the inbox exactly as [`Store::record_command`] queues any command, in the same
//! transaction) or rejects it. The requester can never decide their own request (checked
//! here and by a constraint), and a request not decided by `expires_at` expires.
//!
//! The store does not judge whether the workflow still accepts the command: the caller asks
//! the engine before approving, and the worker's state machine has the last word (a command
//! it no longer accepts is journaled `command_refused`).

use chrono::{DateTime, Utc};
use serde_json::Value;
// The dynamic SQL below is built from constants only (column lists, optional clauses).
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::Store;
use crate::command::{queue, refuse_finished};
use crate::dialect::{At, Columns, Conn, Doc, Id, each_backend};
use crate::error::{StoreError, decode_error};
use crate::time::delta;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    /// Waiting for a second person.
    Pending,
    /// Approved and queued in the inbox.
    Approved,
    /// Rejected by a second person, or found unappliable at approval (the workflow had
    /// finished).
    Rejected,
    /// Not decided in time.
    Expired,
}

impl RequestStatus {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            other => return Err(decode_error(format!("command request status {other:?}"))),
        })
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One command waiting for (or decided by) a second person.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    /// The request's id (`finflow approve ID`).
    pub id: i64,
    /// The workflow it is for.
    pub workflow_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its business key.
    pub business_key: String,
    /// `cancel` or `resolve`.
    pub title: String,
    /// The command as the inbox will hold it: `{by, reason, data}`.
    pub payload: Value,
    /// Who asked.
    pub requested_by: String,
    /// Why they asked.
    pub reason: String,
    /// Why it needs a second person.
    pub needs_approval: String,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
    /// When it expires if nobody decides.
    pub expires_at: DateTime<Utc>,
    /// Where it stands; a pending request past `expires_at` reads as expired.
    pub status: RequestStatus,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// Why.
    pub decided_reason: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// The inbox row queued on approval.
    pub inbox_id: Option<i64>,
}

/// Which requests to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only those still pending (not expired).
    pub pending_only: bool,
    /// Only this workflow's.
    pub workflow_id: Option<Uuid>,
    /// Keyset: only ids below this one.
    pub before_id: Option<i64>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// A request's columns, with its workflow's kind and business key (`r`, `w`).
const COLUMNS: &str = "r.id, r.workflow_id, r.title, r.payload, r.requested_by, r.reason, \
     r.needs_approval, r.requested_at, r.expires_at, r.status, r.decided_by, r.decided_reason, \
     r.decided_at, r.inbox_id, w.kind, w.business_key";
const FROM: &str = "FROM command_requests r JOIN workflows w ON w.id = r.workflow_id";

fn read(row: &impl Columns) -> Result<CommandRequest, StoreError> {
    let status = RequestStatus::parse(&row.read::<String>("status")?)?;
    let expires_at = row.at("expires_at")?;
    Ok(CommandRequest {
        id: row.read("id")?,
        workflow_id: row.id("workflow_id")?,
        kind: row.read("kind")?,
        business_key: row.read("business_key")?,
        title: row.read("title")?,
        payload: row.doc("payload")?,
        requested_by: row.read("requested_by")?,
        reason: row.read("reason")?,
        needs_approval: row.read("needs_approval")?,
        requested_at: row.at("requested_at")?,
        expires_at,
        status: effective(status, expires_at),
        decided_by: row.read("decided_by")?,
        decided_reason: row.read("decided_reason")?,
        decided_at: row.at_opt("decided_at")?,
        inbox_id: row.read("inbox_id")?,
    })
}

/// A pending request past its expiry is expired, whether or not a sweep marked it yet.
fn effective(status: RequestStatus, expires_at: DateTime<Utc>) -> RequestStatus {
    if status == RequestStatus::Pending && expires_at <= Utc::now() {
        RequestStatus::Expired
    } else {
        status
    }
}

/// What a decision does to a pending request.
enum Decide {
    Approve,
    Reject,
}

/// Why a request cannot be decided: not pending, expired (then marked so), or the
/// requester's own.
fn check_decidable(request: &CommandRequest, by: &str) -> Result<(), StoreError> {
    match request.status {
        RequestStatus::Pending => {}
        RequestStatus::Expired => {
            return Err(StoreError::Refused(format!(
                "command request {} expired at {} without a decision; ask again",
                request.id,
                request.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        done @ (RequestStatus::Approved | RequestStatus::Rejected) => {
            return Err(StoreError::Refused(format!(
                "command request {} was already {done} by {}",
                request.id,
                request.decided_by.as_deref().unwrap_or("someone")
            )));
        }
    }
    if request.requested_by == by {
        return Err(StoreError::Refused(format!(
            "{by} asked for command request {} and cannot decide it: four-eyes needs a second person",
            request.id
        )));
    }
    Ok(())
}

impl Store {
    /// Stores `title` (`cancel` or `resolve`) with `payload` for workflow `id` as pending a
    /// second person's approval, for `ttl`; `needs_approval` says why (the engine's rule).
    /// Returns the request's id. Nothing is queued for the workflow yet.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown workflow; [`StoreError::Refused`] when it has
    /// finished; [`StoreError::Database`] otherwise.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.id = %id, command = title))]
    pub async fn request_command(
        &self,
        id: Uuid,
        title: &str,
        payload: &Value,
        requested_by: &str,
        reason: &str,
        needs_approval: &str,
        ttl: std::time::Duration,
    ) -> Result<i64, StoreError> {
        let now = Utc::now();
        let expires_at = now + delta(ttl);
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let status: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT status FROM workflows WHERE id = $1{}",
                d.for_share()
            )))
            .bind(Id(id))
            .fetch_optional(&mut *tx)
            .await?;
            refuse_finished(id, status.as_deref())?;
            let request_id: i64 = sqlx::query_scalar(
                "INSERT INTO command_requests (workflow_id, title, payload, requested_by, \
                 reason, needs_approval, requested_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(Id(id))
            .bind(title)
            .bind(Doc(payload))
            .bind(requested_by)
            .bind(reason)
            .bind(needs_approval)
            .bind(At(now))
            .bind(At(expires_at))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(request_id)
        })
    }

    /// Approves pending request `request_id` as `approver` (`reason` journaled with it) and
    /// queues its command in the inbox in the same transaction, as
    /// [`Store::record_command`] would. Returns the request as decided (with `inbox_id`).
    ///
    /// # Errors
    /// [`StoreError::Refused`] when the request is unknown, no longer pending, expired (it
    /// is then marked expired), the approver's own, or its workflow has finished (the
    /// request is then rejected with that reason); [`StoreError::Database`] otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(request.id = request_id))]
    pub async fn approve_command(
        &self,
        request_id: i64,
        approver: &str,
        reason: &str,
    ) -> Result<CommandRequest, StoreError> {
        self.decide(request_id, approver, reason, Decide::Approve)
            .await
    }

    /// Rejects pending request `request_id` as `by`, with `reason`: nothing is queued.
    ///
    /// # Errors
    /// As [`Store::approve_command`].
    #[tracing::instrument(level = "debug", skip_all, fields(request.id = request_id))]
    pub async fn reject_command(
        &self,
        request_id: i64,
        by: &str,
        reason: &str,
    ) -> Result<CommandRequest, StoreError> {
        self.decide(request_id, by, reason, Decide::Reject).await
    }

    async fn decide(
        &self,
        request_id: i64,
        by: &str,
        reason: &str,
        decide: Decide,
    ) -> Result<CommandRequest, StoreError> {
        let unknown = || StoreError::Refused(format!("no command request {request_id}"));
        let select = format!("SELECT {COLUMNS} {FROM} WHERE r.id = $1");
        let update = "UPDATE command_requests SET status = $2, decided_by = $3, \
                      decided_reason = $4, decided_at = $5, inbox_id = $6 WHERE id = $1";
        let now = Utc::now();
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let row = sqlx::query(AssertSqlSafe(format!("{select}{}", d.for_update_of("r"))))
                .bind(request_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(unknown)?;
            let request = read(&row)?;
            let (status, inbox_id, refusal) =
                outcome(Conn::from(&mut *tx), &request, by, &decide).await?;
            let (decided_by, mut decided_reason) = decided(&request, status, by, reason);
            if let Some(refusal) = refusal
                .as_ref()
                .filter(|_| status == RequestStatus::Rejected)
            {
                decided_reason = Some(refusal.to_string());
            }
            if status != RequestStatus::Pending {
                sqlx::query(update)
                    .bind(request_id)
                    .bind(status.as_str())
                    .bind(decided_by)
                    .bind(decided_reason)
                    .bind(At(now))
                    .bind(inbox_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            match refusal {
                Some(refusal) => Err(refusal),
                None => self.command_request(request_id).await?.ok_or_else(unknown),
            }
        })
    }

    /// One request.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn command_request(
        &self,
        request_id: i64,
    ) -> Result<Option<CommandRequest>, StoreError> {
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE r.id = $1");
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(request_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(read)
                .transpose()
        })
    }

    /// Requests matching `filter`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn command_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<Vec<CommandRequest>, StoreError> {
        let limit = i64::from(filter.limit.clamp(1, 500));
        let now = Utc::now();
        let mut sql = format!("SELECT {COLUMNS} {FROM} WHERE r.id < $1");
        if filter.pending_only {
            sql.push_str(" AND r.status = 'pending' AND r.expires_at > $2");
        } else {
            sql.push_str(" AND $2 IS NOT NULL");
        }
        if filter.workflow_id.is_some() {
            sql.push_str(" AND r.workflow_id = $4");
        }
        sql.push_str(" ORDER BY r.id DESC LIMIT $3");
        let before = filter.before_id.unwrap_or(i64::MAX);
        each_backend!(&self.backend, |pool, d| {
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(before)
                .bind(At(now))
                .bind(limit);
            if let Some(w) = filter.workflow_id {
                q = q.bind(Id(w));
            }
            q.fetch_all(pool).await?.iter().map(read).collect()
        })
    }

    /// Marks every pending request past its expiry as expired; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn expire_command_requests(&self) -> Result<u64, StoreError> {
        let now = Utc::now();
        let sql = "UPDATE command_requests SET status = 'expired', decided_at = $1 \
                   WHERE status = 'pending' AND expires_at <= $1";
        let done = each_backend!(&self.backend, |pool, d| {
            sqlx::query(sql)
                .bind(At(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done)
    }
}

/// Who and why to store for the new status: an expiry is nobody's decision.
fn decided<'a>(
    request: &CommandRequest,
    status: RequestStatus,
    by: &'a str,
    reason: &'a str,
) -> (Option<&'a str>, Option<String>) {
    match status {
        RequestStatus::Expired => (None, None),
        _ if by == request.requested_by => (None, None),
        _ => (Some(by), Some(reason.to_owned())),
    }
}

/// The new status, the queued inbox row and the refusal to return (after committing the
/// status change it implies, e.g. an expiry).
type Outcome = (RequestStatus, Option<i64>, Option<StoreError>);

fn refusal_outcome(request: &CommandRequest, by: &str) -> Option<Outcome> {
    match check_decidable(request, by) {
        Ok(()) => None,
        Err(e) if request.status == RequestStatus::Expired => {
            Some((RequestStatus::Expired, None, Some(e)))
        }
        // Nothing changes: already decided, or the requester's own.
        Err(e) => Some((RequestStatus::Pending, None, Some(e))),
    }
}

async fn outcome(
    conn: Conn<'_>,
    request: &CommandRequest,
    by: &str,
    decide: &Decide,
) -> Result<Outcome, StoreError> {
    if let Some(outcome) = refusal_outcome(request, by) {
        return Ok(outcome);
    }
    match decide {
        Decide::Reject => Ok((RequestStatus::Rejected, None, None)),
        Decide::Approve => {
            match queue(conn, request.workflow_id, &request.title, &request.payload).await {
                Ok(inbox_id) => Ok((RequestStatus::Approved, Some(inbox_id), None)),
                Err(StoreError::Refused(why)) => Ok(finished(request, why)),
                Err(other) => Err(other),
            }
        }
    }
}

/// The workflow finished while the request waited: the request is rejected with that
/// reason (by the approver, who tried), and the approval is refused.
fn finished(request: &CommandRequest, why: String) -> Outcome {
    (
        RequestStatus::Rejected,
        None,
        Some(StoreError::Refused(format!(
            "command request {} cannot be applied: {why}",
            request.id
        ))),
    )
}
