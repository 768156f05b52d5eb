//! One module per subcommand.

pub mod bench;
pub mod console;
pub mod demo;
pub mod doctor;
pub mod events;
pub mod inspect;
pub mod lookup;
pub mod migrate;
pub mod operate;
pub mod privacy;
pub mod reconcile;
pub mod run;
pub mod sandbox;
pub mod status;
pub mod submit;
pub mod table;

use std::time::Duration;

use anyhow::Context as _;
use worker::config::Config;

/// Opens the configured store; with `migrate`, also brings its schema up to date (safe to
/// run from several processes at once).
///
/// # Errors
/// The database cannot be opened or migrated; the message names it, without a password.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<store::Store> {
    open(config, migrate, false).await
}

async fn open(config: &Config, migrate: bool, worker: bool) -> anyhow::Result<store::Store> {
    let url = config.database_url.redacted();
    let options = store::StoreOptions {
        max_connections: config.worker.pool_size(config.database_url.expose()),
        worker,
        ..store::StoreOptions::default()
    };
    // Checked before the database is opened: a wrong key is an error at start, never a
    // plain-text write.
    let keys = config.keys()?;
    let mut store = store::Store::connect_with(config.database_url.expose(), &options)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    if let Some(keys) = keys {
        store = store.with_keys(keys);
    }
    if migrate {
        store
            .migrate()
            .await
            .with_context(|| format!("migrating {url} failed"))?;
    }
    Ok(store)
}

/// [`open_store`] for a command that writes personal data (`run`, `submit`, `console`,
/// `privacy`): `[privacy]` keys must be configured and fit the database
/// (`Store::check_keys`), so that a missing or wrong key stops it at start instead of
/// writing personal data plain.
///
/// # Errors
/// As [`open_store`]; no keys; keys that do not fit.
pub async fn open_store_for_writes(config: &Config, migrate: bool) -> anyhow::Result<store::Store> {
    checked_for_writes(config, migrate, false).await
}

/// [`open_store_for_writes`] for `finflow run`: migrated, and its connections named as a
/// worker's (`StoreOptions::worker`), so that it answers the due hints they send.
///
/// # Errors
/// As [`open_store_for_writes`].
pub async fn open_worker_store(config: &Config) -> anyhow::Result<store::Store> {
    let wait = Duration::from_secs(config.worker.database_wait_secs);
    let until = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(500);
    loop {
        let error = match checked_for_writes(config, true, true).await {
            Ok(store) => return Ok(store),
            Err(error) if wait.is_zero() || !unavailable(&error) => return Err(error),
            Err(error) => error,
        };
        if tokio::time::Instant::now() + pause > until {
            return Err(error.context(format!(
                "the database was not available within worker.database_wait_secs ({} s)",
                wait.as_secs()
            )));
        }
        tracing::warn!(
            error.message = %format!("{error:#}"),
            retry_in_ms = pause.as_millis() as u64,
            "the database is not available yet (worker.database_wait_secs: {}); trying again",
            wait.as_secs()
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Whether `error` (from opening the store) says the database is not available now.
fn unavailable(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<store::StoreError>()
        .is_some_and(store::StoreError::is_unavailable)
}

async fn checked_for_writes(
    config: &Config,
    migrate: bool,
    worker: bool,
) -> anyhow::Result<store::Store> {
    if config.keys()?.is_none() {
        anyhow::bail!(
            "no [privacy] keys are configured: finflow does not store borrowers' personal data \
             plain. Set privacy.keys, privacy.active and privacy.hash_key (e.g. \
             FINFLOW_PRIVACY__KEYS__K1=<key> FINFLOW_PRIVACY__ACTIVE=k1 \
             FINFLOW_PRIVACY__HASH_KEY=<another key>; `finflow privacy new-key` prints a key; \
             see the README, \"Personal data\")"
        );
    }
    let store = open(config, migrate, worker).await?;
    let url = config.database_url.redacted();
    store
        .check_keys()
        .await
        .with_context(|| format!("the [privacy] keys do not fit the database {url}"))?;
    Ok(store)
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: call it before announcing that the process is up, so that a
/// signal sent right after the announcement stops it gracefully instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            // A handler that could not be installed never fires: the other one still does.
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
