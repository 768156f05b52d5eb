//! `finflow bench`: how fast the engine runs on each backend, measured side by side.
//!
//! Each run of each backend gets a fresh database (SQLite: a temporary file; PostgreSQL: a
//! temporary database `finflow_bench_<uuid>` on the given server, dropped afterwards), a fresh
//! in-process zero-delay sandbox and an in-process engine assembled as `finflow run` does
//! (callback receiver, apalis runtime, executor; same pool, concurrency and lease settings).
//! A run has two phases, each with its own engine, so that PostgreSQL's transaction counter
//! (flushed when connections close) can be read between them:
//!
//! 1. one warm-up onboarding (token, connections, caches), then the idle pickup samples;
//! 2. the throughput measurement: `--onboardings` submitted one after the other while the
//!    worker runs, until every one has stopped.
//!
//! The figures come from the store afterwards: the workflows' `finished_at` and the step
//! journal's timestamps (see `report` for what each one measures). Backends take turns run by
//! run, so that the shared machine's noise falls on both alike; medians of runs are reported.

mod harness;
mod inputs;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool};
use store::Store;
use uuid::Uuid;
use worker::config::Config;

use worker::inprocess::{self, EngineOptions};

use harness::Harness;
use inputs::Inputs;
use report::{Measured, Observed, Report, RunFigures};

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
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// The configuration, the definitions, a database or a run fails; PostgreSQL being
/// unreachable is an error only with `--backend postgres`.
pub async fn run(config_file: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let (definitions, definitions_from) = inprocess::definitions(&config)?;
    let inputs = Inputs::new(&definitions)?;
    let options = EngineOptions {
        concurrency: args
            .concurrency
            .map_or(config.worker.concurrency, |c| c as usize)
            .max(1),
        lease: Duration::from_secs(config.worker.lease_secs.max(1)),
    };
    let leftovers = Leftovers::default();
    let bench = Bench {
        args: &args,
        definitions: &definitions,
        inputs: &inputs,
        options: &options,
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

/// Everything one benchmark needs.
struct Bench<'a> {
    args: &'a Args,
    definitions: &'a workflow::Registry,
    inputs: &'a Inputs,
    options: &'a EngineOptions,
    leftovers: &'a Leftovers,
}

/// A fresh database for one run.
enum Database<'a> {
    Sqlite { path: PathBuf },
    Postgres { server: &'a PgServer, name: String },
}

impl Database<'_> {
    fn url(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { server, name } => server.url_of(name),
        }
    }

    /// Committed transactions so far (PostgreSQL; counted when connections close).
    async fn transactions(&self) -> anyhow::Result<Option<i64>> {
        match self {
            Self::Sqlite { .. } => Ok(None),
            Self::Postgres { server, name } => server.transactions(name).await.map(Some),
        }
    }
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
        eprintln!(
            "finflow bench: {backend} run {run}/{}: {} onboardings in {:.2} s ({:.1}/s), \
             step-to-step p50 {} ms, idle pickup p50 {} ms",
            self.args.runs,
            self.args.onboardings,
            figures.elapsed_ms / 1000.0,
            figures.onboardings_per_second,
            figures
                .step_to_step_ms
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s.p50)),
            figures
                .idle_pickup_ms
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s.p50)),
        );
        Ok(figures)
    }

    /// One run on a fresh database: warm-up and idle pickups, then throughput.
    async fn run_on(&self, database: &Database<'_>) -> anyhow::Result<RunFigures> {
        let url = database.url();
        let store = Store::connect(&url)
            .await
            .context("cannot open the benchmark database")?;
        store
            .migrate()
            .await
            .context("cannot migrate the benchmark database")?;

        let mut harness =
            Harness::start(store.clone(), self.definitions.clone(), self.options, 0).await?;
        harness
            .onboard_one(self.inputs, "warmup", STALL)
            .await
            .context("the warm-up onboarding failed")?;
        let idle = harness.idle(self.inputs, self.args.idle_samples).await?;
        let submitted = harness.submitted();
        harness.stop().await?;
        store.close().await;
        let before = database.transactions().await?;

        let store = Store::connect(&url).await?;
        let mut harness = Harness::start(
            store.clone(),
            self.definitions.clone(),
            self.options,
            submitted,
        )
        .await?;
        let load = harness
            .throughput(self.inputs, self.args.onboardings, STALL)
            .await?;
        harness.stop().await?;
        store.close().await;
        let after = database.transactions().await?;

        // Read the results on a connection of their own, after the count.
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
        store.close().await;
        Ok(RunFigures::from_observed(Observed {
            workflows,
            started: load.started,
            submit: load.submit,
            idle,
            transactions: before.zip(after).map(|(b, a)| a - b),
        }))
    }
}

