//! Reconciliation with Finfra's books, through a running worker against the sandbox, on both
//! backends. The sandbox never delivers the status callbacks of some loans (lost for good
//! between Finfra and the partner), and the workflows poll only once an hour: without
//! reconciliation those loans would sit for an hour at each step, and a day while repaid.
//! Runs started one after another find them behind, record a finding for each and tell
//! them to read Finfra now, until every loan is paid; a last run resolves every finding of
//! theirs. A loan created at Finfra by hand is found as an orphan. A run started twice under
//! one business key is one run.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use finfra_api::auth::Credentials;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{CallbackDelivery, SandboxConfig, Timing};
use secrecy::SecretString;
use serde_json::{Value, json};
use store::testing::TestDb;
use store::{NewWorkflow, Status, Store, Workflow};
use uuid::Uuid;
use worker::inprocess::{EngineOptions, InProcess};
use workflow::{Engine, OperationKey, Registry, WorkflowId};

store::test_both_backends!(reconciliation_brings_behind_loans_home_and_finds_orphans);

const ONBOARDING: &str = "reconciled-borrower";
const LOANS: usize = 8;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The shipped definitions, polling once an hour: only callbacks or reconciliation move a
/// loan along within the test.
fn hourly_definitions() -> Registry {
    let dir = repo().join("workflows");
    let sources: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("workflows/")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("definition");
            let name = e.file_name().to_string_lossy().into_owned();
            (
                name,
                text.replace("poll_interval = \"30s\"", "poll_interval = \"1h\""),
            )
        })
        .collect();
    let registry = Registry::from_sources(sources).expect("definitions");
    for d in registry.iter() {
        if let Some(loans) = &d.origination {
            assert_eq!(loans.poll_interval, Duration::from_secs(3600), "{}", d.name);
        }
    }
    registry
}

