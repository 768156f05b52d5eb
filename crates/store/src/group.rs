//! Group commit: the steps a process finishes at about the same moment are committed
//! together, in one transaction, each behind its own guard. On PostgreSQL a batch is one
//! call of `finflow_commit_steps` (migration 0016); on SQLite one `BEGIN IMMEDIATE` …
//! `COMMIT` in which each step is written inside a savepoint of its own, so the steps share
//! one write lock and one `fsync`.
//!
//! There is no timer and no committer task. A step's commit joins a queue and waits for
//! its answer; whenever one of [`LANES`] lanes is free, a waiting commit takes everything
//! queued (up to [`MOST`]) and sends it as one batch. With the lanes idle a commit goes at
//! once, alone: one round trip, as before. Under load, commits queue while the lanes are
//! busy, and the next batch carries them all: the busier the process, the fewer
//! transactions per step. A batch runs in a task of its own, so a caller that gives up
//! waiting (its step was cancelled) does not cut off the others' commits.
//!
//! Each commit of a batch is told its own outcome: committed, or `LeaseLost`/`NotFound`
//! with nothing of it written while the others are. A batch that fails as a whole (a
//! constraint one commit broke, a deadlock, a dropped connection) wrote nothing; each of its
//! commits is then sent again alone, and only a commit that fails alone fails. Whether the
//! database committed a batch whose answer was lost is unknown to the process, as for a
//! single commit: sent again, the commits that did land find their version moved on and are
//! told `LeaseLost`, which the worker handles as a lost lease (it stops; the workflow is
//! taken up again from what was stored). The README argues the crash cases.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use crate::commit::{Committed, SqliteCommit, write_sqlite};
use crate::error::{StoreError, decode_error};
use crate::hot::Hot;
use crate::tx::SQLITE_BEGIN;
use crate::{Backend, Store};

/// PostgreSQL: batches in flight at once per process, so that one can be sent while the
/// other is in the database. SQLite has one writer: one lane.
pub(crate) const POSTGRES_LANES: usize = 2;

/// The most commits in one batch.
pub(crate) const MOST: usize = 32;

/// One step commit, as its backend writes it.
#[derive(Debug)]
pub(crate) enum Item {
    /// `finflow_commit_step`'s parameters as a JSON object (`commit::Params`).
    Postgres(String),
    Sqlite(Box<SqliteCommit>),
}

/// One commit waiting for its batch, and where its answer goes.
struct Queued {
    workflow_id: Uuid,
    item: Item,
    answer: oneshot::Sender<Result<Committed, StoreError>>,
}

/// The queue and lanes of one store (shared by its clones).
#[derive(Debug)]
pub(crate) struct Group {
    queue: Mutex<VecDeque<Queued>>,
    lanes: Arc<Semaphore>,
    /// How many batches of each size were sent: `sizes[n - 1]` for size `n`.
    sizes: Mutex<[u64; MOST]>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("workflow_id", &self.workflow_id)
            .finish_non_exhaustive()
    }
}

impl Group {
    /// A group commit with `lanes` batches in flight at most.
    pub(crate) fn new(lanes: usize) -> Self {
        Self {
            queue: Mutex::default(),
            lanes: Arc::new(Semaphore::new(lanes)),
            sizes: Mutex::new([0; MOST]),
        }
    }

    /// Commits one step with whatever else is queued when a lane is free.
    ///
    /// # Errors
    /// As `Store::commit_step`.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        store: &Store,
        workflow_id: Uuid,
        item: Item,
    ) -> Result<Committed, StoreError> {
        let (answer, mut answered) = oneshot::channel();
        self.lock_queue().push_back(Queued {
            workflow_id,
            item,
            answer,
        });
        loop {
            tokio::select! {
                biased;
                result = &mut answered => return unanswered(result),
                lane = Arc::clone(&self.lanes).acquire_owned() => {
                    let lane = lane.map_err(|_| decode_error("group commit: lanes closed"))?;
                    let batch = self.take();
                    if batch.is_empty() {
                        // Ours is in a batch already on its way.
                        drop(lane);
                        return unanswered(answered.await);
                    }
                    let group = Arc::clone(self);
                    let store = store.clone();
                    tokio::spawn(async move {
                        group.send(&store, batch).await;
                        drop(lane);
                    });
                    // Ours went with it, or waits further back in the queue for a lane.
                }
            }
        }
    }

    /// How many batches of each size this store sent so far (a commit sent again alone
    /// after its batch failed counts again, as a batch of one): `(size, batches)`, sizes
    /// with none left out.
    pub(crate) fn batch_sizes(&self) -> Vec<(usize, u64)> {
        let sizes = *self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        (1..=MOST)
            .zip(sizes)
            .filter(|&(_, batches)| batches > 0)
            .collect()
    }

    fn count(&self, size: usize) {
        self.sizes.lock().unwrap_or_else(PoisonError::into_inner)[size - 1] += 1;
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Vec<Queued> {
        let mut queue = self.lock_queue();
        let n = queue.len().min(MOST);
        queue.drain(..n).collect()
    }

    /// Sends one batch and answers each of its commits; a batch that fails as a whole is
    /// sent again one commit at a time.
    async fn send(&self, store: &Store, batch: Vec<Queued>) {
        self.count(batch.len());
        let sent = write(store, &batch).await;
        match sent {
            Ok(results) => {
                for (queued, result) in batch.into_iter().zip(results) {
                    let _ = queued.answer.send(result);
                }
            }
            Err(error) if batch.len() == 1 => {
                let queued = batch.into_iter().next().expect("one");
                let _ = queued.answer.send(Err(error));
            }
            Err(error) => {
                tracing::debug!(%error, commits = batch.len(), "group commit failed as a whole: each commit alone");
                for queued in batch {
                    self.count(1);
                    let alone = std::slice::from_ref(&queued);
                    let result = match write(store, alone).await {
                        Ok(results) => results
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| Err(decode_error("group commit: no answer"))),
                        Err(error) => Err(error),
                    };
                    let _ = queued.answer.send(result);
                }
            }
        }
    }
}

