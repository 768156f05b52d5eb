//! The measurements that need an engine running: one engine in this process against an
//! in-process zero-delay sandbox (`worker::inprocess`, shared with `finflow demo`), or, for
//! `--in-flight`, a `finflow run` child process against the sandbox here
//! (`worker_process`).

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use finfra_sandbox::SandboxConfig;
use store::{NewWorkflow, Store};
use uuid::Uuid;

use super::inputs::{Inputs, KIND};
use super::memory::Rss;
use super::stats;
use super::worker_process::WorkerProcess;
use worker::inprocess::{EngineOptions, InProcess, stopped};

/// The state an `--in-flight` onboarding parks in: its borrower's KYC review never ends.
const PARKED_STATE: &str = "await_user_verified";

/// How many of the oldest workflows not yet settled each poll of a wait reads. They settle
/// about in submit order, so a window of them shows the progress; reading every id of a run
/// at every poll was a load on the measured server that grew with the run (3,000 ids read
/// every 100 ms: 7 % of the server's time in statements during a run of 3,000 onboardings).
const POLL_WINDOW: usize = 256;

/// Why [`Harness::until_each`] stopped waiting.
enum Stalled {
    /// The store failed, or a workflow did what the wait does not allow.
    Failed(anyhow::Error),
    /// Nothing settled for the stall time: `open` workflows were left, in `states` (as
    /// "count state/status", comma-separated).
    Still { open: usize, states: String },
}

/// The submitted workflows of one throughput measurement.
pub struct Throughput {
    /// In submit order.
    pub ids: Vec<Uuid>,
    /// Just before the first submit.
    pub started: DateTime<Utc>,
    /// How long submitting all of them took.
    pub submit: Duration,
}

/// The onboardings run one at a time on an idle worker.
#[derive(Default)]
pub struct Idle {
    /// Submit to first step, ms.
    pub pickups: Vec<f64>,
    /// Their journals.
    pub journals: Vec<Vec<store::JournalRow>>,
}

/// The `--in-flight` onboardings, parked.
pub struct Parked {
    /// From the first submit until the last one parked.
    pub seconds: f64,
}

/// Which onboardings to submit.
#[derive(Clone, Copy)]
enum Flavour {
    /// The benchmark's ordinary ones, the definitions taking turns.
    Ordinary,
    /// `--in-flight`: on the definition that polls hourly.
    InFlight,
}

/// A running engine and sandbox over one store.
pub struct Harness {
    store: Store,
    /// Where the harness watches its workflows: the same database, beside the store's pool
    /// (on PostgreSQL not through the round-trip proxy).
    observer: Store,
    engine: workflow::Engine,
    running: Running,
    /// Onboardings submitted to this database so far, over every harness on it.
    submitted: u64,
}

/// Where a harness's engine runs.
enum Running {
    /// In this process, with its sandbox and receiver.
    InProcess(InProcess),
    /// In a `finflow run` child process; the sandbox runs here.
    Worker(WorkerProcess),
}

impl Harness {
    /// Starts the receiver, a sandbox configured as `sandbox` that calls it back, and a
    /// worker on `store`; `observer` is another store on the same database for watching.
    /// `submitted` is how many onboardings were submitted to the database before (their
    /// numbers give each borrower a NIK of its own).
    ///
    /// # Errors
    /// A socket cannot be bound or the client cannot be built.
    pub async fn start(
        store: Store,
        observer: Store,
        definitions: workflow::Registry,
        options: &EngineOptions,
        sandbox: SandboxConfig,
        submitted: u64,
    ) -> anyhow::Result<Self> {
        let engine = workflow::Engine::new(definitions.clone());
        let running = InProcess::start(store.clone(), definitions, sandbox, options).await?;
        Ok(Self {
            store,
            observer,
            engine,
            running: Running::InProcess(running),
            submitted,
        })
    }

    /// The same with the engine in a `finflow run` child process on `database_url` with the
    /// `[privacy]` keys `keys` (as `FINFLOW_PRIVACY__*` variables; `store` must seal under
    /// the same), whose definitions are the files `files` (name, TOML); `definitions` are
    /// the same, parsed, for validating what is submitted here. Its memory is then the
    /// worker's alone ([`Self::worker_rss`]).
    ///
    /// # Errors
    /// The sandbox or the worker cannot start.
    pub async fn start_worker_process(
        store: Store,
        observer: Store,
        (definitions, files): (workflow::Registry, &[(&str, &str)]),
        options: &EngineOptions,
        sandbox: SandboxConfig,
        submitted: u64,
        (database_url, keys): (&str, &[(String, String)]),
    ) -> anyhow::Result<Self> {
        let running = WorkerProcess::start(database_url, keys, files, options, sandbox).await?;
        Ok(Self {
            store,
            observer,
            engine: workflow::Engine::new(definitions),
            running: Running::Worker(running),
            submitted,
        })
    }

