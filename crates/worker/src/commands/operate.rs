//! `finflow cancel | resolve | retry | approve | reject-command`: a person's decision about
//! one workflow, journaled with who and why, through `console::operate` (the console's
//! forms take the same path).
//!
//! Four-eyes (`[operators] four_eyes`, default on): a command that can make money move or
//! stop it after signing (any resolve or retry of a loan, a cancel of a signed loan) is
//! stored as pending approval and printed with its request id; a second person applies it
//! with `finflow approve ID --reason` or drops it with `finflow reject-command ID --reason`.
//! The requester can never approve their own; a request expires after
//! `operators.approval_ttl_secs`.
//!
//! The command is checked first against the workflow's current state, with the same state
//! machine the workers run (`Engine::check_command`): one that would be refused (a cancel
//! after money left, a resolve of a workflow that does not need attention) is refused here,
//! and nothing is recorded. An accepted one is recorded in the inbox
//! ([`store::Store::record_command`]) and the workflow is made due: the next worker that
//! holds it (`finflow run`) delivers it to the state machine, after the step in flight if
//! there is one, and journals it with outcome `command`. A workflow that never started
//! (nothing was sent to Finfra) is cancelled at once instead.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use console::operate::{self, Command, OperateError, Queued, named};
use serde_json::{Value, json};
use store::{Store, Workflow};
use worker::config::Config;

use super::lookup::{self, Target};

/// Exit status of a refused command: the workflow is finished, has not started (resolve),
/// or its state does not accept the command. (clap also exits 2 on a usage error.)
pub const EXIT_REFUSED: u8 = 2;
/// Exit status when `--wait` ran out before a worker applied the command (it stays queued).
pub const EXIT_NOT_APPLIED: u8 = 3;

/// The exit statuses, for `--help` (a macro: `concat!` takes only literals).
macro_rules! exit_help {
    () => {
        "Exit status: 0 queued (with --wait: applied; a never-started workflow: cancelled at once);\n\
         1 error (unknown workflow, ambiguous business key, database);\n\
         2 refused (finished; not started yet, for resolve/retry; not accepted in its current state),\n  \
         and also a usage error such as a missing --reason;\n\
         3 --wait ran out before a worker applied the command (it stays queued)."
    };
}

/// `finflow cancel --help`'s examples.
pub const CANCEL_HELP: &str = concat!(
    "Examples:\n  \
     finflow cancel borrower-42 --reason \"duplicate application, ticket OPS-123\"\n  \
     finflow cancel 0b6f3c1e-8d2a-4c55-9f61-3e0f2a7d9b10 --reason \"customer withdrew\" --by alice --wait 30\n  \
     finflow cancel loan-7 --kind originate-loan --reason \"wrong amount\"\n\n\
     A workflow that never started is cancelled at once. Otherwise the workflow's state machine\n\
     is asked first (a loan whose money may have left is not cancelled), and the cancel is queued\n\
     for a running worker (`finflow run`), which journals it with outcome `command`.\n\n",
    exit_help!()
);

/// `finflow resolve --help`'s examples.
pub const RESOLVE_HELP: &str = concat!(
    "Examples:\n  \
     finflow resolve borrower-42 --reason \"user id found in Finfra's dashboard\" --user-id 65f1c0ffee0123456789abcd\n  \
     finflow resolve borrower-42 --reason \"credentials fixed\" --data '{\"retry\": true}' --wait 30\n\n\
     Only a workflow in needs_attention can be resolved; its last error says what it accepts\n\
     (onboard-borrower: {\"retry\": true} or {\"user_id\": \"<24 hex>\"}). The command is checked\n\
     against the workflow's state, then queued for a running worker (`finflow run`).\n\n",
    exit_help!()
);

/// `finflow retry --help`'s examples.
pub const RETRY_HELP: &str = concat!(
    "Examples:\n  \
     finflow retry borrower-42 --reason \"Finfra credentials rotated\"\n  \
     finflow retry borrower-42 --reason \"Finfra outage over\" --by ops-bot --wait 30\n\n\
     The same as resolve --data '{\"retry\": true}': the stuck step runs again (a request whose\n\
     outcome was unknown is reconciled with Finfra first; a wait starts afresh).\n\n",
    exit_help!()
);

/// What every command takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    target: Target,
    /// Why: required, journaled with who.
    #[arg(long, value_parser = non_empty)]
    reason: String,
    /// Who decided (default: $USER, else "operator").
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    by: Option<String>,
    /// Wait up to SECS for a running worker to apply the command, then print the
    /// workflow's new status and state.
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    common: Common,
    /// What the person decided or found, as JSON, e.g. '{"retry": true}' or
    /// '{"user_id": "<24 hex>"}' (each workflow kind documents what it accepts).
    #[arg(long, value_name = "JSON", value_parser = json_object, conflicts_with = "user_id")]
    data: Option<Value>,
    /// The borrower's Finfra user id, when `user_created` was lost for good: the same as
    /// --data '{"user_id": ID}'.
    #[arg(long, value_name = "ID")]
    user_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    #[command(flatten)]
    common: Common,
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

