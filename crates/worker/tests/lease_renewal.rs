//! A worker keeps its lease through a call that outlasts it: while the call is outstanding it
//! renews the lease every third of a lease, so no other worker can claim the workflow
//! meanwhile. On both backends.

use std::path::Path;
use std::time::{Duration, Instant};

use finfra_api::auth::Credentials;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{Sandbox, SandboxConfig};
use store::testing::TestDb;
use store::{NewWorkflow, Store};
use uuid::Uuid;
use worker::executor::Executor;
use workflow::{Engine, Registry};

store::test_both_backends!(a_call_longer_than_the_lease_keeps_it);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The workflow's lease as stored: its holder and until when.
async fn lease_of(
    store: &Store,
    id: Uuid,
) -> (Option<String>, Option<chrono::DateTime<chrono::Utc>>) {
    let row = store.get(id).await.expect("get").expect("exists");
    (row.lease_owner, row.lease_until)
}

async fn a_call_longer_than_the_lease_keeps_it(db: TestDb) {
    let store = &db.store;
    let mut config = SandboxConfig::for_tests();
    // Every request outlasts the worker's lease of one second twice over.
    config.faults.latency = Some((Duration::from_secs(2), Duration::from_secs(2)));
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");
    let engine = Engine::new(Registry::load_dir(&repo().join("workflows")).expect("definitions"));
    let lease = Duration::from_secs(1);
    let executor = Executor::new(
        store.clone(),
        client,
        engine,
        "w-slow",
        lease,
        "finfra:test",
    );
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-business.json"))
            .expect("input"),
    )
    .expect("json");
    let id = store
        .submit(&NewWorkflow::new("onboard-borrower", "slow-1", input))
        .await
        .expect("submit")
        .id;

    let advancing = tokio::spawn({
        let executor = executor.clone();
        async move { executor.advance(id).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let (Some(owner), Some(until)) = lease_of(store, id).await {
            assert_eq!(owner, "w-slow");
            break until;
        }
        assert!(Instant::now() < deadline, "the workflow was never claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    // Past the end of the lease as first taken; its first call is still outstanding.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!advancing.is_finished(), "still calling");
    let (owner, until) = lease_of(store, id).await;
    assert_eq!(owner.as_deref(), Some("w-slow"));
    let until = until.expect("a lease");
    assert!(until > first, "renewed: {first} → {until}");
    assert!(until > chrono::Utc::now(), "still held until {until}");
    let other = store.claim(id, "w-other", lease).await.expect("claim");
    assert!(other.is_none(), "another worker cannot take it");
    advancing.abort();
}
