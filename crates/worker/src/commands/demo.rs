//! `finflow demo`: the whole engine on one machine with nothing set up. One process holds a
//! local Finfra (the sandbox, with small realistic delays, simulated borrowers who sign and
//! repay, banks that pay out, duplicated and reordered callbacks, and a few injected faults:
//! 5xx, 429 with `Retry-After`, connections dropped after the request was applied), the
//! callback receiver and a worker, over SQLite in `./finflow-demo.db` (recreated every run)
//! or a PostgreSQL database given with `--database-url`.
//!
//! It submits `--journeys` journeys (`journeys`): a borrower onboarded (`onboard-borrower`),
//! and a loan (`originate-loan`) that waits for that onboarding by its business key, then is
//! created, signed, disbursed and repaid. It shows progress live (`progress`) until every
//! workflow has stopped or `--timeout` passes, then prints a summary and the SQL to look
//! inside (`summary`).

mod db;
mod journeys;
mod progress;
mod summary;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use finfra_sandbox::{CallbackDelivery, Faults, SandboxConfig, Timing};
use store::{NewWorkflow, Store};
use worker::config::Config;
use worker::sample::Product;

use db::RunDb;
use journeys::{Journey, ONBOARD, ORIGINATE};
use progress::Progress;
use summary::Summary;
use worker::inprocess::{self, EngineOptions, InProcess, stopped};

/// `finflow demo --help`'s examples and notes.
pub const DEMO_HELP: &str = "Examples:
  finflow demo                                  # 40 journeys, SQLite in ./finflow-demo.db
  finflow demo --journeys 200 --seed 7          # more, and the same mix on every run
  finflow demo --database-url postgres://postgres@127.0.0.1:5432/finflow_demo
  finflow demo --console                        # then click through it at http://127.0.0.1:8081

Each journey is an onboard-borrower workflow (PERSONAL or BUSINESS) and an originate-loan
workflow (single payment or BNPL) that waits for it by business key, then is created, signed,
disbursed and repaid. A few borrowers are rejected at KYC (+reject) or declined by the credit
policy (+lowscore): their loans fail with the reason, as they should.
SQLite: the file and its -wal/-shm are deleted first. PostgreSQL: the database is migrated and
used as it is; nothing is dropped, and this run's workflows have business keys demo-<run>-*.
Progress goes to stderr; the summary and the SQL to look inside to stdout. Exit status 1
when --timeout passes before every workflow has finished.";

/// The sandbox's largest callback reordering delay.
const REORDER: Duration = Duration::from_millis(300);

/// How often the progress display reads the counts.
const REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Journeys to run; each is one onboarding and one loan.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=2000))]
    journeys: u32,
    /// Seed of the mix (products, outcomes, amounts) and of the sandbox's faults, duplicates
    /// and reordering (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Database: sqlite://FILE is recreated (FILE and its -wal/-shm are deleted first);
    /// postgres://... is used as it is (migrated; nothing is dropped or deleted).
    #[arg(long, value_name = "URL", default_value = "sqlite://finflow-demo.db")]
    database_url: String,
    /// Stop waiting after this many seconds; the exit status is then 1.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// At the end, serve the web console on the demo's database (console.listen, default
    /// 127.0.0.1:8081) until Ctrl-C, to click through what just happened. Without
    /// [[console.users]] in finflow.toml, two demo users are made (an operator and an
    /// approver) and their passwords printed.
    #[arg(long)]
    console: bool,
}

/// Where the demo keeps its workflows.
enum Database {
    Sqlite { path: PathBuf },
    Postgres { shown: String },
}

impl Database {
    /// Reads `--database-url`.
    ///
    /// # Errors
    /// Neither `sqlite:` nor `postgres:`, or a SQLite URL without a file.
    fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or("");
            if path.is_empty() || path == ":memory:" {
                anyhow::bail!(
                    "--database-url {url:?} names no SQLite file (e.g. sqlite://finflow-demo.db)"
                );
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let shown = url::Url::parse(url)
                .map(|mut u| {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.to_string()
                })
                .map_err(|e| anyhow::anyhow!("--database-url is not a valid URL ({e})"))?;
            return Ok(Self::Postgres { shown });
        }
        anyhow::bail!("--database-url must be sqlite://FILE or postgres://USER@HOST/DATABASE")
    }

    /// `sqlite3 finflow-demo.db` or `psql 'postgres://...' -c`.
    fn sql_prefix(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite3 {}", path.display()),
            Self::Postgres { shown } => format!("psql '{shown}' -c"),
        }
    }
}

