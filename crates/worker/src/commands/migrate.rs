//! `finflow migrate`: creates or upgrades the schema (finflow's tables and views, and
//! apalis's tables, which hold the worker registry) in the configured database. Safe to run again, and from several
//! processes at once.

use std::path::Path;
use std::process::ExitCode;

use worker::config::Config;

/// Applies every pending migration.
///
/// # Errors
/// The configuration, the connection or a migration fails.
pub async fn run(config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = super::open_store(&config, true).await?;
    store.close().await;
    println!("{url}: schema is up to date");
    Ok(ExitCode::SUCCESS)
}
