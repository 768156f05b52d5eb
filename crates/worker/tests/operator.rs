//! The operator CLI as a person runs it, on both backends: `finflow inspect`, `status`,
//! `cancel`, `resolve` and `retry` (the real binary, pointed at a fresh database), with the
//! workflows driven by the real executor against an in-process sandbox.
//!
//! What it proves: a workflow is found by id or business key (and an ambiguous key is
//! refused with its candidates); inspect shows the timeline, the waits (a NIK only by its
//! last 4 digits) and the inbox, also as JSON; status shows what waits on what and what is
//! stuck; a never-started workflow is cancelled at once; a command is checked against the
//! state machine before it is queued (refusals exit 2 and record nothing); a queued command
//! is applied by the next worker and journaled with outcome `command`; `--wait` reports it;
//! a cancel after a loan's disbursement was sent is refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use finfra_api::auth::Credentials;
use finfra_api::callback::AuthKeyVerifier;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{CallbackTarget, Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::Value;
use store::testing::TestDb;
use store::{NewWorkflow, Status, Store};
use uuid::Uuid;
use worker::executor::{Advanced, Executor};
use workflow::{Engine, Registry};

const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");
/// The NIK of `workflows/inputs/onboard-personal.json`.
const NIK: &str = "3275062009921981";
const CALLBACK_KEY: &str = "operator-test-key";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn personal_input() -> Value {
    let path = root().join("workflows/inputs/onboard-personal.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("input")).expect("json")
}

/// What one `finflow` run printed.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// With `TEST_LOG` set, every run's output goes to stderr (`--nocapture` to see it).
    fn show(&self) {
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{}", self.all());
        }
    }

    fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.all()))
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.all());
        self
    }

    /// An error or a refusal is one line on stderr.
    #[track_caller]
    fn expect_one_line_error(&self, code: i32, needle: &str) {
        self.expect_code(code);
        assert_eq!(self.stderr.trim().lines().count(), 1, "{}", self.all());
        assert!(
            self.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            self.all()
        );
    }
}

/// Runs `finflow` on the test database, from the workspace root (its `workflows/`), with
/// `USER=tester` and no other `FINFLOW_*` variable.
async fn finflow(db: &TestDb, args: &[&str]) -> Out {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(FINFLOW);
        command.args(&args).current_dir(root());
        for (key, _) in std::env::vars() {
            if key.starts_with("FINFLOW_") {
                command.env_remove(key);
            }
        }
        command
            .env("FINFLOW_DATABASE_URL", url)
            .env("USER", "tester");
        let output = command.output().expect("run finflow");
        let out = Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        out.show();
        out
    })
    .await
    .expect("finflow runs")
}

fn engine() -> Engine {
    Engine::new(Registry::load_dir(&root().join("workflows")).expect("definitions"))
}

fn executor(
    store: &Store,
    sandbox: &finfra_sandbox::RunningSandbox,
    name: &str,
    secret: &str,
) -> Executor {
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), secret),
    ))
    .expect("client");
    Executor::new(
        store.clone(),
        client,
        engine(),
        name,
        Duration::from_secs(10),
        "finfra:test",
    )
}

async fn submit(store: &Store, kind: &str, key: &str, input: Value) -> Uuid {
    store
        .submit(&NewWorkflow::new(kind, key, input))
        .await
        .expect("submit")
        .id
}

async fn status_of(store: &Store, id: Uuid) -> (Status, String) {
    let w = store.get(id).await.expect("get").expect("exists");
    (w.status, w.state)
}

