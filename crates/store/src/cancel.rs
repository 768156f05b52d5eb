//! Cancelling a workflow that has not started (`finflow cancel` of a workflow still in state
//! `new`), even while a worker is claiming it: the row becomes `cancelled` and its `version`
//! moves on, so the worker's commit of its first decision fails with `LeaseLost` and
//! nothing is sent to Finfra. A workflow that has started is cancelled through its state
//! machine instead (`Store::record_command`), which knows what it must undo at Finfra and
//! when a cancel is no longer safe.

use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{Conn, Id, each_backend};
use crate::error::StoreError;
use crate::events::{NewEvent, append as append_events};
use crate::journal::{JournalEntry, Outcome, append};
use crate::submit::INITIAL_STATE;
use crate::workflow::{Status, Workflow, workflow_columns};

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
        let workflow = each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE workflows SET status = 'cancelled', finished_at = {now}, \
                 next_run_at = NULL, lease_owner = NULL, lease_until = NULL, \
                 waiting_for = NULL, last_error = $2, version = version + 1, \
                 updated_at = {now} \
                 WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled') \
                 AND state = $3 RETURNING {columns}",
                now = d.now(),
                columns = workflow_columns!()
            )))
            .bind(Id(id))
            .bind(why)
            .bind(INITIAL_STATE)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                let found: Option<(String, String)> =
                    sqlx::query_as("SELECT status, state FROM workflows WHERE id = $1")
                        .bind(Id(id))
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(not_cancellable(id, found)?);
            };
            let workflow = Workflow::from_row(&row)?;
            sqlx::query("DELETE FROM workflow_waits WHERE workflow_id = $1")
                .bind(Id(id))
                .execute(&mut *tx)
                .await?;
            entry.step.clone_from(&workflow.state);
            entry.attempt = workflow.attempt;
            let seq = append(Conn::from(&mut *tx), id, who, &entry).await?;
            append_events(Conn::from(&mut *tx), id, seq, events).await?;
            tx.commit().await?;
            workflow
        });
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
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // Lock the row so concurrent appends (and a commit) number their rows in turn.
            let found: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM workflows WHERE id = $1{}",
                d.for_update()
            )))
            .bind(Id(workflow_id))
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Err(StoreError::NotFound(workflow_id));
            }
            let seq = append(Conn::from(&mut *tx), workflow_id, worker_id, entry).await?;
            tx.commit().await?;
            Ok(seq)
        })
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
