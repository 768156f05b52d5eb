//! `finflow inspect <id | business key>`: one workflow as an operator needs it: its row, the
//! timeline of its steps (the journal), what it waits for next and the inbox events matched
//! to it, as text or as one JSON document.
//!
//! Nothing personal is printed: not the input nor the state, not callback bodies; a NIK a
//! wait matches on shows only its last 4 characters. Journal summaries are masked when
//! written. `--reveal --reason` prints the input in the clear, journaled first (who, why,
//! when) in `personal_data_reveals`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};
use store::{JournalRow, MatchedEvent, Source, Status, WaitRow, Workflow};
use worker::config::Config;

use super::lookup::{self, Target, shown_key_value};
use super::table::{render, text_opt, time, time_opt};

/// `finflow inspect --help`'s examples.
pub const INSPECT_HELP: &str = "Examples:\n  \
    finflow inspect borrower-42\n  \
    finflow inspect 0b6f3c1e-8d2a-4c55-9f61-3e0f2a7d9b10 --verbose\n  \
    finflow inspect loan-7 --kind originate-loan --json | jq '.timeline[] | select(.outcome != \"ok\")'\n\n\
    Shows the workflow's row, its timeline (step_journal), what it waits for next\n\
    (workflow_waits; a NIK shows only its last 4 digits) and the inbox events matched to it\n\
    (callback_inbox). Exit status 0, or 1 when no single workflow matches.";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Also print each step's request and response summaries (PII masked).
    #[arg(long, short)]
    verbose: bool,
    /// Print everything as one JSON document.
    #[arg(long)]
    json: bool,
    /// Also print the submitted input in the clear (personal data): journaled with who
    /// (`--by`, default $USER) and why (`--reason`, required) in personal_data_reveals.
    #[arg(long, requires = "reason")]
    reveal: bool,
    /// Why the personal data is revealed (with --reveal).
    #[arg(long, requires = "reveal")]
    reason: Option<String>,
    /// Who reveals it (with --reveal; default $USER).
    #[arg(long, requires = "reveal")]
    by: Option<String>,
}

/// Everything `inspect` shows.
struct Inspection {
    workflow: Workflow,
    /// The input in the clear, with `--reveal` only.
    revealed: Option<Value>,
    journal: Vec<JournalRow>,
    waits: Vec<WaitRow>,
    events: Vec<MatchedEvent>,
}

/// Prints the workflow, its timeline, its waits and its inbox events.
///
/// # Errors
/// The configuration or the database fails, or no single workflow matches.
pub async fn run(config_file: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = super::open_store(&config, false).await?;
    let inspection = async {
        let workflow = lookup::find(&store, &args.target).await?;
        let id = workflow.id;
        let read = format!("cannot read workflow {id} from {url}");
        let revealed = match (args.reveal, &args.reason) {
            (true, Some(reason)) => {
                let by = args
                    .by
                    .clone()
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_else(|| "unknown".to_owned());
                Some(
                    store
                        .reveal(&workflow, &by, reason, "cli")
                        .await
                        .with_context(|| format!("cannot reveal the input of workflow {id}"))?,
                )
            }
            _ => None,
        };
        Ok::<_, anyhow::Error>(Inspection {
            revealed,
            journal: store.journal(id).await.context(read.clone())?,
            waits: store.waits(id).await.context(read.clone())?,
            events: store.matched_events(id).await.context(read)?,
            workflow,
        })
    }
    .await;
    store.close().await;
    let inspection = inspection?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&inspection))?);
    } else {
        print!("{}", to_text(&inspection, args.verbose));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the workflow waits for next, in a sentence.
fn next(w: &Workflow, waits: &[WaitRow]) -> String {
    let id = w.id;
    match w.status {
        Status::Pending if w.state == store::INITIAL_STATE => {
            "a worker (`finflow run`) to start it".to_owned()
        }
        Status::Pending => format!("a worker to run it at {}", time_opt(w.next_run_at)),
        Status::Running => format!(
            "the step in flight (worker {}, lease until {})",
            text_opt(w.lease_owner.as_deref()),
            time_opt(w.lease_until)
        ),
        Status::Waiting => {
            let mut events: Vec<&str> = waits.iter().map(|w| w.event.as_str()).collect();
            events.sort_unstable();
            events.dedup();
            let events = if events.is_empty() {
                text_opt(w.waiting_for.as_deref())
            } else {
                events.join(" or ")
            };
            format!(
                "a callback ({events}); else it polls Finfra at {} (deadline {})",
                time_opt(w.next_run_at),
                time_opt(w.deadline)
            )
        }
        Status::Sleeping => format!("its next attempt at {}", time_opt(w.next_run_at)),
        Status::NeedsAttention => format!(
            "a person: `finflow resolve {id} --reason ...` (or `finflow retry`, `finflow cancel`); see the last error"
        ),
        Status::Completed | Status::Failed | Status::Cancelled => {
            "nothing: the workflow is finished".to_owned()
        }
    }
}

/// An operator command's who and why, from its inbox payload.
fn command_note(event: &MatchedEvent) -> Option<String> {
    if event.source != Source::Operator {
        return None;
    }
    let field = |name: &str| {
        event
            .payload
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("?")
    };
    let mut note = format!("{} by {}: {}", event.title, field("by"), field("reason"));
    if let Some(data) = event.payload.get("data").filter(|d| !d.is_null()) {
        note.push_str(&format!(" {data}"));
    }
    Some(note)
}

/// `1 step`, `2 steps`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn definition(w: &Workflow) -> String {
    match w.definition_version {
        Some(version) => format!("{}@{version}", w.definition_name),
        None => format!("{} (version not pinned yet)", w.definition_name),
    }
}

