//! `finflow status`: how many workflows of each kind are in each state and status, what the
//! waiting ones wait for, and the oldest stuck ones (view `stuck_workflows`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use worker::config::Config;

use super::table::{render, text_opt, time, time_opt};

/// How many stuck workflows the report lists (the oldest first).
const OLDEST_STUCK: u32 = 10;

/// Prints the counts, what waits on what and the oldest stuck workflows as tables, or as JSON
/// with `--json`.
///
/// # Errors
/// The configuration or the database fails.
pub async fn run(config_file: Option<&Path>, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = super::open_store(&config, false).await?;
    let read = async {
        let counts = store.status_counts().await?;
        let waiting = store.waiting_counts().await?;
        let (stuck, stuck_total) = store.oldest_stuck(OLDEST_STUCK).await?;
        let pending = store
            .command_requests(&store::RequestFilter {
                pending_only: true,
                limit: 100,
                ..store::RequestFilter::default()
            })
            .await?;
        Ok::<_, store::StoreError>((counts, waiting, stuck, stuck_total, pending))
    }
    .await;
    store.close().await;
    let (counts, waiting, stuck, stuck_total, pending) = read.with_context(|| {
        format!("cannot read workflow counts from {url} (run `finflow migrate` first?)")
    })?;
    if as_json {
        let rows: Vec<_> = counts
            .iter()
            .map(|c| json!({"kind": c.kind, "state": c.state, "status": c.status.as_str(), "count": c.count}))
            .collect();
        let waiting: Vec<_> = waiting
            .iter()
            .map(|w| json!({"kind": w.kind, "waiting_for": w.waiting_for, "count": w.count, "earliest_deadline": w.earliest_deadline}))
            .collect();
        let stuck: Vec<_> = stuck
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "kind": s.kind, "business_key": s.business_key,
                    "status": s.status.as_str(), "state": s.state, "reason": s.reason,
                    "since": s.since, "last_error": s.last_error,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "counts": rows,
                "waiting": waiting,
                "stuck": stuck,
                "stuck_total": stuck_total,
                "pending_approval": pending.iter().map(|r| json!({
                    "id": r.id, "workflow_id": r.workflow_id, "command": r.title,
                    "data": r.payload.get("data"), "requested_by": r.requested_by,
                    "reason": r.reason, "needs_approval": r.needs_approval,
                    "requested_at": r.requested_at, "expires_at": r.expires_at,
                })).collect::<Vec<_>>(),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if counts.is_empty() {
        println!("no workflows yet ({url})");
        return Ok(ExitCode::SUCCESS);
    }
    let width = |f: &dyn Fn(&store::StatusCount) -> usize, header: &str| {
        counts.iter().map(f).max().unwrap_or(0).max(header.len())
    };
    let (kw, sw, tw) = (
        width(&|c| c.kind.len(), "KIND"),
        width(&|c| c.state.len(), "STATE"),
        width(&|c| c.status.as_str().len(), "STATUS"),
    );
    println!(
        "{:<kw$}  {:<sw$}  {:<tw$}  {:>7}",
        "KIND", "STATE", "STATUS", "COUNT"
    );
    for c in &counts {
        println!(
            "{:<kw$}  {:<sw$}  {:<tw$}  {:>7}",
            c.kind,
            c.state,
            c.status.as_str(),
            c.count
        );
    }
    let total: i64 = counts.iter().map(|c| c.count).sum();
    println!("{:<kw$}  {:<sw$}  {:<tw$}  {:>7}", "total", "", "", total);

    println!("\nWaiting on (status waiting, by kind and what it waits for)");
    if waiting.is_empty() {
        println!("  nothing waits for a callback");
    } else {
        let rows: Vec<Vec<String>> = waiting
            .iter()
            .map(|w| {
                vec![
                    w.kind.clone(),
                    text_opt(w.waiting_for.as_deref()),
                    w.count.to_string(),
                    time_opt(w.earliest_deadline),
                ]
            })
            .collect();
        for line in render(
            &["KIND", "WAITING FOR", "COUNT", "EARLIEST DEADLINE"],
            &rows,
        )
        .lines()
        {
            println!("  {line}");
        }
    }

    if stuck.is_empty() {
        println!("\nStuck: none");
    } else {
        println!(
            "\nStuck: {stuck_total} (the {} that changed longest ago; select * from stuck_workflows)",
            stuck.len()
        );
        let rows: Vec<Vec<String>> = stuck
            .iter()
            .map(|s| {
                vec![
                    s.id.to_string(),
                    s.kind.clone(),
                    s.business_key.clone(),
                    s.status.to_string(),
                    s.state.clone(),
                    s.reason.clone(),
                    time(s.since),
                    text_opt(s.last_error.as_deref()),
                ]
            })
            .collect();
        let headers = [
            "ID",
            "KIND",
            "BUSINESS KEY",
            "STATUS",
            "STATE",
            "REASON",
            "SINCE",
            "LAST ERROR",
        ];
        for line in render(&headers, &rows).lines() {
            println!("  {line}");
        }
    }

    if pending.is_empty() {
        println!("\nWaiting for approval: none");
    } else {
        println!(
            "\nWaiting for approval: {} (finflow approve ID --reason ... | finflow reject-command ID --reason ...)",
            pending.len()
        );
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.workflow_id.to_string(),
                    r.title.clone(),
                    r.requested_by.clone(),
                    time(r.expires_at),
                    format!("{} ({})", r.reason, r.needs_approval),
                ]
            })
            .collect();
        let headers = ["ID", "WORKFLOW", "COMMAND", "ASKED BY", "EXPIRES", "WHY"];
        for line in render(&headers, &rows).lines() {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
