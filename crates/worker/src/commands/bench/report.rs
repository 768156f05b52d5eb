//! The figures: what one run measured (from the journal and the workflow rows), the median of
//! runs per backend, the ratios between backends, and how they are printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use store::{JournalRow, Workflow};

use super::floor::FloorRun;
use super::harness::{Idle, millis};
use super::preload::Preloaded;
use super::proxy::RoundTrips;

/// Percentiles of a set of samples (milliseconds, unless the field names another unit).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub samples: usize,
}

impl Spread {
    /// Nearest-rank percentiles; `None` without samples.
    pub fn of(mut samples: Vec<f64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = (p * samples.len() as f64).ceil() as usize;
            samples[index.clamp(1, samples.len()) - 1]
        };
        Some(Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            samples: samples.len(),
        })
    }
}

/// Everything one run of one backend measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    /// Onboardings divided by the time from the first submit to the last one stopping.
    pub onboardings_per_second: f64,
    /// From the first submit to the last onboarding stopping.
    pub elapsed_ms: f64,
    /// Submitting all of them, one `Store::submit` after the other.
    pub submit_ms: f64,
    /// A step's answer to the next step's answer, for steps run inline (the next row is a
    /// Finfra call): the commit of the step, the shared-limiter check, the decision and the
    /// next call to the zero-delay sandbox.
    pub step_to_step_ms: Option<Spread>,
    /// A step's answer to the next request leaving, for the same pairs: the engine's own
    /// cost between two steps (commit, limiter check, decision), without Finfra's time.
    pub between_steps_ms: Option<Spread>,
    /// The answer of the step after which the workflow parked, to the worker resuming it on
    /// the callback (or timer): callback delivery, inbox commit, wake-up dispatch and claim.
    pub resume_after_wait_ms: Option<Spread>,
    /// The same as `resume_after_wait_ms`, for the onboardings run one at a time on an idle
    /// worker: the callback and wake-up path without queueing behind other work.
    pub idle_resume_after_wait_ms: Option<Spread>,
    /// From the call to `Store::submit` to the start of the first step, with the worker idle.
    pub idle_pickup_ms: Option<Spread>,
    /// Journal rows (one per step commit) per onboarding.
    pub journal_rows_per_onboarding: f64,
    /// PostgreSQL only: committed transactions in the benchmark database per onboarding
    /// (`pg_stat_database.xact_commit`, read-only ones included, the benchmark's own
    /// progress polling included).
    pub transactions_per_onboarding: Option<f64>,
    /// How the onboardings ended, `status/state` → count.
    pub outcomes: BTreeMap<String, u64>,
    /// Journal rows (steps) of the measured onboardings per second of the run.
    pub steps_per_second: f64,
    /// The database's floor before the workflows (one journal insert + one row update per
    /// transaction, at the same concurrency on the same database).
    pub floor_before: Option<FloorRun>,
    /// The same after the workflows.
    pub floor_after: Option<FloorRun>,
    /// The floor's transactions per second: the median (midpoint) of before and after.
    pub floor_tps: Option<f64>,
    /// `steps_per_second` / `floor_tps`.
    pub steps_share_of_floor: Option<f64>,
    /// PostgreSQL: what the round-trip proxy counted during the throughput measurement.
    pub round_trips: Option<RoundTrips>,
    /// Round trips (Sync + Query + FunctionCall) per journal row.
    pub round_trips_per_step: Option<f64>,
    /// The same per onboarding.
    pub round_trips_per_onboarding: Option<f64>,
    /// PostgreSQL: committed transactions per journal row (as `transactions_per_onboarding`).
    pub transactions_per_step: Option<f64>,
    /// PostgreSQL: WAL written during the measurement (`pg_wal_lsn_diff`, the whole server)
    /// per journal row.
    pub wal_bytes_per_step: Option<f64>,
    /// The measured onboardings' `workflows.context` after the run: PostgreSQL
    /// `avg(pg_column_size(context))`, SQLite the JSON text's bytes.
    pub context_bytes_avg: Option<f64>,
    /// PostgreSQL: HOT updates / all updates of `workflows` during the measurement.
    pub hot_update_share: Option<f64>,
    /// PostgreSQL on this machine: the server's CPU during the throughput measurement per
    /// journal row, in milliseconds (`server_cpu`).
    pub server_cpu_ms_per_step: Option<f64>,
    /// The same for the floor: the server's CPU per floor transaction, both floors together.
    pub floor_server_cpu_ms_per_transaction: Option<f64>,
    /// `server_cpu_ms_per_step` / `floor_server_cpu_ms_per_transaction`: how many of the
    /// floor's transactions a step costs the server, in CPU.
    pub server_cpu_step_in_floor_transactions: Option<f64>,
    /// This process's CPU (the engine, the receiver, the in-process sandbox, the bench's own
    /// polling and, without `--direct`, the round-trip proxy) over the span
    /// `server_cpu_ms_per_step` is read over, per journal row, in milliseconds: finflow's side
    /// of a step, beside the server's (both databases).
    pub process_cpu_ms_per_step: Option<f64>,
    /// PostgreSQL: whether the measured store's connections were encrypted (TLS): a
    /// connection to this machine pays ~40 % of throughput for it (`--direct` with a URL
    /// that does not say `sslmode=disable`).
    pub tls: Option<bool>,
    /// Peak resident set size of the process over this run (`VmHWM`, reset at its start),
    /// in-process sandbox included.
    pub peak_rss_mb: Option<f64>,
    /// `--preload`: what was loaded before the run and how long it took.
    pub preload: Option<Preloaded>,
    /// `--in-flight`: the parked onboardings.
    pub in_flight: Option<InFlight>,
    /// The group commit's batch sizes during the throughput measurement (step commits per
    /// transaction), over its batches; the idle part of the run is not in it.
    pub group_commit_batch: Option<Spread>,
    /// The same as a mean: step commits per batch.
    pub group_commit_mean: Option<f64>,
    /// Claims per batch, mean, over the same measurement.
    pub group_claim_mean: Option<f64>,
    /// Claims of one workflow (a wake-up's) that found it not due, finished or held, per
    /// measured onboarding: each a transaction that changed nothing.
    pub stale_claims_per_onboarding: f64,
    /// Stored callbacks per batch, mean, over the same measurement.
    pub group_callback_mean: Option<f64>,
    /// PostgreSQL: how long a batch of step commits took, mean, in milliseconds: from
    /// sending it to its answer, as the process saw it (`Store::lanes_busy`).
    pub group_commit_ms_mean: Option<f64>,
    /// The share of the measurement during which each lane of the group commit had a batch
    /// on its way (`Store::lanes_busy` ÷ the elapsed time), by lane: PostgreSQL `commit`,
    /// `claim` and `callback`, SQLite `write` (its one lane).
    pub lane_busy_share: BTreeMap<String, f64>,
}

