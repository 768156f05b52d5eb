//! The worker runtime: how due workflows reach the [`Executor`].
//!
//! `workflows.next_run_at` is the truth; no job row is written per wake-up. Every path ends
//! in a claim of the workflow in the store (so whichever comes first wins and the others
//! find nothing to do):
//!
//! - **Hints, run by apalis.** finflow's apalis worker consumes a stream of "advance
//!   workflow X" tasks ([`store::Wakeup`]) fed by the in-process hand-over of what this
//!   process's store makes due ([`store::Store::due_now`]: a callback its receiver stored, a
//!   step released with events waiting, its own submits), and on PostgreSQL by a `LISTEN
//!   finflow_due` connection for what other processes make due (`store::DueListener`: the
//!   hints of non-worker processes such as `finflow submit`, and the few a worker sends for
//!   workflows that may be another's, such as those an announcement wakes; a worker's own
//!   hints need no `NOTIFY`, migration 0018).
//!   apalis gives the worker its lifecycle and graceful shutdown; handlers always succeed
//!   from its point of view, since retries live in the workflow's own state.
//! - **The due scan.** Every `poll_interval`, [`store::Store::claim_due`] claims workflows
//!   whose `next_run_at` has come, straight from `workflows` (`FOR UPDATE SKIP LOCKED`):
//!   work scheduled for later, workflows whose holder died (its lease expired), hints lost
//!   to a dropped connection, SQLite work made due by another process (a `finflow submit`).
//!
//! Both paths share the process's `concurrency` handler slots ([`crate::slots`]), which go
//! to work under way (a workflow that parked here and was woken, or one the due scan
//! claimed) before workflows new to this process.
//!
//! Finished apalis tasks of earlier builds, stale worker registrations, and lifecycle events
//! past their retention (`[events] retain`) are pruned periodically. With `[[webhooks]]`
//! configured, a deliverer (`crate::webhooks`) pushes the lifecycle events to them. On
//! shutdown, fetching stops and in-flight steps finish; a step cut short is reconciled by
//! the next worker once its lease expires.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt as _, StreamExt as _};
use store::{Backend, Wakeup};
use tokio::sync::{Mutex, mpsc, watch};
use uuid::Uuid;

use crate::executor::{Advanced, Executor};
use crate::slots::{Class, Slots};

/// How a worker process takes on work.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Workflows advanced at once by this process.
    pub concurrency: usize,
    /// How often the due scan runs.
    pub poll_interval: Duration,
    /// `[reconcile]`: start a reconciliation run every period, looking back a window.
    pub reconcile_every: Option<(Duration, Option<Duration>)>,
    /// Outbound webhooks this process delivers to (with the rest of the fleet).
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// How long lifecycle events are kept; `None`: for ever.
    pub events_retain: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll_interval: Duration::from_millis(250),
            reconcile_every: None,
            webhooks: Vec::new(),
            events_retain: None,
        }
    }
}

/// A unique worker identity: host, process id and a random suffix (a worker restarted
/// with the same pid must not look like its dead predecessor).
pub fn worker_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("finflow-{host}-{}-{}", std::process::id(), &suffix[..6])
}

async fn handle_wakeup(wakeup: Wakeup, gate: Data<Arc<Gate>>) -> Result<(), BoxDynError> {
    gate.advance(wakeup.workflow_id).await;
    Ok(())
}

/// The executor behind a concurrency limit shared by both paths: the handler slots
/// ([`Slots`]), given to work under way before new work.
struct Gate {
    executor: Executor,
    slots: Arc<Slots>,
    /// Workflows this process advanced until they parked: a hint for one of them resumes
    /// work under way.
    parked: std::sync::Mutex<HashSet<Uuid>>,
}

/// The most parked workflows remembered; past it the set starts again (their hints then
/// queue as new work until they park here again).
const PARKED_REMEMBERED: usize = 200_000;

