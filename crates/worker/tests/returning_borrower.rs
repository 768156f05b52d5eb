//! A returning borrower, through a running worker against the sandbox, on both backends:
//! after an onboarding of a NIK completed, a new onboarding of the same NIK under another
//! business key adopts the Finfra borrower the first one created (it reads it, and is
//! approved again) and never sends a second create, which Finfra would refuse with `409`.
//! While it runs, a third submit of the NIK is refused, naming it.

use std::path::Path;
use std::time::{Duration, Instant};

use finfra_sandbox::{Ledger, SandboxConfig};
use serde_json::Value;
use store::testing::TestDb;
use store::{NewWorkflow, Store, StoreError, Workflow};
use uuid::Uuid;
use worker::inprocess::{EngineOptions, InProcess};
use workflow::Registry;

store::test_both_backends!(a_returning_borrower_is_adopted_not_created_again);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn sample() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-personal.json"))
            .expect("sample input"),
    )
    .expect("json")
}

async fn submit(store: &Store, key: &str) -> Result<Uuid, StoreError> {
    store
        .submit(&NewWorkflow::new("onboard-borrower", key, sample()))
        .await
        .map(|s| s.id)
}

/// Waits (bounded) until the workflow is finished.
async fn finished(store: &Store, id: Uuid) -> Workflow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = store.get(id).await.expect("get").expect("exists");
        if w.status.is_terminal() {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "{} stuck in {}/{} ({:?})",
            w.business_key,
            w.state,
            w.status,
            w.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Borrower creates Finfra answered, on either path (plain or on a KYC session).
fn creates(ledger: &Ledger) -> u64 {
    ledger
        .requests
        .iter()
        .filter(|(endpoint, _)| endpoint.starts_with("POST ") && endpoint.ends_with("/users"))
        .map(|(_, n)| n)
        .sum()
}

async fn a_returning_borrower_is_adopted_not_created_again(db: TestDb) {
    let store = &db.store;
    let world = InProcess::start(
        store.clone(),
        Registry::load_dir(&repo().join("workflows")).expect("definitions"),
        SandboxConfig::for_tests(),
        &EngineOptions {
            concurrency: 8,
            lease: Duration::from_secs(5),
            webhooks: Vec::new(),
        },
    )
    .await
    .expect("sandbox, receiver and worker");

    let first = submit(store, "budi").await.expect("the first onboarding");
    let first = finished(store, first).await;
    assert_eq!(first.state, "approved", "{:?}", first.last_error);
    let created = creates(&world.sandbox().ledger());
    assert!(created >= 1, "the first onboarding created the borrower");

    let second = submit(store, "budi-returning")
        .await
        .expect("a returning borrower");
    match submit(store, "budi-third").await {
        // Refused while the second runs, naming it; or accepted if it had already finished.
        Err(StoreError::OnboardingInProgress { business_key, .. }) => {
            assert_eq!(business_key, "budi-returning");
        }
        Ok(third) => {
            let third = finished(store, third).await;
            assert_eq!(third.state, "approved");
        }
        Err(other) => panic!("unexpected: {other}"),
    }
    let second = finished(store, second).await;
    assert_eq!(second.state, "approved", "{:?}", second.last_error);
    assert_eq!(
        second.facts["user_id"], first.facts["user_id"],
        "the returning onboarding adopted the first one's borrower"
    );
    assert_eq!(
        creates(&world.sandbox().ledger()),
        created,
        "no borrower was created again"
    );
    let steps: Vec<String> = store
        .journal(second.id)
        .await
        .expect("journal")
        .into_iter()
        .map(|e| e.entry.step)
        .collect();
    assert!(
        steps.iter().any(|s| s == "check_returning_borrower"),
        "{steps:?}"
    );
    world.stop().await.expect("a clean stop");
}
