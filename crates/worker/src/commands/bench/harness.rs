//! The measurements that need an engine running: one engine in this process against an
//! in-process zero-delay sandbox (`worker::inprocess`, shared with `finflow demo`).

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use finfra_sandbox::SandboxConfig;
use store::{NewWorkflow, Store};
use uuid::Uuid;

use super::inputs::{Inputs, KIND};
use worker::inprocess::{EngineOptions, InProcess, stopped};

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

/// A running engine and sandbox over one store.
pub struct Harness {
    store: Store,
    engine: workflow::Engine,
    running: InProcess,
    /// Workflows submitted to this store so far, over every harness on it.
    submitted: u64,
}

impl Harness {
    /// Starts the receiver, a zero-delay sandbox (no faults, no rate limit) that calls it
    /// back, and a worker on `store`. `submitted` is how many workflows the store holds
    /// already (they must all be finished).
    ///
    /// # Errors
    /// A socket cannot be bound or the client cannot be built.
    pub async fn start(
        store: Store,
        definitions: workflow::Registry,
        options: &EngineOptions,
        submitted: u64,
    ) -> anyhow::Result<Self> {
        let engine = workflow::Engine::new(definitions.clone());
        let running = InProcess::start(
            store.clone(),
            definitions,
            SandboxConfig::for_tests(),
            options,
        )
        .await?;
        Ok(Self {
            store,
            engine,
            running,
            submitted,
        })
    }

    /// How many workflows the store holds.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// The next onboarding, validated and pinned as `finflow submit` does.
    fn next_workflow(&mut self, inputs: &Inputs, tag: &str) -> anyhow::Result<NewWorkflow> {
        let n = self.submitted;
        self.submitted += 1;
        let input = inputs.input(n);
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

    /// Throughput: submits `n` onboardings one after the other with `Store::submit` while
    /// the worker runs, then waits until every workflow of the store has stopped (terminal
    /// or needing attention). Fails when nothing stops for `stall`.
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
        let expected = i64::try_from(self.submitted).unwrap_or(i64::MAX);
        let mut settled_before = -1;
        let mut progress = tokio::time::Instant::now();
        loop {
            let counts = self.store.status_counts().await?;
            let total: i64 = counts.iter().map(|c| c.count).sum();
            let settled: i64 = counts
                .iter()
                .filter(|c| stopped(c.status))
                .map(|c| c.count)
                .sum();
            if total >= expected && settled == total {
                break;
            }
            if settled != settled_before {
                settled_before = settled;
                progress = tokio::time::Instant::now();
            } else if progress.elapsed() > stall {
                let open: Vec<String> = counts
                    .iter()
                    .filter(|c| !stopped(c.status))
                    .map(|c| format!("{} {}/{}", c.count, c.state, c.status))
                    .collect();
                anyhow::bail!(
                    "no onboarding finished for {} s; still open: {}",
                    stall.as_secs(),
                    open.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Throughput {
            ids,
            started,
            submit,
        })
    }

    /// Stops the worker (in-flight steps finish), the receiver and the sandbox.
    ///
    /// # Errors
    /// The worker or the receiver failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// A duration in (fractional) milliseconds.
pub fn millis(delta: chrono::TimeDelta) -> f64 {
    delta
        .num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1000.0)
}
