//! A worker whose calls to Finfra take a while. On both backends:
//!
//! - a wake-up for a workflow its own process is advancing makes no claim (the lease would
//!   refuse it; that advance's releasing commit sees what woke it), and one after the
//!   advance ended claims as before;
//! - it keeps its lease through a call that outlasts it: while the call is outstanding it
//!   renews the lease every third of a lease, so no other worker can claim the workflow
//!   meanwhile.

use std::path::Path;
use std::time::{Duration, Instant};

use finfra_api::auth::Credentials;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use store::testing::TestDb;
use store::{NewWorkflow, Status, Store};
use uuid::Uuid;
use worker::executor::{Advanced, Executor};
use workflow::{Engine, Registry};

store::test_both_backends!(
    a_wake_up_while_advancing_here_makes_no_claim,
    a_call_longer_than_the_lease_keeps_it,
);

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

/// A sandbox whose every request takes `latency`, and an executor `worker` on `store` with
/// `lease`, calling it.
async fn slow_executor(
    store: &Store,
    latency: Duration,
    worker: &str,
    lease: Duration,
) -> (RunningSandbox, Executor) {
    let mut config = SandboxConfig::for_tests();
    config.faults.latency = Some((latency, latency));
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");
    let engine = Engine::new(Registry::load_dir(&repo().join("workflows")).expect("definitions"));
    let executor = Executor::new(store.clone(), client, engine, worker, lease, "finfra:test");
    (sandbox, executor)
}

/// A business onboarding submitted under `key`.
async fn submit_onboarding(store: &Store, key: &str) -> Uuid {
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-business.json"))
            .expect("input"),
    )
    .expect("json");
    store
        .submit(&NewWorkflow::new("onboard-borrower", key, input))
        .await
        .expect("submit")
        .id
}

async fn a_wake_up_while_advancing_here_makes_no_claim(db: TestDb) {
    let store = &db.store;
    // Each call takes a while: the advance is under way for a second or more.
    let (_sandbox, executor) = slow_executor(
        store,
        Duration::from_millis(300),
        "w-here",
        Duration::from_secs(30),
    )
    .await;
    let id = submit_onboarding(store, "here-1").await;

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
    // Every request outlasts the worker's lease of one second twice over.
    let lease = Duration::from_secs(1);
    let (_sandbox, executor) = slow_executor(store, Duration::from_secs(2), "w-slow", lease).await;
    let id = submit_onboarding(store, "slow-1").await;

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