fn json_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("must be a JSON object, e.g. '{\"retry\": true}'".to_owned()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// `finflow cancel`.
///
/// # Errors
/// The configuration, the definitions or the database fail, or no single workflow matches.
pub async fn cancel(config_file: Option<&Path>, args: CancelArgs) -> anyhow::Result<ExitCode> {
    run(config_file, args.common, Command::Cancel).await
}

/// `finflow resolve`.
///
/// # Errors
/// As [`cancel`].
pub async fn resolve(config_file: Option<&Path>, args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let data = match (args.data, args.user_id) {
        (Some(data), _) => Some(data),
        (None, Some(user_id)) => Some(json!({ "user_id": user_id })),
        (None, None) => None,
    };
    run(config_file, args.common, Command::Resolve(data)).await
}

/// `finflow retry`: a resolve with `{"retry": true}`.
///
/// # Errors
/// As [`cancel`].
pub async fn retry(config_file: Option<&Path>, args: RetryArgs) -> anyhow::Result<ExitCode> {
    run(config_file, args.common, Command::retry()).await
}

fn refused(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("refused: {message}");
    ExitCode::from(EXIT_REFUSED)
}

async fn run(
    config_file: Option<&Path>,
    common: Common,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let engine = load_engine(&config)?;
    let by = who(common.by.as_deref());
    let store = super::open_store(&config, false).await?;
    let result = apply(&store, &engine, &config, &common, &by, command).await;
    store.close().await;
    result
}

fn load_engine(config: &Config) -> anyhow::Result<workflow::Engine> {
    let definitions = workflow::Registry::load_dir(&config.worker.workflows_dir)
        .map_err(|e| anyhow::anyhow!("workflow definitions: {e}"))?;
    Ok(workflow::Engine::new(definitions))
}

/// `--by`, else $USER, else "operator".
fn who(by: Option<&str>) -> String {
    by.map(str::to_owned).unwrap_or_else(|| {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "operator".to_owned())
    })
}