fn loan(account: &str, days: u64) -> Value {
    let due = (Utc::now().date_naive() + Days::new(days))
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

async fn get(store: &Store, id: Uuid) -> Workflow {
    store.get(id).await.expect("get").expect("exists")
}

/// Starts a run and waits (bounded) until it has ended.
async fn reconcile(store: &Store, key: &str) -> Workflow {
    let engine = Engine::new(Registry::default());
    let run = console::reconcile::start_run(store, &engine, key, json!({}))
        .await
        .expect("start a run");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = get(store, run.id).await;
        if w.status.is_terminal() || w.status == Status::NeedsAttention {
            return w;
        }
        assert!(Instant::now() < deadline, "run {key} stuck in {}", w.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reconciliation_brings_behind_loans_home_and_finds_orphans(db: TestDb) {
    let store = &db.store;
    let mut sandbox = SandboxConfig::for_tests();
    sandbox.timing = Timing {
        auto_sign: Some(Duration::from_millis(100)),
        auto_disburse: Some(Duration::from_millis(100)),
        auto_repay: Some(Duration::from_millis(100)),
        ..Timing::zero()
    };
    sandbox.delivery.drop_loan_callbacks_rate = 0.5;

    // Submitted before the worker starts (it finds them due).
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-personal.json"))
            .expect("sample input"),
    )
    .expect("json");
    submit(store, "onboard-borrower", ONBOARDING, input).await;
    let mut loans = Vec::new();
    for n in 0..LOANS {
        let input = loan("123123123213", 30 + n as u64);
        loans.push(submit(store, "originate-loan", &format!("loan-{n}"), input).await);
    }
    // Which loans lose their callbacks follows from their `unique_id`s (derived from the
    // workflow ids, new every run) and the sandbox's seed: the first seed that takes some of
    // them but not all, so that the run always has both kinds of loan.
    let unique_ids: Vec<String> = loans
        .iter()
        .map(|id| {
            let workflow = WorkflowId::new(id.to_string()).expect("a workflow id");
            OperationKey::derive(&workflow, "create_loan", 0)
                .as_str()
                .to_owned()
        })
        .collect();
    sandbox.delivery.seed = (0..1000)
        .find(|&seed| {
            let delivery = CallbackDelivery {
                seed,
                ..sandbox.delivery.clone()
            };
            let taken = unique_ids
                .iter()
                .filter(|id| delivery.drops_loan(id))
                .count();
            taken > 0 && taken < LOANS
        })
        .expect("a seed that drops some loans' callbacks but not all");

    let world = InProcess::start(
        store.clone(),
        hourly_definitions(),
        sandbox,
        &EngineOptions {
            concurrency: 16,
            lease: Duration::from_secs(5),
            webhooks: Vec::new(),
        },
    )
    .await
    .expect("sandbox, receiver and worker");

    // Loans whose callbacks arrive are paid on their own; the others stall.
    let started = Instant::now();
    loop {
        let mut paid = 0;
        for id in &loans {
            paid += usize::from(get(store, *id).await.status == Status::Completed);
        }
        let dropped = world.sandbox().ledger().callbacks_dropped.len();
        if paid + dropped >= LOANS && dropped > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{paid} paid, {dropped} loans without callbacks, of {LOANS}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dropped: Vec<String> = world
        .sandbox()
        .ledger()
        .callbacks_dropped
        .keys()
        .cloned()
        .collect();
    assert!(
        !dropped.is_empty() && dropped.len() < LOANS,
        "some loans but not all lose their callbacks: {dropped:?}"
    );

    // A loan made at Finfra by hand, for the same borrower: no workflow has it.
    let client = FinfraClient::new(ClientConfig::new(
        world.sandbox().base_url(),
        Credentials::new(
            world.sandbox().client_id(),
            SecretString::from(world.sandbox().client_secret().to_owned()),
        ),
    ))
    .expect("client");
    let borrower = get(
        store,
        store
            .find_by_business_key("onboard-borrower", ONBOARDING)
            .await
            .unwrap()
            .unwrap()
            .id,
    )
    .await
    .facts["user_id"]
        .as_str()
        .expect("onboarded")
        .to_owned();
    let orphan: finfra_api::model::loan::CreateSinglePaymentLoan = serde_json::from_value(json!({
        "unique_id": "by-hand-000001", "principal_amount": "1000000", "interest_amount": "10000",
        "due_date": (Utc::now().date_naive() + Days::new(30)).format("%Y-%m-%d").to_string(),
        "purpose": "made at the dashboard",
        "disbursement_account": {"holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"}
    }))
    .expect("a loan body");
    client
        .create_single_payment_loan(&borrower, &orphan)
        .await
        .expect("the orphan loan");

    // Runs, one after another, until every loan is paid: far sooner than an hour's poll.
    let mut runs = 0;
    let catch_up = Instant::now();
    loop {
        runs += 1;
        let run = reconcile(store, &format!("test/{runs}")).await;
        assert_eq!(run.status, Status::Completed, "{:?}", run.last_error);
        let mut unpaid = Vec::new();
        for id in &loans {
            let w = get(store, *id).await;
            if w.status != Status::Completed {
                unpaid.push(format!("{} {}", w.business_key, w.state));
            }
        }
        if unpaid.is_empty() {
            break;
        }
        assert!(
            catch_up.elapsed() < Duration::from_secs(60) && runs < 40,
            "after {runs} runs still unpaid: {unpaid:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(runs > 1, "the loans left behind needed the runs' nudges");

    // Each loan without callbacks left a finding; the last run (every loan paid, in line
    // with Finfra) resolved them.
    let last = reconcile(store, "test/final").await;
    assert_eq!(last.status, Status::Completed);
    let findings = store.findings(false, 1000).await.expect("findings");
    for unique_id in &dropped {
        let theirs: Vec<_> = findings
            .iter()
            .filter(|f| &f.loan_unique_id == unique_id)
            .collect();
        assert!(
            !theirs.is_empty(),
            "loan {unique_id} lost its callbacks: a finding"
        );
        assert!(
            theirs.iter().all(|f| f.resolved_at.is_some()),
            "resolved once the workflow caught up: {theirs:?}"
        );
    }
    let open = store.findings(true, 1000).await.expect("open findings");
    assert_eq!(open.len(), 1, "only the orphan is open: {open:?}");
    assert_eq!(open[0].loan_unique_id, "by-hand-000001");
    assert_eq!(open[0].kind, "orphan");
    assert!(!open[0].money, "not disbursed");
    assert_eq!(last.facts["loans"], LOANS as u64 + 1);
    assert_eq!(
        store
            .open_findings_by_kind()
            .await
            .expect("the gauge's query"),
        [("orphan".to_owned(), 1, 0)]
    );

    // The feed announced each finding of each run, on the run's own journal rows.
    let events = store.events_after(0, 500).await.expect("events");
    let announced: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "reconcile.finding")
        .collect();
    assert!(
        announced.len() > dropped.len(),
        "the dropped loans and the orphan: {announced:?}"
    );
    for unique_id in &dropped {
        assert!(
            announced
                .iter()
                .any(|e| e.payload["loan_unique_id"] == unique_id.as_str()),
            "a reconcile.finding for {unique_id}"
        );
    }
    assert!(
        announced
            .iter()
            .all(|e| e.kind.as_deref() == Some("reconcile-loans"))
    );

    // Nudges are journaled on the loans they moved.
    let nudged = findings
        .iter()
        .filter_map(|f| f.workflow)
        .next()
        .expect("a finding names its workflow");
    let journal = store.journal(nudged).await.expect("journal");
    assert!(
        journal
            .iter()
            .any(|row| row.entry.step.contains("poll") || row.entry.action == "poll_now"),
        "the nudge is in the loan's journal: {:?}",
        journal
            .iter()
            .map(|r| (&r.entry.step, &r.entry.action))
            .collect::<Vec<_>>()
    );

    // The same business key twice is one run: two workers never run the same period.
    let engine = Engine::new(Registry::default());
    let again = console::reconcile::start_run(store, &engine, "test/final", json!({}))
        .await
        .expect("the same run");
    assert!(!again.created);
    assert_eq!(again.id, last.id);

    world.stop().await.expect("stop");
}
