//! Group commit: the statements of the step path that a process makes at about the same
//! moment are written together, in one transaction, each with its own outcome. Three kinds
//! go this way: step commits, claims and stored callbacks (the receiver answers Finfra only
//! once its callback's batch committed). On PostgreSQL each kind has its own queue and
//! lane: [`Commits`] (one call of `finflow_commit_steps`, migration 0016), [`Claims`] (one
//! statement claiming every workflow asked for), [`Callbacks`] (one call of
//! `finflow_record_callbacks`, 0016). On SQLite, which has one writer and an `fsync` per
//! transaction, the three kinds share one queue and one lane ([`SqliteWrites`]): whatever is
//! queued goes in one `BEGIN IMMEDIATE` … `COMMIT`, each write inside a savepoint of its own.
//!
//! There is no timer and no task of its own. A request joins its kind's queue and waits for
//! its answer; whenever the kind's lane is free, a waiting request takes everything queued
//! (up to [`MOST`]) and sends it as one batch, after letting the process's tasks ready to
//! run go first (they may be about to join it). With the lane idle a request goes at once,
//! alone: one round trip, as before. Under load, requests queue while a batch is in the
//! database, and the batch's task, once it has answered its own, sends everything queued as
//! the next batch at once, keeping the lane until the queue is empty: the busier the
//! process, the fewer transactions per step. One batch of a kind in flight at a time, not
//! two: two let a batch go while the other was in the database, but halved the batches, and
//! under load the server spent more on two small ones than the wait for one large one costs
//! (the README's "One batch in flight"). A batch runs in a task of its own, so a caller that
//! gives up waiting (its step was cancelled) does not cut off the others' batch. Each lane
//! counts how long its batches were on their way ([`Group::busy`], `Store::lanes_busy`): the
//! share of the time it was busy, which tells whether steps wait for the lane.
//!
//! Each request of a batch is told its own outcome: a step commit is committed, or told
//! `LeaseLost`/`NotFound` with nothing of it written while the others are. A batch that
//! fails as a whole (a constraint one step broke, a deadlock, a dropped connection) wrote
//! nothing; each of its requests is then sent again alone, and only one that fails alone
//! fails. Whether the database committed a batch whose answer was lost is unknown to the
//! process, as for a single statement: sent again, the step commits that did land find their
//! version moved on and are told `LeaseLost`, which the worker handles as a lost lease (it
//! stops; the workflow is taken up again from what was stored), and claims that did land
//! find their workflows leased (`None`) until the lease ends. The README argues the crash
//! cases.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use crate::claim::{Claimed, claim_many_pg, claim_one_sqlite};
use crate::commit::{Committed, SqliteCommit, write_sqlite};
use crate::error::{StoreError, decode_error};
use crate::hot::Hot;
use crate::inbox::{Recorded, StoredCallback, record_sqlite};
use crate::tx::{SQLITE_BEGIN, SqliteSync};
use crate::{Backend, Store};

/// The most requests in one batch.
pub(crate) const MOST: usize = 32;

/// A kind of request that can be written in batches.
pub(crate) trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;

    /// Writes `items` in one transaction: each one's own outcome, in order, or `Err` when
    /// the batch failed as a whole (nothing of it written, as far as this process can tell).
    fn write(
        store: &Store,
        items: &[&Self::Item],
    ) -> impl Future<Output = Result<Vec<Result<Self::Output, StoreError>>, StoreError>> + Send;
}

/// One request waiting for its batch, and where its answer goes.
struct Queued<B: Batch> {
    item: B::Item,
    answer: oneshot::Sender<Result<B::Output, StoreError>>,
}

/// The queue and lane of one kind of request of one store (shared by its clones).
pub(crate) struct Group<B: Batch> {
    queue: Mutex<VecDeque<Queued<B>>>,
    /// One permit: the batch in flight.
    lane: Arc<Semaphore>,
    /// How many batches of each size were sent: `sizes[n - 1]` for size `n`.
    sizes: Mutex<[u64; MOST]>,
    /// How long the batches were on their way, in all (nanoseconds): see [`Group::busy`].
    busy: AtomicU64,
}

