//! `--in-flight`'s engine: a `finflow run` of this very binary, configured by `FINFLOW_*`
//! variables only, so that the memory read once the onboardings wait is a worker's own. The
//! sandbox it calls (and that calls its receiver back) stays in the benchmark's process:
//! it keeps every borrower's request, which would count as finflow's in one process.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use finfra_sandbox::{CallbackTarget, RunningSandbox, Sandbox, SandboxConfig};
use uuid::Uuid;
use worker::inprocess::EngineOptions;

use super::memory::{self, Rss};

/// How long `finflow run` may take to migrate, bind its receiver and print its banner.
const STARTUP: Duration = Duration::from_secs(60);

/// A `finflow run` child process and the in-process sandbox it works against.
pub struct WorkerProcess {
    child: Child,
    sandbox: Option<RunningSandbox>,
    /// Its working directory, with its definitions (removed on drop).
    dir: PathBuf,
}

impl WorkerProcess {
    /// Starts a sandbox configured as `sandbox` (its `callback` is replaced) and a `finflow
    /// run` on `database_url` with the settings `settings` (`FINFLOW_*` variables: its
    /// `[privacy]` keys), the definitions `definitions` (file name, TOML), the concurrency
    /// and lease of `options`, and no metrics endpoint. Returns once the worker has printed
    /// its banner (its database migrated, its receiver listening).
    ///
    /// # Errors
    /// No free port, the sandbox or the process cannot start, or the worker exits or stays
    /// silent before its banner.
    pub async fn start(
        database_url: &str,
        settings: &[(String, String)],
        definitions: &[(&str, &str)],
        options: &EngineOptions,
        mut sandbox: SandboxConfig,
    ) -> anyhow::Result<Self> {
        // A port the worker's receiver binds; the sandbox needs it before the worker starts.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("no free port for the worker's callback receiver")?
            .port();
        let auth_key = Uuid::new_v4().simple().to_string();
        sandbox.callback = Some(CallbackTarget {
            base_url: url::Url::parse(&format!("http://127.0.0.1:{port}/"))?,
            auth_key: auth_key.clone(),
        });
        let sandbox = Sandbox::start(sandbox)
            .await
            .context("cannot start the sandbox")?;

        let dir = std::env::temp_dir().join(format!("finflow-bench-worker-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, text) in definitions {
            std::fs::write(dir.join(file), text)
                .with_context(|| format!("cannot write {file} in {}", dir.display()))?;
        }
        let exe = std::env::current_exe().context("cannot find this finflow binary")?;
        let mut command = Command::new(exe);
        // In its own directory (no ./finflow.toml) with only the settings given here.
        command.arg("run").current_dir(&dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("FINFLOW_") && key != "FINFLOW_LOG" {
                command.env_remove(key);
            }
        }
        let child = command
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .env("FINFLOW_DATABASE_URL", database_url)
            .env("FINFLOW_FINFRA__BASE_URL", sandbox.base_url().as_str())
            .env("FINFLOW_FINFRA__CLIENT_ID", sandbox.client_id())
            .env("FINFLOW_FINFRA__CLIENT_SECRET", sandbox.client_secret())
            .env("FINFLOW_CALLBACKS__LISTEN", format!("127.0.0.1:{port}"))
            .env("FINFLOW_CALLBACKS__AUTH_KEY", &auth_key)
            .env("FINFLOW_METRICS__LISTEN", "off")
            // As the benchmark's own engine: the sandbox has no rate limit, nor does the
            // worker pace its requests to Finfra's 20/s.
            .env("FINFLOW_FINFRA__RATE_LIMIT__PER_SECOND", "0")
            .env("FINFLOW_WORKER__WORKFLOWS_DIR", &dir)
            .env(
                "FINFLOW_WORKER__CONCURRENCY",
                options.concurrency.to_string(),
            )
            .env(
                "FINFLOW_WORKER__LEASE_SECS",
                options.lease.as_secs().max(1).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start finflow run")?;
        let mut worker = Self {
            child,
            sandbox: Some(sandbox),
            dir,
        };
        worker.wait_for_banner().await?;
        Ok(worker)
    }

    /// Reads the worker's stdout (until it ends, so that the pipe never fills) and returns
    /// once the banner line came.
    async fn wait_for_banner(&mut self) -> anyhow::Result<()> {
        let stdout = self.child.stdout.take().context("the worker's stdout")?;
        let (banner_tx, banner_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut banner_tx = Some(banner_tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("finflow worker ")
                    && let Some(tx) = banner_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        match tokio::time::timeout(STARTUP, banner_rx).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                let status = self.child.try_wait().ok().flatten();
                anyhow::bail!(
                    "the --in-flight worker (finflow run) did not start within {} s (exit: {}); \
                     FINFLOW_LOG=info shows why",
                    STARTUP.as_secs(),
                    status.map_or_else(|| "still running".to_owned(), |s| s.to_string())
                )
            }
        }
    }

    /// The worker's memory now (`VmRSS`) and its peak (`VmHWM`).
    pub fn rss(&self) -> Option<Rss> {
        memory::rss_of(self.child.id())
    }

    /// Stops the worker (SIGKILL: what it holds is parked in the store, nothing is in
    /// flight) and the sandbox.
    pub async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.shutdown().await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Also on an error path: no worker outlives the benchmark.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