/// `--in-flight`: onboardings submitted and left waiting for a KYC review that never ends.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InFlight {
    /// How many.
    pub workflows: u32,
    /// From the first submit until the last one waited.
    pub seconds_to_park: f64,
    /// The resident set size of the `finflow run` process that put them in flight, once
    /// all of them waited (`VmRSS`; the sandbox runs in the benchmark's process).
    pub rss_mb: Option<f64>,
    /// Its peak since it started (`VmHWM`).
    pub peak_rss_mb: Option<f64>,
}

/// What one throughput measurement left in the store.
pub struct Observed {
    /// Each onboarding with its journal, oldest row first.
    pub workflows: Vec<(Workflow, Vec<JournalRow>)>,
    /// Just before the first submit.
    pub started: DateTime<Utc>,
    pub submit: std::time::Duration,
    /// The onboardings run one at a time on an idle worker.
    pub idle: Idle,
    /// Committed transactions during the throughput measurement (PostgreSQL).
    pub transactions: Option<i64>,
    /// Round trips during the throughput measurement (PostgreSQL through the proxy).
    pub round_trips: Option<RoundTrips>,
    /// WAL bytes during the throughput measurement (PostgreSQL).
    pub wal_bytes: Option<i64>,
    /// Updates of `workflows` during the throughput measurement: (all, HOT) (PostgreSQL).
    pub updates: Option<(i64, i64)>,
    /// The server's CPU seconds during the throughput measurement (PostgreSQL on this
    /// machine).
    pub server_cpu_seconds: Option<f64>,
    /// This process's CPU seconds over the same span (both databases).
    pub process_cpu_seconds: Option<f64>,
    /// See [`RunFigures::context_bytes_avg`].
    pub context_bytes_avg: Option<f64>,
    /// See [`RunFigures::tls`].
    pub tls: Option<bool>,
    pub floor_before: Option<FloorRun>,
    pub floor_after: Option<FloorRun>,
    pub preload: Option<Preloaded>,
    pub in_flight: Option<InFlight>,
    /// `VmHWM` at the end of the run.
    pub peak_rss_mb: Option<f64>,
    /// `Store::commit_batch_sizes` of the throughput measurement's store.
    pub commit_batches: Vec<(usize, u64)>,
    /// `Store::claim_batch_sizes` of the same.
    pub claim_batches: Vec<(usize, u64)>,
    /// `Store::stale_claims` of the same.
    pub stale_claims: u64,
    /// `Store::callback_batch_sizes` of the same.
    pub callback_batches: Vec<(usize, u64)>,
    /// `Store::lanes_busy` of the same.
    pub lanes_busy: Vec<(&'static str, std::time::Duration)>,
}

impl RunFigures {
    /// The figures of one run.
    pub fn from_observed(observed: Observed) -> Self {
        let n = observed.workflows.len().max(1) as f64;
        let end = observed
            .workflows
            .iter()
            .map(|(w, _)| w.finished_at.unwrap_or(w.updated_at))
            .max()
            .unwrap_or(observed.started);
        let elapsed_ms = millis(end - observed.started).max(0.001);
        let (mut step, mut between, mut resume) = (Vec::new(), Vec::new(), Vec::new());
        let mut rows = 0usize;
        let mut outcomes = BTreeMap::new();
        for (workflow, journal) in &observed.workflows {
            rows += journal.len();
            *outcomes
                .entry(format!("{}/{}", workflow.status, workflow.state))
                .or_insert(0) += 1;
            gaps(journal, &mut step, &mut between, &mut resume);
        }
        let mut idle_resume = Vec::new();
        for journal in &observed.idle.journals {
            gaps(journal, &mut Vec::new(), &mut Vec::new(), &mut idle_resume);
        }
        let steps_per_second = rows as f64 / (elapsed_ms / 1000.0);
        // Per step: per journal row of the measured onboardings.
        let per_step = |value: f64| (rows > 0).then(|| value / rows as f64);
        let floor_tps = match (&observed.floor_before, &observed.floor_after) {
            (Some(before), Some(after)) => Some(f64::midpoint(before.tps(), after.tps())),
            (Some(one), None) | (None, Some(one)) => Some(one.tps()),
            (None, None) => None,
        };
        let server_cpu_ms_per_step = observed
            .server_cpu_seconds
            .and_then(|seconds| per_step(seconds * 1000.0));
        let floor_server_cpu_ms_per_transaction = {
            let floors = [observed.floor_before, observed.floor_after];
            let measured: Vec<(f64, u64)> = floors
                .iter()
                .flatten()
                .filter_map(|f| f.server_cpu_seconds.map(|cpu| (cpu, f.transactions)))
                .collect();
            let transactions: u64 = measured.iter().map(|(_, t)| t).sum();
            (transactions > 0).then(|| {
                measured.iter().map(|(cpu, _)| cpu).sum::<f64>() * 1000.0 / transactions as f64
            })
        };
        Self {
            server_cpu_ms_per_step,
            floor_server_cpu_ms_per_transaction,
            server_cpu_step_in_floor_transactions: server_cpu_ms_per_step
                .zip(floor_server_cpu_ms_per_transaction.filter(|floor| *floor > 0.0))
                .map(|(step, floor)| step / floor),
            process_cpu_ms_per_step: observed
                .process_cpu_seconds
                .and_then(|seconds| per_step(seconds * 1000.0)),
            steps_per_second,
            floor_before: observed.floor_before,
            floor_after: observed.floor_after,
            floor_tps,
            steps_share_of_floor: floor_tps
                .filter(|tps| *tps > 0.0)
                .map(|tps| steps_per_second / tps),
            round_trips: observed.round_trips,
            round_trips_per_step: observed
                .round_trips
                .and_then(|r| per_step(r.total() as f64)),
            round_trips_per_onboarding: observed.round_trips.map(|r| r.total() as f64 / n),
            transactions_per_step: observed.transactions.and_then(|t| per_step(t as f64)),
            wal_bytes_per_step: observed.wal_bytes.and_then(|w| per_step(w as f64)),
            context_bytes_avg: observed.context_bytes_avg,
            tls: observed.tls,
            hot_update_share: observed
                .updates
                .filter(|(all, _)| *all > 0)
                .map(|(all, hot)| hot as f64 / all as f64),
            peak_rss_mb: observed.peak_rss_mb,
            preload: observed.preload,
            in_flight: observed.in_flight,
            group_commit_batch: Spread::of(
                observed
                    .commit_batches
                    .iter()
                    .flat_map(|&(size, batches)| {
                        std::iter::repeat_n(size as f64, usize::try_from(batches).unwrap_or(0))
                    })
                    .collect(),
            ),
            group_commit_mean: mean_batch(&observed.commit_batches),
            group_claim_mean: mean_batch(&observed.claim_batches),
            stale_claims_per_onboarding: observed.stale_claims as f64 / n,
            group_callback_mean: mean_batch(&observed.callback_batches),
            group_commit_ms_mean: observed
                .lanes_busy
                .iter()
                .find(|(lane, _)| *lane == "commit")
                .and_then(|(_, busy)| {
                    let n = batches(&observed.commit_batches);
                    (n > 0).then(|| busy.as_secs_f64() * 1000.0 / n as f64)
                }),
            lane_busy_share: observed
                .lanes_busy
                .iter()
                .map(|(lane, busy)| ((*lane).to_owned(), busy.as_secs_f64() * 1000.0 / elapsed_ms))
                .collect(),
            onboardings_per_second: n / (elapsed_ms / 1000.0),
            elapsed_ms,
            submit_ms: observed.submit.as_secs_f64() * 1000.0,
            step_to_step_ms: Spread::of(step),
            between_steps_ms: Spread::of(between),
            resume_after_wait_ms: Spread::of(resume),
            idle_resume_after_wait_ms: Spread::of(idle_resume),
            idle_pickup_ms: Spread::of(observed.idle.pickups),
            journal_rows_per_onboarding: rows as f64 / n,
            transactions_per_onboarding: observed.transactions.map(|t| t as f64 / n),
            outcomes,
        }
    }
}

/// How many batches `(size, batches)` counts.
fn batches(sizes: &[(usize, u64)]) -> u64 {
    sizes.iter().map(|&(_, n)| n).sum()
}

/// Requests per batch over `(size, batches)` counts; `None` without batches.
fn mean_batch(sizes: &[(usize, u64)]) -> Option<f64> {
    let requests: u64 = sizes.iter().map(|&(size, n)| size as u64 * n).sum();
    let batches = batches(sizes);
    (batches > 0).then(|| requests as f64 / batches as f64)
}

/// Sorts the gaps between consecutive journal rows of one workflow: `step` and `between`
/// for a Finfra call made inline after the previous row, `resume` for a callback (or timer)
/// that brought the parked workflow back.
fn gaps(
    journal: &[JournalRow],
    step: &mut Vec<f64>,
    between: &mut Vec<f64>,
    resume: &mut Vec<f64>,
) {
    for pair in journal.windows(2) {
        let (a, b) = (&pair[0].entry, &pair[1].entry);
        match b.action.as_str() {
            // A first step, or a recovery: not a step following another.
            "start" | "call_interrupted" => {}
            // The workflow had parked; a callback or a timer brought it back.
            "callback" | "wake" => resume.push(millis(b.started_at - a.finished_at)),
            // A Finfra call, made inline right after the previous row's commit.
            _ => {
                step.push(millis(b.finished_at - a.finished_at));
                between.push(millis(b.started_at - a.finished_at));
            }
        }
    }
}

/// One reported figure: how to read it from a run.
struct Figure {
    key: &'static str,
    label: &'static str,
    get: fn(&RunFigures) -> Option<f64>,
}

const FIGURES: &[Figure] = &[
    Figure {
        key: "onboardings_per_second",
        label: "onboardings per second",
        get: |r| Some(r.onboardings_per_second),
    },
    Figure {
        key: "step_to_step_p50_ms",
        label: "step-to-step p50 (ms)",
        get: |r| r.step_to_step_ms.map(|s| s.p50),
    },
    Figure {
        key: "step_to_step_p90_ms",
        label: "step-to-step p90 (ms)",
        get: |r| r.step_to_step_ms.map(|s| s.p90),
    },
    Figure {
        key: "step_to_step_p99_ms",
        label: "step-to-step p99 (ms)",
        get: |r| r.step_to_step_ms.map(|s| s.p99),
    },
    Figure {
        key: "between_steps_p50_ms",
        label: "between steps p50 (ms)",
        get: |r| r.between_steps_ms.map(|s| s.p50),
    },
    Figure {
        key: "resume_after_wait_p50_ms",
        label: "resume after callback p50 (ms)",
        get: |r| r.resume_after_wait_ms.map(|s| s.p50),
    },
    Figure {
        key: "idle_resume_after_wait_p50_ms",
        label: "resume after callback, idle p50 (ms)",
        get: |r| r.idle_resume_after_wait_ms.map(|s| s.p50),
    },
    Figure {
        key: "idle_pickup_p50_ms",
        label: "idle pickup p50 (ms)",
        get: |r| r.idle_pickup_ms.map(|s| s.p50),
    },
    Figure {
        key: "idle_pickup_p90_ms",
        label: "idle pickup p90 (ms)",
        get: |r| r.idle_pickup_ms.map(|s| s.p90),
    },
    Figure {
        key: "journal_rows_per_onboarding",
        label: "journal rows per onboarding",
        get: |r| Some(r.journal_rows_per_onboarding),
    },
    Figure {
        key: "transactions_per_onboarding",
        label: "transactions per onboarding",
        get: |r| r.transactions_per_onboarding,
    },
    Figure {
        key: "steps_per_second",
        label: "steps per second",
        get: |r| Some(r.steps_per_second),
    },
    Figure {
        key: "floor_tps_before",
        label: "floor transactions/s, before",
        get: |r| r.floor_before.map(|f| f.tps()),
    },
    Figure {
        key: "floor_tps_after",
        label: "floor transactions/s, after",
        get: |r| r.floor_after.map(|f| f.tps()),
    },
    Figure {
        key: "floor_tps",
        label: "floor transactions/s (median)",
        get: |r| r.floor_tps,
    },
    Figure {
        key: "steps_share_of_floor",
        label: "steps/s as a share of the floor",
        get: |r| r.steps_share_of_floor,
    },
    Figure {
        key: "round_trips_per_step",
        label: "SQL round trips per step",
        get: |r| r.round_trips_per_step,
    },
    Figure {
        key: "round_trips_per_onboarding",
        label: "SQL round trips per onboarding",
        get: |r| r.round_trips_per_onboarding,
    },
    Figure {
        key: "transactions_per_step",
        label: "transactions per step",
        get: |r| r.transactions_per_step,
    },
    Figure {
        key: "group_commit_p50",
        label: "group commit: steps per batch, p50",
        get: |r| r.group_commit_batch.map(|s| s.p50),
    },
    Figure {
        key: "group_commit_p90",
        label: "group commit: steps per batch, p90",
        get: |r| r.group_commit_batch.map(|s| s.p90),
    },
    Figure {
        key: "group_commit_mean",
        label: "group commit: steps per batch, mean",
        get: |r| r.group_commit_mean,
    },
    Figure {
        key: "group_claim_mean",
        label: "group commit: claims per batch, mean",
        get: |r| r.group_claim_mean,
    },
    Figure {
        key: "stale_claims_per_onboarding",
        label: "claims that found nothing, per onboarding",
        get: |r| Some(r.stale_claims_per_onboarding),
    },
    Figure {
        key: "group_callback_mean",
        label: "group commit: stored callbacks per batch, mean",
        get: |r| r.group_callback_mean,
    },
    Figure {
        key: "group_commit_ms_mean",
        label: "group commit: a batch of step commits (ms), mean",
        get: |r| r.group_commit_ms_mean,
    },
    Figure {
        key: "commit_lane_busy_share",
        label: "group commit: share of the time its lane was busy",
        get: |r| {
            let lanes = &r.lane_busy_share;
            lanes.get("commit").or_else(|| lanes.get("write")).copied()
        },
    },
    Figure {
        key: "wal_bytes_per_step",
        label: "WAL bytes per step",
        get: |r| r.wal_bytes_per_step,
    },
    Figure {
        key: "server_cpu_ms_per_step",
        label: "server CPU per step (ms)",
        get: |r| r.server_cpu_ms_per_step,
    },
    Figure {
        key: "floor_server_cpu_ms_per_transaction",
        label: "server CPU per floor transaction (ms)",
        get: |r| r.floor_server_cpu_ms_per_transaction,
    },
    Figure {
        key: "server_cpu_step_in_floor_transactions",
        label: "server CPU: a step in floor transactions",
        get: |r| r.server_cpu_step_in_floor_transactions,
    },
    Figure {
        key: "process_cpu_ms_per_step",
        label: "finflow process CPU per step (ms)",
        get: |r| r.process_cpu_ms_per_step,
    },
    Figure {
        key: "context_bytes_avg",
        label: "workflows.context bytes (avg)",
        get: |r| r.context_bytes_avg,
    },
    Figure {
        key: "tls",
        label: "store connections over TLS (1: yes)",
        get: |r| r.tls.map(|tls| if tls { 1.0 } else { 0.0 }),
    },
    Figure {
        key: "hot_update_share",
        label: "HOT share of workflows updates",
        get: |r| r.hot_update_share,
    },
    Figure {
        key: "peak_rss_mb",
        label: "peak RSS (MB)",
        get: |r| r.peak_rss_mb,
    },
    Figure {
        key: "in_flight_rss_mb",
        label: "RSS with --in-flight parked (MB)",
        get: |r| r.in_flight.and_then(|f| f.rss_mb),
    },
    Figure {
        key: "preload_seconds",
        label: "preload loading time (s)",
        get: |r| r.preload.map(|p| p.seconds),
    },
];

/// What each figure measures, printed under the table.
const MEANINGS: &[&str] = &[
    "onboardings per second: N onboardings submitted one after the other (Store::submit) while \
     the worker runs, divided by the time from the first submit to the last one reaching a \
     terminal status (finished_at)",
    "step-to-step: step_journal.finished_at of one row to finished_at of the next row of the same \
     workflow, where the next row is a Finfra call made inline (commit + shared-limiter check + \
     decision + the call to the zero-delay sandbox); waits for callbacks are excluded (SQLite \
     stores these timestamps in whole milliseconds)",
    "between steps: finished_at of one row to started_at of the next, same pairs: the engine's own \
     cost between two steps, without Finfra's time",
    "resume after callback: finished_at of the row after which the workflow parked to started_at \
     of the callback row that resumed it (callback delivery, inbox commit, wake-up, claim); under \
     the throughput load it includes queueing behind other due work, \"idle\" is the same for \
     the onboardings run one at a time",
    "idle pickup: with the worker idle (200-500 ms after the previous onboarding ended), the call \
     to Store::submit to started_at of the workflow's first journal row",
    "transactions per onboarding: PostgreSQL pg_stat_database.xact_commit over the throughput \
     measurement (read-only ones, the one in which each listening session reads a \
     notification, and the benchmark's own polling included); per step: the same divided by \
     the measured onboardings' journal rows",
    "steps per second: the measured onboardings' journal rows (one per step commit) divided by \
     the same elapsed time as onboardings per second",
    "floor: the database's own minimal durable step on the same database, at the same \
     concurrency, for --floor-secs before and after the workflows: BEGIN; INSERT one journal \
     row; UPDATE one row; COMMIT (four round trips, as pgbench sends them; SQLite: BEGIN \
     IMMEDIATE, WAL, synchronous=FULL), each connection on rows of its own; committed \
     transactions per second, the median being the midpoint of before and after; steps/s as \
     a share of the floor is steps per second divided by it",
    "SQL round trips: PostgreSQL, counted by a TCP proxy in this process between the store and \
     the server (not in the store): every Sync ('S', the end of an extended-protocol batch), \
     simple Query ('Q': BEGIN, COMMIT, LISTEN...) and FunctionCall ('F') the engine, the \
     callback receiver and the submits sent during the throughput measurement (the \
     benchmark's own polling goes around the proxy), divided by the journal rows; --direct \
     turns the proxy off",
    "group commit: the step commits the store wrote together in one transaction (PostgreSQL: \
     one call) (Store::commit_batch_sizes) during the throughput measurement, over its \
     batches; a batch that failed as a whole and was sent again one by one counts again; \
     claims and stored callbacks are batched the same way (Store::claim_batch_sizes, \
     Store::callback_batch_sizes); claims that found nothing: a wake-up's claim of one \
     workflow that found it not due, finished or held (Store::stale_claims), per onboarding; \
     a batch of step commits (ms): from sending a batch to its answer, as the store saw it, \
     mean over its batches (PostgreSQL; Store::lanes_busy); share of the time its lane was \
     busy: the time its batches took in all divided by the elapsed time, for the step \
     commits' lane (SQLite: the one lane all its writes share); one batch of a lane is in \
     flight at a time, so near 1 a step waits for the lane more than for the server",
    "WAL bytes per step: PostgreSQL pg_wal_lsn_diff of pg_current_wal_lsn() after and before the \
     throughput measurement, divided by the journal rows; the WAL is the whole server's, so \
     anything else writing on it meanwhile (autovacuum, other databases) is counted too",
    "server CPU: PostgreSQL running on this machine (found by the admin session's backend \
     pid in /proc: a postgres process whose parent is a postgres process started when \
     pg_postmaster_start_time() says): the CPU time of the \
     postmaster and its children, alive (/proc/<pid>/stat utime + stime) and ended (the \
     postmaster's cutime + cstime), after minus before the throughput measurement, divided \
     by the journal rows; the floor's the same over its timed loops, divided by its \
     transactions; the whole server's, so anything else it runs meanwhile counts too. '-' \
     when the server is elsewhere or its processes cannot be read",
    "finflow process CPU: this process's own CPU time (/proc/self/stat utime + stime, all its \
     threads) over the same span as the server's, divided by the journal rows: the engine, \
     the callback receiver, the in-process sandbox, the benchmark's own polling and, without \
     --direct, the round-trip proxy; on SQLite the database's work too, which runs in this \
     process",
    "workflows.context bytes: after the run, over the measured onboardings: PostgreSQL \
     avg(pg_column_size(context)) (as stored: compressed and TOASTed or inline), SQLite the \
     JSON text's bytes",
    "HOT share: PostgreSQL pg_stat_user_tables n_tup_hot_upd / n_tup_upd of workflows over the \
     throughput measurement: updates that touched no index",
    "TLS: PostgreSQL pg_stat_ssl of a connection of the measured store; the proxy's are plain, \
     --direct keeps what the URL asks (sslmode=prefer unless it says; to this machine TLS \
     costs about a sixth of throughput)",
    "RSS: the peak of this process, in-process sandbox included (an upper bound for finflow's \
     own; /proc/self/status VmHWM, reset at the start of each run); with --in-flight, VmRSS of \
     the finflow run process of this binary that put them in flight (the sandbox stays in \
     this process), read from /proc/<pid>/status once every one of them waits",
    "preload: --preload N finished copies of the run's warm-up onboarding (its journal and \
     callbacks too) inserted in bulk after the idle pickups, the engine stopped; loading includes VACUUM ANALYZE \
     (PostgreSQL) or ANALYZE and a WAL checkpoint (SQLite)",
];

/// The runs of one backend, or why it was not measured.
pub enum Measured {
    Runs(Vec<RunFigures>),
    Skipped(String),
}

impl Measured {
    fn runs(&self) -> &[RunFigures] {
        match self {
            Self::Runs(runs) => runs,
            Self::Skipped(_) => &[],
        }
    }