impl<B: Batch> std::fmt::Debug for Group<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

impl<B: Batch> Group<B> {
    /// A group with an empty queue and its lane free.
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::default(),
            lane: Arc::new(Semaphore::new(1)),
            sizes: Mutex::new([0; MOST]),
            busy: AtomicU64::new(0),
        }
    }

    /// Writes `item` with whatever else is queued when the lane is free.
    ///
    /// # Errors
    /// As the store call it serves.
    pub(crate) async fn run(
        self: &Arc<Self>,
        store: &Store,
        item: B::Item,
    ) -> Result<B::Output, StoreError> {
        let (answer, mut answered) = oneshot::channel();
        self.lock_queue().push_back(Queued { item, answer });
        loop {
            tokio::select! {
                biased;
                result = &mut answered => return unanswered(result),
                lane = Arc::clone(&self.lane).acquire_owned() => {
                    let lane = lane.map_err(|_| decode_error("group commit: lane closed"))?;
                    // The tasks ready to run go first, so that the requests they are about
                    // to make join this batch rather than wait for the next: no timer, a
                    // request alone goes at once.
                    tokio::task::yield_now().await;
                    let batch = self.take();
                    if batch.is_empty() {
                        // Ours is in a batch already on its way.
                        drop(lane);
                        return unanswered(answered.await);
                    }
                    let group = Arc::clone(self);
                    let store = store.clone();
                    tokio::spawn(async move {
                        group.send_while_queued(&store, batch).await;
                        drop(lane);
                    });
                    // Ours went with it, or waits further back in the queue for the lane.
                }
            }
        }
    }

    /// How many batches of each size this store sent so far (a request sent again alone
    /// after its batch failed counts again, as a batch of one): `(size, batches)`, sizes
    /// with none left out.
    pub(crate) fn batch_sizes(&self) -> Vec<(usize, u64)> {
        let sizes = *self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        (1..=MOST)
            .zip(sizes)
            .filter(|&(_, batches)| batches > 0)
            .collect()
    }

    /// How long this kind's batches were on their way so far, in all: from sending each
    /// (a request sent again alone included) to its answer, its wait for a connection (and
    /// on SQLite for the write lock) with it. With one batch in flight at a time, this over
    /// a span of time is the share of it the lane was busy.
    pub(crate) fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy.load(Ordering::Relaxed))
    }

    /// Writes `items` as [`Batch::write`] does, counting the time it takes as busy.
    async fn write(
        &self,
        store: &Store,
        items: &[&B::Item],
    ) -> Result<Vec<Result<B::Output, StoreError>>, StoreError> {
        let started = Instant::now();
        let written = B::write(store, items).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.busy.fetch_add(nanos, Ordering::Relaxed);
        written
    }

    /// Counts a batch of `size` requests (none: nothing).
    pub(crate) fn count(&self, size: usize) {
        if (1..=MOST).contains(&size) {
            self.sizes.lock().unwrap_or_else(PoisonError::into_inner)[size - 1] += 1;
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued<B>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Vec<Queued<B>> {
        let mut queue = self.lock_queue();
        let n = queue.len().min(MOST);
        queue.drain(..n).collect()
    }

    /// Sends `batch`, then whatever queued while it was in the database, batch after batch,
    /// until the queue is empty: the lane goes from one batch's answer to the next batch at
    /// once, in the same task. (Handing the lane to a waiting request instead cost about
    /// 0.9 ms a batch under the bench's load: the answered steps' tasks, the waiting one's
    /// yield and a spawn ran first, and the lane was idle a fifth of the time with steps
    /// queued; the README's "The lane goes on to the next batch".)
    async fn send_while_queued(&self, store: &Store, mut batch: Vec<Queued<B>>) {
        loop {
            self.send(store, batch).await;
            batch = self.take();
            if batch.is_empty() {
                return;
            }
        }
    }

    /// Sends one batch and answers each of its requests; a batch that fails as a whole is
    /// sent again one request at a time.
    async fn send(&self, store: &Store, batch: Vec<Queued<B>>) {
        self.count(batch.len());
        let items: Vec<&B::Item> = batch.iter().map(|q| &q.item).collect();
        let sent = match self.write(store, &items).await {
            Ok(results) if results.len() == items.len() => Ok(results),
            Ok(results) => Err(decode_error(format!(
                "group commit: {} answers for {} requests",
                results.len(),
                items.len()
            ))),
            Err(error) => Err(error),
        };
        drop(items);
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
                tracing::debug!(%error, requests = batch.len(), "group commit failed as a whole: each request alone");
                for queued in batch {
                    self.count(1);
                    let result = match self.write(store, &[&queued.item]).await {
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

/// The answer, or the failure of a batch task that ended without one (a panic).
fn unanswered<T>(
    result: Result<Result<T, StoreError>, oneshot::error::RecvError>,
) -> Result<T, StoreError> {
    result.unwrap_or_else(|_| {
        Err(decode_error(
            "group commit: the batch ended without an answer",
        ))
    })
}

/// Step commits on PostgreSQL (SQLite's go with its other writes: [`SqliteWrites`]).
pub(crate) struct Commits;

/// One step commit: `finflow_commit_step`'s parameters as a JSON object (`commit::Params`).
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) workflow_id: Uuid,
    pub(crate) params: String,
}

impl Batch for Commits {
    type Item = Item;
    type Output = Committed;

    async fn write(
        store: &Store,
        items: &[&Item],
    ) -> Result<Vec<Result<Committed, StoreError>>, StoreError> {
        match store.backend() {
            Backend::Postgres(pool) => {
                let ids = items.iter().map(|item| item.workflow_id);
                let params: Vec<&str> = items.iter().map(|item| item.params.as_str()).collect();
                // A count that differs from the batch's fails it as a whole (`Group::send`).
                let rows = call(&store.hot, pool, &params).await?;
                Ok(ids.zip(rows).map(|(id, row)| row.into_result(id)).collect())
            }
            Backend::Sqlite(_) => Err(on_sqlite()),
        }
    }
}

/// Claims of one workflow each, on PostgreSQL (SQLite's: [`SqliteWrites`]).
pub(crate) struct Claims;

/// One claim: a workflow for a worker, for a lease.
#[derive(Debug)]
pub(crate) struct ClaimRequest {
    pub(crate) workflow_id: Uuid,
    pub(crate) worker_id: String,
    pub(crate) lease: Duration,
}

impl Batch for Claims {
    type Item = ClaimRequest;
    type Output = Option<Claimed>;

    async fn write(
        store: &Store,
        items: &[&ClaimRequest],
    ) -> Result<Vec<Result<Option<Claimed>, StoreError>>, StoreError> {
        // A workflow asked for twice in one batch (two wake-ups) is claimed for the first
        // request; the second finds it held, as it would a moment later.
        let mut first: HashMap<Uuid, usize> = HashMap::with_capacity(items.len());
        let distinct: Vec<&ClaimRequest> = items
            .iter()
            .enumerate()
            .filter(|(i, r)| *first.entry(r.workflow_id).or_insert(*i) == *i)
            .map(|(_, r)| *r)
            .collect();
        let Backend::Postgres(pool) = store.backend() else {
            return Err(on_sqlite());
        };
        let mut conn = store.hot.take(pool).await?;
        let mut claimed: HashMap<Uuid, Claimed> = claim_many_pg(&mut conn, &distinct)
            .await?
            .into_iter()
            .map(|c| (c.workflow.id, c))
            .collect();
        conn.keep();
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(if first.get(&r.workflow_id) == Some(&i) {
                    claimed.remove(&r.workflow_id)
                } else {
                    None
                })
            })
            .collect())
    }
}

