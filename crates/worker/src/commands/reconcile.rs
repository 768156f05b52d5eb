//! `finflow reconcile`: start a reconciliation run now, or show the last runs and the open
//! findings.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use worker::config::Config;

use super::table::{render, text_opt, time, time_opt};

/// How many runs and open findings `--status` lists.
const LISTED_RUNS: u32 = 10;
const LISTED_FINDINGS: u32 = 50;

pub const RECONCILE_HELP: &str = "Examples:\n  \
    finflow reconcile                                   # every loan at Finfra, now\n  \
    finflow reconcile --from 2026-12-01 --to 2026-12-03 # loans created in those days\n  \
    finflow reconcile --status                          # the last runs and the open findings\n\n\
    A run is a workflow of kind reconcile-loans: `finflow run` workers page through Finfra's\n\
    loans (one page per step, resumed after a kill), compare each with finflow's record, write\n\
    findings (view reconciliation_findings) and tell workflows behind Finfra to read it now.\n\
    It never changes anything at Finfra. [reconcile] every = \"1h\" in finflow.toml makes the\n\
    fleet start one run per period on its own.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show the last runs and the open findings instead of starting a run.
    #[arg(long)]
    status: bool,
    /// With --status: print JSON.
    #[arg(long, requires = "status")]
    json: bool,
    /// Loans created from this day (YYYY-MM-DD).
    #[arg(long, conflicts_with = "status")]
    from: Option<NaiveDate>,
    /// Loans created up to this day, inclusive (YYYY-MM-DD).
    #[arg(long, conflicts_with = "status")]
    to: Option<NaiveDate>,
    /// One borrower's loans (Finfra user id).
    #[arg(long, conflicts_with = "status")]
    user_id: Option<String>,
    /// One loan (its unique id).
    #[arg(long, conflicts_with = "status")]
    unique_id: Option<String>,
    /// Smallest principal.
    #[arg(long, conflicts_with = "status")]
    min_amount: Option<Decimal>,
    /// Largest principal.
    #[arg(long, conflicts_with = "status")]
    max_amount: Option<Decimal>,
    /// Loans per page, 1 to 100 (each page is one step).
    #[arg(long, conflicts_with = "status")]
    page_size: Option<u32>,
    /// The run's business key (default: manual/<now>).
    #[arg(long, conflicts_with = "status")]
    business_key: Option<String>,
}

/// Starts a run (prints its id), or with `--status` prints the last runs and open findings.
///
/// # Errors
/// Invalid filters (each named), or the configuration or database fails.
pub async fn run(config_file: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    if args.status {
        return status(&config, args.json).await;
    }
    let mut input = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            input.insert(k.to_owned(), v);
        }
    };
    put("from", json!(args.from));
    put("to", json!(args.to));
    put("user_id", json!(args.user_id));
    put("unique_id", json!(args.unique_id));
    put("min_amount", json!(args.min_amount));
    put("max_amount", json!(args.max_amount));
    put("page_size", json!(args.page_size));
    let key = args
        .business_key
        .unwrap_or_else(|| format!("manual/{}", Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")));
    store::check_business_key(&key)?;
    let engine = workflow::Engine::new(workflow::Registry::default());
    let store = super::open_store(&config, true).await?;
    let started = console::reconcile::start_run(&store, &engine, &key, Value::Object(input)).await;
    store.close().await;
    let run = started?;
    println!("{}", run.id);
    eprintln!(
        "reconciliation run {key:?} {}; `finflow run` workers carry it out; `finflow reconcile --status` shows it",
        if run.created {
            "queued"
        } else {
            "already exists"
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(config: &Config, as_json: bool) -> anyhow::Result<ExitCode> {
    let url = config.database_url.redacted();
    let store = super::open_store(config, false).await?;
    let read = async {
        let runs = store.latest(store::RECONCILE_KIND, LISTED_RUNS).await?;
        let findings = store.findings(true, LISTED_FINDINGS).await?;
        let by_kind = store.open_findings_by_kind().await?;
        Ok::<_, store::StoreError>((runs, findings, by_kind))
    }
    .await;
    store.close().await;
    let (runs, findings, by_kind) = read.with_context(|| {
        format!("cannot read reconciliation runs from {url} (run `finflow migrate` first?)")
    })?;
    if as_json {
        let runs: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "business_key": r.business_key, "status": r.status.as_str(),
                    "state": r.state, "facts": r.facts, "last_error": r.last_error,
                    "created_at": r.created_at, "finished_at": r.finished_at,
                })
            })
            .collect();
        let findings: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({
                    "id": f.id, "run": f.run, "loan_unique_id": f.loan_unique_id,
                    "workflow": f.workflow, "kind": f.kind, "finflow_value": f.finflow_value,
                    "finfra_value": f.finfra_value, "money": f.money,
                    "first_seen_at": f.first_seen_at, "last_seen_at": f.last_seen_at,
                })
            })
            .collect();
        let by_kind: serde_json::Map<String, Value> = by_kind
            .into_iter()
            .map(|(k, n, money)| (k, json!({"open": n, "money": money})))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "runs": runs, "open_findings": findings, "open_by_kind": by_kind,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("Reconciliation runs (newest first)");
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let fact = |k: &str| r.facts.get(k).map_or_else(String::new, ToString::to_string);
            vec![
                r.business_key.clone(),
                r.status.as_str().to_owned(),
                r.state.clone(),
                fact("pages"),
                fact("loans"),
                fact("findings"),
                fact("money_findings"),
                time(r.created_at),
                time_opt(r.finished_at),
            ]
        })
        .collect();
    println!(
        "{}",
        render(
            &[
                "run", "status", "state", "pages", "loans", "findings", "money", "started",
                "finished"
            ],
            &rows
        )
    );
    println!();
    let total: i64 = by_kind.iter().map(|(_, n, _)| n).sum();
    println!("Open findings: {total}");
    if !by_kind.is_empty() {
        let rows: Vec<Vec<String>> = by_kind
            .iter()
            .map(|(k, n, money)| vec![k.clone(), n.to_string(), money.to_string()])
            .collect();
        println!("{}", render(&["kind", "open", "about money"], &rows));
        let rows: Vec<Vec<String>> = findings
            .iter()
            .map(|f| {
                vec![
                    f.loan_unique_id.clone(),
                    f.kind.clone(),
                    text_opt(f.finflow_value.as_deref()),
                    text_opt(f.finfra_value.as_deref()),
                    if f.money {
                        "yes".to_owned()
                    } else {
                        String::new()
                    },
                    f.workflow.map_or_else(String::new, |w| w.to_string()),
                    time(f.first_seen_at),
                ]
            })
            .collect();
        println!(
            "{}",
            render(
                &[
                    "loan",
                    "kind",
                    "finflow",
                    "finfra",
                    "money",
                    "workflow",
                    "first seen"
                ],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}
