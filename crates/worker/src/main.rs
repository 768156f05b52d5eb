//! `finflow`: the loan orchestration engine's one binary.
//!
//! Subcommands: `demo` runs everything in one process against a local Finfra with faults,
//! to see the engine work; `sandbox` runs a local, strict fake of Finfra; `doctor` checks the
//! configuration and the way to Finfra; `migrate`, `run`, `submit` and `status` run the
//! engine; `inspect`, `cancel`, `resolve`, `retry`, `approve` and `reject-command` are the
//! operator's tools, `console` their web pages; `reconcile` compares Finfra's books with
//! finflow's; `events` and `webhooks` show the lifecycle feed and its deliveries; `bench`
//! measures it on both backends. Every failure ends in one line on stderr and a
//! non-zero exit code, never a stack trace.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use worker::telemetry::{self, LogFormat};

/// mimalloc rather than the system's allocator: a step allocates and frees many small
/// JSON values, and glibc's malloc spent a quarter of the process's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "finflow",
    version,
    about = "Loan orchestration engine for Finfra's partner API",
    long_about = "finflow drives borrower onboarding and loans through Finfra's partner API as \
                  durable state machines.\n\nConfiguration: built-in defaults < finflow.toml < \
                  FINFLOW_* environment variables (nested with __, e.g. FINFLOW_FINFRA__CLIENT_ID)."
)]
struct Cli {
    /// Configuration file (default: ./finflow.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log lines on stderr as human-readable text or one JSON object per line (the filter
    /// is FINFLOW_LOG, e.g. info or info,finfra_api=debug; default warn).
    #[arg(
        long,
        global = true,
        value_enum,
        ignore_case = true,
        env = "FINFLOW_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// See the whole engine work, with nothing set up: borrowers onboarded and loans signed,
    /// disbursed and repaid against a local Finfra with faults, in this one process.
    #[command(after_help = commands::demo::DEMO_HELP)]
    Demo(commands::demo::Args),
    /// Run a local, strict fake of Finfra and print the credentials and URLs to use.
    #[command(after_help = "Examples:\n  \
        finflow sandbox --port 8090\n  \
        finflow sandbox --port 8090 --callback-url http://127.0.0.1:8080 --callback-auth-key dev-key\n  \
        finflow sandbox --zero-delay --error-500-rate 0.05 --error-429-rate 0.05 --ambiguous-rate 0.02 --seed 7")]
    Sandbox(Box<commands::sandbox::Args>),
    /// Check the configuration, obtain a token and call both of Finfra's healthchecks.
    #[command(after_help = "Examples:\n  \
        finflow doctor\n  \
        FINFLOW_FINFRA__BASE_URL=http://127.0.0.1:8090 FINFLOW_FINFRA__CLIENT_ID=id \\\n    \
        FINFLOW_FINFRA__CLIENT_SECRET=secret finflow doctor\n\n\
        Exit status 0 only when every check passes.")]
    Doctor,
    /// Create or upgrade the database schema (safe to repeat, and to run concurrently).
    #[command(after_help = "Examples:\n  \
        finflow migrate                                   # ./finflow.db (SQLite)\n  \
        FINFLOW_DATABASE_URL=postgres://postgres@127.0.0.1:5432/finflow finflow migrate")]
    Migrate,
    /// Run a worker: advance due workflows and receive Finfra's callbacks, until SIGTERM.
    #[command(after_help = "Examples:\n  \
        FINFLOW_CALLBACKS__AUTH_KEY=... finflow run\n  \
        FINFLOW_DATABASE_URL=postgres://postgres@127.0.0.1/finflow finflow run   # one of a fleet\n\n\
        Needs finfra.client_id/client_secret and callbacks.auth_key; migrates the database first.\n\
        Serves GET /metrics, /healthz and /readyz on metrics.listen (FINFLOW_METRICS__LISTEN,\n\
        default 127.0.0.1:9464; off disables them).")]
    Run,
    /// Enqueue a workflow; prints its id. The same kind and business key twice returns the
    /// existing workflow; with a different input it is refused.
    #[command(after_help = "Examples:\n  \
        finflow submit onboard-borrower --business-key borrower-42 --input borrower-42.json\n\n\
        Invalid input is refused with every problem listed, and nothing is stored. So is a\n\
        business key that is not 1 to 200 printable characters without surrounding whitespace,\n\
        and an onboarding of a borrower (NIK) whose onboarding under another key has not\n\
        finished (the message names that key: wait for it, or finflow cancel it).")]
    Submit {
        /// The workflow kind, e.g. onboard-borrower.
        kind: String,
        /// Your key for this piece of work (unique per kind), e.g. your borrower's id: 1 to
        /// 200 printable characters without surrounding whitespace.
        #[arg(long)]
        business_key: String,
        /// The input, a JSON file.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Count workflows by kind, state and status; show what waits on what and the oldest
    /// stuck workflows.
    #[command(after_help = "Examples:\n  \
        finflow status\n  \
        finflow status --json\n\n\
        The same in SQL: select * from workflow_status_counts; select * from stuck_workflows;")]
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure onboardings per second, step-to-step latency and idle pickup on SQLite and
    /// PostgreSQL, side by side, against an in-process zero-delay sandbox.
    #[command(after_help = "Examples:\n  \
        finflow bench                                  # SQLite, and PostgreSQL if it answers\n  \
        finflow bench --onboardings 1000 --runs 5\n  \
        finflow bench --backend sqlite --onboardings 50 --runs 1 --idle-samples 5\n  \
        finflow bench --database-url postgres://postgres@db:5432/postgres --json\n\n\
        PostgreSQL: --database-url, else DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres.\n\
        Each run creates a temporary database finflow_bench_<uuid> there and drops it afterwards;\n\
        when the server does not answer, PostgreSQL is skipped (an error with --backend postgres).\n\
        SQLite runs in a temporary file. Progress goes to stderr, the report to stdout.")]
    Bench(commands::bench::Args),
    /// Show one workflow: its row, the timeline of its steps, what it waits for next and
    /// the inbox events matched to it.
    #[command(after_help = commands::inspect::INSPECT_HELP)]
    Inspect(commands::inspect::Args),
    /// Cancel a workflow, journaled with who and why (refused where unsafe, e.g. after a
    /// disbursement).
    #[command(after_help = commands::operate::CANCEL_HELP)]
    Cancel(commands::operate::CancelArgs),
    /// Move a workflow out of needs_attention with what a person decided or found.
    #[command(after_help = commands::operate::RESOLVE_HELP)]
    Resolve(commands::operate::ResolveArgs),
    /// Run a needs_attention workflow's stuck step again (resolve with {"retry": true}).
    #[command(after_help = commands::operate::RETRY_HELP)]
    Retry(commands::operate::RetryArgs),
    /// Compare Finfra's loans with finflow's records now, or show the last runs and the
    /// open findings.
    #[command(after_help = commands::reconcile::RECONCILE_HELP)]
    Reconcile(commands::reconcile::Args),
    /// Read the lifecycle event feed from a cursor (once, or following it), or prune it.
    #[command(after_help = commands::events::EVENTS_HELP)]
    Events(commands::events::EventsArgs),
    /// List webhook deliveries (--failed: the ones given up), or replay one.
    #[command(after_help = commands::events::WEBHOOKS_HELP)]
    Webhooks(commands::events::WebhooksArgs),
    /// Serve the web console (operators' pages, four-eyes approvals) over the database;
    /// `finflow console hash-password` hashes a user's password for finflow.toml.
    #[command(after_help = commands::console::CONSOLE_HELP)]
    Console(commands::console::Args),
    /// Approve a command waiting for a second person (four-eyes for money): it is checked
    /// against the workflow again, then queued for a running worker.
    #[command(after_help = commands::operate::APPROVE_HELP)]
    Approve(commands::operate::DecideArgs),
    /// Reject a command waiting for a second person: nothing is queued.
    #[command(name = "reject-command", after_help = commands::operate::REJECT_HELP)]
    Reject(commands::operate::DecideArgs),
    /// Personal data at rest: seal what is plain, rotate keys, purge, erase a borrower.
    #[command(after_help = commands::privacy::PRIVACY_HELP)]
    Privacy(commands::privacy::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => commands::demo::run(cli.config.as_deref(), args).await,
            Command::Sandbox(args) => commands::sandbox::run(*args).await,
            Command::Doctor => commands::doctor::run(cli.config.as_deref()).await,
            Command::Migrate => commands::migrate::run(cli.config.as_deref()).await,
            Command::Run => commands::run::run(cli.config.as_deref()).await,
            Command::Submit {
                kind,
                business_key,
                input,
            } => commands::submit::run(cli.config.as_deref(), &kind, &business_key, &input).await,
            Command::Status { json } => commands::status::run(cli.config.as_deref(), json).await,
            Command::Bench(args) => commands::bench::run(cli.config.as_deref(), args).await,
            Command::Inspect(args) => commands::inspect::run(cli.config.as_deref(), args).await,
            Command::Cancel(args) => commands::operate::cancel(cli.config.as_deref(), args).await,
            Command::Resolve(args) => commands::operate::resolve(cli.config.as_deref(), args).await,
            Command::Retry(args) => commands::operate::retry(cli.config.as_deref(), args).await,
            Command::Reconcile(args) => commands::reconcile::run(cli.config.as_deref(), args).await,
            Command::Events(args) => commands::events::events(cli.config.as_deref(), args).await,
            Command::Webhooks(args) => {
                commands::events::webhooks(cli.config.as_deref(), args).await
            }
            Command::Console(args) => commands::console::run(cli.config.as_deref(), args).await,
            Command::Approve(args) => commands::operate::approve(cli.config.as_deref(), args).await,
            Command::Reject(args) => commands::operate::reject(cli.config.as_deref(), args).await,
            Command::Privacy(args) => commands::privacy::run(cli.config.as_deref(), args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