/// Runs the demo and prints its summary.
///
/// # Errors
/// The configuration, the definitions, the database, a socket, or the store fails; a
/// timeout is not an error but exit status 1.
pub async fn run(config_file: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let (definitions, definitions_from) = inprocess::definitions(&config)?;
    let products = products(&definitions)?;
    let database = Database::parse(&args.database_url)?;
    let seed = args
        .seed
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0 % 1_000_000);
    let run_tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let prefix = format!("demo-{run_tag}-");
    let journeys = journeys::plan(
        args.journeys as usize,
        seed,
        run_tag,
        &products,
        Utc::now().date_naive(),
    );

    // Personal data sealed as in production: under the configured keys, else a throwaway
    // key made for this run (the demo's borrowers are generated).
    let keys = config
        .keys()?
        .unwrap_or_else(|| std::sync::Arc::new(privacy::KeyRing::throwaway()));
    let store = open(&database, &args.database_url).await?.with_keys(keys);
    let db = RunDb::new(store.clone(), &prefix);
    let callbacks_before = db.callbacks_stored().await?;
    let running = InProcess::start(
        store.clone(),
        definitions.clone(),
        sandbox(seed),
        &EngineOptions::from_config(&config),
    )
    .await?;
    eprintln!(
        "finflow demo: {} journeys, seed {seed}, definitions {definitions_from}",
        journeys.len()
    );
    eprintln!(
        "finflow demo: in this process: a Finfra sandbox (delays, faults, callbacks duplicated \
         and reordered), the callback receiver, a worker (concurrency {})",
        config.worker.concurrency.max(1),
    );

    let started = Instant::now();
    let engine = workflow::Engine::new(definitions);
    let outcome = async {
        submit(&store, &engine, &journeys).await?;
        watch(
            &db,
            &running,
            journeys.len(),
            Duration::from_secs(args.timeout),
        )
        .await
    };
    let outcome = tokio::select! {
        outcome = outcome => Some(outcome),
        () = super::shutdown_signal() => None,
    };
    let timed_out = match outcome {
        Some(Ok(timed_out)) => timed_out,
        Some(Err(error)) => {
            let _ = running.stop().await;
            store.close().await;
            return Err(error);
        }
        None => {
            eprintln!("finflow demo: interrupted; stopping");
            running.stop().await?;
            store.close().await;
            return Ok(ExitCode::from(130));
        }
    };
    let elapsed = started.elapsed();

    let ledger = running.sandbox().ledger();
    let loans = running.sandbox().loans();
    running.stop().await?;
    let counts = db.counts().await?;
    let rows = db.rows().await?;
    let journal_outcomes = db.journal_outcomes().await?;
    let callbacks_stored = db.callbacks_stored().await? - callbacks_before;
    let summary = Summary {
        journeys: &journeys,
        seed,
        elapsed,
        timed_out: timed_out.then_some(Duration::from_secs(args.timeout)),
        counts: &counts,
        rows: &rows,
        ledger: &ledger,
        loans: &loans,
        callbacks_stored,
        reorder: REORDER,
        journal_outcomes: &journal_outcomes,
        sql_prefix: database.sql_prefix(),
        only_this_run: matches!(database, Database::Postgres { .. })
            .then(|| format!("business_key like '{prefix}%'")),
    };
    print!("{}", summary.text());
    if args.console {
        let config = with_demo_users(config)?;
        let shown = match &database {
            Database::Sqlite { path } => path.display().to_string(),
            Database::Postgres { shown } => shown.clone(),
        };
        super::console::serve(&config, None, Some(store.clone()), &shown).await?;
    } else {
        store.close().await;
    }
    Ok(if timed_out {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `config` with an operator and an approver for the console when it names no users; their
/// passwords are printed (random, for this run only).
fn with_demo_users(mut config: Config) -> anyhow::Result<Config> {
    if !config.console.users.is_empty() {
        return Ok(config);
    }
    let mut lines = Vec::new();
    for (name, role) in [
        ("operator", console::Role::Operator),
        ("approver", console::Role::Approver),
    ] {
        let password = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let password_hash = console::auth::hash_password(&password)
            .map_err(|e| anyhow::anyhow!("hashing a demo password: {e}"))?;
        config.console.users.push(console::UserConfig {
            name: name.to_owned(),
            role,
            password_hash: Some(password_hash),
            personal_data: false,
        });
        lines.push(format!("{name} / {password}"));
    }
    eprintln!(
        "finflow demo: console users for this run (none in finflow.toml): {}",
        lines.join(", ")
    );
    Ok(config)
}

/// The products whose definition is loaded and originates their kind of loan.
fn products(definitions: &workflow::Registry) -> anyhow::Result<Vec<Product>> {
    let products: Vec<Product> = Product::ALL
        .into_iter()
        .filter(|p| {
            definitions
                .latest(p.definition())
                .and_then(|d| d.origination.as_ref())
                .is_some_and(|o| {
                    if p.is_bnpl() {
                        o.bnpl.is_some()
                    } else {
                        o.single_payment.is_some()
                    }
                })
        })
        .collect();
    if products.is_empty() {
        anyhow::bail!(
            "none of the definitions {} (with their [origination]) is loaded: run the demo from \
             the repository, or from a directory without workflows/ to use the bundled ones",
            Product::ALL.map(Product::definition).join(", ")
        );
    }
    Ok(products)
}

/// Opens (SQLite: recreates) the database and brings its schema up to date.
async fn open(database: &Database, url: &str) -> anyhow::Result<Store> {
    match database {
        Database::Sqlite { path } => {
            let removed = inprocess::remove_sqlite(path)
                .with_context(|| format!("cannot remove the previous {}", path.display()))?;
            eprintln!(
                "finflow demo: database {} (SQLite, {})",
                path.display(),
                if removed {
                    "recreated: the old file and its -wal/-shm deleted"
                } else {
                    "new"
                }
            );
        }
        Database::Postgres { shown } => eprintln!(
            "finflow demo: database {shown} (PostgreSQL, used as it is: migrated, nothing dropped)"
        ),
    }
    let shown = match database {
        Database::Sqlite { path } => path.display().to_string(),
        Database::Postgres { shown } => shown.clone(),
    };
    // A worker's store, as `finflow run` opens: the demo runs the engine in this process.
    let options = store::StoreOptions {
        worker: true,
        ..store::StoreOptions::default()
    };
    let store = Store::connect_with(url, &options)
        .await
        .with_context(|| format!("cannot open the database {shown}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating {shown} failed"))?;
    Ok(store)
}

/// The sandbox of the demo: realistic but quick (a journey takes a few seconds), with
/// simulated borrowers who sign and repay, and modest faults, all drawn from `seed`.
fn sandbox(seed: u64) -> SandboxConfig {
    let mut config = SandboxConfig::standalone();
    config.timing = Timing {
        borrower_created: Duration::from_millis(150),
        kyc_review: Duration::from_millis(500),
        final_approval: Duration::from_millis(300),
        auto_sign: Some(Duration::from_millis(500)),
        auto_disburse: Some(Duration::from_millis(800)),
        auto_repay: Some(Duration::from_millis(400)),
    };
    // The faults give the 429s; the engine's retries are the show, not a slow limiter.
    config.rate_limit = None;
    config.faults = Faults {
        seed,
        error_500_rate: 0.02,
        error_429_rate: 0.004,
        ambiguous_rate: 0.01,
        latency: Some((Duration::from_millis(2), Duration::from_millis(20))),
        ..Faults::default()
    };
    config.delivery = CallbackDelivery {
        seed,
        duplicate_rate: 0.1,
        max_reorder_delay: REORDER,
        retry_base: Duration::from_millis(250),
        ..CallbackDelivery::default()
    };
    config
}

/// Submits each journey's onboarding, then its loan, validated and pinned as `finflow
/// submit` does.
async fn submit(
    store: &Store,
    engine: &workflow::Engine,
    journeys: &[Journey],
) -> anyhow::Result<()> {
    for journey in journeys {
        for (kind, input) in [
            (ONBOARD, journey.onboarding_input()),
            (ORIGINATE, journey.loan_input()),
        ] {
            let definition = engine.validate(kind, &input, Utc::now()).map_err(|e| {
                anyhow::anyhow!(
                    "the demo's {kind} input for {} is refused: {e}",
                    journey.key
                )
            })?;
            let mut new = NewWorkflow::new(kind, journey.key.clone(), input);
            new.definition_name = definition.name;
            new.definition_version = i32::try_from(definition.version).ok();
            store
                .submit(&new)
                .await
                .with_context(|| format!("cannot submit {kind} {}", journey.key))?;
        }
    }
    Ok(())
}

/// Shows progress until every one of the run's workflows has stopped (`false`), or
/// `timeout` passed (`true`).
async fn watch(
    db: &RunDb,
    running: &InProcess,
    journeys: usize,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let n = u64::try_from(journeys).unwrap_or(u64::MAX);
    let mut progress = Progress::new(&[(ONBOARD, n), (ORIGINATE, n)]);
    let deadline = Instant::now() + timeout;
    let expected = i64::try_from(journeys * 2).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timed_out = loop {
        tick.tick().await;
        let counts = db.counts().await?;
        progress.update(&counts, &running.sandbox().ledger());
        let total: i64 = counts.iter().map(|c| c.count).sum();
        let open = counts.iter().any(|c| !stopped(c.status));
        if total >= expected && !open {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
    };
    progress.finish();
    Ok(timed_out)
}
