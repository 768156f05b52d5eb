//! Wake-ups: how a workflow that becomes due reaches a worker.
//!
//! A wake-up is a tiny apalis task in queue [`WAKEUP_QUEUE`] whose payload is a [`Wakeup`]
//! (`{"workflow_id": "…"}`, JSON). It is written in the same transaction as the change that
//! makes the workflow due (submit, step commit, matched callback, command), with apalis's own
//! insert (`apalis_postgres::queries::push_tasks` / `apalis_sqlite::queries`' `push_tasks`)
//! on the transaction's connection, so a rollback removes it and a commit publishes both.
//! On PostgreSQL, `finflow_submit` inserts the same row in SQL (`finflow_schedule_wakeup`).
//!
//! The task is only a hint. `workflows.next_run_at` is the truth: a worker handling a wake-up
//! calls [`Store::claim`], which takes the workflow only if it is due and free; a stale or
//! duplicate wake-up finds nothing and is acknowledged. [`Store::claim_due`], run by every
//! worker every 250 ms, takes whatever is due and free: the workflows of a worker that died
//! mid-step (a held workflow stays due, so it is free once the lease ends), and anything a
//! lost wake-up would have left behind (a wake-up apalis gave up on, a restored backup).
//!
//! The worker builds its apalis storage on [`Store::pg_pool`] / [`Store::sqlite_pool`] with
//! `Config::default().queue(WAKEUP_QUEUE)` and handler argument type [`Wakeup`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, SqliteConnection};
use uuid::Uuid;

use crate::error::StoreError;
use crate::time::wakeup_secs;
use crate::{Backend, Store, StoreTx};

/// The apalis queue (job type) of finflow's wake-ups. A contract with `finflow_submit`.
pub const WAKEUP_QUEUE: &str = "finflow-wakeups";

/// apalis `max_attempts` of a wake-up task. A wake-up's handler only fails when the store
/// does; apalis retries those at once, and a wake-up it gives up on is found again by
/// [`Store::claim_due`].
pub const WAKEUP_MAX_ATTEMPTS: usize = 10;

/// "As soon as possible" for the push functions: any time in the past means now. Used where
/// the database decided the workflow is due now (its clock may run ahead of ours).
pub(crate) const AT_ONCE: DateTime<Utc> = DateTime::<Utc>::MIN_UTC;

/// Payload of a wake-up task: "advance workflow X if it is due".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Wakeup {
    pub workflow_id: Uuid,
}

fn task(
    workflow_id: Uuid,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> apalis::prelude::Task<Vec<u8>> {
    // A struct of one Uuid always serializes; build the bytes by hand to keep this infallible
    // and byte-identical to serde's output.
    let payload = format!(r#"{{"workflow_id":"{workflow_id}"}}"#).into_bytes();
    apalis::prelude::TaskBuilder::new(payload)
        .run_at_timestamp(wakeup_secs(at, now))
        .max_attempts(WAKEUP_MAX_ATTEMPTS)
        .build()
}

/// Inserts wake-up tasks on a PostgreSQL connection (usually inside a transaction).
///
/// # Errors
/// [`StoreError::Database`] when the insert fails.
pub(crate) async fn push_pg(
    conn: &mut PgConnection,
    wakeups: &[(Uuid, DateTime<Utc>)],
) -> Result<(), StoreError> {
    if wakeups.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let tasks = wakeups.iter().map(|&(id, at)| task(id, at, now)).collect();
    apalis_postgres::queries::push_tasks(conn, WAKEUP_QUEUE, tasks).await?;
    Ok(())
}

/// Inserts wake-up tasks on a SQLite connection (usually inside a transaction).
///
/// # Errors
/// [`StoreError::Database`] when the insert fails.
pub(crate) async fn push_sqlite(
    conn: &mut SqliteConnection,
    wakeups: &[(Uuid, DateTime<Utc>)],
) -> Result<(), StoreError> {
    if wakeups.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let tasks: Vec<_> = wakeups.iter().map(|&(id, at)| task(id, at, now)).collect();
    apalis_sqlite::queries::push_tasks(conn, WAKEUP_QUEUE, &tasks).await?;
    Ok(())
}

impl Store {
    /// Schedules a wake-up for `workflow_id` at `run_at` inside the caller's transaction.
    /// Does not change `next_run_at`: use it after writing the row yourself, or to nudge a
    /// workflow. apalis runs tasks at whole seconds; a future `run_at` is rounded up.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the insert fails (on PostgreSQL the transaction is then
    /// aborted: roll it back).
    pub async fn schedule_wakeup_in(
        &self,
        tx: &mut StoreTx<'_>,
        workflow_id: Uuid,
        run_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match tx {
            StoreTx::Postgres(tx) => push_pg(tx, &[(workflow_id, run_at)]).await,
            StoreTx::Sqlite(tx) => push_sqlite(tx, &[(workflow_id, run_at)]).await,
        }
    }

    /// Deletes finished wake-up tasks (done, killed, or failed for good) that finished before
    /// `before`; apalis never deletes its rows, and every step leaves two or three. Returns
    /// how many were deleted. Pending and running wake-ups are never touched.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn prune_wakeups(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(
                "DELETE FROM apalis.jobs WHERE job_type = $1 AND done_at < $2 \
                     AND (status IN ('Done', 'Killed') \
                          OR (status = 'Failed' AND attempts >= max_attempts))",
            )
            .bind(WAKEUP_QUEUE)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
            Backend::Sqlite(pool) => sqlx::query(
                "DELETE FROM Jobs WHERE job_type = $1 AND done_at < $2 \
                     AND (status IN ('Done', 'Killed') \
                          OR (status = 'Failed' AND attempts >= max_attempts))",
            )
            .bind(WAKEUP_QUEUE)
            .bind(before.timestamp())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(done)
    }

    /// Deletes apalis's registrations of workers not seen since `before` that no task
    /// references any more. Every `finflow run` registers under a name of its own (host and
    /// pid), so without this the table grows by one row per process ever started. Returns
    /// how many were deleted.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn prune_workers(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(
                "DELETE FROM apalis.workers w WHERE w.last_seen < $1 \
                 AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
            )
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
            Backend::Sqlite(pool) => sqlx::query(
                "DELETE FROM Workers WHERE last_seen < $1 \
                 AND NOT EXISTS (SELECT 1 FROM Jobs j WHERE j.lock_by = Workers.id)",
            )
            .bind(before.timestamp())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_what_serde_writes_and_reads() {
        let wakeup = Wakeup {
            workflow_id: Uuid::new_v4(),
        };
        let now = Utc::now();
        let task = task(wakeup.workflow_id, now, now);
        let expected = serde_json::to_vec(&wakeup).expect("serializes");
        assert_eq!(task.args, expected);
        let back: Wakeup = serde_json::from_slice(&task.args).expect("decodes");
        assert_eq!(back, wakeup);
    }
}
