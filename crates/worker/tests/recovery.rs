//! The crash window that matters: a worker decided to create a borrower (the decision is
//! committed), sent the request, and died before recording the answer. The next worker
//! must not trust the stored call: it hears `CallInterrupted`, reconciles, and the borrower
//! exists exactly once at Finfra. Deterministic, in one process, on SQLite.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use finfra_api::auth::Credentials;
use finfra_api::callback::AuthKeyVerifier;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{CallbackTarget, Sandbox, SandboxConfig};
use secrecy::SecretString;
use store::{JournalEntry, NewWorkflow, StepCommit, Store};
use worker::executor::{Advanced, Executor, perform};
use workflow::{Action, Engine, Registry, WorkflowId};

const KEY: &str = "recovery-key";

struct World {
    sandbox: finfra_sandbox::RunningSandbox,
    store: Store,
    client: FinfraClient,
    engine: Engine,
}

async fn world() -> World {
    let path = std::env::temp_dir().join(format!("finflow-recovery-{}.db", uuid::Uuid::new_v4()));
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");

    // The receiver, so that callbacks reach the inbox as in production.
    let verifier = AuthKeyVerifier::new(&SecretString::from(KEY)).expect("verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = worker::receiver::router(store.clone(), verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = SandboxConfig::for_tests();
    config.callback = Some(CallbackTarget {
        base_url: receiver.parse().expect("url"),
        auth_key: KEY.to_owned(),
    });
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let engine = Engine::new(Registry::load_dir(&workflows).expect("definitions"));
    World {
        sandbox,
        store,
        client,
        engine,
    }
}

fn business_input() -> serde_json::Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows/inputs/onboard-business.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("input")).expect("json")
}

#[tokio::test]
async fn a_create_sent_by_a_worker_that_died_is_reconciled_not_repeated() {
    let w = world().await;
    let input = business_input();
    let nik = input["borrower"]["authorised_signatory"]["documents"]["ktp"]["number"]
        .as_str()
        .expect("nik")
        .to_owned();
    let submitted = w
        .store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "crash-1",
            input.clone(),
        ))
        .await
        .expect("submit");
    let id = submitted.id;

    // The dying worker: claims with a short lease, then walks the workflow to its create
    // call exactly as the executor does (commit each decision, then act), and after the
    // create request has been sent... it dies: the answer is never recorded.
    let lease = Duration::from_millis(500);
    let claimed = w
        .store
        .claim(id, "dying-worker", lease)
        .await
        .expect("claim")
        .expect("due");
    let mut version = claimed.workflow.version;
    let wf_id = WorkflowId::new(id.to_string()).expect("id");
    let mut decision = w
        .engine
        .start(
            "onboard-borrower",
            &wf_id,
            &input,
            &workflow::Prior::default(),
            Utc::now(),
        )
        .expect("start");
    loop {
        let commit = StepCommit {
            workflow_id: id,
            worker_id: "dying-worker".into(),
            expected_version: version,
            status: store::Status::Running,
            state: decision.summary.state.clone(),
            context: decision.state.clone(),
            facts: decision.summary.facts.clone(),
            attempt: 1,
            next_run_at: Some(Utc::now()),
            waiting_for: None,
            waits: Vec::new(),
            deadline: None,
            last_error: None,
            journal: JournalEntry::new(&decision.summary.state, "test", store::Outcome::Ok),
            processed_events: Vec::new(),
            pin_definition_version: Some(1),
            pin_definition_name: Some("business-single-payment".into()),
            release_lease: false,
            hold_for_events: None,
            announce: None,
            observed: store::Observed::default(),
            events: Vec::new(),
        };
        version = w.store.commit_step(&commit).await.expect("commit").version;
        let Action::Call { request, .. } = decision.action.clone() else {
            panic!(
                "expected a call before the create, got {:?}",
                decision.action
            );
        };
        let answer = perform(&w.client, &request).await;
        if request.name() == "create_borrower" {
            assert!(answer.is_ok(), "the create reached Finfra: {answer:?}");
            break; // ...and the worker dies here.
        }
        let event = match answer {
            Ok(response) => workflow::Event::CallSucceeded(response),
            Err(failure) => panic!("unexpected failure before the create: {failure:?}"),
        };
        decision = w
            .engine
            .decide(
                "onboard-borrower",
                workflow::Stored::new(&decision.state, &input),
                &event,
                Utc::now(),
            )
            .expect("decide");
    }
    assert_eq!(
        w.sandbox
            .ledger()
            .borrowers_created_per_nik
            .get(&nik)
            .copied(),
        Some(1),
        "the dead worker's create was applied"
    );

    // A live worker takes over once the lease has expired, and drives it to the end.
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let executor = Executor::new(
        w.store.clone(),
        w.client.clone(),
        w.engine.clone(),
        "live-worker",
        Duration::from_secs(10),
        "finfra:test",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = executor.advance(id).await.expect("advance");
        let row = w.store.get(id).await.expect("get").expect("exists");
        if row.status.is_terminal() {
            assert_eq!(outcome, Advanced::Finished);
            assert_eq!(row.status, store::Status::Completed, "{:?}", row.last_error);
            assert_eq!(row.state, "approved");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stuck in {} / {:?}",
            row.state,
            row.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ledger = w.sandbox.ledger();
    assert_eq!(
        ledger.borrowers_created_per_nik.get(&nik).copied(),
        Some(1),
        "the borrower exists once: {ledger:?}"
    );
    let journal = w.store.journal(id).await.expect("journal");
    let interrupted = journal
        .iter()
        .find(|row| row.entry.outcome == store::Outcome::Interrupted)
        .expect("the take-over is journaled as interrupted");
    assert_eq!(interrupted.worker_id, "live-worker");
    // The create was sent again only as its reconciliation, answered 409: already there.
    let recreate = journal
        .iter()
        .filter(|row| row.worker_id == "live-worker")
        .find(|row| row.entry.action == "create_borrower")
        .expect("the reconciling create");
    assert_eq!(recreate.entry.finfra_status, Some(409), "{recreate:?}");
}
