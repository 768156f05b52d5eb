//! `finflow bench`: how fast the engine runs on each backend, measured side by side.
//!
//! Each run of each backend gets a fresh database (SQLite: a temporary file; PostgreSQL: a
//! temporary database `finflow_bench_<uuid>` on the given server, dropped afterwards), a fresh
//! in-process zero-delay sandbox and an in-process engine assembled as `finflow run` does
//! (callback receiver, apalis runtime, executor; same pool, concurrency and lease settings).
//! A run goes through these phases, each with an engine of its own, so that PostgreSQL's
//! counters (reported by a backend when it ends) can be read between them with every
//! connection closed:
//!
//! 1. one warm-up onboarding (token, connections, caches), then the idle pickup samples;
//!    then, with `--preload N` and the engine stopped, N finished copies of the warm-up
//!    onboarding inserted in bulk (`preload`);
//! 2. with `--in-flight N`: N onboardings whose KYC review never ends (a sandbox of their
//!    own), run until they all wait, the process's RSS read then (`memory`); they stay in
//!    the store, waiting, through the rest of the run;
//! 3. the database's floor (`floor`) for `--floor-secs`; PostgreSQL's counters read
//!    (transactions, WAL position, `workflows` updates: `stats`; the server's CPU when it
//!    runs on this machine: `server_cpu`), and on both databases this process's own CPU;
//! 4. the throughput measurement: `--onboardings` submitted one after the other while the
//!    worker runs, until every one has stopped. On PostgreSQL its store connects through a
//!    proxy in this process that counts SQL round trips on the wire (`proxy`, unless
//!    `--direct`); the counters are read again after it;
//! 5. the floor again.
//!
//! The figures come from the store afterwards: the workflows' `finished_at` and the step
//! journal's timestamps (see `report` for what each one measures). Backends take turns run by
//! run, so that the shared machine's noise falls on both alike; medians of runs are reported.

mod databases;
mod floor;
mod harness;
mod inputs;
mod memory;
mod preload;
mod proxy;
mod report;
mod server_cpu;
mod stats;
mod worker_process;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use store::{Store, StoreOptions};
use uuid::Uuid;
use worker::config::Config;

use worker::inprocess::{self, EngineOptions};

use databases::{Database, Leftovers, PgServer, remove_sqlite};
use floor::FloorRun;
use harness::Harness;
use inputs::Inputs;
use report::{InFlight, Measured, Observed, Report, RunFigures};

/// The PostgreSQL server used when neither `--database-url` nor `DATABASE_URL` is given.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long a run may go without any onboarding finishing before it is called stuck.
const STALL: Duration = Duration::from_secs(60);

/// Which backends to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backends {
    /// SQLite, and PostgreSQL when its server answers.
    Both,
    /// SQLite only.
    Sqlite,
    /// PostgreSQL only; an error when its server does not answer.
    Postgres,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Onboardings per run (PERSONAL and BUSINESS, the definitions taking turns).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    onboardings: u32,
    /// Runs per backend; each figure is the median of the runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Backends to measure.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
    /// PostgreSQL server on which to create (and drop) the temporary benchmark databases; the
    /// user needs CREATEDB. Default: postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Idle pickups sampled per run.
    #[arg(long, default_value_t = 20)]
    idle_samples: u32,
    /// Workflows advanced at once (default: worker.concurrency of the configuration).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Print JSON instead of the table (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Seconds of each measurement of the database's floor (one journal insert + one row
    /// update per transaction, at the same concurrency, on the same database), before and
    /// after the workflows of each run; 0 skips it.
    #[arg(long, default_value_t = 3.0, value_parser = non_negative_seconds)]
    floor_secs: f64,
    /// Finished workflows (copies of the run's warm-up onboarding, with its journal and
    /// callbacks) inserted in bulk before each run is measured, so it measures a store with
    /// history.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Onboardings put in flight before the throughput measurement: their borrowers' KYC
    /// review never ends, so they wait (for `user_verified`) through it. A `finflow run`
    /// process of this binary puts them in flight; the report gives its RSS once they all
    /// wait.
    #[arg(long, default_value_t = 0)]
    in_flight: u32,
    /// PostgreSQL: connect the store straight to the server, not through the proxy that
    /// counts SQL round trips (then not measured).
    #[arg(long)]
    direct: bool,
    /// Seal personal data (inputs, callback payloads, keyed NIK hashes) under a throwaway
    /// key, as a lender with `[privacy]` keys runs: the cost of encryption at rest.
    #[arg(long)]
    sealed: bool,
}

