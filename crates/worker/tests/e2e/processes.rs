//! The real processes of an end-to-end run, started as an operator starts them:
//! `finflow sandbox`, `finflow run` workers configured by `FINFLOW_*` variables, and the
//! one-shot `finflow submit` / `finflow status`. Long-running children are killed when
//! dropped, so a failed assertion never leaves a worker or a sandbox behind.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use finfra_sandbox::{BorrowerSummary, CallbackRecord, Faults, Ledger, LoanSummary};
use serde_json::Value;

pub const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");

/// Tests are silent unless `TEST_LOG` is set; then children log to the test's stderr.
pub fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

fn child_stderr() -> Stdio {
    if test_log() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A free loopback port. Another process could take it before the worker binds it; on a
/// test machine that is rare enough, and a worker that cannot bind fails loudly.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `finflow` in `dir` (where no `finflow.toml` lies) with none of the caller's
/// `FINFLOW_*` variables: each child sees exactly the configuration the test gives it.
fn finflow(dir: &Path) -> Command {
    let mut command = Command::new(FINFLOW);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    command
}

/// A child process, SIGKILLed and reaped on drop.
struct Killed(Child);

impl Killed {
    fn kill(&mut self) {
        // `Child::kill` sends SIGKILL on Unix: no shutdown hook of the child runs.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a child's stdout on a thread of its own: lines go to a channel until `stop`
/// returns true, then the rest is drained so the child never blocks on a full pipe.
fn watch_stdout(child: &mut Child, stop: fn(&str) -> bool) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let done = stop(&line);
            if tx.send(line).is_err() || done {
                break;
            }
        }
        for _ in lines {}
    });
    rx
}

/// How the sandbox is started: the command-line flags a developer would use.
#[derive(Debug, Clone)]
pub struct SandboxArgs {
    /// The worker receiving Finfra's callbacks.
    pub callback_url: String,
    pub callback_auth_key: String,
    pub seed: u64,
    pub error_500_rate: f64,
    pub error_429_rate: f64,
    pub ambiguous_rate: f64,
    pub duplicate_callback_rate: f64,
    /// The token bucket per client (`--rate`, `--burst`); `None` turns it off.
    pub rate_limit: Option<(f64, u32)>,
}

/// A `finflow sandbox` child process and its control API.
pub struct SandboxProcess {
    _child: Killed,
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    http: reqwest::Client,
}