/// Writes `batch` in one transaction: each commit's own outcome, in order, or `Err` when
/// the batch failed as a whole (nothing of it written, as far as this process can tell).
async fn write(
    store: &Store,
    batch: &[Queued],
) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
    match store.backend() {
        Backend::Postgres(pool) => {
            let params: Vec<&str> = batch
                .iter()
                .filter_map(|q| match &q.item {
                    Item::Postgres(params) => Some(params.as_str()),
                    Item::Sqlite(_) => None,
                })
                .collect();
            let rows = call(&store.hot, pool, &params).await?;
            if rows.len() != batch.len() {
                return Err(decode_error(format!(
                    "group commit: {} answers for {} commits",
                    rows.len(),
                    batch.len()
                )));
            }
            Ok(batch
                .iter()
                .zip(rows)
                .map(|(q, row)| row.into_result(q.workflow_id))
                .collect())
        }
        Backend::Sqlite(pool) => {
            let commits: Vec<&SqliteCommit> = batch
                .iter()
                .filter_map(|q| match &q.item {
                    Item::Sqlite(commit) => Some(&**commit),
                    Item::Postgres(_) => None,
                })
                .collect();
            write_sqlite_batch(pool, &commits).await
        }
    }
}

/// SQLite: one `BEGIN IMMEDIATE` … `COMMIT`, each step inside a savepoint of its own, rolled
/// back to if the step fails (a lost lease writes nothing anyway).
async fn write_sqlite_batch(
    pool: &SqlitePool,
    commits: &[&SqliteCommit],
) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
    let mut tx = pool.begin_with(SQLITE_BEGIN).await?;
    let mut results = Vec::with_capacity(commits.len());
    for commit in commits {
        if commits.len() == 1 {
            results.push(write_sqlite(&mut tx, commit).await);
            continue;
        }
        sqlx::query("SAVEPOINT step").execute(&mut *tx).await?;
        let result = write_sqlite(&mut tx, commit).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO step").execute(&mut *tx).await?;
        }
        sqlx::query("RELEASE step").execute(&mut *tx).await?;
        results.push(result);
    }
    if results.iter().all(Result::is_err) {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    tracing::trace!(commits = commits.len(), "sqlite group commit");
    Ok(results)
}

/// The answer, or the failure of a batch task that ended without one (a panic).
fn unanswered(
    result: Result<Result<Committed, StoreError>, oneshot::error::RecvError>,
) -> Result<Committed, StoreError> {
    result.unwrap_or_else(|_| {
        Err(decode_error(
            "group commit: the batch ended without an answer",
        ))
    })
}

/// One call of `finflow_commit_steps` with `params` (JSON objects) as its batch, on a kept
/// connection.
pub(crate) async fn call(
    hot: &Arc<Hot>,
    pool: &PgPool,
    params: &[&str],
) -> Result<Vec<CommitRow>, StoreError> {
    let mut conn = hot.take(pool).await?;
    let rows = call_on(&mut conn, params).await?;
    conn.keep();
    Ok(rows)
}

/// One call of `finflow_commit_steps` on `conn` (inside the caller's transaction, if any).
pub(crate) async fn call_on(
    conn: &mut sqlx::PgConnection,
    params: &[&str],
) -> Result<Vec<CommitRow>, StoreError> {
    let mut batch = String::with_capacity(params.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
    batch.push('[');
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            batch.push(',');
        }
        batch.push_str(p);
    }
    batch.push(']');
    let rows: Vec<CommitRow> = sqlx::query_as(
        "SELECT result, new_version, journal_seq, stored_next_run_at, pending_events \
         FROM finflow_commit_steps($1::text::jsonb) ORDER BY idx",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows)
}

/// What `finflow_commit_steps` returns for one commit.
#[derive(sqlx::FromRow)]
pub(crate) struct CommitRow {
    result: String,
    new_version: Option<i64>,
    journal_seq: Option<i32>,
    stored_next_run_at: Option<DateTime<Utc>>,
    pending_events: Option<Vec<i64>>,
}

impl CommitRow {
    pub(crate) fn into_result(self, workflow_id: Uuid) -> Result<Committed, StoreError> {
        match self.result.as_str() {
            "ok" => Ok(Committed {
                version: self
                    .new_version
                    .ok_or_else(|| decode_error("commit: no version"))?,
                seq: self
                    .journal_seq
                    .ok_or_else(|| decode_error("commit: no journal seq"))?,
                next_run_at: self.stored_next_run_at,
                pending_events: self.pending_events.unwrap_or_default(),
            }),
            "lease_lost" => Err(StoreError::LeaseLost(workflow_id)),
            "not_found" => Err(StoreError::NotFound(workflow_id)),
            other => Err(decode_error(format!("commit: unknown result {other:?}"))),
        }
    }
}