fn to_text(i: &Inspection, verbose: bool) -> String {
    let w = &i.workflow;
    let lease = match &w.lease_owner {
        Some(owner) => format!("{owner} until {}", time_opt(w.lease_until)),
        None => "-".to_owned(),
    };
    let header: Vec<(&str, String)> = vec![
        ("workflow", w.id.to_string()),
        ("kind", w.kind.clone()),
        ("business key", w.business_key.clone()),
        ("definition", definition(w)),
        ("status", w.status.to_string()),
        ("state", w.state.clone()),
        ("attempt", w.attempt.to_string()),
        ("created", time(w.created_at)),
        ("updated", time(w.updated_at)),
        ("finished", time_opt(w.finished_at)),
        ("lease", lease),
        ("next run", time_opt(w.next_run_at)),
        ("waiting for", text_opt(w.waiting_for.as_deref())),
        ("deadline", time_opt(w.deadline)),
        ("last error", text_opt(w.last_error.as_deref())),
        ("facts", w.facts.to_string()),
        ("personal data", personal_data(w)),
    ];
    let mut out = String::new();
    for (name, value) in header {
        out.push_str(&format!("{name:<13}{value}\n"));
    }

    if let Some(input) = &i.revealed {
        out.push_str(&format!(
            "\nInput (revealed, journaled in personal_data_reveals):\n{}\n",
            serde_json::to_string_pretty(input).unwrap_or_default()
        ));
    }

    out.push_str(&format!("\nTimeline: {}\n", count(i.journal.len(), "step")));
    if i.journal.is_empty() {
        out.push_str("  (no steps yet)\n");
    } else {
        let rows: Vec<Vec<String>> = i
            .journal
            .iter()
            .map(|row| {
                let e = &row.entry;
                vec![
                    row.seq.to_string(),
                    time(e.started_at),
                    e.step.clone(),
                    e.action.clone(),
                    e.outcome.to_string(),
                    e.attempt.to_string(),
                    row.duration_ms.to_string(),
                    e.finfra_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    text_opt(e.operation_key.as_deref()),
                    text_opt(e.error.as_deref()),
                ]
            })
            .collect();
        let table = render(
            &[
                "SEQ", "TIME", "STEP", "ACTION", "OUTCOME", "ATT", "MS", "HTTP", "OP KEY", "ERROR",
            ],
            &rows,
        );
        let mut lines = table.lines();
        if let Some(head) = lines.next() {
            out.push_str(head);
            out.push('\n');
        }
        for (line, row) in lines.zip(&i.journal) {
            out.push_str(line);
            out.push('\n');
            if verbose {
                let summary =
                    |v: &Option<Value>| v.as_ref().map_or("-".to_owned(), Value::to_string);
                out.push_str(&format!(
                    "      request:  {}\n      response: {}\n      worker:   {}\n",
                    summary(&row.entry.request_summary),
                    summary(&row.entry.response_summary),
                    row.worker_id
                ));
            }
        }
    }

    out.push_str(&format!("\nNext: {}\n", next(w, &i.waits)));
    if !i.waits.is_empty() {
        let rows: Vec<Vec<String>> = i
            .waits
            .iter()
            .map(|wait| {
                vec![
                    wait.event.clone(),
                    wait.key_name.to_string(),
                    shown_key_value(wait.key_name, &wait.key_value),
                    time(wait.created_at),
                ]
            })
            .collect();
        for line in render(&["EVENT", "KEY", "VALUE", "SINCE"], &rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }

    out.push_str(&format!(
        "\nInbox: {} matched to this workflow\n",
        count(i.events.len(), "event")
    ));
    if i.events.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = i
            .events
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    e.source.to_string(),
                    e.title.clone(),
                    e.event_id.clone(),
                    time(e.received_at),
                    e.processed_at.map_or_else(|| "not yet".to_owned(), time),
                    command_note(e).unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&render(
            &[
                "ID",
                "SOURCE",
                "TITLE",
                "EVENT ID",
                "RECEIVED",
                "PROCESSED",
                "COMMAND",
            ],
            &rows,
        ));
        out.push('\n');
    }
    out
}