/// Stored callbacks, on PostgreSQL (SQLite's: [`SqliteWrites`]).
pub(crate) struct Callbacks;

impl Batch for Callbacks {
    type Item = StoredCallback;
    type Output = Recorded;

    async fn write(
        store: &Store,
        items: &[&StoredCallback],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        match store.backend() {
            Backend::Postgres(pool) => {
                let params = items
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(|e| decode_error(format!("callback: {e}")))?;
                let batch = json_array(params.iter().map(String::as_str));
                let mut conn = store.hot.take(pool).await?;
                let rows: Vec<(i64, bool, Option<Uuid>)> = sqlx::query_as(
                    "SELECT inbox_id, duplicate, woke FROM finflow_record_callbacks($1::text::jsonb) \
                     ORDER BY idx",
                )
                .bind(batch)
                .fetch_all(&mut *conn)
                .await?;
                conn.keep();
                Ok(rows
                    .into_iter()
                    .map(|(inbox_id, duplicate, woke)| {
                        Ok(Recorded {
                            inbox_id,
                            duplicate,
                            woke,
                        })
                    })
                    .collect())
            }
            Backend::Sqlite(_) => Err(on_sqlite()),
        }
    }
}

/// The failure of a PostgreSQL batch asked of a SQLite store: the store routes SQLite's
/// writes to [`SqliteWrites`], so this is a bug.
fn on_sqlite() -> StoreError {
    decode_error("group commit: a PostgreSQL batch on SQLite")
}