/// A PostgreSQL server on which temporary databases are created.
struct PgServer {
    admin: PgPool,
    url: url::Url,
}

impl PgServer {
    /// Connects to the server's maintenance database given by `url`.
    ///
    /// # Errors
    /// Not a PostgreSQL URL, or no connection within 5 seconds.
    async fn connect(raw: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(raw)
            .map_err(|e| anyhow::anyhow!("--database-url / DATABASE_URL is not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            anyhow::bail!(
                "--database-url / DATABASE_URL must be a postgres:// URL (SQLite is always measured in a temporary file)"
            );
        }
        let shown = redacted(&url);
        let options: PgConnectOptions = raw
            .parse()
            .with_context(|| format!("cannot parse the PostgreSQL URL {shown}"))?;
        // One connection first: its error says why (refused, authentication, ...), where a
        // pool would only say that it timed out.
        let probe =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
                .await
                .map_err(|_| anyhow::anyhow!("no answer from PostgreSQL at {shown} within 5 s"))?
                .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        let _ = probe.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        Ok(Self { admin, url })
    }

    fn url_of(&self, database: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{database}"));
        url.to_string()
    }

    /// Creates an empty database and returns its name.
    async fn create(&self) -> anyhow::Result<String> {
        let name = format!("finflow_bench_{}", Uuid::new_v4().simple());
        // The name is ours: letters, digits and underscores only.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.admin)
            .await
            .with_context(|| {
                format!(
                    "cannot create the database {name} on {} (the user needs CREATEDB)",
                    redacted(&self.url)
                )
            })?;
        Ok(name)
    }

    /// Drops a database, closing whatever connection is still on it.
    async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        drop_database(&self.admin, name)
            .await
            .with_context(|| format!("cannot drop the benchmark database {name}"))
    }

    /// `xact_commit` of a database. Backends report their counts when they end (or when
    /// idle, with a delay), so read it after closing the pool that worked on it, until two
    /// reads 100 ms apart agree (an exiting backend may not have reported yet).
    async fn transactions(&self, name: &str) -> anyhow::Result<i64> {
        let mut last = None;
        for _ in 0..20 {
            let count: Option<i64> =
                sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
                    .bind(name)
                    .fetch_optional(&self.admin)
                    .await?;
            let count = count.unwrap_or(0);
            if last == Some(count) {
                break;
            }
            last = Some(count);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(last.unwrap_or(0))
    }
}

async fn drop_database(admin: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    // `WITH (FORCE)` (PostgreSQL 13+) ends connections a stopped pool may not have closed yet.
    let forced = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(admin)
    .await;
    match forced {
        Ok(_) => Ok(()),
        Err(_) => sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(admin)
            .await
            .map(|_| ()),
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

/// The URL with its password hidden.
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

fn remove_sqlite(path: &Path) {
    if let Err(error) = inprocess::remove_sqlite(path) {
        eprintln!(
            "finflow bench: could not remove {}: {error}",
            path.display()
        );
    }
}

/// Temporary databases and files to remove, even when the benchmark is interrupted.
#[derive(Default)]
struct Leftovers {
    server: Mutex<Option<PgPool>>,
    databases: Mutex<Vec<String>>,
    files: Mutex<Vec<PathBuf>>,
}

impl Leftovers {
    fn set_server(&self, admin: PgPool) {
        if let Ok(mut server) = self.server.lock() {
            *server = Some(admin);
        }
    }

    fn add_database(&self, name: String) {
        if let Ok(mut databases) = self.databases.lock() {
            databases.push(name);
        }
    }

    fn forget_database(&self, name: &str) {
        if let Ok(mut databases) = self.databases.lock() {
            databases.retain(|d| d != name);
        }
    }

    fn add_file(&self, path: PathBuf) {
        if let Ok(mut files) = self.files.lock() {
            files.push(path);
        }
    }

    fn forget_file(&self, path: &Path) {
        if let Ok(mut files) = self.files.lock() {
            files.retain(|f| f != path);
        }
    }

    /// Removes what is left, and closes the server's pool.
    async fn remove_all(&self) {
        let files = self
            .files
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        for file in files {
            remove_sqlite(&file);
        }
        let databases = self
            .databases
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        let server = self.server.lock().ok().and_then(|s| s.clone());
        if let Some(admin) = server {
            for name in databases {
                if let Err(error) = drop_database(&admin, &name).await {
                    eprintln!("finflow bench: could not drop the database {name}: {error}");
                }
            }
            admin.close().await;
        }
    }
}