fn non_negative_seconds(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=3600.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "{raw:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// The configuration, the definitions, a database or a run fails; PostgreSQL being
/// unreachable is an error only with `--backend postgres`.
pub async fn run(config_file: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let (mut definitions, definitions_from) = inprocess::definitions(&config)?;
    let inputs = Inputs::new(&definitions)?;
    if args.in_flight > 0 {
        definitions.insert(inputs.in_flight_definition().clone());
    }
    let options = EngineOptions {
        concurrency: args
            .concurrency
            .map_or(config.worker.concurrency, |c| c as usize)
            .max(1),
        lease: Duration::from_secs(config.worker.lease_secs.max(1)),
        webhooks: Vec::new(),
    };
    let leftovers = Leftovers::default();
    let bench = Bench {
        args: &args,
        definitions: &definitions,
        inputs: &inputs,
        options: &options,
        pool: worker::config::WorkerConfig {
            concurrency: options.concurrency,
            ..config.worker.clone()
        },
        leftovers: &leftovers,
    };
    let measured = tokio::select! {
        measured = bench.measure() => measured,
        () = super::shutdown_signal() => {
            eprintln!("finflow bench: interrupted; removing the temporary databases");
            leftovers.remove_all().await;
            return Ok(ExitCode::from(130));
        }
    };
    leftovers.remove_all().await;
    let (sqlite, postgres) = measured?;
    let report = Report {
        onboardings: args.onboardings,
        runs: args.runs,
        concurrency: options.concurrency,
        idle_samples: args.idle_samples,
        definitions: inputs.definition_names(),
        definitions_from,
        floor_secs: args.floor_secs,
        preload: args.preload,
        in_flight: args.in_flight,
        round_trip_proxy: !args.direct,
        sqlite,
        postgres,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

/// The `[privacy]` keys of the whole benchmark, made up at random when first asked for:
/// what `--sealed` seals under, and what the `--in-flight` worker (a `finflow run`, which
/// needs keys) is given, so that every store of a run reads what another sealed.
struct BenchKeys {
    ring: std::sync::Arc<privacy::KeyRing>,
    /// The same as `FINFLOW_PRIVACY__*` variables.
    env: Vec<(String, String)>,
}

impl BenchKeys {
    fn get() -> &'static Self {
        static KEYS: std::sync::OnceLock<BenchKeys> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| {
            use secrecy::ExposeSecret as _;
            let (kek, hash) = (
                privacy::KeyRing::new_key_base64(),
                privacy::KeyRing::new_key_base64(),
            );
            let config = privacy::PrivacyConfig {
                keys: [("bench".to_owned(), kek.clone())].into(),
                active: Some("bench".to_owned()),
                hash_key: Some(hash.clone()),
                retain: None,
            };
            let ring = privacy::KeyRing::from_config(&config)
                .expect("fresh random keys make a valid ring");
            Self {
                ring: std::sync::Arc::new(ring),
                env: vec![
                    (
                        "FINFLOW_PRIVACY__KEYS__BENCH".to_owned(),
                        kek.expose_secret().to_owned(),
                    ),
                    ("FINFLOW_PRIVACY__ACTIVE".to_owned(), "bench".to_owned()),
                    (
                        "FINFLOW_PRIVACY__HASH_KEY".to_owned(),
                        hash.expose_secret().to_owned(),
                    ),
                ],
            }
        })
    }
}

/// Everything one benchmark needs.
struct Bench<'a> {
    args: &'a Args,
    definitions: &'a workflow::Registry,
    inputs: &'a Inputs,
    options: &'a EngineOptions,
    /// The `[worker]` configuration with the benchmark's concurrency: how `finflow run`
    /// would size its pool.
    pool: worker::config::WorkerConfig,
    leftovers: &'a Leftovers,
}