    /// The memory of the `finflow run` child process, for a harness started with
    /// [`Self::start_worker_process`].
    pub fn worker_rss(&self) -> Option<Rss> {
        match &self.running {
            Running::Worker(worker) => worker.rss(),
            Running::InProcess(_) => None,
        }
    }

    /// The sandbox for the ordinary onboardings: zero delays, no faults, no rate limit.
    pub fn ordinary_sandbox() -> SandboxConfig {
        SandboxConfig::for_tests()
    }

    /// The sandbox for `--in-flight`: the same, but a KYC review takes a day, so every
    /// borrower stays `PENDING` and its onboarding waits for `user_verified`.
    pub fn holding_sandbox() -> SandboxConfig {
        let mut config = SandboxConfig::for_tests();
        config.timing.kyc_review = Duration::from_secs(86_400);
        config
    }

    /// How many onboardings were submitted to the database so far, over every harness on it.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// The next onboarding, validated and pinned as `finflow submit` does.
    fn next_workflow(&mut self, inputs: &Inputs, tag: &str) -> anyhow::Result<NewWorkflow> {
        self.next_of(inputs, tag, Flavour::Ordinary)
    }

    fn next_of(
        &mut self,
        inputs: &Inputs,
        tag: &str,
        flavour: Flavour,
    ) -> anyhow::Result<NewWorkflow> {
        let n = self.submitted;
        self.submitted += 1;
        let input = match flavour {
            Flavour::Ordinary => inputs.input(n),
            Flavour::InFlight => inputs.in_flight_input(n),
        };
        let definition = self
            .engine
            .validate(KIND, &input, Utc::now())
            .map_err(|e| anyhow::anyhow!("benchmark input {n} is refused: {e}"))?;
        let mut new = NewWorkflow::new(KIND, format!("bench-{tag}-{n}"), input);
        new.definition_name = definition.name;
        new.definition_version = i32::try_from(definition.version).ok();
        Ok(new)
    }