    /// The median over runs of a figure.
    fn median(&self, figure: &Figure) -> Option<f64> {
        median(self.runs().iter().filter_map(figure.get).collect())
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        f64::midpoint(values[mid - 1], values[mid])
    } else {
        values[mid]
    })
}

/// The whole report.
pub struct Report {
    pub onboardings: u32,
    pub runs: u32,
    pub concurrency: usize,
    pub idle_samples: u32,
    pub definitions: Vec<String>,
    pub definitions_from: String,
    /// `--floor-secs`: each floor measurement's length (0: none).
    pub floor_secs: f64,
    /// `--preload`.
    pub preload: u64,
    /// `--in-flight`.
    pub in_flight: u32,
    /// Whether PostgreSQL's store went through the round-trip proxy (not `--direct`).
    pub round_trip_proxy: bool,
    pub sqlite: Measured,
    pub postgres: Measured,
}

fn ratio(sqlite: Option<f64>, postgres: Option<f64>) -> Option<f64> {
    match (sqlite, postgres) {
        (Some(s), Some(p)) if p > 0.0 => Some(s / p),
        _ => None,
    }
}

fn number(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio_text(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

impl Report {
    /// The table, one line per figure, and what each figure measures.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "finflow bench: {} onboardings per run, {} run(s), concurrency {}, {} idle samples per \
             run; in-process zero-delay sandbox (no faults, no rate limit); definitions {} ({}); \
             medians of runs",
            self.onboardings,
            self.runs,
            self.concurrency,
            self.idle_samples,
            self.definitions.join(", "),
            self.definitions_from,
        );
        let _ = writeln!(
            out,
            "floor {} s before and after each run; preload {} finished workflow(s) per run; {} \
             onboarding(s) in flight per run; PostgreSQL round trips {}",
            self.floor_secs,
            self.preload,
            self.in_flight,
            if self.round_trip_proxy {
                "counted by the proxy"
            } else {
                "not counted (--direct)"
            },
        );
        let _ = writeln!(out);
        let width = FIGURES.iter().map(|f| f.label.len()).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<width$}  {:>10}  {:>10}  {:>17}",
            "", "SQLite", "PostgreSQL", "SQLite/PostgreSQL"
        );
        for figure in FIGURES {
            let (s, p) = (self.sqlite.median(figure), self.postgres.median(figure));
            let _ = writeln!(
                out,
                "{:<width$}  {:>10}  {:>10}  {:>17}",
                figure.label,
                number(s),
                number(p),
                ratio_text(ratio(s, p)),
            );
        }
        let _ = writeln!(out);
        for figure in FIGURES {
            let (s, p) = (self.sqlite.median(figure), self.postgres.median(figure));
            let _ = writeln!(
                out,
                "{}: SQLite {}, PostgreSQL {}, SQLite/PostgreSQL {}",
                figure.label,
                backend_text(&self.sqlite, figure, s),
                backend_text(&self.postgres, figure, p),
                ratio_text(ratio(s, p)),
            );
        }
        for (name, measured) in [("SQLite", &self.sqlite), ("PostgreSQL", &self.postgres)] {
            match measured {
                Measured::Skipped(reason) => {
                    let _ = writeln!(out, "{name}: skipped: {reason}");
                }
                Measured::Runs(runs) => {
                    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
                    for run in runs {
                        for (outcome, count) in &run.outcomes {
                            *outcomes.entry(outcome).or_insert(0) += count;
                        }
                    }
                    let outcomes: Vec<String> =
                        outcomes.iter().map(|(o, c)| format!("{c} {o}")).collect();
                    let _ = writeln!(
                        out,
                        "{name} outcomes over all runs: {}",
                        outcomes.join(", ")
                    );
                    details(&mut out, name, runs);
                }
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "What the figures measure:");
        for meaning in MEANINGS {
            let _ = writeln!(out, "  {meaning}");
        }
        out
    }

    /// The same as JSON.
    pub fn json(&self) -> Value {
        let backend = |measured: &Measured| match measured {
            Measured::Skipped(reason) => json!({ "measured": false, "skipped": reason }),
            Measured::Runs(runs) => {
                let median: serde_json::Map<String, Value> = FIGURES
                    .iter()
                    .map(|f| (f.key.to_owned(), json!(measured.median(f))))
                    .collect();
                json!({ "measured": true, "median": median, "runs": runs })
            }
        };
        let ratios: serde_json::Map<String, Value> = FIGURES
            .iter()
            .map(|f| {
                (
                    f.key.to_owned(),
                    json!(ratio(self.sqlite.median(f), self.postgres.median(f))),
                )
            })
            .collect();
        json!({
            "onboardings": self.onboardings,
            "runs": self.runs,
            "concurrency": self.concurrency,
            "idle_samples": self.idle_samples,
            "definitions": self.definitions,
            "definitions_from": self.definitions_from,
            "floor_secs": self.floor_secs,
            "preload": self.preload,
            "in_flight": self.in_flight,
            "round_trip_proxy": self.round_trip_proxy,
            "sandbox": "in-process, zero delay, no faults, no rate limit",
            "backends": {
                "sqlite": backend(&self.sqlite),
                "postgres": backend(&self.postgres),
            },
            "sqlite_over_postgres": ratios,
            "meanings": MEANINGS,
        })
    }
}