/// SQLite's writes of the step path, every kind in one queue: step commits, claims and
/// stored callbacks queued at about the same moment are written in one `BEGIN IMMEDIATE` …
/// `COMMIT`, in the order they came, each inside a savepoint of its own (rolled back to if
/// it fails; a lost lease or a claim that finds its workflow held writes nothing anyway).
/// SQLite has one writer and a transaction costs it an `fsync`: a transaction per kind had
/// the kinds queue for the lock and for an `fsync` each.
pub(crate) struct SqliteWrites;

/// One write of [`SqliteWrites`].
pub(crate) enum SqliteWrite {
    Commit(Box<SqliteCommit>),
    Claim(ClaimRequest),
    Callback(StoredCallback),
}

/// What one [`SqliteWrite`] did.
pub(crate) enum SqliteWritten {
    Committed(Committed),
    /// Boxed: a claimed row is several times the size of the other answers.
    Claimed(Option<Box<Claimed>>),
    Recorded(Recorded),
}

impl SqliteWritten {
    pub(crate) fn committed(self) -> Result<Committed, StoreError> {
        match self {
            Self::Committed(committed) => Ok(committed),
            _ => Err(decode_error(
                "group commit: a step commit answered as another write",
            )),
        }
    }

    pub(crate) fn claimed(self) -> Result<Option<Claimed>, StoreError> {
        match self {
            Self::Claimed(claimed) => Ok(claimed.map(|c| *c)),
            _ => Err(decode_error(
                "group commit: a claim answered as another write",
            )),
        }
    }

    pub(crate) fn recorded(self) -> Result<Recorded, StoreError> {
        match self {
            Self::Recorded(recorded) => Ok(recorded),
            _ => Err(decode_error(
                "group commit: a callback answered as another write",
            )),
        }
    }
}

impl Batch for SqliteWrites {
    type Item = SqliteWrite;
    type Output = SqliteWritten;