/// Never started: cancelled at once (journaled with who and why); resolve and retry are
/// refused; a finished workflow refuses everything; unknown targets and a missing reason
/// are one-line errors.
async fn never_started_workflows(db: TestDb) {
    let store = &db.store;
    let id = submit(store, "onboard-borrower", "fresh-1", personal_input()).await;
    // Another borrower: one borrower has one unfinished onboarding at a time.
    let mut other_borrower = personal_input();
    other_borrower["borrower"]["authorised_signatory"]["documents"]["ktp"]["number"] =
        "3275062009921999".into();
    submit(store, "onboard-borrower", "fresh-2", other_borrower).await;

    for (command, extra) in [("resolve", &["--data", "{}"][..]), ("retry", &[][..])] {
        let mut args = vec![command, "fresh-2", "--reason", "try it"];
        args.extend_from_slice(extra);
        finflow(&db, &args)
            .await
            .expect_one_line_error(2, "has not started yet");
    }

    let out = finflow(&db, &["cancel", "fresh-1", "--reason", "duplicate"]).await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("nothing was sent to Finfra"),
        "{}",
        out.all()
    );
    assert_eq!(status_of(store, id).await.0, Status::Cancelled);
    let journal = store.journal(id).await.expect("journal");
    let last = journal.last().expect("the cancel is journaled");
    assert_eq!(last.entry.outcome, store::Outcome::Cancelled);
    assert_eq!(last.worker_id, "tester", "--by defaults to $USER");
    assert_eq!(last.entry.error.as_deref(), Some("duplicate"));
    assert!(
        store.matched_events(id).await.expect("inbox").is_empty(),
        "nothing queued"
    );
    let feed = store.workflow_events(id).await.expect("events");
    let types: Vec<&str> = feed.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["workflow.cancelled"], "the cancel is in the feed");
    assert_eq!(feed[0].journal_seq, Some(last.seq));

    // Finished: every command is refused, by id as by key.
    let sid = id.to_string();
    for command in ["cancel", "resolve", "retry"] {
        finflow(&db, &[command, &sid, "--reason", "again", "--by", "alice"])
            .await
            .expect_one_line_error(2, "already cancelled");
    }
    assert_eq!(
        store.journal(id).await.expect("journal").len(),
        journal.len()
    );

    // Unknown id or key: one line, exit 1.
    let unknown = Uuid::new_v4().to_string();
    for target in [unknown.as_str(), "nobody"] {
        for args in [
            vec!["inspect", target],
            vec!["cancel", target, "--reason", "x"],
        ] {
            finflow(&db, &args)
                .await
                .expect_one_line_error(1, "no workflow has the id or business key");
        }
    }
    finflow(&db, &["inspect", "fresh-1", "--kind", "originate-loan"])
        .await
        .expect_one_line_error(1, "no originate-loan workflow");

    // The reason is required (clap: a usage error), and must not be blank.
    let out = finflow(&db, &["cancel", "fresh-2"]).await;
    out.expect_code(2);
    assert!(out.stderr.contains("--reason"), "{}", out.all());
    finflow(&db, &["cancel", "fresh-2", "--reason", "  "])
        .await
        .expect_code(2);
    let out = finflow(
        &db,
        &["resolve", "fresh-2", "--reason", "x", "--data", "[1]"],
    )
    .await;
    out.expect_code(2);
    assert!(out.stderr.contains("JSON object"), "{}", out.all());
    assert_eq!(
        status_of(store, store_id(store, "fresh-2").await).await.0,
        Status::Pending
    );

    // Inspect of a never-started workflow, and status's sections on an idle database.
    let out = finflow(&db, &["inspect", "fresh-2"]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("(no steps yet)"), "{}", out.all());
    assert!(out.stdout.contains("to start it"), "{}", out.all());
    assert!(out.stdout.contains("plain (not sealed"), "{}", out.all());
    assert!(!out.stdout.contains("Input (revealed"), "{}", out.all());
    // The input in the clear only with a reason, journaled (who: $USER).
    finflow(&db, &["inspect", "fresh-2", "--reveal"])
        .await
        .expect_code(2);
    let out = finflow(
        &db,
        &[
            "inspect",
            "fresh-2",
            "--reveal",
            "--reason",
            "support ticket 9",
        ],
    )
    .await;
    out.expect_code(0);
    assert!(out.stdout.contains("Input (revealed"), "{}", out.all());
    let reveals = store
        .reveals(store_id(store, "fresh-2").await)
        .await
        .expect("reveals");
    assert_eq!(reveals.len(), 1);
    assert_eq!(
        (reveals[0].revealed_by.as_str(), reveals[0].reason.as_str()),
        ("tester", "support ticket 9")
    );
    let status = finflow(&db, &["status", "--json"]).await;
    let status = status.expect_code(0).json();
    assert_eq!(status["waiting"], serde_json::json!([]), "{status}");
    assert_eq!(status["stuck_total"], 0, "{status}");
}

