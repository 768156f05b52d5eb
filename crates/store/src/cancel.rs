//! Cancelling a workflow that has not started (`finflow cancel` of a workflow still in state
//! `new`), even while a worker is claiming it: the row becomes `cancelled` and its `version`
//! moves on, so the worker's commit of its first decision fails with `LeaseLost` and
//! nothing is sent to Finfra. A workflow that has started is cancelled through its state
//! machine instead (`Store::record_command`), which knows what it must undo at Finfra and
//! when a cancel is no longer safe.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::error::StoreError;
use crate::events::{
    NewEvent, append_pg as append_events_pg, append_sqlite as append_events_sqlite,
};
use crate::journal::{JournalEntry, Outcome, append_pg, append_sqlite};
use crate::submit::INITIAL_STATE;
use crate::time::to_sqlite;
use crate::tx::SQLITE_BEGIN;
use crate::workflow::{Status, Workflow, workflow_columns};
use crate::{Backend, Store};

impl Store {
    /// Cancels a workflow that has not started (state `new`): status `cancelled`,
    /// `last_error` = `why`, nothing scheduled, lease and waits cleared, and a journal row
    /// (`action` `cancel`, outcome `cancelled`, `worker_id` = `who`) with its lifecycle
    /// `events` (`workflow::cancelled_before_start`), in one transaction. Returns the
    /// cancelled row.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Refused`] when it already
    /// finished (completed, failed or cancelled) or has started; [`StoreError::Database`]
    /// otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.id = %id, cancelled.by = who))]
    pub async fn cancel(
        &self,
        id: Uuid,
        who: &str,
        why: &str,
        events: &[NewEvent],
    ) -> Result<Workflow, StoreError> {
        let mut entry = JournalEntry::new("", "cancel", Outcome::Cancelled);
        entry.error = Some(why.to_owned());
        entry.request_summary = Some(json!({ "by": who, "reason": why }));
        let workflow = match &self.backend {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row = sqlx::query(
                    "UPDATE workflows SET status = 'cancelled', finished_at = now(), \
                     next_run_at = NULL, lease_owner = NULL, lease_until = NULL, \
                     waiting_for = NULL, last_error = $2, version = version + 1, \
                     updated_at = now() \
                     WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled') \
                     AND state = $3 RETURNING *",
                )
                .bind(id)
                .bind(why)
                .bind(INITIAL_STATE)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    let found: Option<(String, String)> =
                        sqlx::query_as("SELECT status, state FROM workflows WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(not_cancellable(id, found)?);
                };
                let workflow = Workflow::from_pg(&row)?;
                sqlx::query("DELETE FROM workflow_waits WHERE workflow_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                entry.step.clone_from(&workflow.state);
                entry.attempt = workflow.attempt;
                let seq = append_pg(&mut tx, id, who, &entry).await?;
                append_events_pg(&mut tx, id, seq, events).await?;
                tx.commit().await?;
                workflow
            }
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with(SQLITE_BEGIN).await?;
                let now = to_sqlite(Utc::now());
                let row = sqlx::query(concat!(
                    "UPDATE workflows SET status = 'cancelled', finished_at = $3, ",
                    "next_run_at = NULL, lease_owner = NULL, lease_until = NULL, ",
                    "waiting_for = NULL, last_error = $2, version = version + 1, updated_at = $3 ",
                    "WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled') ",
                    "AND state = $4 RETURNING ",
                    workflow_columns!()
                ))
                .bind(id.to_string())
                .bind(why)
                .bind(&now)
                .bind(INITIAL_STATE)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    let found: Option<(String, String)> =
                        sqlx::query_as("SELECT status, state FROM workflows WHERE id = $1")
                            .bind(id.to_string())
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(not_cancellable(id, found)?);
                };
                let workflow = Workflow::from_sqlite(&row)?;
                sqlx::query("DELETE FROM workflow_waits WHERE workflow_id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                entry.step.clone_from(&workflow.state);
                entry.attempt = workflow.attempt;
                let seq = append_sqlite(&mut tx, id, who, &entry).await?;
                append_events_sqlite(&mut tx, id, seq, events, &now).await?;
                tx.commit().await?;
                workflow
            }
        };
        tracing::info!(workflow.id = %id, cancelled.by = who, "workflow cancelled");
        Ok(workflow)
    }

    /// Appends a journal row without changing the workflow: for what a worker learned after
    /// it lost the workflow (e.g. the result of a call in flight when an operator cancelled
    /// it), or an operator's note. Allowed on finished workflows. Returns the row's `seq`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Database`] otherwise.
    pub async fn append_journal(
        &self,
        workflow_id: Uuid,
        worker_id: &str,
        entry: &JournalEntry,
    ) -> Result<i32, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Lock the row so concurrent appends (and a commit) number their rows in turn.
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM workflows WHERE id = $1 FOR UPDATE")
                        .bind(workflow_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Err(StoreError::NotFound(workflow_id));
                }
                let seq = append_pg(&mut tx, workflow_id, worker_id, entry).await?;
                tx.commit().await?;
                Ok(seq)
            }
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with(SQLITE_BEGIN).await?;
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM workflows WHERE id = $1")
                        .bind(workflow_id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Err(StoreError::NotFound(workflow_id));
                }
                let seq = append_sqlite(&mut tx, workflow_id, worker_id, entry).await?;
                tx.commit().await?;
                Ok(seq)
            }
        }
    }
}

/// The error for a cancel that matched no row, given the row's status (if it exists).
fn not_cancellable(id: Uuid, found: Option<(String, String)>) -> Result<StoreError, StoreError> {
    Ok(match found {
        None => StoreError::NotFound(id),
        Some((status, state)) => {
            let status: Status = status.parse()?;
            StoreError::Refused(if status.is_terminal() {
                format!(
                    "workflow {id} is already {status}; a finished workflow cannot be cancelled"
                )
            } else {
                format!(
                    "workflow {id} has started (state {state}): only its workflow can cancel it, \
                     undoing what it did at Finfra (record a cancel command)"
                )
            })
        }
    })
}
