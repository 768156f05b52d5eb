//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod doctor;
pub mod inspect;
pub mod lookup;
pub mod migrate;
pub mod operate;
pub mod run;
pub mod sandbox;
pub mod status;
pub mod submit;
pub mod table;

use anyhow::Context as _;
use worker::config::Config;

/// Opens the configured store; with `migrate`, also brings its schema up to date (safe to
/// run from several processes at once).
///
/// # Errors
/// The database cannot be opened or migrated; the message names it, without a password.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<store::Store> {
    let url = config.database_url.redacted();
    let options = store::StoreOptions {
        max_connections: config.worker.pool_size(config.database_url.expose()),
        ..store::StoreOptions::default()
    };
    let store = store::Store::connect_with(config.database_url.expose(), &options)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    if migrate {
        store
            .migrate()
            .await
            .with_context(|| format!("migrating {url} failed"))?;
    }
    Ok(store)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, only SIGTERM stops the process.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
