//! A worker whose handlers are all busy gives the next free one to work under way before
//! new work, on both backends: an onboarding that parked here and is woken by its callback
//! resumes ahead of a backlog of fresh submissions that queued before the callback came,
//! instead of after all of them (`worker::runtime`'s slots).

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use finfra_sandbox::SandboxConfig;
use store::testing::TestDb;
use store::{NewWorkflow, Status, Store};
use uuid::Uuid;
use worker::inprocess::{EngineOptions, InProcess};
use worker::sample::{Applicant, Product, Tag};
use workflow::Registry;

store::test_both_backends!(a_woken_workflow_resumes_ahead_of_a_backlog_of_new_work);

/// Fresh submissions queued behind the one handler.
const BACKLOG: usize = 60;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

async fn submit(store: &Store, index: usize) -> Uuid {
    let applicant = Applicant::new(
        index,
        Product::PersonalSinglePayment,
        Tag::Clean,
        format!("under-way-{index:03}"),
    );
    store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            applicant.business_key.clone(),
            applicant.input(),
        ))
        .await
        .expect("submitted")
        .id
}

/// When the workflow's first journal row with `action` began, once there is one (bounded).
async fn first(store: &Store, id: Uuid, action: &str) -> DateTime<Utc> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let journal = store.journal(id).await.expect("journal");
        if let Some(row) = journal.iter().find(|row| row.entry.action == action) {
            return row.entry.started_at;
        }
        assert!(Instant::now() < deadline, "{id}: no {action:?} row in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_woken_workflow_resumes_ahead_of_a_backlog_of_new_work(db: TestDb) {
    let store = &db.store;
    let mut sandbox = SandboxConfig::for_tests();
    // Every call takes a while, so the backlog lasts seconds; `user_created` comes 800 ms
    // after the borrower was created, well inside it.
    sandbox.faults.latency = Some((Duration::from_millis(10), Duration::from_millis(15)));
    sandbox.timing.borrower_created = Duration::from_millis(800);
    let world = InProcess::start(
        store.clone(),
        Registry::load_dir(&repo().join("workflows")).expect("definitions"),
        sandbox,
        &EngineOptions {
            concurrency: 1,
            lease: Duration::from_secs(30),
            webhooks: Vec::new(),
        },
    )
    .await
    .expect("sandbox, receiver and worker");

    // The first onboarding runs until it parks for `user_created`.
    let early = submit(store, 0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = store.get(early).await.expect("get").expect("exists");
        if w.status == Status::Waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never parked: {}/{}",
            w.state,
            w.status
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A backlog of new work queues for the one handler before its callback comes.
    let mut backlog = Vec::new();
    for index in 1..=BACKLOG {
        backlog.push(submit(store, index).await);
    }

    let resumed = first(store, early, "callback").await;
    let mut started_before = 0;
    for &id in &backlog {
        if first(store, id, "start").await < resumed {
            started_before += 1;
        }
    }
    world.stop().await.expect("a clean stop");
    // First come first served, it would resume only after all of them started (each runs
    // four calls of 10 ms or more before it parks: the backlog takes seconds).
    assert!(
        started_before + 20 <= BACKLOG,
        "the woken onboarding resumed after {started_before} of the {BACKLOG} newer ones started"
    );
}
