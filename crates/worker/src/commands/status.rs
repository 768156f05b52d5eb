//! `finflow status`: how many workflows of each kind are in each state and status.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use worker::config::Config;

/// Prints the counts as a table, or as JSON with `--json`.
///
/// # Errors
/// The configuration or the database fails.
pub async fn run(config_file: Option<&Path>, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = super::open_store(&config, false).await?;
    let counts = store.status_counts().await.with_context(|| {
        format!("cannot read workflow counts from {url} (run `finflow migrate` first?)")
    })?;
    store.close().await;
    if as_json {
        let rows: Vec<_> = counts
            .iter()
            .map(|c| json!({"kind": c.kind, "state": c.state, "status": c.status.as_str(), "count": c.count}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "counts": rows }))?
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
    Ok(ExitCode::SUCCESS)
}