    /// Submits one onboarding and waits until it stops; returns its id and the time just
    /// before the submit.
    ///
    /// # Errors
    /// The store fails, or it does not stop within `timeout`.
    pub async fn onboard_one(
        &mut self,
        inputs: &Inputs,
        tag: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Uuid, DateTime<Utc>)> {
        let new = self.next_workflow(inputs, tag)?;
        let before = Utc::now();
        let id = self.store.submit(&new).await?.id;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let workflow = self.store.get(id).await?;
            if workflow.is_some_and(|w| stopped(w.status)) {
                return Ok((id, before));
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("onboarding {id} did not finish within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Idle pickup: `samples` times, with the worker idle, a pause of 200-500 ms (so the
    /// submit lands anywhere in the worker's poll cycles), then one onboarding submitted and
    /// run to its end. Each pickup is the time from the call to `Store::submit` to the
    /// `started_at` of the workflow's first journal row (the worker has claimed it and starts
    /// its first step), in milliseconds; each journal is kept for the idle resume figures.
    ///
    /// # Errors
    /// The store fails or an onboarding does not finish.
    pub async fn idle(&mut self, inputs: &Inputs, samples: u32) -> anyhow::Result<Idle> {
        let mut idle = Idle::default();
        for _ in 0..samples {
            let jitter = Uuid::new_v4().as_u128() % 300;
            let pause = 200 + u64::try_from(jitter).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let (id, before) = self
                .onboard_one(inputs, "idle", Duration::from_secs(60))
                .await?;
            let journal = self.store.journal(id).await?;
            let first = journal
                .first()
                .with_context(|| format!("onboarding {id} finished without a journal"))?;
            idle.pickups.push(millis(first.entry.started_at - before));
            idle.journals.push(journal);
        }
        Ok(idle)
    }

    /// `--in-flight`: submits `n` onboardings on the hourly-polling definition one after
    /// the other while the worker runs (use a [`Self::holding_sandbox`]), then waits until
    /// every one of them waits in `await_user_verified`. Fails when none parks or stops for
    /// `stall`, or when one stops (it should wait).
    ///
    /// # Errors
    /// The store fails, an onboarding stops, or the run stalls.
    pub async fn park(
        &mut self,
        inputs: &Inputs,
        n: u32,
        stall: Duration,
    ) -> anyhow::Result<Parked> {
        let clock = std::time::Instant::now();
        let mut ids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let new = self.next_of(inputs, "hold", Flavour::InFlight)?;
            ids.push(self.store.submit(&new).await?.id);
        }
        self.until_each(&ids, stall, |state, status| {
            if stopped(status) {
                anyhow::bail!(
                    "an --in-flight onboarding stopped ({state}/{status}) instead of waiting for \
                     its KYC review"
                );
            }
            Ok(state == PARKED_STATE && status == store::Status::Waiting)
        })
        .await
        .map_err(|stalled| match stalled {
            Stalled::Failed(e) => e,
            Stalled::Still { open, states } => anyhow::anyhow!(
                "no --in-flight onboarding parked for {} s; {} of {n} parked, the others: {states}",
                stall.as_secs(),
                ids.len() - open,
            ),
        })?;
        Ok(Parked {
            seconds: clock.elapsed().as_secs_f64(),
        })
    }

    /// Throughput: submits `n` onboardings one after the other with `Store::submit` while
    /// the worker runs, then waits until every one of them has stopped (terminal or needing
    /// attention). Fails when nothing stops for `stall`.
    ///
    /// # Errors
    /// The store fails or the run stalls.
    pub async fn throughput(
        &mut self,
        inputs: &Inputs,
        n: u32,
        stall: Duration,
    ) -> anyhow::Result<Throughput> {
        let mut batch = Vec::new();
        for _ in 0..n {
            batch.push(self.next_workflow(inputs, "load")?);
        }
        let started = Utc::now();
        let clock = std::time::Instant::now();
        let mut ids = Vec::with_capacity(batch.len());
        for new in &batch {
            ids.push(self.store.submit(new).await?.id);
        }
        let submit = clock.elapsed();
        self.until_each(&ids, stall, |_, status| Ok(stopped(status)))
            .await
            .map_err(|stalled| match stalled {
                Stalled::Failed(e) => e,
                Stalled::Still { states, .. } => anyhow::anyhow!(
                    "no onboarding finished for {} s; still open: {states}",
                    stall.as_secs()
                ),
            })?;
        Ok(Throughput {
            ids,
            started,
            submit,
        })
    }

    /// Waits until `done` holds for each of `ids` (in submit order), polling every 100 ms
    /// the oldest [`POLL_WINDOW`] of them it has not yet seen done: they finish about in
    /// submit order. `done` fails the wait with its error; nothing done for `stall` fails it
    /// with the states of the rest.
    async fn until_each(
        &self,
        ids: &[Uuid],
        stall: Duration,
        done: impl Fn(&str, store::Status) -> anyhow::Result<bool>,
    ) -> Result<(), Stalled> {
        let mut open: Vec<Uuid> = ids.to_vec();
        let mut progress = tokio::time::Instant::now();
        while !open.is_empty() {
            let window = &open[..open.len().min(POLL_WINDOW)];
            let states = stats::states(&self.observer, window)
                .await
                .map_err(Stalled::Failed)?;
            let mut finished = std::collections::HashSet::new();
            for (id, state, status) in &states {
                if done(state, *status).map_err(Stalled::Failed)? {
                    finished.insert(*id);
                }
            }
            if finished.is_empty() {
                if progress.elapsed() > stall {
                    let states = stats::states(&self.observer, &open)
                        .await
                        .map_err(Stalled::Failed)?;
                    let tally = stats::tally(&states);
                    let described = tally
                        .iter()
                        .map(|(state, status, count)| format!("{count} {state}/{status}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(Stalled::Still {
                        open: open.len(),
                        states: described,
                    });
                }
            } else {
                open.retain(|id| !finished.contains(id));
                progress = tokio::time::Instant::now();
                if open.is_empty() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Stops the worker (in-flight steps finish), the receiver and the sandbox.
    ///
    /// # Errors
    /// The worker or the receiver failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Running::InProcess(running) => running.stop().await,
            Running::Worker(worker) => {
                worker.stop().await;
                Ok(())
            }
        }
    }
}

/// A duration in (fractional) milliseconds.
pub fn millis(delta: chrono::TimeDelta) -> f64 {
    delta
        .num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1000.0)
}
