//! A person's commands to loans, through the store and a running worker, against the
//! sandbox, on both backends: a cancel before disbursement rejects the loan at Finfra; a
//! cancel once the disbursement is under way is refused and the loan goes on to be repaid;
//! a disbursement the bank refused needs attention, and a retry disburses again (through a
//! read of the loan) rather than blindly.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use finfra_sandbox::SandboxConfig;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use store::testing::TestDb;
use store::{NewWorkflow, Status, Store, Workflow};
use uuid::Uuid;
use worker::executor::{COMMAND_CANCEL, COMMAND_RESOLVE, command_payload};
use worker::inprocess::{EngineOptions, InProcess};
use workflow::{Engine, EngineError, Event, Registry};

store::test_both_backends!(loans_take_commands_where_it_is_safe);

const ONBOARDING: &str = "ops-borrower";

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn engine() -> Engine {
    Engine::new(Registry::load_dir(&repo().join("workflows")).expect("definitions"))
}

/// A single-payment loan of the sample borrower, disbursed to `account`.
fn loan(account: &str) -> Value {
    let due = (Utc::now().date_naive() + Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    json!({
        "definition": "personal-single-payment",
        "borrower": { "onboarding": ONBOARDING },
        "loan": {
            "type": "SINGLE_PAYMENT", "principal_amount": "5000000.00",
            "interest_amount": "250000.00", "due_date": due, "purpose": "Renovation"
        },
        "disbursement_account": {
            "holder_name": "Budi Santoso", "number": account, "swift_code": "BNINIDJA"
        }
    })
}

async fn submit(store: &Store, kind: &str, key: &str, input: Value) -> Uuid {
    store
        .submit(&NewWorkflow::new(kind, key, input))
        .await
        .expect("submit")
        .id
}

/// Waits (bounded) until the workflow is in `state`.
async fn until_state(store: &Store, id: Uuid, state: &str) -> Workflow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = store.get(id).await.expect("get").expect("exists");
        if w.state == state {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "{} stuck in {}/{} ({:?}), expected {state}",
            w.business_key,
            w.state,
            w.status,
            w.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `finflow cancel` / `finflow resolve` do: ask the workflow whether it takes the
/// command, then queue it for the worker.
async fn command(store: &Store, w: &Workflow, event: &Event) -> Result<(), EngineError> {
    engine().check_command(
        &w.kind,
        workflow::Stored::new(&w.context, &w.input),
        event,
        Utc::now(),
    )?;
    let (title, payload) = match event {
        Event::Cancel { by, reason } => (COMMAND_CANCEL, command_payload(by, reason, None)),
        Event::Resolve { by, reason, data } => {
            (COMMAND_RESOLVE, command_payload(by, reason, Some(data)))
        }
        other => panic!("not a command: {other:?}"),
    };
    store
        .record_command(w.id, title, &payload)
        .await
        .expect("record the command");
    Ok(())
}

/// Runs the `finflow` binary on the test database from the workspace root: (exit code,
/// stdout, stderr).
async fn finflow(db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_finflow"));
        command.args(&args).current_dir(repo());
        for (key, _) in std::env::vars() {
            if key.starts_with("FINFLOW_") {
                command.env_remove(key);
            }
        }
        let output = command
            .env("FINFLOW_DATABASE_URL", url)
            .output()
            .expect("run finflow");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("finflow runs")
}

fn cancel() -> Event {
    Event::Cancel {
        by: "ops@lender".into(),
        reason: "the borrower withdrew".into(),
    }
}

async fn loans_take_commands_where_it_is_safe(db: TestDb) {
    let store = &db.store;
    // Borrowers sign and banks pay only through the sandbox's control calls.
    let world = InProcess::start(
        store.clone(),
        Registry::load_dir(&repo().join("workflows")).expect("definitions"),
        SandboxConfig::for_tests(),
        &EngineOptions {
            concurrency: 16,
            lease: Duration::from_secs(5),
            webhooks: Vec::new(),
        },
    )
    .await
    .expect("sandbox, receiver and worker");
    let sandbox = world.sandbox();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-personal.json"))
            .expect("sample input"),
    )
    .expect("json");
    submit(store, "onboard-borrower", ONBOARDING, input).await;
    let withdrawn = submit(
        store,
        "originate-loan",
        "loan-withdrawn",
        loan("123123123213"),
    )
    .await;
    let disbursed = submit(
        store,
        "originate-loan",
        "loan-disbursed",
        loan("123123123213"),
    )
    .await;
    let refused = submit(
        store,
        "originate-loan",
        "loan-refused",
        loan("999000111222"),
    )
    .await;

    // Before disbursement: the cancel rejects the loan at Finfra.
    let w = until_state(store, withdrawn, "await_signed").await;
    let unique_id = w.facts["loan_unique_id"]
        .as_str()
        .expect("a loan")
        .to_owned();
    command(store, &w, &cancel())
        .await
        .expect("a cancel is taken");
    let w = until_state(store, withdrawn, "cancelled").await;
    assert_eq!(w.status, Status::Cancelled);
    assert_eq!(
        sandbox.loan(&unique_id).expect("at Finfra")["status"],
        "REJECTED"
    );
    let journal = store.journal(withdrawn).await.expect("journal");
    let applied = journal
        .iter()
        .find(|row| row.entry.outcome == store::Outcome::Command)
        .expect("the command is journaled");
    assert_eq!(applied.entry.action, "cancel");
    assert_eq!(
        applied.entry.request_summary.as_ref().expect("who and why")["by"],
        "ops@lender"
    );

    // Once the disbursement is under way: refused, with the reason; the loan goes on.
    let w = until_state(store, disbursed, "await_signed").await;
    let unique_id = w.facts["loan_unique_id"]
        .as_str()
        .expect("a loan")
        .to_owned();
    sandbox.sign_loan(&unique_id).expect("the borrower signs");
    let w = until_state(store, disbursed, "await_disbursement").await;
    match command(store, &w, &cancel()).await {
        Err(EngineError::Refused(refusal)) => {
            assert!(refusal.to_string().contains("irreversible"), "{refusal}");
        }
        other => panic!("a cancel after disbursement must be refused: {other:?}"),
    }
    sandbox
        .complete_disbursement(&unique_id)
        .expect("the bank pays out");
    let w = until_state(store, disbursed, "repaying").await;
    let external_id = w.facts["virtual_account_external_id"]
        .as_str()
        .expect("a virtual account")
        .to_owned();
    sandbox
        .pay_virtual_account(&external_id, Decimal::new(5_250_000, 0))
        .expect("the borrower pays");
    let w = until_state(store, disbursed, "paid").await;
    assert_eq!(w.status, Status::Completed);
    assert_eq!(w.facts["payments"], 1);

    // The bank refuses: a person looks; a retry disburses again, through a read.
    let w = until_state(store, refused, "await_signed").await;
    let unique_id = w.facts["loan_unique_id"]
        .as_str()
        .expect("a loan")
        .to_owned();
    sandbox.sign_loan(&unique_id).expect("the borrower signs");
    let w = until_state(store, refused, "needs_attention").await;
    assert!(
        w.last_error
            .as_deref()
            .is_some_and(|e| e.contains("disbursement_failed")),
        "{:?}",
        w.last_error
    );
    assert_eq!(sandbox.ledger().disbursements_accepted[&unique_id], 1);
    match command(store, &w, &cancel()).await {
        Err(EngineError::Refused(_)) => {}
        other => panic!("a refused disbursement is resolved, not cancelled: {other:?}"),
    }
    // Four-eyes: the retry of a refused disbursement waits for a second person.
    let asked = finflow(
        &db,
        &[
            "retry",
            "loan-refused",
            "--reason",
            "account checked with the bank",
            "--by",
            "alice",
        ],
    )
    .await;
    assert_eq!(asked.0, Some(0), "{asked:?}");
    assert!(asked.1.contains("pending approval"), "{asked:?}");
    let pending = store
        .command_requests(&store::RequestFilter {
            pending_only: true,
            workflow_id: Some(refused),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("requests");
    assert_eq!(pending.len(), 1, "{pending:?}");
    let request = pending[0].id.to_string();
    let status = finflow(&db, &["status"]).await;
    assert!(
        status.1.contains("Waiting for approval: 1") && status.1.contains("alice"),
        "{status:?}"
    );
    assert!(
        pending[0].needs_approval.contains("refused disbursement"),
        "{pending:?}"
    );
    // Nothing moves while it waits; its requester cannot approve it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sandbox.ledger().disbursements_accepted[&unique_id], 1);
    let own = finflow(
        &db,
        &["approve", &request, "--reason", "mine", "--by", "alice"],
    )
    .await;
    assert_eq!(own.0, Some(2), "{own:?}");
    assert!(own.2.contains("second person"), "{own:?}");
    let approved = finflow(
        &db,
        &[
            "approve",
            &request,
            "--reason",
            "seen the bank's letter",
            "--by",
            "bob",
            "--wait",
            "30",
        ],
    )
    .await;
    assert_eq!(approved.0, Some(0), "{approved:?}");
    assert!(approved.1.contains("applied"), "{approved:?}");
    let decided = store
        .command_request(pending[0].id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(decided.status, store::RequestStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("bob"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.ledger().disbursements_accepted[&unique_id] < 2 {
        assert!(Instant::now() < deadline, "the retry never disbursed again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same account fails again: back to a person, never a third time on its own.
    let w = until_state(store, refused, "needs_attention").await;
    assert_eq!(w.status, Status::NeedsAttention);
    assert_eq!(sandbox.ledger().disbursements_accepted[&unique_id], 2);
    assert!(sandbox.ledger().disbursement_conflicts.is_empty());

    world.stop().await.expect("a clean stop");
}