/// Whether the input is sealed (under which key), plain, or erased.
fn personal_data(w: &Workflow) -> String {
    match (w.erased_at, w.data_key.as_deref()) {
        (Some(at), _) => format!("erased {}", time(at)),
        (None, Some(key)) => format!(
            "sealed (key {})",
            key.split_once(':').map_or(key, |(label, _)| label)
        ),
        (None, None) => "plain (not sealed: see finflow privacy seal)".to_owned(),
    }
}

fn to_json(i: &Inspection) -> Value {
    let w = &i.workflow;
    let timeline: Vec<Value> = i
        .journal
        .iter()
        .map(|row| {
            let e = &row.entry;
            json!({
                "seq": row.seq,
                "started_at": e.started_at,
                "finished_at": e.finished_at,
                "step": e.step,
                "action": e.action,
                "outcome": e.outcome.as_str(),
                "attempt": e.attempt,
                "duration_ms": row.duration_ms,
                "finfra_status": e.finfra_status,
                "operation_key": e.operation_key,
                "error": e.error,
                "request_summary": e.request_summary,
                "response_summary": e.response_summary,
                "worker_id": row.worker_id,
            })
        })
        .collect();
    let waits: Vec<Value> = i
        .waits
        .iter()
        .map(|wait| {
            json!({
                "event": wait.event,
                "key_name": wait.key_name.as_str(),
                "key_value": shown_key_value(wait.key_name, &wait.key_value),
                "since": wait.created_at,
            })
        })
        .collect();
    let inbox: Vec<Value> = i
        .events
        .iter()
        .map(|e| {
            let mut event = json!({
                "id": e.id,
                "source": e.source.as_str(),
                "title": e.title,
                "event_id": e.event_id,
                "received_at": e.received_at,
                "matched_at": e.matched_at,
                "processed_at": e.processed_at,
            });
            if e.source == Source::Operator {
                // The command as the person gave it (who, why, what); a Finfra body is
                // left out: it may carry PII.
                event["command"] = e.payload.clone();
            }
            event
        })
        .collect();
    let mut document = json!({
        "workflow": {
            "personal_data": personal_data(w),
            "id": w.id,
            "kind": w.kind,
            "business_key": w.business_key,
            "definition_name": w.definition_name,
            "definition_version": w.definition_version,
            "status": w.status.as_str(),
            "state": w.state,
            "attempt": w.attempt,
            "created_at": w.created_at,
            "updated_at": w.updated_at,
            "finished_at": w.finished_at,
            "lease_owner": w.lease_owner,
            "lease_until": w.lease_until,
            "next_run_at": w.next_run_at,
            "waiting_for": w.waiting_for,
            "deadline": w.deadline,
            "last_error": w.last_error,
            "facts": w.facts,
        },
        "timeline": timeline,
        "next": next(w, &i.waits),
        "waits": waits,
        "inbox": inbox,
    });
    if let Some(input) = &i.revealed {
        document["revealed_input"] = input.clone();
    }
    document
}
