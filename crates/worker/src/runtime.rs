//! The worker runtime: how due workflows reach the [`Executor`].
//!
//! Two paths, both ending in [`Executor::advance`], which claims the workflow in the store
//! (so whichever path comes first wins and the other finds nothing to do):
//!
//! - **apalis wake-ups.** Every change that makes a workflow due also inserts a tiny apalis
//!   task (`{"workflow_id"}`) in the same transaction. The worker consumes queue
//!   [`store::WAKEUP_QUEUE`] with `LISTEN/NOTIFY` on PostgreSQL and a short poll on SQLite,
//!   so an idle fleet picks up new work in milliseconds. Handlers always succeed from
//!   apalis's point of view: apalis retries failed tasks at once, with no backoff, and our
//!   retries live in the workflow's own state.
//! - **The in-process hand-over (SQLite).** What this process's own store makes due (a
//!   submit, a callback its receiver stored, events left waiting by a commit) reaches the
//!   worker at once through [`store::Store::due_now`], instead of at apalis's next 100 ms
//!   poll of the SQLite queue. On PostgreSQL `LISTEN/NOTIFY` already wakes every worker of
//!   the fleet within milliseconds, and a second path would only add claims that find the
//!   workflow taken.
//! - **The due scan.** Every `poll_interval`, [`store::Store::claim_due`] takes workflows
//!   whose `next_run_at` has come: wake-ups scheduled in the future (apalis's notifications
//!   only cover tasks due now), workflows whose holder died (its lease expired), anything a
//!   lost task would have left behind.
//!
//! Finished apalis tasks, the registrations of workers gone for a day, and lifecycle events
//! past their retention (`[events] retain`) are pruned periodically. With `[[webhooks]]`
//! configured, a deliverer (`crate::webhooks`) pushes the lifecycle events to them. On shutdown, fetching stops and in-flight
//! steps finish; a step cut short is reconciled by the next worker once its lease expires.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use chrono::Utc;
use store::{Backend, WAKEUP_QUEUE, Wakeup};
use tokio::sync::{Semaphore, watch};

use crate::executor::{Advanced, Executor};

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

async fn handle_wakeup(wakeup: Wakeup, executor: Data<Arc<Gate>>) -> Result<(), BoxDynError> {
    executor.advance(wakeup.workflow_id).await;
    Ok(())
}

/// The executor behind a concurrency limit shared by both paths.
struct Gate {
    executor: Executor,
    permits: Semaphore,
}

impl Gate {
    async fn advance(&self, id: uuid::Uuid) {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        match self.executor.advance(id).await {
            Ok(Advanced::LeaseLost) => {
                tracing::info!(workflow.id = %id, "workflow taken over by another worker");
            }
            Ok(_) => {}
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
    let gate = Arc::new(Gate {
        executor,
        permits: Semaphore::new(options.concurrency.max(1)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let scan = tokio::spawn(due_scan(gate.clone(), options.clone(), stop_rx.clone()));
    let handed = matches!(store.backend(), Backend::Sqlite(_))
        .then(|| tokio::spawn(hand_over(gate.clone(), stop_rx.clone())));
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
    let late = tokio::spawn(late_commands_loop(
        store.clone(),
        worker_id.clone(),
        stop_rx.clone(),
    ));

    let mut stopped = stop_rx.clone();
    let signal = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        Ok::<(), std::io::Error>(())
    };
    let batch = options.concurrency.max(1);
    let apalis = match store.backend() {
        Backend::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(WAKEUP_QUEUE)
                .batch_size(batch)
                .heartbeat_interval(Duration::from_secs(3))
                .missed_heartbeats(3);
            let storage = apalis_postgres::PostgresStorage::<Wakeup>::new(pool)
                .with_config(config)
                .with_pubsub();
            let worker = WorkerBuilder::new(worker_id.clone())
                .backend(storage)
                .data(gate.clone())
                .build(handle_wakeup);
            tokio::spawn(async move { worker.run_until(signal).await })
        }
        Backend::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(WAKEUP_QUEUE)
                .batch_size(batch)
                .heartbeat_interval(Duration::from_secs(3))
                .missed_heartbeats(3);
            let storage = apalis_sqlite::SqliteStorage::<Wakeup>::new(pool)
                .with_config(config)
                .poll_with_interval(Duration::from_millis(100));
            let worker = WorkerBuilder::new(worker_id.clone())
                .backend(storage)
                .data(gate.clone())
                .build(handle_wakeup);
            tokio::spawn(async move { worker.run_until(signal).await })
        }
    };
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
    if let Some(handed) = handed {
        let _ = handed.await;
    }
    // Wait for in-flight steps: every permit back means nothing is running.
    let permits = u32::try_from(options.concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(30), gate.permits.acquire_many(permits)).await;
    match tokio::time::timeout(Duration::from_secs(10), apalis).await {
        Ok(Ok(Err(error))) => {
            tracing::warn!(error.message = %error, "apalis worker stopped with an error")
        }
        Ok(_) => {}
        Err(_) => tracing::warn!("apalis worker did not stop in time"),
    }
    Ok(())
}

/// Advances what this process's store hands over as soon as it is made due.
async fn hand_over(gate: Arc<Gate>, mut stop: watch::Receiver<bool>) {
    let mut due = gate.executor.store().due_now();
    loop {
        let id = tokio::select! {
            id = due.recv() => id,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match id {
            Ok(id) => {
                let gate = gate.clone();
                tokio::spawn(async move { gate.advance(id).await });
            }
            // Hints dropped for a slow listener: the wake-ups and the due scan still come.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Claims due workflows every `poll_interval` and advances them.
async fn due_scan(gate: Arc<Gate>, options: RuntimeOptions, mut stop: watch::Receiver<bool>) {
    let store = gate.executor.store().clone();
    let worker_id = gate.executor.worker_id().to_owned();
    let limit = u32::try_from(options.concurrency.max(1)).unwrap_or(u32::MAX);
    let mut tick = tokio::time::interval(options.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        // Only claim what there is room to run now.
        let free = u32::try_from(gate.permits.available_permits())
            .unwrap_or(0)
            .min(limit);
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
                    tokio::spawn(async move {
                        let id = claimed.workflow.id;
                        let Ok(_permit) = gate.permits.acquire().await else {
                            return;
                        };
                        if let Err(error) = gate.executor.advance_claimed(claimed).await {
                            tracing::error!(workflow.id = %id, error.message = %error, "advancing failed");
                        }
                    });
                }
            }
            Err(error) => tracing::warn!(error.message = %error, "due scan failed"),
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match store.answer_late_commands(&worker_id).await {
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

/// Removes finished wake-up tasks older than ten minutes, and events older than
/// `events_retain`, every minute.
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