/// Per run, what the table's medians do not show: the preload, the parked onboardings, the
/// round trips by message and the floor's failed transactions.
fn details(out: &mut String, name: &str, runs: &[RunFigures]) {
    for (index, run) in runs.iter().enumerate() {
        let mut parts = Vec::new();
        if let Some(p) = run.preload {
            parts.push(format!(
                "preloaded {} workflows ({} journal rows, {} inbox rows) in {:.1} s",
                p.workflows, p.journal_rows, p.inbox_rows, p.seconds
            ));
        }
        if let Some(f) = run.in_flight {
            parts.push(format!(
                "{} in flight parked after {:.1} s, the finflow run process's RSS then {} MB \
                 (its peak {} MB)",
                f.workflows,
                f.seconds_to_park,
                number(f.rss_mb),
                number(f.peak_rss_mb)
            ));
        }
        if let Some(r) = run.round_trips {
            parts.push(format!(
                "round trips {} Sync + {} Query + {} FunctionCall over {} connections",
                r.syncs, r.queries, r.function_calls, r.connections
            ));
        }
        let errors: u64 = [run.floor_before, run.floor_after]
            .iter()
            .flatten()
            .map(|f| f.errors)
            .sum();
        if errors > 0 {
            parts.push(format!("{errors} floor transactions failed"));
        }
        if !parts.is_empty() {
            let _ = writeln!(out, "{name} run {}: {}", index + 1, parts.join("; "));
        }
    }
}

