//! `finflow run`: a worker process. It serves Finfra's callbacks, and advances due
//! workflows until SIGTERM or Ctrl-C. Several processes on one PostgreSQL form a fleet.
//! Unless `metrics.listen` is `off`, it also serves `/metrics`, `/healthz` and `/readyz`
//! (`worker::ops`) on their own address.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use finfra_api::callback::AuthKeyVerifier;
use finfra_api::{ClientConfig, FinfraClient};
use worker::config::Config;
use worker::executor::{Executor, Governor};
use worker::runtime::{self, RuntimeOptions};

/// Runs the worker and the callback receiver until a shutdown signal.
///
/// # Errors
/// The configuration, the database, the definitions or the listen address fail.
pub async fn run(config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let definitions = workflow::Registry::load_dir(&config.worker.workflows_dir)
        .map_err(|e| anyhow::anyhow!("workflow definitions: {e}"))?;
    let Some(auth_key) = config.callbacks.auth_key.clone() else {
        bail!(
            "callbacks.auth_key is not set: set FINFLOW_CALLBACKS__AUTH_KEY to the key Finfra sends in finfra-auth-key"
        );
    };
    let verifier = match &config.callbacks.previous_auth_key {
        Some(previous) => AuthKeyVerifier::rotating(&auth_key, previous),
        None => AuthKeyVerifier::new(&auth_key),
    }
    .map_err(|e| anyhow::anyhow!("callbacks.auth_key: {e}"))?;
    let credentials = config.finfra.credentials()?;
    let rate_limit = config.finfra.rate_limit.limit()?;
    let scope = format!("finfra:{}", credentials.client_id);
    let mut client_config = ClientConfig::new(config.finfra.base_url()?, credentials);
    client_config.timeout = config.finfra.timeout();
    let client = FinfraClient::new(client_config).context("cannot build the Finfra client")?;

    let webhooks = config.webhooks()?;
    let events_retain = config.events.retain()?;
    let privacy_retain = config.privacy_retain()?;
    let store = super::open_worker_store(&config).await?;
    // Personal data upkeep, in the background (any worker of the fleet may do it; doing it
    // twice changes nothing): rows still plain (written before keys were configured, or
    // submitted through SQL and not started yet) are sealed in batches, every minute while
    // some are left, then hourly; with `[privacy] retain`, the personal data of workflows
    // finished longer ago is erased hourly.
    {
        let store = store.clone();
        tokio::spawn(async move {
            let mut minute = tokio::time::interval(Duration::from_secs(60));
            let mut last_hourly: Option<tokio::time::Instant> = None;
            let mut plain_left = true;
            loop {
                minute.tick().await;
                let hourly = last_hourly.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
                if plain_left || hourly {
                    match store.seal_plain(500).await {
                        Ok(progress) => {
                            plain_left = progress.left > 0;
                            if progress.sealed > 0 {
                                tracing::info!(
                                    sealed = progress.sealed,
                                    left = progress.left,
                                    "plain personal data sealed"
                                );
                            }
                        }
                        Err(error) => {
                            tracing::warn!(error.message = %error, "sealing plain personal data failed")
                        }
                    }
                }
                if let Some(retain) = privacy_retain.filter(|_| hourly) {
                    let before = chrono::Utc::now()
                        - chrono::TimeDelta::from_std(retain).unwrap_or(chrono::TimeDelta::MAX);
                    match store.purge(before).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(erased = n, "personal data past [privacy] retain erased")
                        }
                        Err(error) => {
                            tracing::warn!(error.message = %error, "the [privacy] retain purge failed")
                        }
                    }
                }
                if hourly {
                    last_hourly = Some(tokio::time::Instant::now());
                }
            }
        });
    }

    let listener = tokio::net::TcpListener::bind(config.callbacks.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.callbacks.listen))?;
    let receiver = worker::receiver::router(store.clone(), verifier);
    let worker_state = worker::ops::WorkerState::default();
    let ops = match config.metrics.listen()? {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?;
            let addr = listener.local_addr().unwrap_or(addr);
            let router = worker::ops::router(store.clone(), worker_state.clone());
            Some((listener, router, addr))
        }
        None => None,
    };
    let ops_banner = ops.as_ref().map_or_else(
        || "metrics off".to_owned(),
        |(_, _, addr)| format!("metrics on http://{addr}/metrics"),
    );

    let worker_id = runtime::worker_identity();
    let executor = Executor::new(
        store.clone(),
        client,
        workflow::Engine::new(definitions),
        worker_id.clone(),
        Duration::from_secs(config.worker.lease_secs.max(1)),
        scope,
    )
    .with_governor(Governor::new(rate_limit));
    // Before the banner: whoever reads it may signal at once.
    let shutdown = crate::commands::shutdown_signal();
    println!(
        "finflow worker {worker_id}: database {url}, callbacks on http://{}, {ops_banner}",
        config.callbacks.listen
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut receiver_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, receiver)
            .with_graceful_shutdown(async move {
                let _ = receiver_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    let ops_server = ops.map(|(listener, router, _)| {
        let mut ops_stop = stop_rx.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = ops_stop.wait_for(|stop| *stop).await;
                })
                .await
        })
    });
    let mut runtime_stop = stop_rx.clone();
    let options = RuntimeOptions {
        concurrency: config.worker.concurrency.max(1),
        reconcile_every: config
            .reconcile
            .every()?
            .map(|every| config.reconcile.window().map(|window| (every, window)))
            .transpose()?,
        webhooks,
        events_retain,
        ..RuntimeOptions::default()
    };
    // Ready from here until shutdown begins or the loop ends on its own.
    worker_state.set_running(true);
    let running = worker_state.clone();
    let worker = tokio::spawn(async move {
        let result = runtime::run(executor, options, async move {
            let _ = runtime_stop.wait_for(|stop| *stop).await;
        })
        .await;
        running.set_running(false);
        result
    });

    shutdown.await;
    eprintln!("finflow: shutting down (in-flight steps finish)");
    worker_state.set_running(false);
    let _ = stop_tx.send(true);
    let worker_result = worker.await.context("the worker task panicked")?;
    let server_result = server.await.context("the receiver task panicked")?;
    let ops_result = match ops_server {
        Some(task) => task.await.context("the metrics server task panicked")?,
        None => Ok(()),
    };
    store.close().await;
    worker_result?;
    server_result.context("the callback receiver failed")?;
    ops_result.context("the metrics server failed")?;
    Ok(ExitCode::SUCCESS)
}
