//! The `finflow` binary as a user runs it: `finflow sandbox` in one process, `finflow doctor`
//! pointed at it in another.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");

/// `[privacy]` keys, which every command that writes personal data requires.
const PRIVACY: [(&str, &str); 3] = [
    (
        "FINFLOW_PRIVACY__KEYS__CLI",
        "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=",
    ),
    ("FINFLOW_PRIVACY__ACTIVE", "cli"),
    (
        "FINFLOW_PRIVACY__HASH_KEY",
        "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=",
    ),
];

/// A `finflow sandbox` child process, killed on drop.
struct SandboxProcess {
    child: Child,
    base_url: String,
    client_id: String,
    client_secret: String,
}

impl SandboxProcess {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(FINFLOW)
            .args(["sandbox", "--port", "0", "--zero-delay"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn finflow sandbox");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let (mut base_url, mut client_id, mut client_secret) = (None, None, None);
        for line in lines.by_ref() {
            let line = line.expect("read sandbox banner");
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
        // Keep draining stdout so the sandbox never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base_url: base_url.expect("banner prints the base URL"),
            client_id: client_id.expect("banner prints the client id"),
            client_secret: client_secret.expect("banner prints the client secret"),
        }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `finflow doctor` with exactly these `FINFLOW_*` variables, from an empty directory
/// so that no `finflow.toml` is picked up.
fn doctor(env: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("finflow-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    doctor_in(&dir, env)
}

fn doctor_in(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(FINFLOW);
    command.arg("doctor").current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run finflow doctor")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn doctor_passes_against_the_sandbox() {
    let sandbox = SandboxProcess::start(&[]);
    let finfra = [
        ("FINFLOW_FINFRA__BASE_URL", sandbox.base_url.as_str()),
        ("FINFLOW_FINFRA__CLIENT_ID", sandbox.client_id.as_str()),
        (
            "FINFLOW_FINFRA__CLIENT_SECRET",
            sandbox.client_secret.as_str(),
        ),
    ];
    // Without [privacy] keys the worker would not start: the doctor says so.
    let output = doctor(&finfra);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let privacy = report
        .lines()
        .find(|l| l.starts_with("privacy"))
        .unwrap_or_else(|| panic!("no privacy line in:\n{report}"));
    assert!(
        privacy.contains("FAIL") && privacy.contains("finflow privacy new-key"),
        "{privacy}"
    );

    let output = doctor(&[
        finfra[0], finfra[1], finfra[2], PRIVACY[0], PRIVACY[1], PRIVACY[2],
    ]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(!report.contains(PRIVACY[0].1), "a key leaked:\n{report}");
    for check in [
        "config",
        "privacy",
        "database",
        "token",
        "liveness",
        "readiness",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(check) && l.contains(" ok ")),
            "{check} not ok in:\n{report}"
        );
    }
    // The default database: a SQLite file, not created by looking at it.
    assert!(report.contains("SQLite sqlite://finflow.db"), "{report}");
    assert!(
        !report.contains(&sandbox.client_secret),
        "the secret leaked:\n{report}"
    );
}

#[test]
fn doctor_explains_wrong_credentials_in_one_line() {
    let sandbox = SandboxProcess::start(&[]);
    let output = doctor(&[
        ("FINFLOW_FINFRA__BASE_URL", &sandbox.base_url),
        ("FINFLOW_FINFRA__CLIENT_ID", &sandbox.client_id),
        ("FINFLOW_FINFRA__CLIENT_SECRET", "not-the-secret"),
    ]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let token = report
        .lines()
        .find(|l| l.starts_with("token"))
        .unwrap_or_else(|| panic!("no token line in:\n{report}"));
    assert!(token.contains("FAIL") && token.contains("401"), "{token}");
    assert!(token.contains("FINFLOW_FINFRA__CLIENT_SECRET"), "{token}");
    // The healthchecks need no credentials, so they still pass.
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("liveness") && l.contains(" ok ")),
        "{report}"
    );
    assert!(!report.contains("not-the-secret"), "{report}");
    assert!(!report.contains("panicked"), "{report}");
}

#[test]
fn doctor_explains_an_unreachable_host() {
    // Port 9 (discard) on loopback: nothing listens there on a test machine.
    let output = doctor(&[
        ("FINFLOW_FINFRA__BASE_URL", "http://127.0.0.1:9"),
        ("FINFLOW_FINFRA__CLIENT_ID", "id"),
        ("FINFLOW_FINFRA__CLIENT_SECRET", "secret"),
    ]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    for check in ["token", "liveness", "readiness"] {
        let line = report
            .lines()
            .find(|l| l.starts_with(check))
            .unwrap_or_else(|| panic!("no {check} line in:\n{report}"));
        assert!(
            line.contains("FAIL") && line.contains("cannot reach 127.0.0.1"),
            "{line}"
        );
    }
}

#[test]
fn doctor_explains_a_bad_url_and_missing_credentials() {
    let output = doctor(&[("FINFLOW_FINFRA__BASE_URL", "ftp//nowhere")]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let config = report
        .lines()
        .find(|l| l.starts_with("config"))
        .unwrap_or_else(|| panic!("no config line in:\n{report}"));
    assert!(
        config.contains("FAIL") && config.contains("finfra.base_url"),
        "{config}"
    );
    assert!(report.contains("token      skip"), "{report}");

    let output = doctor(&[("FINFLOW_FINFRA__BASE_URL", "http://127.0.0.1:9")]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FINFLOW_FINFRA__CLIENT_ID"),
        "names the missing setting:\n{report}"
    );
}

#[test]
fn doctor_reads_finflow_toml() {
    let sandbox = SandboxProcess::start(&["--client-id", "toml-client", "--client-secret", "0123"]);
    let dir = std::env::temp_dir().join(format!("finflow-doctor-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("finflow.toml"),
        format!(
            "[finfra]\nbase_url = \"{}\"\nclient_id = \"toml-client\"\nclient_secret = \"wrong\"\n",
            sandbox.base_url
        ),
    )
    .expect("write finflow.toml");
    // The environment overrides the file, and a numeric-looking secret stays a string.
    let output = doctor_in(
        &dir,
        &[
            ("FINFLOW_FINFRA__CLIENT_SECRET", "0123"),
            PRIVACY[0],
            PRIVACY[1],
            PRIVACY[2],
        ],
    );
    let report = text(&output);
    assert!(output.status.success(), "{report}");
}

#[test]
fn unknown_subcommand_and_help() {
    let output = Command::new(FINFLOW)
        .arg("frobnicate")
        .output()
        .expect("run finflow");
    assert!(!output.status.success());
    let output = Command::new(FINFLOW)
        .args(["sandbox", "--help"])
        .output()
        .expect("run finflow");
    assert!(output.status.success());
    assert!(text(&output).contains("Examples:"));
    let output = Command::new(FINFLOW)
        .args(["sandbox", "--error-500-rate", "2"])
        .output()
        .expect("run finflow");
    assert!(!output.status.success());
    assert!(
        text(&output).contains("not between 0 and 1"),
        "{}",
        text(&output)
    );
}

/// Runs `finflow` with `args` and the given `FINFLOW_*` variables only, from the workspace
/// root (where `workflows/` is).
fn finflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(FINFLOW);
    command
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run finflow")
}

#[test]
fn reconcile_starts_a_run_and_reports_on_runs() {
    let dir = std::env::temp_dir().join(format!("finflow-reconcile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("finflow.db").display());
    let env = [("FINFLOW_DATABASE_URL", db.as_str())];

    let bad = finflow(
        &[
            "reconcile",
            "--page-size",
            "500",
            "--from",
            "2026-12-03",
            "--to",
            "2026-12-01",
        ],
        &env,
    );
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("page_size") && text(&bad).contains("`from`"),
        "every bad filter is named: {}",
        text(&bad)
    );

    let run = finflow(
        &[
            "reconcile",
            "--from",
            "2026-12-01",
            "--business-key",
            "nightly/2026-12-03",
        ],
        &env,
    );
    assert!(run.status.success(), "{}", text(&run));
    let id = String::from_utf8_lossy(&run.stdout).trim().to_owned();
    assert_eq!(id.len(), 36, "prints the run's id: {id:?}");
    let again = finflow(
        &[
            "reconcile",
            "--from",
            "2026-12-01",
            "--business-key",
            "nightly/2026-12-03",
        ],
        &env,
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        id,
        "one run per key"
    );

    let status = finflow(&["reconcile", "--status", "--json"], &env);
    assert!(status.status.success(), "{}", text(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(report["runs"][0]["id"], id.as_str());
    assert_eq!(report["runs"][0]["business_key"], "nightly/2026-12-03");
    assert_eq!(report["open_findings"], serde_json::json!([]));
    let table = finflow(&["reconcile", "--status"], &env);
    assert!(
        text(&table).contains("nightly/2026-12-03") && text(&table).contains("Open findings: 0"),
        "{}",
        text(&table)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `finflow privacy new-key` prints a fresh key that `[privacy]` accepts, without a
/// configuration or a database.
#[test]
fn privacy_new_key_prints_a_usable_key() {
    let keys: Vec<String> = (0..2)
        .map(|_| {
            let out = finflow(&["privacy", "new-key"], &[]);
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    assert_ne!(keys[0], keys[1], "each key is new");
    assert_eq!(keys[0].len(), 44, "base64 of 32 bytes: {:?}", keys[0]);
    // Configured as they are printed, they seal a submitted borrower.
    let dir = std::env::temp_dir().join(format!("finflow-newkey-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("finflow.db").display());
    let out = finflow(
        &[
            "submit",
            "onboard-borrower",
            "--business-key",
            "new-key-1",
            "--input",
            "workflows/inputs/onboard-personal.json",
        ],
        &[
            ("FINFLOW_DATABASE_URL", &db),
            ("FINFLOW_PRIVACY__KEYS__NEW", &keys[0]),
            ("FINFLOW_PRIVACY__ACTIVE", "new"),
            ("FINFLOW_PRIVACY__HASH_KEY", &keys[1]),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = finflow(&["inspect", "new-key-1"], &[("FINFLOW_DATABASE_URL", &db)]);
    assert!(text(&out).contains("sealed (key new)"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn submit_validates_deduplicates_and_refuses_conflicts() {
    let dir = std::env::temp_dir().join(format!("finflow-submit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("finflow.db").display());
    let env = [
        ("FINFLOW_DATABASE_URL", db.as_str()),
        PRIVACY[0],
        PRIVACY[1],
        PRIVACY[2],
    ];
    let personal = "workflows/inputs/onboard-personal.json";
    let business = "workflows/inputs/onboard-business.json";
    let submit_with = |key: &str, input: &str, env: &[(&str, &str)]| {
        finflow(
            &[
                "submit",
                "onboard-borrower",
                "--business-key",
                key,
                "--input",
                input,
            ],
            env,
        )
    };
    let submit = |key: &str, input: &str| submit_with(key, input, &env);

    // Without [privacy] keys nothing is written: personal data is never stored plain.
    let keyless = submit_with("budi", personal, &env[..1]);
    assert_eq!(keyless.status.code(), Some(1), "{}", text(&keyless));
    assert!(
        text(&keyless).contains("no [privacy] keys are configured"),
        "{}",
        text(&keyless)
    );
    assert!(
        text(&keyless).contains("finflow privacy new-key"),
        "{}",
        text(&keyless)
    );

    let first = submit("budi", personal);
    assert!(first.status.success(), "{}", text(&first));
    let id = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    assert_eq!(id.len(), 36, "prints the workflow id: {id:?}");

    let again = submit("budi", personal);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);
    assert!(
        text(&again).contains("existing workflow"),
        "{}",
        text(&again)
    );

    let conflict = submit("budi", business);
    assert_eq!(conflict.status.code(), Some(1), "{}", text(&conflict));
    assert!(
        text(&conflict).contains("different input"),
        "{}",
        text(&conflict)
    );

    // Every problem is listed, and nothing is stored.
    let mut input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(personal),
        )
        .expect("read input"),
    )
    .expect("json");
    let signatory = &mut input["borrower"]["authorised_signatory"];
    signatory["documents"]["ktp"]["number"] = "12345".into();
    signatory["mobile_number"] = "0812".into();
    signatory.as_object_mut().expect("object").remove("email");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, input.to_string()).expect("write input");
    let invalid = submit("bad", bad.to_str().expect("utf-8 path"));
    assert_eq!(invalid.status.code(), Some(1));
    let report = text(&invalid);
    for problem in [
        "nothing was stored",
        "borrower.authorised_signatory.email",
        "borrower.authorised_signatory.mobile_number",
        "borrower.authorised_signatory.documents.ktp.number",
    ] {
        assert!(
            report.contains(problem),
            "{problem} missing from:\n{report}"
        );
    }

    let status = finflow(&["status", "--json"], &env);
    assert!(status.status.success(), "{}", text(&status));
    let counts: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let rows = counts["counts"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{counts}");
    assert_eq!(rows[0]["kind"], "onboard-borrower");
    assert_eq!(rows[0]["status"], "pending");
    assert_eq!(rows[0]["count"], 1, "the invalid input stored nothing");
}

store::test_both_backends!(submit_refuses_bad_keys_and_a_borrower_being_onboarded);

/// `finflow submit` with a business key that breaks the rule, and with a borrower (the NIK of
/// `onboard-personal.json`) whose onboarding under another key has not finished: one line on
/// stderr saying why, exit status 1 (as for invalid input), nothing stored. Cancelling the
/// first onboarding releases the borrower.
async fn submit_refuses_bad_keys_and_a_borrower_being_onboarded(db: store::testing::TestDb) {
    let run = |key: &str| {
        let (key, url) = (key.to_owned(), db.url.clone());
        tokio::task::spawn_blocking(move || {
            finflow(
                &[
                    "submit",
                    "onboard-borrower",
                    "--business-key",
                    &key,
                    "--input",
                    "workflows/inputs/onboard-personal.json",
                ],
                &[
                    ("FINFLOW_DATABASE_URL", &url),
                    PRIVACY[0],
                    PRIVACY[1],
                    PRIVACY[2],
                ],
            )
        })
    };
    let rule = "business key must be 1 to 200 printable characters without surrounding \
                whitespace";
    let long = "k".repeat(5000);
    for (key, problem) in [
        ("budi\nx", "it has a newline at position 5"),
        (" budi", "it starts with whitespace"),
        ("budi\t", "it has a tab at position 5"),
        (long.as_str(), "it has 5000 characters"),
    ] {
        let refused = run(key).await.expect("finflow runs");
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(refused.stdout.is_empty(), "{}", text(&refused));
        assert_eq!(
            String::from_utf8_lossy(&refused.stderr),
            format!("error: {rule}: {problem}\n"),
            "{key:?}"
        );
    }
    let stored = |store: store::Store| async move {
        let counts = store.status_counts().await.expect("counts");
        counts.iter().map(|c| c.count).sum::<i64>()
    };
    assert_eq!(stored(db.store.clone()).await, 0, "nothing was stored");

    let first = run("budi").await.expect("finflow runs");
    assert!(first.status.success(), "{}", text(&first));
    let id = String::from_utf8_lossy(&first.stdout).trim().to_owned();

    let held = run("budi-2").await.expect("finflow runs");
    assert_eq!(held.status.code(), Some(1), "{}", text(&held));
    assert!(held.stdout.is_empty(), "{}", text(&held));
    assert_eq!(
        String::from_utf8_lossy(&held.stderr),
        format!(
            "error: borrower already being onboarded under business key \"budi\" (workflow \
             {id}): wait for it to finish or cancel it\n"
        )
    );
    assert_eq!(
        stored(db.store.clone()).await,
        1,
        "only the first onboarding"
    );
    let again = run("budi").await.expect("finflow runs");
    assert!(
        again.status.success(),
        "the same key stays idempotent: {}",
        text(&again)
    );

    // Cancelled (it never started: at once), the borrower may be onboarded again.
    let url = db.url.clone();
    let cancel = tokio::task::spawn_blocking(move || {
        finflow(
            &["cancel", "budi", "--reason", "submitted twice"],
            &[("FINFLOW_DATABASE_URL", &url), ("USER", "tester")],
        )
    })
    .await
    .expect("finflow runs");
    assert!(cancel.status.success(), "{}", text(&cancel));
    let second = run("budi-2").await.expect("finflow runs");
    assert!(second.status.success(), "{}", text(&second));
    assert_ne!(String::from_utf8_lossy(&second.stdout).trim(), id);
}

#[test]
fn run_stops_gracefully_on_sigterm() {
    let sandbox = SandboxProcess::start(&[]);
    let dir = std::env::temp_dir().join(format!("finflow-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("finflow.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = Command::new(FINFLOW);
    command
        .arg("run")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .envs([
            ("FINFLOW_DATABASE_URL", db.as_str()),
            ("FINFLOW_FINFRA__BASE_URL", sandbox.base_url.as_str()),
            ("FINFLOW_FINFRA__CLIENT_ID", sandbox.client_id.as_str()),
            (
                "FINFLOW_FINFRA__CLIENT_SECRET",
                sandbox.client_secret.as_str(),
            ),
            ("FINFLOW_CALLBACKS__LISTEN", listen.as_str()),
            ("FINFLOW_CALLBACKS__AUTH_KEY", "key"),
            ("FINFLOW_METRICS__LISTEN", "127.0.0.1:0"),
        ])
        .envs(PRIVACY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn finflow run");
    let stdout = child.stdout.take().expect("piped");
    let banner = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a banner line")
        .expect("read banner");
    assert!(banner.starts_with("finflow worker finflow-"), "{banner}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(term.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "finflow run did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("read stderr");
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

/// `finflow run` stops at once when the server answers that its database does not exist:
/// waiting for it (`worker.database_wait_secs`) would not change the answer.
#[test]
fn run_does_not_wait_for_a_database_that_does_not_exist() {
    let mut env = vec![
        (
            "FINFLOW_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/finflow_no_such_database?sslmode=disable",
        ),
        ("FINFLOW_FINFRA__BASE_URL", "http://127.0.0.1:9"),
        ("FINFLOW_FINFRA__CLIENT_ID", "id"),
        ("FINFLOW_FINFRA__CLIENT_SECRET", "secret"),
        ("FINFLOW_CALLBACKS__LISTEN", "127.0.0.1:0"),
        ("FINFLOW_CALLBACKS__AUTH_KEY", "key"),
        ("FINFLOW_METRICS__LISTEN", "127.0.0.1:0"),
    ];
    env.extend(PRIVACY);
    let started = std::time::Instant::now();
    let out = finflow(&["run"], &env);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("finflow_no_such_database") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not available yet"),
        "waited for a database that does not exist: {stderr}"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "took {took:?} to stop: {stderr}"
    );
}

store::test_both_backends!(events_and_webhooks_from_the_shell);

/// `finflow events` reads the feed from a cursor (JSON Lines), `finflow events prune` keeps
/// what a webhook still owes, `finflow webhooks` lists deliveries and replays one, and bad
/// input is refused naming what is wrong.
async fn events_and_webhooks_from_the_shell(db: store::testing::TestDb) {
    let store = &db.store;
    let id = commit_with_events(
        store,
        "feed-cli",
        &["workflow.needs_attention", "borrower.approved"],
    )
    .await;
    store
        .dispatch_webhook("lender", &["borrower.approved".to_owned()])
        .await
        .expect("dispatch");

    let url = db.url.clone();
    let run = move |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            finflow(&args, &[("FINFLOW_DATABASE_URL", &url)])
        })
    };
    let out = run(&["events", "--after", "0", "--json"])
        .await
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["event_type"].as_str().expect("a type"))
        .collect();
    assert_eq!(types, ["workflow.needs_attention", "borrower.approved"]);
    assert_eq!(lines[1]["business_key"], "feed-cli");
    assert_eq!(lines[1]["workflow_id"], id.to_string());
    let first = lines[0]["id"].as_i64().expect("an id").to_string();
    let second = lines[1]["id"].as_i64().expect("an id");
    let out = run(&["events", "--after", &first, "--json"])
        .await
        .expect("run");
    let after: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert_eq!(after.len(), 1, "the cursor: only what follows it");
    let out = run(&["events"]).await.expect("run");
    assert!(text(&out).contains("borrower.approved"), "{}", text(&out));

    let out = run(&["webhooks", "--json"]).await.expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let deliveries: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let delivery = format!("lender-{second}");
    assert_eq!(deliveries[0]["id"], delivery.as_str());
    assert_eq!(deliveries[0]["status"], "pending");
    let out = run(&["webhooks", "replay", &delivery]).await.expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["webhooks", "replay", "lender-0"]).await.expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no webhook delivery \"lender-0\""),
        "{}",
        text(&out)
    );
    let out = run(&["webhooks", "--failed"]).await.expect("run");
    assert!(
        text(&out).contains("no failed webhook deliveries"),
        "{}",
        text(&out)
    );

    for (args, names) in [
        (&["events", "--limit", "0"][..], "--limit"),
        (&["events", "--after", "x"][..], "--after"),
        (&["events", "prune"][..], "--before"),
        (&["events", "prune", "--older-than", "3x"][..], "3x"),
        (
            &["events", "prune", "--before", "yesterday"][..],
            "yesterday",
        ),
    ] {
        let out = run(args).await.expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(names), "{args:?}: {}", text(&out));
    }
    let out = run(&["events", "prune", "--before", "2100-01-01"])
        .await
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deleted 1 events"),
        "the owed one is kept: {}",
        text(&out)
    );
    let left = store.events_after(0, 10).await.expect("feed");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_type, "borrower.approved");
}

/// Submits a workflow under `key` and commits one step with events of `types`.
async fn commit_with_events(store: &store::Store, key: &str, types: &[&str]) -> uuid::Uuid {
    let id = store
        .submit(&store::NewWorkflow::new(
            "onboard-borrower",
            key,
            serde_json::json!({ "borrower": {} }),
        ))
        .await
        .expect("submit")
        .id;
    let claimed = store
        .claim(id, "w1", std::time::Duration::from_secs(30))
        .await
        .expect("claim")
        .expect("due");
    let event = |t: &str| store::NewEvent {
        event_type: t.to_owned(),
        payload: serde_json::json!({ "user_id": "6a41b2c3d4e5f60718293a4b" }),
    };
    let commit = store::StepCommit {
        workflow_id: id,
        worker_id: "w1".into(),
        expected_version: claimed.workflow.version,
        status: store::Status::Completed,
        state: "approved".into(),
        context: serde_json::json!({}),
        facts: serde_json::json!({}),
        attempt: 1,
        next_run_at: None,
        waiting_for: None,
        waits: Vec::new(),
        deadline: None,
        last_error: None,
        journal: store::JournalEntry::new("new", "start", store::Outcome::Started),
        processed_events: Vec::new(),
        pin_definition_version: None,
        pin_definition_name: None,
        release_lease: true,
        hold_for_events: None,
        announce: None,
        events: types.iter().map(|t| event(t)).collect(),
        observed: store::Observed::default(),
    };
    store.commit_step(&commit).await.expect("commit");
    id
}

store::test_both_backends!(events_follow_prints_each_event_as_it_commits);

/// `finflow events --follow --json` prints an event committed after it started, within
/// seconds (NOTIFY on PostgreSQL, a poll on SQLite).
async fn events_follow_prints_each_event_as_it_commits(db: store::testing::TestDb) {
    let mut command = Command::new(FINFLOW);
    command
        .args(["events", "--follow", "--json", "--after", "0"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("FINFLOW_DATABASE_URL", &db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn finflow events --follow");
    let stdout = child.stdout.take().expect("piped");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    commit_with_events(&db.store, "follow-me", &["borrower.approved"]).await;
    let line = tokio::task::spawn_blocking(move || {
        lines_rx.recv_timeout(std::time::Duration::from_secs(15))
    })
    .await
    .expect("join");
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a line in time").expect("read");
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(event["event_type"], "borrower.approved");
    assert_eq!(event["business_key"], "follow-me");
}

/// `finflow doctor` checks the database: PostgreSQL that answers is named with its version
/// and whether the connection is encrypted, one that does not answer fails with the reason,
/// and an encrypted connection to this machine gets the advice to turn TLS off (it costs
/// throughput and protects nothing on the loopback). SQLite's line is in
/// `doctor_passes_against_the_sandbox`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_database() {
    use sqlx::Connection as _;
    store::testing::run(
        store::testing::TestBackend::Postgres,
        false,
        |db| async move {
            let with = |query: &str| {
                let separator = if db.url.contains('?') { '&' } else { '?' };
                format!("{}{separator}{query}", db.url)
            };
            let line = |url: String| {
                tokio::task::spawn_blocking(move || {
                    let report = text(&doctor(&[("FINFLOW_DATABASE_URL", &url)]));
                    report
                        .lines()
                        .find(|l| l.starts_with("database"))
                        .map(str::to_owned)
                        .unwrap_or_else(|| panic!("no database line in:\n{report}"))
                })
            };

            let plain = line(with("sslmode=disable")).await.expect("doctor");
            assert!(
                plain.contains(" ok ") && plain.contains("PostgreSQL ") && plain.contains("no TLS"),
                "{plain}"
            );

            let down = line("postgres://postgres@127.0.0.1:1/postgres".to_owned())
                .await
                .expect("doctor");
            // Why, not only that the pool gave up.
            assert!(
                down.contains("FAIL") && down.contains("127.0.0.1:1") && down.contains("refused"),
                "{down}"
            );

            let mut conn = sqlx::PgConnection::connect(&with("sslmode=disable"))
                .await
                .expect("connect");
            let ssl: String = sqlx::query_scalar("SHOW ssl")
                .fetch_one(&mut conn)
                .await
                .expect("SHOW ssl");
            let _ = conn.close().await;
            let tls = line(with("sslmode=require")).await.expect("doctor");
            if ssl == "on" {
                assert!(
                    tls.contains(" note ")
                        && tls.contains("TLS:")
                        && tls.contains("sslmode=disable"),
                    "{tls}"
                );
            } else {
                assert!(tls.contains("FAIL"), "the server offers no TLS: {tls}");
            }
        },
    )
    .await;
}
