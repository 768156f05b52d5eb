//! `finflow migrate`: creates or upgrades the schema (finflow's tables and views, and
//! apalis's queue) in the configured database. Safe to run again, and from several
//! processes at once.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use worker::config::Config;

/// Applies every pending migration.
///
/// # Errors
/// The configuration, the connection or a migration fails.
pub async fn run(config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = store::Store::connect(config.database_url.expose())
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating {url} failed"))?;
    store.close().await;
    println!("{url}: schema is up to date");
    Ok(ExitCode::SUCCESS)
}
