//! Helpers of `tests/ops_endpoints.rs` and `tests/logs_pii.rs`: an in-process sandbox and one
//! real `finflow run` child on SQLite in a directory of its own, its stderr (the logs) kept
//! in a file, and `finflow submit` as an operator runs it.
//!
//! Tests using these run on a multi-thread runtime: the test body blocks on children while
//! the sandbox serves on the runtime's workers.

// Each test crate uses a part of the helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use finfra_sandbox::{CallbackTarget, ClientCredentials, RunningSandbox, Sandbox, SandboxConfig};
use serde_json::Value;

pub const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");

/// `[privacy]` keys: `run` and `submit` require them.
pub const PRIVACY_ENV: [(&str, &str); 3] = [
    (
        "FINFLOW_PRIVACY__KEYS__OPS",
        "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
    ),
    ("FINFLOW_PRIVACY__ACTIVE", "ops"),
    (
        "FINFLOW_PRIVACY__HASH_KEY",
        "BgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgY=",
    ),
];

/// The repository's root (where `workflows/` is).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A sample input from `workflows/inputs/`.
pub fn sample_input(name: &str) -> Value {
    let path = repo().join("workflows/inputs").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the sample input"))
        .expect("the sample input is JSON")
}

/// A free loopback port (another process could take it first; rare on a test machine, and
/// a worker that cannot bind fails loudly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What a test sets up: the sandbox, the worker's credentials and ports, a working directory.
pub struct Setup {
    pub sandbox: RunningSandbox,
    pub dir: PathBuf,
    pub client_id: String,
    pub client_secret: String,
    pub auth_key: String,
    pub callbacks_port: u16,
    pub metrics_port: u16,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Setup {
    /// Starts a zero-delay sandbox with distinctive credentials that calls back the worker
    /// to come.
    pub async fn start(name: &str) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("finflow-{name}-{unique}"));
        std::fs::create_dir_all(&dir).expect("a working directory");
        let callbacks_port = free_port();
        let client_id = format!("ops-client-{}", &unique[..8]);
        let client_secret = format!("client-secret-{unique}");
        let auth_key = format!("callback-auth-key-{unique}");
        let mut config = SandboxConfig::for_tests();
        config.clients = vec![ClientCredentials::new(&client_id, &client_secret)];
        config.callback = Some(CallbackTarget {
            base_url: format!("http://127.0.0.1:{callbacks_port}/")
                .parse()
                .expect("url"),
            auth_key: auth_key.clone(),
        });
        let sandbox = Sandbox::start(config).await.expect("sandbox");
        Self {
            sandbox,
            dir,
            client_id,
            client_secret,
            auth_key,
            callbacks_port,
            metrics_port: free_port(),
        }
    }

    /// `finflow` in the working directory with exactly this setup's configuration (none of
    /// the caller's `FINFLOW_*` variables), logging at `log` in JSON.
    pub fn finflow(&self, log: &str) -> Command {
        let mut command = Command::new(FINFLOW);
        command.current_dir(&self.dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("FINFLOW_") {
                command.env_remove(key);
            }
        }
        let db = format!("sqlite://{}", self.dir.join("finflow.db").display());
        let workflows = repo().join("workflows");
        let vars = [
            ("FINFLOW_DATABASE_URL", db),
            (
                "FINFLOW_FINFRA__BASE_URL",
                self.sandbox.base_url().to_string(),
            ),
            ("FINFLOW_FINFRA__CLIENT_ID", self.client_id.clone()),
            ("FINFLOW_FINFRA__CLIENT_SECRET", self.client_secret.clone()),
            ("FINFLOW_CALLBACKS__AUTH_KEY", self.auth_key.clone()),
            (
                "FINFLOW_CALLBACKS__LISTEN",
                format!("127.0.0.1:{}", self.callbacks_port),
            ),
            (
                "FINFLOW_METRICS__LISTEN",
                format!("127.0.0.1:{}", self.metrics_port),
            ),
            (
                "FINFLOW_WORKER__WORKFLOWS_DIR",
                workflows.display().to_string(),
            ),
            ("FINFLOW_LOG", log.to_owned()),
        ];
        command.envs(vars).envs(PRIVACY_ENV);
        command
    }

    /// `finflow --log-format json run`, its stderr in `worker.log`.
    pub fn start_worker(&self, log: &str) -> WorkerProcess {
        let log_file = self.dir.join("worker.log");
        let stderr = std::fs::File::create(&log_file).expect("create the log file");
        let mut child = self
            .finflow(log)
            .args(["--log-format", "json", "run"])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn finflow run");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let mut worker = WorkerProcess {
            child,
            log_file,
            banner: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(banner) => worker.banner = banner,
            Err(_) => panic!(
                "finflow run did not start; its log:\n{}",
                worker.log().chars().take(4000).collect::<String>()
            ),
        }
        worker
    }

    /// `finflow submit <kind>` with `input` (JSON logs at `log` on its stderr): the
    /// workflow id and what it logged.
    pub fn submit(&self, log: &str, key: &str, input: &Value) -> (uuid::Uuid, String) {
        let file = self.dir.join(format!("{key}.json"));
        std::fs::write(&file, input.to_string()).expect("write the input");
        let output = self
            .finflow(log)
            .env("FINFLOW_LOG_FORMAT", "json")
            .args([
                "submit",
                "onboard-borrower",
                "--business-key",
                key,
                "--input",
            ])
            .arg(&file)
            .output()
            .expect("run finflow submit");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "submit failed: {stdout}{stderr}");
        let id = stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("submit printed {stdout:?}: {e}"));
        (id, format!("{stdout}{stderr}"))
    }

    /// The store, opened by the test itself (SQLite in WAL: alongside the worker).
    pub async fn store(&self) -> store::Store {
        store::Store::connect(&format!(
            "sqlite://{}",
            self.dir.join("finflow.db").display()
        ))
        .await
        .expect("open the store")
    }

    /// Waits until every workflow of `ids` is terminal; panics after `timeout`.
    pub async fn wait_terminal(&self, ids: &[uuid::Uuid], timeout: Duration) {
        let store = self.store().await;
        let started = Instant::now();
        loop {
            let mut done = true;
            for id in ids {
                let workflow = store.get(*id).await.expect("read").expect("exists");
                done &= workflow.status.is_terminal();
            }
            if done {
                break;
            }
            assert!(
                started.elapsed() < timeout,
                "workflows not finished within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        store.close().await;
    }

    /// `http://127.0.0.1:<metrics port><path>`.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics_port)
    }
}

/// A `finflow run` child, SIGKILLed on drop.
pub struct WorkerProcess {
    child: Child,
    log_file: PathBuf,
    /// The first line it printed.
    pub banner: String,
}

impl WorkerProcess {
    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// SIGTERM, then waits for it to exit (in-flight steps finish, logs are flushed).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
