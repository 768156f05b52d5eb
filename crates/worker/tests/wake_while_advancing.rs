//! A wake-up for a workflow its own process is advancing makes no claim (the lease would
//! refuse it; that advance's releasing commit sees what woke it), and one after the advance
//! ended claims as before. On both backends.

use std::path::Path;
use std::time::{Duration, Instant};

use finfra_api::auth::Credentials;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{Sandbox, SandboxConfig};
use store::testing::TestDb;
use store::{NewWorkflow, Status, Store};
use worker::executor::{Advanced, Executor};
use workflow::{Engine, Registry};

store::test_both_backends!(a_wake_up_while_advancing_here_makes_no_claim);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Claims the store has sent so far (stale ones included).
fn claims(store: &Store) -> u64 {
    store
        .claim_batch_sizes()
        .iter()
        .map(|&(size, batches)| size as u64 * batches)
        .sum()
}

async fn a_wake_up_while_advancing_here_makes_no_claim(db: TestDb) {
    let store = &db.store;
    let mut config = SandboxConfig::for_tests();
    // Each call takes a while: the advance is under way for a second or more.
    config.faults.latency = Some((Duration::from_millis(300), Duration::from_millis(300)));
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");
    let engine = Engine::new(Registry::load_dir(&repo().join("workflows")).expect("definitions"));
    let executor = Executor::new(
        store.clone(),
        client,
        engine,
        "w-here",
        Duration::from_secs(30),
        "finfra:test",
    );
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-business.json"))
            .expect("input"),
    )
    .expect("json");
    let id = store
        .submit(&NewWorkflow::new("onboard-borrower", "here-1", input))
        .await
        .expect("submit")
        .id;

    let advancing = tokio::spawn({
        let executor = executor.clone();
        async move { executor.advance(id).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !executor.is_advancing(id) {
        assert!(Instant::now() < deadline, "the advance never began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (before, stale) = (claims(store), store.stale_claims());
    let woken = executor
        .advance(id)
        .await
        .expect("a wake-up while advancing");
    assert_eq!(woken, Advanced::NotDue);
    assert_eq!(
        claims(store),
        before,
        "no claim for a workflow advancing here"
    );
    assert_eq!(store.stale_claims(), stale);
    assert!(executor.is_advancing(id), "the first advance goes on");

    // The first advance parks it (no callbacks come: the sandbox sends none here).
    let advanced = advancing.await.expect("joined").expect("advanced");
    assert_eq!(advanced, Advanced::Parked);
    assert!(!executor.is_advancing(id));
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (row.status, row.lease_owner),
        (Status::Waiting, None),
        "released"
    );

    // A wake-up after it claims again (nothing is due: it waits for its callback): a stale
    // claim, counted as one.
    let (before, stale) = (claims(store), store.stale_claims());
    let woken = executor.advance(id).await.expect("a wake-up after it");
    assert_eq!(woken, Advanced::NotDue);
    assert_eq!(claims(store), before + 1, "a claim, as before");
    assert_eq!(store.stale_claims(), stale + 1, "it found nothing");
}