impl Gate {
    fn new(executor: Executor, concurrency: usize) -> Self {
        Self {
            executor,
            slots: Slots::new(concurrency),
            parked: std::sync::Mutex::new(HashSet::new()),
        }
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn advance(&self, id: uuid::Uuid) {
        // Advancing here already: its own releasing commit sees what this hint is for.
        if self.executor.is_advancing(id) {
            return;
        }
        let class = if self.parked().contains(&id) {
            Class::UnderWay
        } else {
            Class::New
        };
        let _slot = self.slots.acquire(class).await;
        // Boxed: a hint waiting for its slot holds a few bytes, not the whole step's future
        // (thousands of them wait under a burst of submissions).
        let advanced = Box::pin(self.executor.advance(id)).await;
        self.remember(id, &advanced);
    }

    /// Runs a workflow the due scan claimed: under way already (its lease runs).
    async fn advance_claimed(&self, claimed: store::Claimed) {
        let id = claimed.workflow.id;
        let _slot = self.slots.acquire(Class::UnderWay).await;
        let advanced = Box::pin(self.executor.advance_claimed(claimed)).await;
        self.remember(id, &advanced);
    }

    /// Notes whether `id` parked here, and logs what went wrong.
    fn remember(&self, id: Uuid, advanced: &Result<Advanced, crate::executor::ExecutorError>) {
        match advanced {
            Ok(Advanced::Parked) => {
                let mut parked = self.parked();
                if parked.len() >= PARKED_REMEMBERED {
                    parked.clear();
                }
                parked.insert(id);
            }
            // A stale hint: whatever it was, it still is.
            Ok(Advanced::NotDue) => {}
            Ok(Advanced::Finished) => {
                self.parked().remove(&id);
            }
            Ok(Advanced::LeaseLost) => {
                self.parked().remove(&id);
                tracing::info!(workflow.id = %id, "workflow taken over by another worker");
            }
            Err(error) => {
                // The workflow keeps its last commit; its lease expiry brings it back.
                tracing::error!(workflow.id = %id, error.message = %error, "advancing failed");
            }
        }
    }
}

/// Runs the worker until `shutdown` resolves.
///
/// # Errors
/// apalis's worker stopped with an error.
pub async fn run(
    executor: Executor,
    options: RuntimeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = executor.store().clone();
    let worker_id = executor.worker_id().to_owned();
    let gate = Arc::new(Gate::new(executor, options.concurrency));
    let (stop_tx, stop_rx) = watch::channel(false);

    let scan = tokio::spawn(due_scan(gate.clone(), options.clone(), stop_rx.clone()));
    // The hints, for apalis: what this process's store makes due, handed over in memory
    // after its commit; on PostgreSQL also what other processes make due (`finflow_due`).
    // (A store that is not a worker's also notifies its own: those come by the listener.)
    let (hints_tx, hints_rx) = mpsc::channel::<Uuid>(HINTS_BUFFER);
    let mut hints = Vec::new();
    if store.hands_over_due() {
        hints.push(tokio::spawn(hand_over(
            store.clone(),
            hints_tx.clone(),
            stop_rx.clone(),
        )));
    }
    if let Backend::Postgres(_) = store.backend() {
        hints.push(tokio::spawn(listen_due(
            store.clone(),
            hints_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(hints_tx);
    let prune = tokio::spawn(prune_loop(
        store.clone(),
        options.events_retain,
        stop_rx.clone(),
    ));
    let deliverer = if options.webhooks.is_empty() {
        None
    } else {
        let deliverer =
            crate::webhooks::Deliverer::new(store.clone(), options.webhooks.clone(), &worker_id)?;
        Some(tokio::spawn(deliverer.run(stop_rx.clone())))
    };
    let reconcile = options.reconcile_every.map(|(every, window)| {
        tokio::spawn(crate::reconcile::schedule(
            store.clone(),
            gate.executor.engine().clone(),
            every,
            window,
            stop_rx.clone(),
        ))
    });
    let alive = tokio::spawn(heartbeat_loop(
        store.clone(),
        worker_id.clone(),
        stop_rx.clone(),
    ));
    let late = tokio::spawn(late_commands_loop(
        store.clone(),
        worker_id.clone(),
        stop_rx.clone(),
    ));

    let apalis = start_apalis(&worker_id, gate.clone(), hints_rx, stop_rx.clone())?;
    tracing::info!(worker.id = %worker_id, "worker started");
    shutdown.await;
    tracing::info!(worker.id = %worker_id, "shutting down: finishing in-flight steps");
    let _ = stop_tx.send(true);
    let _ = scan.await;
    let _ = prune.await;
    if let Some(reconcile) = reconcile {
        let _ = reconcile.await;
    }
    if let Some(deliverer) = deliverer {
        let _ = deliverer.await;
    }
    let _ = late.await;
    let _ = alive.await;
    for source in hints {
        let _ = source.await;
    }
    // Wait for in-flight steps: every slot back means nothing is running.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while !gate.slots.idle() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match tokio::time::timeout(Duration::from_secs(10), apalis).await {
        Ok(Ok(Err(error))) => {
            tracing::warn!(error.message = %error, "apalis worker stopped with an error")
        }
        Ok(_) => {}
        Err(_) => tracing::warn!("apalis worker did not stop in time"),
    }
    Ok(())
}

/// Starts finflow's apalis worker on the hints, until `stop`. (Not `async`: the backend's
/// types then stay out of the caller's future, whose `Send` rustc could not prove.)
fn start_apalis(
    worker_id: &str,
    gate: Arc<Gate>,
    hints: mpsc::Receiver<Uuid>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), WorkerError>>> {
    let signal = async move {
        let _ = stop.wait_for(|stop| *stop).await;
        Ok::<(), std::io::Error>(())
    };
    let backend = BackendBuilder::new()
        .database(Arc::new(Mutex::new(hints)))
        .fetcher(hint_tasks)
        // Nothing is pushed through apalis: hints come from the store.
        .sink(|_, _| futures_util::sink::drain().sink_map_err(never))
        .build()?;
    let worker = WorkerBuilder::new(worker_id.to_owned())
        .backend(backend)
        .data(gate)
        .build(handle_wakeup);
    Ok(tokio::spawn(worker.run_until(signal)))
}

/// The longest interval of SQLite's due scan.
const SQLITE_SCAN: Duration = Duration::from_millis(100);

/// Hints waiting for a free handler before the listener waits too.
const HINTS_BUFFER: usize = 1024;

/// The hints as apalis tasks, for as long as the hint sources run.
type Hints = Arc<Mutex<mpsc::Receiver<Uuid>>>;

fn hint_tasks(
    hints: &mut Hints,
    _config: &(),
    _worker: &WorkerContext,
) -> futures_util::stream::BoxStream<'static, Result<Option<Task<Wakeup>>, BoxDynError>> {
    futures_util::stream::unfold(hints.clone(), |hints| async move {
        let workflow_id = hints.lock().await.recv().await?;
        Some((Ok(Some(Task::new(Wakeup { workflow_id }))), hints))
    })
    .boxed()
}

fn never(never: std::convert::Infallible) -> BoxDynError {
    match never {}
}

/// Passes on what this process's store makes due, as soon as it has committed.
async fn hand_over(
    store: store::Store,
    hints: mpsc::Sender<Uuid>,
    mut stop: watch::Receiver<bool>,
) {
    let mut due = store.due_now();
    loop {
        let id = tokio::select! {
            id = due.recv() => id,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match id {
            Ok(id) => {
                if hints.send(id).await.is_err() {
                    return;
                }
            }
            // Hints dropped for a slow listener: the due scan still comes.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// PostgreSQL: passes on the `finflow_due` hints this worker answers, listening again after
/// a lost connection (the due scan covers what was missed meanwhile).
async fn listen_due(
    store: store::Store,
    hints: mpsc::Sender<Uuid>,
    mut stop: watch::Receiver<bool>,
) {
    let closed = || store.pg_pool().is_none_or(sqlx::Pool::is_closed);
    loop {
        let listening = tokio::select! {
            listening = store.listen_due() => listening,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let mut listener = match listening {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(_) if closed() => return,
            Err(error) => {
                tracing::warn!(error.message = %error, "cannot listen to due hints; the due scan still runs; trying again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let heard = tokio::select! {
                heard = listener.next() => heard,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            match heard {
                Ok(id) => {
                    if hints.send(id).await.is_err() {
                        return;
                    }
                }
                Err(_) if closed() => return,
                Err(error) => {
                    tracing::warn!(error.message = %error, "lost the due hints; listening again");
                    break;
                }
            }
        }
    }
}

/// Claims due workflows every `poll_interval` and advances them.
async fn due_scan(gate: Arc<Gate>, options: RuntimeOptions, mut stop: watch::Receiver<bool>) {
    let store = gate.executor.store().clone();
    let worker_id = gate.executor.worker_id().to_owned();
    let limit = u32::try_from(options.concurrency.max(1)).unwrap_or(u32::MAX);
    // SQLite has no notifications between processes: what another process made due (a
    // `finflow submit`) is found by this scan, at most 100 ms later.
    let every = match store.backend() {
        Backend::Postgres(_) => options.poll_interval,
        Backend::Sqlite(_) => options.poll_interval.min(SQLITE_SCAN),
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        // Only claim what there is room to run now.
        let free = u32::try_from(gate.slots.free()).unwrap_or(0).min(limit);
        if free == 0 {
            continue;
        }
        match store
            .claim_due(&worker_id, free, gate.executor.lease())
            .await
        {
            Ok(claimed) => {
                for claimed in claimed {
                    let gate = gate.clone();
                    tokio::spawn(async move { gate.advance_claimed(claimed).await });
                }
            }
            Err(error) => tracing::warn!(error.message = %error, "due scan failed"),
        }
    }
}

/// Every few seconds, records that this worker is alive (the fleet `finflow status` lists).
async fn heartbeat_loop(store: store::Store, worker_id: String, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = store.heartbeat(&worker_id).await {
            tracing::warn!(error.message = %error, "recording this worker's heartbeat failed");
        }
    }
}

/// Every few seconds, answers operators' commands that reached a workflow after it
/// finished: journaled `command_refused` with the reason, none left unprocessed.
async fn late_commands_loop(
    store: store::Store,
    worker_id: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut looks = LateLooks::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let started = Instant::now();
        let since = looks.since(started, Utc::now());
        let answered = store.answer_late_commands(&worker_id, since).await;
        if let Ok(n) = answered {
            looks.looked(since.is_none(), started, n);
        }
        match answered {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                commands = n,
                "answered commands that reached finished workflows"
            ),
            Err(error) => {
                tracing::warn!(error.message = %error, "answering late commands failed");
            }
        }
    }
}

/// Which commands a worker's next look for late ones reads: those received in the last day
/// (`store::LATE_COMMANDS_WINDOW`), or all of them: at its first look, hourly, and again
/// while a look at all of them answers as many as one call can.
#[derive(Debug, Default)]
struct LateLooks {
    /// When the last look at all of them that left none behind started.
    all_done: Option<Instant>,
}

impl LateLooks {
    const LOOK_AT_ALL_EVERY: Duration = Duration::from_secs(3600);

    /// `None` (all of them) or the time since which to look, for a look starting `now`.
    fn since(&self, now: Instant, utc_now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.all_done {
            Some(done) if now.duration_since(done) < Self::LOOK_AT_ALL_EVERY => {
                Some(utc_now - store::LATE_COMMANDS_WINDOW)
            }
            _ => None,
        }
    }

    /// A look that started at `started` succeeded, answering `answered`.
    fn looked(&mut self, all: bool, started: Instant, answered: u64) {
        if all && answered < store::LATE_COMMANDS_AT_ONCE {
            self.all_done = Some(started);
        }
    }
}

/// Removes finished wake-up tasks of earlier builds older than ten minutes, and events
/// older than `events_retain`, every minute.
async fn prune_loop(
    store: store::Store,
    events_retain: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let before = Utc::now() - chrono::TimeDelta::minutes(10);
        if let Err(error) = store.prune_wakeups(before).await {
            tracing::warn!(error.message = %error, "pruning wake-ups failed");
        }
        // A live worker refreshes its registration every few seconds; a day without one
        // is a process long gone.
        let gone = Utc::now() - chrono::TimeDelta::days(1);
        if let Err(error) = store.prune_workers(gone).await {
            tracing::warn!(error.message = %error, "pruning apalis worker registrations failed");
        }
        // An indexed range delete, usually of nothing: cheap enough for every worker.
        if let Some(retain) = events_retain {
            let before =
                Utc::now() - chrono::TimeDelta::from_std(retain).unwrap_or(chrono::TimeDelta::MAX);
            if let Err(error) = store.prune_events(before).await {
                tracing::warn!(error.message = %error, "pruning events failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use finfra_api::auth::Credentials;
    use finfra_api::{ClientConfig, FinfraClient};
    use store::testing::{TestBackend, run as with_db};
    use workflow::{Engine, Registry};

    use super::*;

    /// A worker looks at all late commands first, again at once while such a look answers a
    /// full batch, then at the last day's, and at all of them again an hour after.
    #[test]
    fn late_looks_read_all_commands_first_and_hourly() {
        let utc = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::days(10);
        let day = Some(utc - store::LATE_COMMANDS_WINDOW);
        let start = Instant::now();
        let mut looks = LateLooks::default();
        // Each look as the loop makes it: `since`, then `looked` with what it answered.
        let mut look = |secs, answered| {
            let at = start + Duration::from_secs(secs);
            let since = looks.since(at, utc);
            looks.looked(since.is_none(), at, answered);
            since
        };
        assert_eq!(
            look(0, store::LATE_COMMANDS_AT_ONCE),
            None,
            "all of them first"
        );
        assert_eq!(look(5, 3), None, "again: the first answered a full batch");
        assert_eq!(look(10, 0), day, "then the last day's");
        assert_eq!(look(3604, 0), day);
        assert_eq!(look(3605, 0), None, "all of them an hour after the last");
        assert_eq!(look(3610, 0), day);
    }

    /// Under a burst of submissions thousands of hints wait for a slot at once: each must
    /// hold its id, not the future of the step it will run (tens of KB, built only once
    /// the slot is there).
    #[tokio::test]
    async fn a_hint_waiting_for_its_slot_holds_little() {
        with_db(TestBackend::Sqlite, true, |db| async move {
            let client = FinfraClient::new(ClientConfig::new(
                "http://127.0.0.1:9".parse().expect("url"),
                Credentials::new("id", "secret"),
            ))
            .expect("client");
            let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
            let engine = Engine::new(Registry::load_dir(&workflows).expect("definitions"));
            let executor = Executor::new(
                db.store.clone(),
                client,
                engine,
                "size-test",
                Duration::from_secs(10),
                "size-test",
            );
            let step = std::mem::size_of_val(&executor.advance(Uuid::nil()));
            let gate = Gate::new(executor, 1);
            let waiting = std::mem::size_of_val(&gate.advance(Uuid::nil()));
            assert!(
                waiting <= 512 && waiting * 4 < step,
                "a waiting hint takes {waiting} bytes, a step's future {step}"
            );
        })
        .await;
    }
}
