//! Wake-ups: how a workflow that becomes due reaches a worker.
//!
//! `workflows.next_run_at` is the truth. Every worker's due scan ([`Store::claim_due`],
//! every `poll_interval`) claims what is due straight from `workflows` (`FOR NO KEY UPDATE
//! SKIP LOCKED` on PostgreSQL): work scheduled for later, the workflows of a worker that died
//! (a held workflow stays due, so it is free once the lease ends), anything a lost hint
//! would have left behind. No job row is written, fetched or acknowledged per wake-up.
//!
//! What makes a workflow due *now* also sends a hint so that a worker starts at once:
//!
//! - **In the process that made it due:** the in-process hand-over ([`Store::due_now`])
//!   after commit: a callback the receiver stored, a step released with events waiting, a
//!   submit. On SQLite (one process) that is the only hint.
//! - **PostgreSQL, across processes:** `NOTIFY finflow_due` with `"<workflow id>
//!   <application_name>"`, sent by `finflow_schedule_wakeup` (migration 0015) inside the
//!   transaction that made it due, so it is delivered on commit and never for a rollback.
//!   A worker process's connections are named `finflow-worker:<pid>-<tag>` and hand their
//!   own hints over in memory instead ([`StoreOptions::worker`](crate::StoreOptions),
//!   migration 0018: a `NOTIFY` serializes the commits that send one, and every listening
//!   session runs a transaction to read it); what a worker makes due for workflows that
//!   may be another's (those an announcement wakes, a reconciliation's nudges) is still
//!   notified (`finflow_notify_due`). A worker answers its own hints and those of anything
//!   that is not a worker (`finflow submit`, SQL's `finflow_submit`, the console), and
//!   leaves other workers' hints to them ([`DueNotice::answered_by`]), so a fleet claims a
//!   workflow once, not once per worker.
//!
//! A hint is only a hint: the worker claims ([`Store::claim`]) before acting, and a claim
//! that finds the workflow not due or held does nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::dialect::Conn;
use crate::error::StoreError;
use crate::{Backend, Store, StoreTx};

/// The apalis queue earlier builds wrote a task per wake-up into; only pruned now.
pub const WAKEUP_QUEUE: &str = "finflow-wakeups";

/// The PostgreSQL channel of due hints (`finflow_schedule_wakeup`).
pub const DUE_CHANNEL: &str = "finflow_due";

/// How the `application_name` of a worker process's connections begins.
pub const WORKER_ORIGIN_PREFIX: &str = "finflow-worker:";

/// "Advance workflow X if it is due": what a worker's runner hands its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Wakeup {
    pub workflow_id: Uuid,
}

/// A `finflow_due` notification: the workflow, and the `application_name` of the session
/// that made it due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueNotice {
    pub workflow_id: Uuid,
    pub origin: String,
}

impl DueNotice {
    /// Reads a notification's payload; `None` for anything else.
    #[must_use]
    pub fn parse(payload: &str) -> Option<Self> {
        let (id, origin) = payload.split_once(' ').unwrap_or((payload, ""));
        Some(Self {
            workflow_id: id.parse().ok()?,
            origin: origin.to_owned(),
        })
    }

    /// Whether the worker whose connections are named `me` answers it: its own, and any
    /// that no worker sent (every worker answers those; the first claim wins).
    #[must_use]
    pub fn answered_by(&self, me: &str) -> bool {
        self.origin == me || !self.origin.starts_with(WORKER_ORIGIN_PREFIX)
    }
}

/// A PostgreSQL connection listening to [`DUE_CHANNEL`] for one worker, from
/// [`Store::listen_due`]. It holds one connection of the store's pool until dropped.
pub struct DueListener {
    listener: sqlx::postgres::PgListener,
    me: std::sync::Arc<str>,
}

impl std::fmt::Debug for DueListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueListener")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl DueListener {
    /// Waits for the next hint this worker answers ([`DueNotice::answered_by`]). A lost
    /// connection is made again on the next call; hints sent meanwhile are lost, and the
    /// due scan finds their workflows.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the connection cannot be made again or the pool was
    /// closed (then stop listening).
    pub async fn next(&mut self) -> Result<Uuid, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                continue;
            };
            if let Some(notice) = DueNotice::parse(notification.payload())
                && notice.answered_by(&self.me)
            {
                return Ok(notice.workflow_id);
            }
        }
    }
}

/// Sends the due hint for `ids` to the fleet, inside the caller's transaction (delivered
/// when it commits). Nothing on SQLite: one process, whose hints are handed over in-process
/// ([`Store::due_now`]) or found by the due scan.
///
/// # Errors
/// [`StoreError::Database`] when the statement fails.
pub(crate) async fn notify_due(conn: Conn<'_>, ids: &[Uuid]) -> Result<(), StoreError> {
    // NOTIFY is PostgreSQL's alone.
    match conn {
        Conn::Postgres(conn) => notify_due_pg(conn, ids).await,
        Conn::Sqlite(_) => Ok(()),
    }
}