impl Bench<'_> {
    /// Every run of every backend asked for, taking turns.
    async fn measure(&self) -> anyhow::Result<(Measured, Measured)> {
        let want_sqlite = self.args.backend != Backends::Postgres;
        let server = if self.args.backend == Backends::Sqlite {
            Err("not asked for (--backend sqlite)".to_owned())
        } else {
            let url = self
                .args
                .database_url
                .clone()
                .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
            match PgServer::connect(&url).await {
                Ok(server) => {
                    self.leftovers.set_server(server.admin.clone());
                    Ok(server)
                }
                Err(error) if self.args.backend == Backends::Postgres => {
                    return Err(anyhow::anyhow!(one_line(&error)));
                }
                Err(error) => {
                    let reason = one_line(&error);
                    eprintln!("finflow bench: PostgreSQL skipped: {reason}");
                    Err(format!(
                        "{reason} (give a reachable server with --database-url or DATABASE_URL)"
                    ))
                }
            }
        };
        let (mut sqlite, mut postgres) = (Vec::new(), Vec::new());
        for run in 1..=self.args.runs {
            if want_sqlite {
                let path = std::env::temp_dir()
                    .join(format!("finflow-bench-{}.db", Uuid::new_v4().simple()));
                self.leftovers.add_file(path.clone());
                let figures = self.run_on(&Database::Sqlite { path: path.clone() }).await;
                remove_sqlite(&path);
                self.leftovers.forget_file(&path);
                sqlite.push(self.progress("SQLite", run, figures)?);
            }
            if let Ok(server) = &server {
                let name = server.create().await?;
                self.leftovers.add_database(name.clone());
                let figures = self
                    .run_on(&Database::Postgres {
                        server,
                        name: name.clone(),
                    })
                    .await;
                server.drop_database(&name).await?;
                self.leftovers.forget_database(&name);
                postgres.push(self.progress("PostgreSQL", run, figures)?);
            }
        }
        let sqlite = if want_sqlite {
            Measured::Runs(sqlite)
        } else {
            Measured::Skipped("not asked for (--backend postgres)".to_owned())
        };
        let postgres = match server {
            Ok(_) => Measured::Runs(postgres),
            Err(reason) => Measured::Skipped(reason),
        };
        Ok((sqlite, postgres))
    }

    /// One progress line on stderr per run.
    fn progress(
        &self,
        backend: &str,
        run: u32,
        figures: anyhow::Result<RunFigures>,
    ) -> anyhow::Result<RunFigures> {
        let figures = figures.with_context(|| format!("{backend} run {run}"))?;
        let shown = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
        };
        eprintln!(
            "finflow bench: {backend} run {run}/{}: {} onboardings in {:.2} s ({:.1}/s, {:.0} \
             steps/s, floor {} tx/s), step-to-step p50 {} ms, idle pickup p50 {} ms, {} round \
             trips per step, peak RSS {} MB",
            self.args.runs,
            self.args.onboardings,
            figures.elapsed_ms / 1000.0,
            figures.onboardings_per_second,
            figures.steps_per_second,
            shown(figures.floor_tps, 0),
            shown(figures.step_to_step_ms.map(|s| s.p50), 1),
            shown(figures.idle_pickup_ms.map(|s| s.p50), 1),
            shown(figures.round_trips_per_step, 2),
            shown(figures.peak_rss_mb, 0),
        );
        Ok(figures)
    }

    /// How the benchmark's stores open `url`: as `finflow run` opens its own, a worker's
    /// store with the pool it would have at this concurrency (`WorkerConfig::pool_size`).
    async fn connect(&self, url: &str) -> anyhow::Result<Store> {
        let options = StoreOptions {
            max_connections: self.pool.pool_size(url),
            worker: true,
            ..StoreOptions::default()
        };
        let store = Store::connect_with(url, &options).await?;
        Ok(if self.args.sealed {
            store.with_keys(BenchKeys::get().ring.clone())
        } else {
            store
        })
    }

    /// A store on the same database for watching the workflows beside the engine's pool.
    async fn observer(&self, database: &Database<'_>, store: &Store) -> anyhow::Result<Store> {
        match database {
            Database::Sqlite { .. } => Ok(store.clone()),
            Database::Postgres { .. } => {
                let options = StoreOptions {
                    max_connections: Some(1),
                    ..StoreOptions::default()
                };
                Ok(Store::connect_with(&database.url(), &options).await?)
            }
        }
    }

    /// One floor measurement, unless `--floor-secs 0`.
    async fn floor(&self, database: &Database<'_>) -> anyhow::Result<Option<FloorRun>> {
        if self.args.floor_secs <= 0.0 {
            return Ok(None);
        }
        let duration = Duration::from_secs_f64(self.args.floor_secs);
        let concurrency = self.options.concurrency;
        let run = match database {
            Database::Sqlite { path } => floor::sqlite(path, concurrency, duration).await,
            Database::Postgres { server, name } => {
                floor::postgres(&server.url_of(name), concurrency, duration, server.cpu()).await
            }
        };
        run.context("the floor measurement failed").map(Some)
    }

    /// One run on a fresh database: warm-up and idle pickups, preload; the onboardings put
    /// in flight; the floor; throughput; the floor again.
    async fn run_on(&self, database: &Database<'_>) -> anyhow::Result<RunFigures> {
        memory::reset_peak();
        let url = database.url();
        let store = self
            .connect(&url)
            .await
            .context("cannot open the benchmark database")?;
        store
            .migrate()
            .await
            .context("cannot migrate the benchmark database")?;

        let mut harness = Harness::start(
            store.clone(),
            store.clone(),
            self.definitions.clone(),
            self.options,
            Harness::ordinary_sandbox(),
            0,
        )
        .await?;
        let (warmup, _) = harness
            .onboard_one(self.inputs, "warmup", STALL)
            .await
            .context("the warm-up onboarding failed")?;
        let idle = harness.idle(self.inputs, self.args.idle_samples).await?;
        let mut submitted = harness.submitted();
        harness.stop().await?;
        // With no engine running: nothing waits for the write lock (SQLite) meanwhile.
        let preload = if self.args.preload > 0 {
            eprintln!(
                "finflow bench: preloading {} finished workflows",
                self.args.preload
            );
            Some(
                preload::preload(&url, warmup, self.args.preload)
                    .await
                    .context("preloading failed")?,
            )
        } else {
            None
        };

        let in_flight = if self.args.in_flight > 0 {
            // Parked by a `finflow run` of this binary, so that the memory read is a
            // worker's own (the sandbox and its borrowers stay in this process). Submitted
            // as `finflow submit` does, from a store that is not a worker's, so that on
            // PostgreSQL their hints reach the other process.
            let submitter = Store::connect(&url)
                .await
                .context("cannot open the benchmark database")?
                .with_keys(BenchKeys::get().ring.clone());
            let mut harness = Harness::start_worker_process(
                submitter.clone(),
                submitter.clone(),
                (
                    self.definitions.clone(),
                    &[(inputs::IN_FLIGHT_FILE, inputs::IN_FLIGHT_TOML)],
                ),
                self.options,
                Harness::holding_sandbox(),
                submitted,
                (&database.url(), &BenchKeys::get().env),
            )
            .await?;
            let parked = harness
                .park(self.inputs, self.args.in_flight, STALL)
                .await
                .context("putting onboardings in flight failed")?;
            let rss = harness.worker_rss();
            submitted = harness.submitted();
            harness.stop().await?;
            submitter.close().await;
            Some(InFlight {
                workflows: self.args.in_flight,
                seconds_to_park: parked.seconds,
                rss_mb: rss.map(|r| r.current_mb),
                peak_rss_mb: rss.map(|r| r.peak_mb),
            })
        } else {
            None
        };
        store.close().await;

        let floor_before = self.floor(database).await?;
        let before = database.counters_before().await?;
        let own_cpu_before = server_cpu::own_seconds();

        let (run_url, proxy) = database.throughput_url(self.args.direct).await?;
        let store = self.connect(&run_url).await?;
        // TLS costs a connection to this machine about a sixth of throughput: say which it was.
        let tls = store.postgres_connection().await?.map(|(_, tls)| tls);
        let observer = self.observer(database, &store).await?;
        let mut harness = Harness::start(
            store.clone(),
            observer.clone(),
            self.definitions.clone(),
            self.options,
            Harness::ordinary_sandbox(),
            submitted,
        )
        .await?;
        let load = harness
            .throughput(self.inputs, self.args.onboardings, STALL)
            .await?;
        harness.stop().await?;
        let commit_batches = store.commit_batch_sizes();
        let claim_batches = store.claim_batch_sizes();
        let stale_claims = store.stale_claims();
        let callback_batches = store.callback_batch_sizes();
        let lanes_busy = store.lanes_busy();
        store.close().await;
        observer.close().await;
        let round_trips = proxy.map(|proxy| {
            let counted = proxy.counted();
            proxy.stop();
            counted
        });
        let own_cpu_after = server_cpu::own_seconds();
        let after = database.counters_after().await?;
        let floor_after = self.floor(database).await?;

        // Read the results on a connection of their own, after the counts.
        let store = Store::connect(&url).await?;
        let mut workflows = Vec::with_capacity(load.ids.len());
        for id in &load.ids {
            let workflow = store
                .get(*id)
                .await?
                .with_context(|| format!("workflow {id} vanished"))?;
            let journal = store.journal(*id).await?;
            workflows.push((workflow, journal));
        }
        let context_bytes_avg = stats::context_bytes_avg(&store, &load.ids).await?;
        store.close().await;
        let wal_bytes = match (&before, &after, database) {
            (Some(b), Some(a), Database::Postgres { server, .. }) => {
                Some(stats::wal_bytes(&server.admin, &b.wal_lsn, &a.wal_lsn).await?)
            }
            _ => None,
        };
        let (transactions, updates, server_cpu_seconds) = match (before, after) {
            (Some(b), Some(a)) => (
                Some(a.transactions - b.transactions),
                Some((a.updates.all - b.updates.all, a.updates.hot - b.updates.hot)),
                a.server_cpu.zip(b.server_cpu).map(|(a, b)| a - b),
            ),
            _ => (None, None, None),
        };
        Ok(RunFigures::from_observed(Observed {
            workflows,
            started: load.started,
            submit: load.submit,
            idle,
            transactions,
            round_trips,
            wal_bytes,
            updates,
            server_cpu_seconds,
            process_cpu_seconds: own_cpu_after
                .zip(own_cpu_before)
                .map(|(after, before)| after - before),
            context_bytes_avg,
            tls,
            floor_before,
            floor_after,
            preload,
            in_flight,
            peak_rss_mb: memory::rss().map(|r| r.peak_mb),
            commit_batches,
            claim_batches,
            stale_claims,
            callback_batches,
            lanes_busy,
        }))
    }
}

/// The error and its causes on one line, each message once (sqlx repeats its source).
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !parts.iter().any(|seen| seen.contains(&message)) {
            parts.push(message);
        }
    }
    parts.join(": ").replace('\n', " ")
}