async fn apply(
    store: &Store,
    engine: &workflow::Engine,
    config: &Config,
    common: &Common,
    by: &str,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let workflow = lookup::find(store, &common.target).await?;
    let name = named(&workflow);
    let reason = common.reason.as_str();
    let queued = match operate::request(
        store,
        engine,
        &config.operators,
        &workflow,
        &command,
        by,
        reason,
    )
    .await
    {
        Ok(queued) => queued,
        Err(OperateError::Refused(why)) => return Ok(refused(why)),
        Err(other) => {
            return Err(
                anyhow::Error::new(other).context(format!("cannot {} {name}", command.label()))
            );
        }
    };
    let title = command.title();
    let inbox_id = match queued {
        Queued::CancelledAtOnce => {
            println!(
                "cancelled {name}: it had not started, nothing was sent to Finfra (by {by}: {reason})"
            );
            return Ok(ExitCode::SUCCESS);
        }
        Queued::PendingApproval { request_id, why } => {
            println!(
                "pending approval: {} of {name} is command request {request_id}, by {by}: {reason}\n\
                 four-eyes: {why}. A second person with the approver role applies it with\n  \
                 finflow approve {request_id} --reason \"...\"   (or finflow reject-command {request_id} --reason \"...\")\n\
                 it expires in {} s if nobody decides.",
                command.label(),
                config.operators.approval_ttl().as_secs()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Queued::Queued { inbox_id } => inbox_id,
    };
    let data_note = match &command {
        Command::Resolve(Some(d)) => format!(" with {d}"),
        _ => String::new(),
    };
    println!(
        "queued {title}{data_note} for {name} (inbox event {inbox_id}), by {by}: {reason}\n\
         a running worker (`finflow run`) applies it; follow it with `finflow inspect {}`",
        workflow.id
    );
    let Some(secs) = common.wait else {
        return Ok(ExitCode::SUCCESS);
    };
    wait_applied(store, &workflow, inbox_id, Duration::from_secs(secs)).await
}

/// `finflow approve ID` and `finflow reject-command ID`.
#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The command request's id (printed when it was asked; `finflow status` lists them).
    id: i64,
    /// Why: required, journaled with who.
    #[arg(long, value_parser = non_empty)]
    reason: String,
    /// Who decides (default: $USER, else "operator"); never the person who asked.
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    by: Option<String>,
    /// Approve only: wait up to SECS for a running worker to apply the command.
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
}

/// `finflow approve --help`'s examples.
pub const APPROVE_HELP: &str = "Examples:\n  \
     finflow approve 12 --reason \"checked the account with the bank, ticket OPS-9\"\n  \
     finflow approve 12 --reason \"ok\" --by bob --wait 30\n\n\
     Four-eyes: a command that can make money move or stop it after signing (a retry or\n\
     resolve of a loan, a cancel of a signed loan) waits for a second person. The workflow's\n\
     state machine is asked again before the command is queued for a running worker.\n\
     Exit status: 0 approved and queued (with --wait: applied); 1 error; 2 refused (unknown,\n\
     decided, expired, your own request, or no longer accepted); 3 --wait ran out.";

/// `finflow reject-command --help`'s examples.
pub const REJECT_HELP: &str = "Examples:\n  \
     finflow reject-command 12 --reason \"wrong loan, see OPS-9\"\n\n\
     Nothing is queued; the request is kept with who rejected it and why.\n\
     Exit status: 0 rejected; 1 error; 2 refused (unknown, decided, expired, your own request).";

/// `finflow approve`.
///
/// # Errors
/// The configuration, the definitions or the database fail.
pub async fn approve(config_file: Option<&Path>, args: DecideArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let engine = load_engine(&config)?;
    let by = who(args.by.as_deref());
    let store = super::open_store(&config, false).await?;
    let result = async {
        let request = match operate::approve(&store, &engine, args.id, &by, &args.reason).await {
            Ok(request) => request,
            Err(OperateError::Refused(why)) => return Ok(refused(why)),
            Err(other) => return Err(anyhow::Error::new(other)),
        };
        let workflow = store
            .get(request.workflow_id)
            .await?
            .with_context(|| format!("workflow {} disappeared", request.workflow_id))?;
        let inbox_id = request.inbox_id.context("an approved request is queued")?;
        println!(
            "approved command request {} ({} by {}: {}), by {by}: {}\n\
             queued for {} (inbox event {inbox_id}); follow it with `finflow inspect {}`",
            request.id,
            request.title,
            request.requested_by,
            request.reason,
            args.reason,
            named(&workflow),
            workflow.id
        );
        match args.wait {
            Some(secs) => {
                wait_applied(&store, &workflow, inbox_id, Duration::from_secs(secs)).await
            }
            None => Ok(ExitCode::SUCCESS),
        }
    }
    .await;
    store.close().await;
    result
}

/// `finflow reject-command`.
///
/// # Errors
/// The configuration or the database fail.
pub async fn reject(config_file: Option<&Path>, args: DecideArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let by = who(args.by.as_deref());
    let store = super::open_store(&config, false).await?;
    let result = match operate::reject(&store, args.id, &by, &args.reason).await {
        Ok(request) => {
            println!(
                "rejected command request {} ({} by {}: {}), by {by}: {}; nothing was queued",
                request.id, request.title, request.requested_by, request.reason, args.reason
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(OperateError::Refused(why)) => Ok(refused(why)),
        Err(other) => Err(anyhow::Error::new(other)),
    };
    store.close().await;
    result
}

/// Polls until the command's inbox row is processed, the workflow finishes without it, or
/// `timeout` passes.
async fn wait_applied(
    store: &Store,
    workflow: &Workflow,
    inbox_id: i64,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let id = workflow.id;
    let name = named(workflow);
    let started = Instant::now();
    loop {
        // The workflow first, then the inbox: a command applied in between shows as
        // processed, so a finished workflow with the command still unprocessed really
        // finished without it.
        let before = store
            .get(id)
            .await?
            .with_context(|| format!("workflow {id} disappeared"))?;
        let events = store
            .matched_events(id)
            .await
            .with_context(|| format!("cannot read the inbox of {name}"))?;
        if let Some(event) = events
            .iter()
            .find(|e| e.id == inbox_id && e.processed_at.is_some())
        {
            let now = store
                .get(id)
                .await?
                .with_context(|| format!("workflow {id} disappeared"))?;
            let note = decision_note(store, id, &event.event_id).await?;
            println!(
                "applied: {} is now {} in state {}{}",
                name,
                now.status,
                now.state,
                note.map(|n| format!(" ({n})")).unwrap_or_default()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if before.status.is_terminal() {
            return Ok(refused(format!(
                "{name} finished ({}) before a worker applied the command",
                before.status
            )));
        }
        if started.elapsed() >= timeout {
            eprintln!(
                "not applied within {} s: is a worker (`finflow run`) running? The command stays queued.",
                timeout.as_secs()
            );
            return Ok(ExitCode::from(EXIT_NOT_APPLIED));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The decision the state machine noted when it took the command (from its journal row).
async fn decision_note(
    store: &Store,
    id: uuid::Uuid,
    event_id: &str,
) -> anyhow::Result<Option<String>> {
    let journal = store.journal(id).await?;
    Ok(journal.iter().rev().find_map(|row| {
        let summary = row.entry.response_summary.as_ref()?;
        if summary.get("event_id").and_then(Value::as_str) != Some(event_id) {
            return None;
        }
        summary
            .pointer("/decision/note")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }))
}