/// Sends the due hint for `ids` on a PostgreSQL connection (usually inside a transaction:
/// it is delivered when that commits). Nothing for an empty list.
///
/// # Errors
/// [`StoreError::Database`] when the statement fails.
pub(crate) async fn notify_due_pg(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT finflow_notify_due(id) FROM unnest($1::uuid[]) AS t(id)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Listens to the due hints ([`DUE_CHANNEL`]) this store's worker answers. `None` on
    /// SQLite (one process: its hints are handed over in-process, [`Store::due_now`]).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the connection or the `LISTEN` fails.
    pub async fn listen_due(&self) -> Result<Option<DueListener>, StoreError> {
        // LISTEN is PostgreSQL's alone.
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(DUE_CHANNEL).await?;
                Ok(Some(DueListener {
                    listener,
                    me: self.origin.clone(),
                }))
            }
            Backend::Sqlite(_) => Ok(None),
        }
    }

    /// Hints, inside the caller's transaction, that `workflow_id` is due at `run_at`: on
    /// PostgreSQL a `finflow_due` notification on commit when `run_at` is not in the future
    /// (a later time is the due scan's); on SQLite nothing (the due scan, and the hand-over
    /// of this process's own submits and callbacks). Does not change `next_run_at`: write
    /// the row yourself.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the statement fails (on PostgreSQL the transaction is
    /// then aborted: roll it back).
    pub async fn schedule_wakeup_in(
        &self,
        tx: &mut StoreTx<'_>,
        workflow_id: Uuid,
        run_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // NOTIFY is PostgreSQL's alone.
        match tx {
            StoreTx::Postgres(tx) if run_at <= Utc::now() => {
                notify_due_pg(tx, &[workflow_id]).await
            }
            StoreTx::Postgres(_) | StoreTx::Sqlite(_) => Ok(()),
        }
    }

    /// Deletes finished wake-up tasks of earlier builds (done, killed, or failed for good)
    /// that finished before `before`; apalis never deletes its rows. Returns how many were
    /// deleted. Pending and running wake-ups are never touched.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn prune_wakeups(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // apalis's own tables: `apalis.jobs` (timestamptz) vs `Jobs` (Unix seconds).
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

    /// Records that worker `worker_id` is alive now, in apalis's registry of workers (what
    /// `finflow status` and `/readyz` list as the fleet). A worker calls it every few
    /// seconds.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn heartbeat(&self, worker_id: &str) -> Result<(), StoreError> {
        // apalis's own tables: `apalis.workers` (timestamptz) vs `Workers` (Unix seconds).
        match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen, \
                     started_at) VALUES ($1, $2, 'finflow', '', now(), now()) \
                     ON CONFLICT (id) DO UPDATE SET last_seen = now()",
                )
                .bind(worker_id)
                .bind(WAKEUP_QUEUE)
                .execute(pool)
                .await?;
            }
            Backend::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen, \
                     started_at) VALUES ($1, $2, 'finflow', '', $3, $3) \
                     ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
                )
                .bind(worker_id)
                .bind(WAKEUP_QUEUE)
                .bind(Utc::now().timestamp())
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes apalis's registrations of workers not seen since `before` that no task
    /// references any more. Every `finflow run` registers under a name of its own (host and
    /// pid), so without this the table grows by one row per process ever started. Returns
    /// how many were deleted.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn prune_workers(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // apalis's own tables: `apalis.workers` (timestamptz) vs `Workers` (Unix seconds).
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
    fn notices_name_the_workflow_and_who_answers() {
        let id = Uuid::new_v4();
        let mine = DueNotice::parse(&format!("{id} finflow-worker:abc")).expect("parses");
        assert_eq!(mine.workflow_id, id);
        assert!(mine.answered_by("finflow-worker:abc"));
        assert!(
            !mine.answered_by("finflow-worker:def"),
            "another worker's own"
        );
        let cli = DueNotice::parse(&format!("{id} finflow")).expect("parses");
        assert!(
            cli.answered_by("finflow-worker:def"),
            "no worker sent it: everyone"
        );
        let sql = DueNotice::parse(&format!("{id} ")).expect("parses");
        assert!(sql.answered_by("finflow-worker:def"));
        assert_eq!(
            DueNotice::parse(&id.to_string()).map(|n| n.workflow_id),
            Some(id)
        );
        assert_eq!(DueNotice::parse("not-a-uuid x"), None);
    }
}
