//! finflow and Finfra in one process, for `finflow bench`, `finflow demo` and tests: an in-process
//! `finfra-sandbox`, the callback receiver it calls back (`worker::receiver::router` on
//! `127.0.0.1:0`) and a worker (`worker::runtime::run` driving a `worker::executor::Executor`),
//! assembled as `finflow run` assembles them, over one store. Also what both commands need
//! around it: the definitions (the configured folder, else the ones bundled with this build)
//! and removing a SQLite database with its `-wal` and `-shm` files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::executor::Executor;
use crate::runtime::{self, RuntimeOptions};
use anyhow::Context as _;
use finfra_api::auth::Credentials;
use finfra_api::callback::AuthKeyVerifier;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{CallbackTarget, RunningSandbox, Sandbox, SandboxConfig};
use secrecy::SecretString;
use store::{Status, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How the in-process worker runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Workflows advanced at once (`worker.concurrency`).
    pub concurrency: usize,
    /// `worker.lease_secs`.
    pub lease: Duration,
    /// Outbound webhooks the worker delivers to (`finflow demo` and `bench` deliver none).
    pub webhooks: Vec<crate::webhooks::Webhook>,
}

impl EngineOptions {
    /// The configured `worker.concurrency` and `worker.lease_secs`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            concurrency: config.worker.concurrency.max(1),
            lease: Duration::from_secs(config.worker.lease_secs.max(1)),
            webhooks: Vec::new(),
        }
    }
}

/// A running sandbox, receiver and worker over one store.
pub struct InProcess {
    sandbox: RunningSandbox,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Starts the receiver, a sandbox configured as `sandbox` that calls it back (its
    /// `callback` is replaced), and a worker on `store` with the sandbox's credentials.
    ///
    /// # Errors
    /// A socket cannot be bound or the client cannot be built.
    pub async fn start(
        store: Store,
        definitions: workflow::Registry,
        mut sandbox: SandboxConfig,
        options: &EngineOptions,
    ) -> anyhow::Result<Self> {
        let auth_key = Uuid::new_v4().simple().to_string();
        let verifier = AuthKeyVerifier::new(&SecretString::from(auth_key.clone()))
            .map_err(|e| anyhow::anyhow!("callback key: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the callback receiver")?;
        let receiver_url = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
        let (stop, stopped) = watch::channel(false);
        let mut server_stop = stopped.clone();
        let router = crate::receiver::router(store.clone(), verifier);
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.wait_for(|stop| *stop).await;
                })
                .await
        });

        sandbox.callback = Some(CallbackTarget {
            base_url: receiver_url,
            auth_key,
        });
        let sandbox = Sandbox::start(sandbox)
            .await
            .context("cannot start the sandbox")?;
        let client = FinfraClient::new(ClientConfig::new(
            sandbox.base_url(),
            Credentials::new(
                sandbox.client_id(),
                SecretString::from(sandbox.client_secret().to_owned()),
            ),
        ))
        .context("cannot build the Finfra client")?;
        let executor = Executor::new(
            store,
            client,
            workflow::Engine::new(definitions),
            runtime::worker_identity(),
            options.lease,
            format!("finfra:{}", sandbox.client_id()),
        );
        let mut worker_stop = stopped;
        let worker = tokio::spawn(runtime::run(
            executor,
            RuntimeOptions {
                concurrency: options.concurrency.max(1),
                webhooks: options.webhooks.clone(),
                ..RuntimeOptions::default()
            },
            async move {
                let _ = worker_stop.wait_for(|stop| *stop).await;
            },
        ));
        Ok(Self {
            sandbox,
            stop,
            server,
            worker,
        })
    }

    /// The sandbox: its ledger, loans and borrowers.
    pub fn sandbox(&self) -> &RunningSandbox {
        &self.sandbox
    }

    /// Stops the worker (in-flight steps finish), the receiver and the sandbox.
    ///
    /// # Errors
    /// The worker or the receiver failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let worker = self.worker.await.context("the worker task panicked")?;
        let server = self.server.await.context("the receiver task panicked")?;
        self.sandbox.shutdown().await;
        worker?;
        server.context("the callback receiver failed")?;
        Ok(())
    }
}

/// Finished, as far as a run in this process is concerned: terminal, or waiting for a person.
pub fn stopped(status: Status) -> bool {
    status.is_terminal() || status == Status::NeedsAttention
}

/// The shipped definitions, for a run where `worker.workflows_dir` is not there (e.g. the
/// release binary run from another directory).
const BUNDLED: [(&str, &str); 4] = [
    (
        "business-bnpl.toml",
        include_str!("../../../workflows/business-bnpl.toml"),
    ),
    (
        "business-single-payment.toml",
        include_str!("../../../workflows/business-single-payment.toml"),
    ),
    (
        "personal-bnpl.toml",
        include_str!("../../../workflows/personal-bnpl.toml"),
    ),
    (
        "personal-single-payment.toml",
        include_str!("../../../workflows/personal-single-payment.toml"),
    ),
];

/// The definitions shipped with this build.
///
/// # Errors
/// Never for a build whose `workflows/` loads; kept fallible for the message.
pub fn bundled() -> anyhow::Result<workflow::Registry> {
    workflow::Registry::from_sources(BUNDLED)
        .map_err(|e| anyhow::anyhow!("bundled definitions: {e}"))
}

/// `worker.workflows_dir` when it is there, else the definitions bundled with this build;
/// with where they came from, for the report.
///
/// # Errors
/// The folder is there but a definition in it is invalid.
pub fn definitions(config: &Config) -> anyhow::Result<(workflow::Registry, String)> {
    let dir = &config.worker.workflows_dir;
    if dir.is_dir() {
        let registry = workflow::Registry::load_dir(dir)
            .map_err(|e| anyhow::anyhow!("workflow definitions: {e}"))?;
        Ok((registry, format!("loaded from {}", dir.display())))
    } else {
        Ok((bundled()?, format!("bundled: {} not found", dir.display())))
    }
}

/// Removes a SQLite database file and its `-wal` and `-shm` companions; whether there was
/// anything to remove.
///
/// # Errors
/// A file is there but cannot be removed.
pub fn remove_sqlite(path: &Path) -> std::io::Result<bool> {
    let mut removed = false;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(PathBuf::from(file)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_definitions_load() {
        let registry = bundled().expect("bundled definitions load");
        assert_eq!(registry.iter().count(), 4);
    }

    #[test]
    fn remove_sqlite_takes_the_companion_files_too() {
        let dir = std::env::temp_dir().join(format!("finflow-rm-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("x.db");
        for name in ["x.db", "x.db-wal", "x.db-shm", "y.db"] {
            std::fs::write(dir.join(name), b"").expect("write");
        }
        assert!(remove_sqlite(&db).expect("removed"));
        assert!(!remove_sqlite(&db).expect("nothing left"));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["y.db"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