impl SandboxProcess {
    /// Starts `finflow sandbox --port 0 --zero-delay` with `args` and reads the banner.
    pub fn start(args: &SandboxArgs) -> Self {
        let dir = std::env::temp_dir();
        let (rate, burst) = args.rate_limit.unwrap_or((0.0, 1));
        let mut child = finflow(&dir)
            .args(["sandbox", "--port", "0", "--zero-delay"])
            .args(["--rate", &rate.to_string(), "--burst", &burst.to_string()])
            .args(["--callback-url", &args.callback_url])
            .args(["--callback-auth-key", &args.callback_auth_key])
            .args(["--seed", &args.seed.to_string()])
            .args(["--error-500-rate", &args.error_500_rate.to_string()])
            .args(["--error-429-rate", &args.error_429_rate.to_string()])
            .args(["--ambiguous-rate", &args.ambiguous_rate.to_string()])
            .args([
                "--duplicate-callback-rate",
                &args.duplicate_callback_rate.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(child_stderr())
            .spawn()
            .expect("spawn finflow sandbox");
        let lines = watch_stdout(&mut child, |line| line.starts_with("Ctrl-C"));
        let child = Killed(child);
        let (mut base_url, mut client_id, mut client_secret) = (None, None, None);
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
            let line = line.trim();
            let value = |prefix: &str| line.strip_prefix(prefix).map(str::to_owned);
            if let Some(v) = value("export FINFLOW_FINFRA__BASE_URL=") {
                base_url = Some(v);
            } else if let Some(v) = value("export FINFLOW_FINFRA__CLIENT_ID=") {
                client_id = Some(v);
            } else if let Some(v) = value("export FINFLOW_FINFRA__CLIENT_SECRET=") {
                client_secret = Some(v);
            }
            if line.starts_with("Ctrl-C") {
                break;
            }
        }
        Self {
            _child: child,
            base_url: base_url.expect("the banner prints the base URL"),
            client_id: client_id.expect("the banner prints the client id"),
            client_secret: client_secret.expect("the banner prints the client secret"),
            http: reqwest::Client::new(),
        }
    }

    fn control(&self, path: &str) -> String {
        format!("{}/_sandbox/{path}", self.base_url.trim_end_matches('/'))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.control(path))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET /_sandbox/{path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET /_sandbox/{path} is not what the docs say: {e}"))
    }

    /// The sandbox's counters.
    pub async fn ledger(&self) -> Ledger {
        self.get("ledger").await
    }

    /// Every borrower the sandbox knows, with the status it gave them.
    pub async fn borrowers(&self) -> Vec<BorrowerSummary> {
        self.get("borrowers").await
    }

    /// The sandbox's loans.
    pub async fn loans(&self) -> Vec<LoanSummary> {
        self.get("loans").await
    }

    /// Every callback the sandbox emitted.
    pub async fn callbacks(&self) -> Vec<CallbackRecord> {
        self.get("callbacks").await
    }

    /// The faults in force.
    pub async fn faults(&self) -> Faults {
        self.get("faults").await
    }

    /// Replaces the faults (the command line has no flag for some of them).
    pub async fn set_faults(&self, faults: &Faults) {
        self.http
            .put(self.control("faults"))
            .json(faults)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("PUT /_sandbox/faults");
    }
}

/// The `FINFLOW_*` configuration every `finflow` command of a run shares, and a working
/// directory of its own (removed on drop).
#[derive(Debug)]
pub struct FinflowEnv {
    /// Working directory of the children (and where input files are written).
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl Drop for FinflowEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl FinflowEnv {
    pub fn new(vars: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("finflow-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a working directory");
        Self {
            dir,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn command(&self) -> Command {
        let mut command = finflow(&self.dir);
        command.envs(self.vars.iter().map(|(k, v)| (k, v)));
        if test_log() && std::env::var_os("FINFLOW_LOG").is_none() {
            command.env("FINFLOW_LOG", "info");
        } else if let Some(filter) = std::env::var_os("FINFLOW_LOG") {
            command.env("FINFLOW_LOG", filter);
        }
        command
    }

    /// `finflow run` with `extra` variables beside the run's, until it exits by itself: its
    /// output.
    pub fn run_until_exit(&self, extra: &[(&str, &str)]) -> std::process::Output {
        self.command()
            .arg("run")
            .env("FINFLOW_CALLBACKS__LISTEN", "127.0.0.1:0")
            .env("FINFLOW_METRICS__LISTEN", "127.0.0.1:0")
            .envs(extra.iter().copied())
            .output()
            .expect("run finflow run")
    }

    /// `finflow submit <kind> --business-key KEY --input FILE`: the workflow id it printed.
    pub fn submit(&self, kind: &str, business_key: &str, input: &Value) -> uuid::Uuid {
        let file = self.dir.join(format!("{business_key}.json"));
        std::fs::write(&file, input.to_string()).expect("write the input file");
        let output = self
            .command()
            .args(["submit", kind, "--business-key", business_key, "--input"])
            .arg(&file)
            .output()
            .expect("run finflow submit");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "finflow submit {business_key} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("finflow submit printed {stdout:?}, not an id: {e}"))
    }

    /// `finflow status --json`.
    pub fn status_json(&self) -> Value {
        let output = self
            .command()
            .args(["status", "--json"])
            .output()
            .expect("run finflow status");
        assert!(
            output.status.success(),
            "finflow status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("finflow status --json prints JSON")
    }

    /// Starts a `finflow run` worker whose callback receiver listens on `listen`.
    pub fn start_worker(&self, listen: SocketAddr) -> WorkerProcess {
        let mut child = self
            .command()
            .arg("run")
            .env("FINFLOW_CALLBACKS__LISTEN", listen.to_string())
            // Several workers run at once: each serves its metrics on a port of its own.
            .env("FINFLOW_METRICS__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(child_stderr())
            .spawn()
            .expect("spawn finflow run");
        let lines = watch_stdout(&mut child, |line| line.starts_with("finflow worker "));
        let mut child = Killed(child);
        // The line is printed once the receiver's port is bound and the database migrated.
        let banner = lines.recv_timeout(Duration::from_secs(30)).ok();
        let metrics_url = banner.as_deref().and_then(|line| {
            let rest = line.split_once("metrics on ")?.1;
            Some(
                rest.split_whitespace()
                    .next()?
                    .trim_end_matches(',')
                    .to_owned(),
            )
        });
        let id = banner
            .and_then(|line| {
                let rest = line.strip_prefix("finflow worker ")?;
                Some(rest.split_once(':')?.0.to_owned())
            })
            .unwrap_or_else(|| {
                let status = child.0.try_wait().ok().flatten();
                child.kill();
                panic!(
                    "finflow run on {listen} did not start (exit: {status:?}); TEST_LOG=1 shows why"
                )
            });
        WorkerProcess {
            child,
            id,
            metrics_url,
        }
    }
}

/// A `finflow run` child process.
pub struct WorkerProcess {
    child: Killed,
    /// Its identity, as stored in leases and the journal.
    pub id: String,
    /// Where it serves `/metrics`, from its banner.
    pub metrics_url: Option<String>,
}

impl WorkerProcess {
    /// SIGKILL: the worker dies mid-whatever, as in a power cut or an OOM kill.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Its process id (its PostgreSQL connections are named `finflow-worker:<pid>-…`).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Whether it still runs (it has not exited or been killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}
