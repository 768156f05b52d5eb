//! `finflow cancel | resolve | retry`: a person's decision about one workflow, journaled
//! with who and why.
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
use chrono::Utc;
use serde_json::{Value, json};
use store::{Store, StoreError, Workflow};
use worker::config::Config;
use worker::executor::{COMMAND_CANCEL, COMMAND_RESOLVE, command_payload};
use workflow::{EngineError, Event};

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

/// Which command, with what a resolve supplies.
enum Command {
    Cancel,
    Resolve(Option<Value>),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Self::Cancel => COMMAND_CANCEL,
            Self::Resolve(_) => COMMAND_RESOLVE,
        }
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
    run(
        config_file,
        args.common,
        Command::Resolve(Some(json!({ "retry": true }))),
    )
    .await
}

fn refused(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("refused: {message}");
    ExitCode::from(EXIT_REFUSED)
}

/// `kind "key" (id)`, how the messages name a workflow.
fn named(w: &Workflow) -> String {
    format!("{} {:?} ({})", w.kind, w.business_key, w.id)
}

async fn run(
    config_file: Option<&Path>,
    common: Common,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let definitions = workflow::Registry::load_dir(&config.worker.workflows_dir)
        .map_err(|e| anyhow::anyhow!("workflow definitions: {e}"))?;
    let engine = workflow::Engine::new(definitions);
    let by = common.by.clone().unwrap_or_else(|| {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "operator".to_owned())
    });
    let store = super::open_store(&config, false).await?;
    let result = apply(&store, &engine, &common, &by, command).await;
    store.close().await;
    result
}

async fn apply(
    store: &Store,
    engine: &workflow::Engine,
    common: &Common,
    by: &str,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let workflow = lookup::find(store, &common.target).await?;
    let name = named(&workflow);
    let reason = common.reason.as_str();
    if workflow.status.is_terminal() {
        return Ok(refused(format!(
            "{name} is already {}: a finished workflow takes no more commands",
            workflow.status
        )));
    }

    if workflow.status == store::Status::Pending && workflow.state == store::INITIAL_STATE {
        return Ok(match command {
            // Nothing was sent to Finfra yet: cancel at once, journaled with who and why.
            // A worker starting it at this very instant loses its first commit (the cancel
            // moves the row's version on); one that committed first wins, and the store
            // refuses the cancel as "started" (run the command again to queue it).
            Command::Cancel => match store
                .cancel(workflow.id, by, reason, &cancel_events(&workflow.kind))
                .await
            {
                Ok(cancelled) => {
                    println!(
                        "cancelled {name}: it had not started, nothing was sent to Finfra (status {}, by {by}: {reason})",
                        cancelled.status
                    );
                    ExitCode::SUCCESS
                }
                Err(StoreError::Refused(why)) => refused(why),
                Err(other) => return Err(other.into()),
            },
            Command::Resolve(_) => refused(format!(
                "{name} has not started yet: there is nothing to resolve (a worker starts it; `finflow cancel` stops it)"
            )),
        });
    }

    let (title, data) = match &command {
        Command::Cancel => (COMMAND_CANCEL, None),
        Command::Resolve(data) => (COMMAND_RESOLVE, data.clone()),
    };
    let event = match &command {
        Command::Cancel => Event::Cancel {
            by: by.to_owned(),
            reason: reason.to_owned(),
        },
        Command::Resolve(data) => Event::Resolve {
            by: by.to_owned(),
            reason: reason.to_owned(),
            data: data.clone().unwrap_or(Value::Null),
        },
    };
    match engine.check_command(&workflow.kind, &workflow.context, &event, Utc::now()) {
        Ok(()) => {}
        Err(EngineError::Refused(why)) => {
            let what = command.name();
            let why = why.0.as_str();
            // The machine's note names the command already ("resolve refused: ...").
            let why = [" refused: ", " ignored: "]
                .iter()
                .find_map(|sep| why.strip_prefix(&format!("{what}{sep}")))
                .unwrap_or(why);
            return Ok(refused(format!("{what} of {name}: {why}")));
        }
        Err(other) => {
            return Err(anyhow::Error::new(other).context(format!(
                "cannot check the {} against {name}",
                command.name()
            )));
        }
    }

    let payload = command_payload(by, reason, data.as_ref());
    let inbox_id = match store.record_command(workflow.id, title, &payload).await {
        Ok(id) => id,
        // It finished between our read and the record.
        Err(StoreError::Refused(why)) => return Ok(refused(why)),
        Err(other) => return Err(other.into()),
    };
    let data_note = data.map(|d| format!(" with {d}")).unwrap_or_default();
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

/// The lifecycle events of cancelling a workflow that never started (`loan.cancelled` or
/// `workflow.cancelled`), as `workflow::lifecycle` decides them.
fn cancel_events(kind: &str) -> Vec<store::NewEvent> {
    workflow::cancelled_before_start(kind)
        .into_iter()
        .map(|e| store::NewEvent {
            event_type: e.event_type.as_str().to_owned(),
            payload: e.payload,
        })
        .collect()
}