/// `12.3 (runs 11.0 12.3 14.1)`, `-` when not measured.
fn backend_text(measured: &Measured, figure: &Figure, median: Option<f64>) -> String {
    let runs: Vec<String> = measured
        .runs()
        .iter()
        .map(|r| number((figure.get)(r)))
        .collect();
    match median {
        None => "-".to_owned(),
        Some(_) if runs.len() > 1 => format!("{} (runs {})", number(median), runs.join(" ")),
        Some(_) => number(median),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let spread = Spread::of((1..=100).map(f64::from).collect()).expect("samples");
        assert_eq!((spread.p50, spread.p90, spread.p99), (50.0, 90.0, 99.0));
        let one = Spread::of(vec![7.0]).expect("one sample");
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn journal_gaps_split_inline_steps_from_resumes() {
        let t0 = Utc::now();
        let at = |ms: i64| t0 + chrono::TimeDelta::milliseconds(ms);
        let row = |seq: i32, action: &str, started: i64, finished: i64| {
            let mut entry = store::JournalEntry::new("step", action, store::Outcome::Ok);
            entry.started_at = at(started);
            entry.finished_at = at(finished);
            JournalRow {
                id: i64::from(seq),
                workflow_id: uuid::Uuid::nil(),
                seq,
                entry,
                duration_ms: finished - started,
                worker_id: "w".to_owned(),
            }
        };
        let journal = [
            row(1, "start", 0, 0),
            row(2, "ocr", 1, 3),
            row(3, "biometric_kyc", 5, 9),
            row(4, "callback", 50, 50),
            row(5, "hub_status", 52, 53),
        ];
        let (mut step, mut between, mut resume) = (Vec::new(), Vec::new(), Vec::new());
        gaps(&journal, &mut step, &mut between, &mut resume);
        assert_eq!(step, [3.0, 6.0, 3.0]);
        assert_eq!(between, [1.0, 2.0, 2.0]);
        assert_eq!(resume, [41.0]);
    }

    #[test]
    fn median_of_runs() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }
}