async fn store_id(store: &Store, key: &str) -> Uuid {
    store
        .find_by_business_key("onboard-borrower", key)
        .await
        .expect("find")
        .expect("exists")
        .id
}

/// Started workflows: stuck on Finfra's credentials (needs_attention), inspected, refused a
/// bad resolve, retried by a worker (journal outcome `command`), then waiting for a callback
/// (inspect masks the NIK it waits on), refused a resolve, and cancelled with `--wait` while
/// a worker runs.
async fn started_workflows(db: TestDb) {
    let store = &db.store;
    let sandbox = Sandbox::start(SandboxConfig::for_tests())
        .await
        .expect("sandbox");
    let id = submit(store, "onboard-borrower", "stuck-1", personal_input()).await;
    let sid = id.to_string();

    // A worker with wrong credentials: the first call cannot get a token.
    let bad = executor(store, &sandbox, "bad-worker", "wrong-secret");
    assert_eq!(bad.advance(id).await.expect("advance"), Advanced::Parked);
    assert_eq!(
        status_of(store, id).await,
        (Status::NeedsAttention, "needs_attention".to_owned())
    );

    // Inspect, by key and by id, as text and JSON.
    let by_key = finflow(&db, &["inspect", "stuck-1"]).await;
    by_key.expect_code(0);
    for needle in [
        sid.as_str(),
        "onboard-borrower",
        "personal-single-payment@",
        "needs_attention",
        "finfra_unauthorized",
        "Timeline",
        "SEQ",
        "a person: `finflow resolve",
    ] {
        assert!(
            by_key.stdout.contains(needle),
            "{needle:?}:\n{}",
            by_key.all()
        );
    }
    let json = finflow(&db, &["inspect", &sid, "--json"]).await;
    let doc = json.expect_code(0).json();
    assert_eq!(doc["workflow"]["id"], sid.as_str());
    assert_eq!(doc["workflow"]["business_key"], "stuck-1");
    assert_eq!(doc["workflow"]["status"], "needs_attention");
    assert!(doc["workflow"]["facts"].is_object(), "{doc}");
    let timeline = doc["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 2, "{doc}");
    assert!(
        timeline
            .iter()
            .any(|s| s["outcome"] == "failed" || s["error"].is_string()),
        "the failed call is in the timeline: {doc}"
    );
    let verbose = finflow(&db, &["inspect", "stuck-1", "--verbose"]).await;
    assert!(verbose.stdout.contains("request:"), "{}", verbose.all());

    // status shows it stuck.
    let status = finflow(&db, &["status", "--json"]).await.json();
    assert_eq!(status["stuck_total"], 1, "{status}");
    assert_eq!(status["stuck"][0]["id"], sid.as_str(), "{status}");
    assert_eq!(status["stuck"][0]["reason"], "needs_attention", "{status}");
    let table = finflow(&db, &["status"]).await;
    assert!(table.stdout.contains("Stuck: 1"), "{}", table.all());

    // A business key two kinds share needs --kind.
    submit(store, "originate-loan", "stuck-1", serde_json::json!({})).await;
    let out = finflow(&db, &["inspect", "stuck-1"]).await;
    out.expect_one_line_error(1, "--kind");
    assert!(out.stderr.contains("originate-loan"), "{}", out.all());
    assert!(out.stderr.contains(&sid), "{}", out.all());
    let out = finflow(
        &db,
        &["inspect", "stuck-1", "--kind", "onboard-borrower", "--json"],
    )
    .await;
    assert_eq!(out.expect_code(0).json()["workflow"]["id"], sid.as_str());

    // The state machine refuses data it does not accept: nothing is queued.
    let journal_before = store.journal(id).await.expect("journal").len();
    finflow(
        &db,
        &[
            "resolve",
            "stuck-1",
            "--kind",
            "onboard-borrower",
            "--reason",
            "x",
            "--data",
            r#"{"retry": "yes"}"#,
        ],
    )
    .await
    .expect_one_line_error(2, "retry must be true");
    assert!(store.matched_events(id).await.expect("inbox").is_empty());

    // retry: checked, queued for a worker; nothing changes until one runs.
    let out = finflow(
        &db,
        &[
            "retry",
            &sid,
            "--reason",
            "credentials fixed",
            "--by",
            "alice",
        ],
    )
    .await;
    out.expect_code(0);
    assert!(out.stdout.contains("queued resolve"), "{}", out.all());
    assert!(out.stdout.contains("finflow run"), "{}", out.all());
    assert_eq!(status_of(store, id).await.0, Status::NeedsAttention);
    let queued = store.matched_events(id).await.expect("inbox");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].source, store::Source::Operator);
    assert_eq!(queued[0].payload["by"], "alice");
    assert_eq!(queued[0].payload["data"]["retry"], true);
    assert!(queued[0].processed_at.is_none());
    let doc = finflow(&db, &["inspect", &sid, "--json"]).await.json();
    assert_eq!(doc["inbox"][0]["command"]["reason"], "credentials fixed");
    assert!(doc["inbox"][0]["processed_at"].is_null(), "{doc}");

    // A worker with the right credentials applies it: the stuck step runs again, and the
    // onboarding goes on until it waits for user_created (no callbacks in this sandbox).
    let good = executor(store, &sandbox, "good-worker", sandbox.client_secret());
    assert_eq!(good.advance(id).await.expect("advance"), Advanced::Parked);
    let (status, state) = status_of(store, id).await;
    assert_eq!(
        (status, state.as_str()),
        (Status::Waiting, "await_user_created")
    );
    let journal = store.journal(id).await.expect("journal");
    let command = journal
        .iter()
        .skip(journal_before)
        .find(|row| row.entry.outcome == store::Outcome::Command)
        .expect("the retry is journaled with outcome command");
    assert_eq!(command.entry.action, "resolve");
    assert_eq!(
        command.entry.request_summary.as_ref().expect("payload")["by"],
        "alice"
    );
    assert!(
        store.matched_events(id).await.expect("inbox")[0]
            .processed_at
            .is_some()
    );

    // Inspect shows the wait, with the NIK masked, and the command processed.
    let out = finflow(&db, &["inspect", &sid, "--kind", "onboard-borrower"]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("user_created"), "{}", out.all());
    assert!(out.stdout.contains("identity_number"), "{}", out.all());
    assert!(out.stdout.contains("************1981"), "{}", out.all());
    assert!(out.stdout.contains("resolve by alice"), "{}", out.all());
    let json = finflow(&db, &["inspect", &sid, "--json", "--verbose"]).await;
    assert!(
        !json.stdout.contains(NIK),
        "the NIK leaked:\n{}",
        json.all()
    );
    assert!(!out.stdout.contains(NIK), "the NIK leaked:\n{}", out.all());
    let doc = json.json();
    assert!(
        doc["waits"]
            .as_array()
            .expect("waits")
            .iter()
            .any(|w| w["key_value"] == "************1981"),
        "{doc}"
    );
    assert!(
        doc["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|s| s["outcome"] == "command")
    );

    // status: what waits on what.
    let status = finflow(&db, &["status", "--json"]).await.json();
    let waiting = status["waiting"].as_array().expect("waiting");
    assert!(
        waiting.iter().any(|w| w["kind"] == "onboard-borrower"
            && w["waiting_for"]
                .as_str()
                .is_some_and(|f| f.contains("user_created"))
            && w["count"] == 1),
        "{status}"
    );
    assert_eq!(status["stuck_total"], 0, "{status}");
    let table = finflow(&db, &["status"]).await;
    assert!(table.stdout.contains("Waiting on"), "{}", table.all());
    assert!(table.stdout.contains("Stuck: none"), "{}", table.all());

    // Not in needs_attention any more: resolve is refused by the state machine.
    finflow(
        &db,
        &[
            "resolve",
            &sid,
            "--reason",
            "found it",
            "--user-id",
            "65f1c0ffee0123456789abcd",
        ],
    )
    .await
    .expect_one_line_error(2, "not needs_attention");

    // cancel --wait while a worker runs: applied, and reported.
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let (good, stop) = (good.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = good.advance(id).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = finflow(
        &db,
        &[
            "cancel",
            &sid,
            "--reason",
            "customer withdrew",
            "--wait",
            "20",
        ],
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    running.await.expect("worker loop");
    out.expect_code(0);
    assert!(out.stdout.contains("queued cancel"), "{}", out.all());
    assert!(
        out.stdout.contains("applied:") && out.stdout.contains("cancelled"),
        "{}",
        out.all()
    );
    assert_eq!(status_of(store, id).await.0, Status::Cancelled);
    let journal = store.journal(id).await.expect("journal");
    let cancel = journal
        .iter()
        .rev()
        .find(|row| row.entry.outcome == store::Outcome::Command)
        .expect("the cancel is journaled");
    assert_eq!(cancel.entry.action, "cancel");
    assert_eq!(
        cancel.entry.request_summary.as_ref().expect("payload")["by"],
        "tester"
    );

    // Finished now: refused.
    finflow(&db, &["retry", &sid, "--reason", "again"])
        .await
        .expect_one_line_error(2, "already cancelled");

    // --wait with no worker running: the command stays queued, exit 3.
    let other = submit(store, "onboard-borrower", "stuck-2", personal_input()).await;
    assert_eq!(bad.advance(other).await.expect("advance"), Advanced::Parked);
    let out = finflow(
        &db,
        &[
            "cancel",
            "stuck-2",
            "--reason",
            "nobody runs",
            "--wait",
            "1",
        ],
    )
    .await;
    out.expect_code(3);
    assert!(out.stderr.contains("stays queued"), "{}", out.all());
    assert_eq!(status_of(store, other).await.0, Status::NeedsAttention);

    sandbox.shutdown().await;
}

/// A loan whose disbursement was sent: the state machine refuses a cancel (money may have
/// left), so the CLI refuses it and records nothing; inspect shows the loan's facts.
async fn a_cancel_after_disbursement_is_refused(db: TestDb) {
    let store = &db.store;
    // Callbacks reach the inbox through the receiver, as in production.
    let verifier = AuthKeyVerifier::new(&SecretString::from(CALLBACK_KEY)).expect("verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = worker::receiver::router(store.clone(), verifier);
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = SandboxConfig::for_tests();
    config.callback = Some(CallbackTarget {
        base_url: receiver.parse().expect("url"),
        auth_key: CALLBACK_KEY.to_owned(),
    });
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let worker = executor(store, &sandbox, "worker", sandbox.client_secret());

    let onboarding = submit(store, "onboard-borrower", "budi", personal_input()).await;
    let due = (Utc::now() + chrono::Days::new(20)).date_naive();
    let loan_input = serde_json::json!({
        "definition": "personal-bnpl",
        "borrower": {"onboarding": "budi"},
        "loan": {"type": "BNPL", "principal_amount": "3000000.00", "tenor": 3,
                 "frequency": "MONTHLY", "interest_rate": "0.0175",
                 "first_due_date": due.to_string(), "merchant_name": "Toko Maju"},
        "disbursement_account": {"holder_name": "Budi Santoso", "number": "123123123213",
                                 "swift_code": "BNINIDJA"}
    });
    engine()
        .validate("originate-loan", &loan_input, Utc::now())
        .expect("a valid loan");
    let loan = submit(store, "originate-loan", "loan-budi", loan_input).await;

    // Drive both until the disbursement is sent (the bank pays only when told: the loan
    // stays DISBURSING), signing the loan when it waits for that.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut signed = false;
    loop {
        for id in [onboarding, loan] {
            worker.advance(id).await.expect("advance");
        }
        let row = store.get(loan).await.expect("get").expect("exists");
        assert!(
            !row.status.is_terminal() && row.status != Status::NeedsAttention,
            "the loan stopped: {} {:?}",
            row.state,
            row.last_error
        );
        if row.state == "await_disbursement" {
            break;
        }
        if row.state == "await_signed" && !signed {
            let unique_id = row.facts["loan_unique_id"].as_str().expect("loan id");
            signed = sandbox.sign_loan(unique_id).is_ok();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "loan stuck in {}",
            row.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let before = store.journal(loan).await.expect("journal").len();
    finflow(
        &db,
        &[
            "cancel",
            "loan-budi",
            "--reason",
            "customer changed their mind",
        ],
    )
    .await
    .expect_one_line_error(2, "disbursement of loan");
    assert!(
        store
            .matched_events(loan)
            .await
            .expect("inbox")
            .iter()
            .all(|e| e.source != store::Source::Operator),
        "nothing queued"
    );
    assert_eq!(store.journal(loan).await.expect("journal").len(), before);
    let row = store.get(loan).await.expect("get").expect("exists");
    assert_eq!(row.state, "await_disbursement");

    let doc = finflow(&db, &["inspect", "loan-budi", "--json"]).await;
    let doc = doc.expect_code(0).json();
    assert_eq!(
        doc["workflow"]["facts"]["disbursement_status"], "DISBURSING",
        "{doc}"
    );
    assert!(
        doc["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|s| s["action"] == "disburse_loan" && s["outcome"] == "ok"),
        "{doc}"
    );

    sandbox.shutdown().await;
    serving.abort();
}

store::test_both_backends!(
    never_started_workflows,
    started_workflows,
    a_cancel_after_disbursement_is_refused,
    a_callback_already_stored_is_taken_in_the_same_hold
);

/// A partner that answers at once: the callback a step is about to wait for is stored before
/// the step parks. The step's commit finds it, keeps the workflow for its worker instead of
/// releasing it, and the worker takes the callback in the same hold: one claim for the whole
/// `advance`, not one more for the callback (`StepCommit::hold_for_events`).
async fn a_callback_already_stored_is_taken_in_the_same_hold(db: TestDb) {
    let store = &db.store;
    let sandbox = Sandbox::start(SandboxConfig::for_tests())
        .await
        .expect("sandbox");
    let id = submit(store, "onboard-borrower", "held-1", personal_input()).await;
    let event_id = "early-user-created";
    store
        .record_callback(&store::InboxEvent {
            source: store::Source::Status,
            event_id: event_id.into(),
            title: "user_created".into(),
            keys: store::CorrelationKeys {
                identity_number: Some(NIK.into()),
                ..store::CorrelationKeys::default()
            },
            payload: serde_json::json!({
                "event_id": event_id,
                "callback_title": "user_created",
                "occurred_at": Utc::now().to_rfc3339(),
                "identity_number": NIK,
                "status": "PENDING",
            }),
        })
        .await
        .expect("stored before the wait begins");

    let worker = executor(store, &sandbox, "w1", sandbox.client_secret());
    worker.advance(id).await.expect("advance");
    let journal = store.journal(id).await.expect("journal");
    let waited = journal
        .iter()
        .position(|row| {
            row.entry
                .response_summary
                .as_ref()
                .is_some_and(|summary| summary["decision"]["next"] == "wait")
        })
        .expect("the step that waits for user_created");
    let taken = journal
        .iter()
        .position(|row| row.entry.action == "callback" && row.entry.step == "user_created")
        .expect("the callback is taken in the same advance");
    assert!(taken > waited, "after the wait began");
    assert_eq!(journal[taken].worker_id, "w1");
    let inbox = store
        .inbox_event(store::Source::Status, event_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(inbox.matched_workflow_id, Some(id));
    assert!(inbox.processed_at.is_some(), "consumed");
    let claims: u64 = store
        .claim_batch_sizes()
        .iter()
        .map(|(size, batches)| *size as u64 * batches)
        .sum();
    assert_eq!(claims, 1, "claimed once, when the advance began");
    sandbox.shutdown().await;
}

#[test]
fn every_operator_command_has_examples_and_exit_statuses() {
    for command in [
        "inspect",
        "status",
        "cancel",
        "resolve",
        "retry",
        "approve",
        "reject-command",
    ] {
        let output = Command::new(FINFLOW)
            .args([command, "--help"])
            .output()
            .expect("run finflow");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}: {help}");
        assert!(help.contains("Examples:"), "{command}: {help}");
        if ["cancel", "resolve", "retry", "approve", "reject-command"].contains(&command) {
            assert!(help.contains("Exit status: 0"), "{command}: {help}");
            assert!(help.contains("--reason"), "{command}: {help}");
            assert!(help.contains("--wait"), "{command}: {help}");
        }
    }
}