    async fn write(
        store: &Store,
        items: &[&SqliteWrite],
    ) -> Result<Vec<Result<SqliteWritten, StoreError>>, StoreError> {
        let Backend::Sqlite(pool) = store.backend() else {
            return Err(decode_error("group commit: a SQLite batch on PostgreSQL"));
        };
        // Each kind's batch sizes, as the store's figures report them.
        let kinds = |f: fn(&SqliteWrite) -> bool| items.iter().filter(|i| f(i)).count();
        store
            .commits
            .count(kinds(|i| matches!(i, SqliteWrite::Commit(_))));
        store
            .claims
            .count(kinds(|i| matches!(i, SqliteWrite::Claim(_))));
        store
            .callbacks
            .count(kinds(|i| matches!(i, SqliteWrite::Callback(_))));

        // Claims alone need not sync the WAL at their commit: the holder's next step commit
        // does (`SqliteSync::Normal`).
        let sync = if items.iter().all(|i| matches!(i, SqliteWrite::Claim(_))) {
            SqliteSync::Normal
        } else {
            SqliteSync::Full
        };
        let (_turn, mut conn) = store.turn_to_write(pool, sync).await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, SQLITE_BEGIN).await?;
        let now = Utc::now();
        let alone = items.len() == 1;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            if !alone {
                sqlx::query("SAVEPOINT write").execute(&mut *tx).await?;
            }
            let result = match item {
                SqliteWrite::Commit(commit) => write_sqlite(&mut tx, commit)
                    .await
                    .map(SqliteWritten::Committed),
                SqliteWrite::Claim(request) => claim_one_sqlite(&mut tx, request, now)
                    .await
                    .map(|claimed| SqliteWritten::Claimed(claimed.map(Box::new))),
                SqliteWrite::Callback(callback) => record_sqlite(&mut tx, callback, now)
                    .await
                    .map(SqliteWritten::Recorded),
            };
            if !alone {
                if result.is_err() {
                    sqlx::query("ROLLBACK TO write").execute(&mut *tx).await?;
                }
                sqlx::query("RELEASE write").execute(&mut *tx).await?;
            }
            results.push(result);
        }
        if results.iter().all(Result::is_err) {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(results)
    }
}

/// The JSON array of `items` (each a JSON text): a batch's one parameter.
fn json_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut array = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(item);
    }
    array.push(']');
    array
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
    let batch = json_array(params.iter().copied());
    let rows: Vec<CommitRow> = sqlx::query_as(
        "SELECT result, new_version, journal_seq, stored_next_run_at, pending_events, \
         kept_events FROM finflow_commit_steps($1::text::jsonb) ORDER BY idx",
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
    kept_events: Option<serde_json::Value>,
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
                kept: match self.kept_events {
                    Some(rows) => crate::inbox::InboxRow::from_json_array(rows)?,
                    None => Vec::new(),
                },
            }),
            "lease_lost" => Err(StoreError::LeaseLost(workflow_id)),
            "not_found" => Err(StoreError::NotFound(workflow_id)),
            other => Err(decode_error(format!("commit: unknown result {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    /// A batch's task is small. The pool's acquisition of a connection may open one (a
    /// future of about 12 KB), and every statement of the step path takes its connection
    /// through it (`Hot::take`): boxed there, the task each batch is sent by, which tokio
    /// copies whole as it moves it into place and again when it ends, is about 1 KB (14 KB
    /// before, in a release build).
    #[tokio::test]
    async fn a_batch_is_sent_by_a_small_task() {
        crate::testing::run(crate::testing::TestBackend::Sqlite, false, sizes).await;
    }

    async fn sizes(db: crate::testing::TestDb) {
        let store = &db.store;
        // Made and dropped, never polled: nothing is sent.
        let sizes = [
            (
                "commits",
                size_of_val(&store.commits.send_while_queued(store, Vec::new())),
            ),
            (
                "claims",
                size_of_val(&store.claims.send_while_queued(store, Vec::new())),
            ),
            (
                "callbacks",
                size_of_val(&store.callbacks.send_while_queued(store, Vec::new())),
            ),
        ];
        for (lane, size) in sizes {
            assert!(
                size <= 2_048,
                "a batch of {lane} is sent by a task of {size} bytes"
            );
        }
    }
}
