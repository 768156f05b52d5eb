//! The fleet-wide pause after a `429`, at the executor, against the in-process sandbox, on
//! both backends. Regression tests for two bugs the end-to-end test found:
//!
//! - a call the pause held back re-recorded the pause from the `429` it heard, pushing it
//!   later by the time the check took; every workflow woken at the end of the pause did the
//!   same, and the pause never ended (a run of 120 onboardings made no progress at all);
//! - the worker that received a `429` kept sending its other steps until the store had
//!   taken the pause, which on a busy SQLite file took over a second.
//!
//! And, on PostgreSQL, that another process of the fleet hears of a `429` from the
//! announcement (`NOTIFY`), not from a read of the store before each call (there is none).

#[allow(dead_code)]
#[path = "e2e/applicants.rs"]
mod applicants;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use finfra_api::auth::Credentials;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{Faults, RunningSandbox, Sandbox, SandboxConfig};
use store::testing::{TestBackend, TestDb};
use store::{Backend, NewWorkflow, Store};
use uuid::Uuid;
use worker::executor::Executor;
use workflow::{Engine, Registry};

const SCOPE: &str = "finfra:test-client";
const OCR: &str = "POST /api/core/users/ocr";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_call_does_not_extend_the_pause_on_sqlite() {
    store::testing::run(
        TestBackend::Sqlite,
        true,
        held_back_call_does_not_extend_the_pause,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_call_does_not_extend_the_pause_on_postgres() {
    store::testing::run(
        TestBackend::Postgres,
        true,
        held_back_call_does_not_extend_the_pause,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_stops_the_worker_before_the_store_has_the_pause_on_sqlite() {
    store::testing::run(
        TestBackend::Sqlite,
        true,
        stops_before_the_store_has_the_pause,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_stops_the_worker_before_the_store_has_the_pause_on_postgres() {
    store::testing::run(
        TestBackend::Postgres,
        true,
        stops_before_the_store_has_the_pause,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_hears_a_429_without_reading_the_store_on_postgres() {
    store::testing::run(TestBackend::Postgres, true, another_process_hears_the_pause).await;
}

async fn held_back_call_does_not_extend_the_pause(db: TestDb) {
    let sandbox = Sandbox::start(SandboxConfig::for_tests())
        .await
        .expect("sandbox");
    let executor = executor(&db.store, &sandbox);
    let until = Utc::now() + chrono::TimeDelta::seconds(5);
    db.store.pause(SCOPE, until).await.expect("pause");
    let written = pause_written_at(&db).await;
    let id = submit(&db.store, 0).await;
    // Long enough for any later write of the pause to carry a later timestamp.
    tokio::time::sleep(Duration::from_millis(20)).await;

    executor.advance(id).await.expect("advance");

    assert_eq!(sandbox.ledger().requests_to(OCR), 0, "nothing was sent");
    let journal = db.store.journal(id).await.expect("journal");
    let held = journal.last().expect("a journal row");
    assert_eq!(
        held.entry.outcome,
        store::Outcome::RateLimited,
        "{journal:#?}"
    );
    assert_eq!(
        pause_written_at(&db).await,
        written,
        "the held-back call wrote the pause again"
    );
    let paused = db.store.paused_until(SCOPE).await.expect("read pause");
    assert_eq!(
        paused.map(|t| t.timestamp_millis()),
        Some(until.timestamp_millis())
    );
    sandbox.shutdown().await;
}

async fn stops_before_the_store_has_the_pause(db: TestDb) {
    let mut config = SandboxConfig::for_tests();
    config.faults = Faults {
        error_429_rate: 1.0,
        ..Faults::none()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let executor = executor(&db.store, &sandbox);
    let first = submit(&db.store, 0).await;
    let second = submit(&db.store, 1).await;

    executor.advance(first).await.expect("advance the first");
    assert_eq!(sandbox.ledger().requests_to(OCR), 1);
    assert_eq!(sandbox.ledger().faults_injected.get("429"), Some(&1));
    // The store has not got the pause (yet): its write is stuck behind others, or lost.
    clear_stored_pause(&db).await;
    sandbox.set_faults(Faults::none());

    executor.advance(second).await.expect("advance the second");

    assert_eq!(
        sandbox.ledger().requests_to(OCR),
        1,
        "the worker that got the 429 sent another request inside its Retry-After"
    );
    assert_eq!(sandbox.ledger().total_requests_inside_retry_after(), 0);
    let journal = db.store.journal(second).await.expect("journal");
    let held = journal.last().expect("a journal row");
    assert_eq!(
        held.entry.outcome,
        store::Outcome::RateLimited,
        "{journal:#?}"
    );
    sandbox.shutdown().await;
}

/// Two executors with a pool each: two processes of a fleet. With the stored pause cleared
/// before the second sends, only what it heard can hold it back.
async fn another_process_hears_the_pause(db: TestDb) {
    let sandbox = Sandbox::start(SandboxConfig::for_tests())
        .await
        .expect("sandbox");
    let first = executor(&db.store, &sandbox);
    let other_pool = Store::connect(&db.url)
        .await
        .expect("the second process's pool");
    let second = executor(&other_pool, &sandbox);
    // The second process has sent before, so it listens.
    let warm = submit(&db.store, 0).await;
    second
        .advance(warm)
        .await
        .expect("advance the first onboarding");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sandbox.ledger().requests_to(OCR), 1);

    sandbox.set_faults(Faults {
        error_429_rate: 1.0,
        ..Faults::none()
    });
    let limited = submit(&db.store, 1).await;
    first.advance(limited).await.expect("advance the second");
    assert_eq!(sandbox.ledger().faults_injected.get("429"), Some(&1));
    clear_stored_pause(&db).await;
    sandbox.set_faults(Faults::none());
    // The announcement takes milliseconds; the sandbox's grace for requests in flight at a
    // `429` is 250 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let held = submit(&db.store, 2).await;
    second.advance(held).await.expect("advance the third");

    assert_eq!(
        sandbox.ledger().requests_to(OCR),
        2,
        "the second process sent inside the first one's Retry-After"
    );
    let journal = db.store.journal(held).await.expect("journal");
    let last = journal.last().expect("a journal row");
    assert_eq!(
        last.entry.outcome,
        store::Outcome::RateLimited,
        "{journal:#?}"
    );
    other_pool.close().await;
    sandbox.shutdown().await;
}

fn executor(store: &Store, sandbox: &RunningSandbox) -> Executor {
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/workflows");
    let engine = Engine::new(Registry::load_dir(&workflows).expect("definitions"));
    Executor::new(
        store.clone(),
        client,
        engine,
        "pause-test-worker",
        Duration::from_secs(10),
        SCOPE,
    )
}

/// Submits the `index`-th applicant of the e2e mix (a personal e-KYC onboarding, whose
/// first step is the OCR call).
async fn submit(store: &Store, index: usize) -> Uuid {
    let applicant = applicants::mix(index + 1).pop().expect("an applicant");
    let input = applicant.input();
    let mut new = NewWorkflow::new("onboard-borrower", applicant.business_key, input);
    new.definition_name = applicant.product.definition().to_owned();
    store.submit(&new).await.expect("submit").id
}

/// When the pause row was last written.
async fn pause_written_at(db: &TestDb) -> String {
    let sql = "SELECT CAST(updated_at AS TEXT) FROM rate_limits WHERE scope = $1";
    match db.store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar(sql).bind(SCOPE).fetch_one(pool).await,
        Backend::Sqlite(pool) => sqlx::query_scalar(sql).bind(SCOPE).fetch_one(pool).await,
    }
    .expect("the pause row")
}

async fn clear_stored_pause(db: &TestDb) {
    let sql = "UPDATE rate_limits SET paused_until = NULL WHERE scope = $1";
    let done = match db.store.backend() {
        Backend::Postgres(pool) => sqlx::query(sql)
            .bind(SCOPE)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Backend::Sqlite(pool) => sqlx::query(sql)
            .bind(SCOPE)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    };
    assert_eq!(done.expect("clear the pause"), 1, "the 429 was stored");
}
