//! The lifecycle event feed and webhook deliveries: events exist exactly when their step
//! committed, once per journal row, readable by cursor; deliveries keep per-workflow order.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::json;
use store::testing::{TestBackend, TestDb};
use store::{DeliveryStatus, NewEvent, Status, Store, StoreError};

use crate::{count, step, submit_and_claim};

store::test_both_backends!(
    events_are_written_with_their_step_in_commit_order,
    a_lost_lease_writes_no_event,
    a_commit_that_fails_after_the_decision_writes_no_event,
    an_event_belongs_to_one_journal_row,
    pruning_keeps_pending_deliveries_and_never_reuses_ids,
    deliveries_keep_order_per_workflow_and_record_attempts,
    a_cancel_before_the_start_writes_its_events_with_its_journal_row,
);

fn event(event_type: &str, n: i64) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        payload: json!({ "n": n }),
    }
}

async fn execute(store: &Store, sql: &'static str) {
    match store.backend() {
        store::Backend::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        store::Backend::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn events_are_written_with_their_step_in_commit_order(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "feed-1", "w1").await;
    let id = claimed.workflow.id;
    let mut first = step(&claimed, "create_loan", Status::Running, Some(Utc::now()));
    first.release_lease = false;
    first.events = vec![event("loan.created", 1), event("loan.signed", 2)];
    let committed = store.commit_step(&first).await.expect("first step");

    let other = submit_and_claim(store, "feed-2", "w2").await;
    let mut elsewhere = step(&other, "approved", Status::Completed, None);
    elsewhere.events = vec![event("borrower.approved", 3)];
    store
        .commit_step(&elsewhere)
        .await
        .expect("another workflow");

    let mut second = step(&claimed, "paid", Status::Completed, None);
    second.expected_version = committed.version;
    second.events = vec![event("loan.paid", 4)];
    store.commit_step(&second).await.expect("second step");

    let feed = store.events_after(0, 500).await.expect("feed");
    let seen: Vec<(&str, Option<i32>, i64)> = feed
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.journal_seq,
                e.payload["n"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("loan.created", Some(1), 1),
            ("loan.signed", Some(1), 2),
            ("borrower.approved", Some(1), 3),
            ("loan.paid", Some(2), 4),
        ],
        "in commit order, each tied to its journal row"
    );
    assert!(feed.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(feed[0].workflow_id, Some(id));
    assert_eq!(feed[0].kind.as_deref(), Some("onboard-borrower"));
    assert_eq!(feed[0].business_key.as_deref(), Some("feed-1"));
    assert!(crate::is_about_now(
        feed[0].occurred_at,
        Duration::from_secs(30)
    ));

    // The cursor: after the second event, two at a time.
    let page = store.events_after(feed[1].id, 2).await.expect("page");
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [feed[2].id, feed[3].id]
    );
    assert!(
        store
            .events_after(feed[3].id, 500)
            .await
            .expect("end")
            .is_empty()
    );
    let mine = store.workflow_events(id).await.expect("mine");
    assert_eq!(mine.len(), 3);
}

async fn a_lost_lease_writes_no_event(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "feed-lost", "w1").await;
    let mut stale = step(&claimed, "paid", Status::Completed, None);
    stale.expected_version -= 1;
    stale.events = vec![event("loan.paid", 1)];
    match store.commit_step(&stale).await {
        Err(StoreError::LeaseLost(_)) => {}
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    let mut not_mine = step(&claimed, "paid", Status::Completed, None);
    not_mine.worker_id = "w2".into();
    not_mine.events = vec![event("loan.paid", 2)];
    assert!(matches!(
        store.commit_step(&not_mine).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(count(store, "SELECT count(*) FROM events").await, 0);
    // The step that does commit writes its event, once; the same commit again is refused.
    let mut done = step(&claimed, "paid", Status::Completed, None);
    done.events = vec![event("loan.paid", 3)];
    store.commit_step(&done).await.expect("commit");
    assert!(matches!(
        store.commit_step(&done).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(count(store, "SELECT count(*) FROM events").await, 1);
}

/// A step whose commit fails after the decision (here: the database refuses one of its
/// events) leaves nothing: no event, no journal row, the workflow as it was.
async fn a_commit_that_fails_after_the_decision_writes_no_event(db: TestDb) {
    let store = &db.store;
    match db.backend {
        TestBackend::Postgres => {
            execute(
                store,
                "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION 'boom refused'; END $$; \
                 CREATE TRIGGER refuse_boom BEFORE INSERT ON events FOR EACH ROW \
                 WHEN (NEW.event_type = 'test.boom') EXECUTE FUNCTION refuse_boom();",
            )
            .await;
        }
        TestBackend::Sqlite => {
            execute(
                store,
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON events \
                 WHEN NEW.event_type = 'test.boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END;",
            )
            .await;
        }
    }
    let claimed = submit_and_claim(store, "feed-boom", "w1").await;
    let id = claimed.workflow.id;
    let before = store.get(id).await.expect("get").expect("exists");
    let mut commit = step(&claimed, "paid", Status::Completed, None);
    commit.events = vec![event("loan.disbursed", 1), event("test.boom", 2)];
    let err = store
        .commit_step(&commit)
        .await
        .expect_err("the database refuses the step");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(count(store, "SELECT count(*) FROM events").await, 0);
    assert!(store.journal(id).await.expect("journal").is_empty());
    let after = store.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (after.version, after.status),
        (before.version, before.status)
    );

    // The step again, without the refused event: it commits with its event.
    commit.events.pop();
    store.commit_step(&commit).await.expect("commit");
    let feed = store.events_after(0, 10).await.expect("feed");
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].journal_seq, Some(1));
}

async fn an_event_belongs_to_one_journal_row(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "feed-once", "w1").await;
    let mut commit = step(&claimed, "approved", Status::Completed, None);
    commit.events = vec![event("borrower.approved", 1)];
    store.commit_step(&commit).await.expect("commit");
    let id = claimed.workflow.id.to_string();
    let duplicate = match store.backend() {
        store::Backend::Postgres(pool) => sqlx::query(
            "INSERT INTO events (workflow_id, journal_seq, position, event_type) \
             VALUES ($1::uuid, 1, 0, 'borrower.approved')",
        )
        .bind(&id)
        .execute(pool)
        .await
        .map(drop),
        store::Backend::Sqlite(pool) => sqlx::query(
            "INSERT INTO events (occurred_at, workflow_id, journal_seq, position, event_type) \
             VALUES ('2026-01-01T00:00:00.000Z', $1, 1, 0, 'borrower.approved')",
        )
        .bind(&id)
        .execute(pool)
        .await
        .map(drop),
    };
    let err = duplicate.expect_err("a second event for the same journal row and position");
    assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
}

async fn pruning_keeps_pending_deliveries_and_never_reuses_ids(db: TestDb) {
    let store = &db.store;
    let a = submit_and_claim(store, "prune-a", "w1").await;
    let mut commit = step(&a, "approved", Status::Completed, None);
    commit.events = vec![event("borrower.approved", 1), event("workflow.failed", 2)];
    store.commit_step(&commit).await.expect("commit");
    // A webhook subscribed to borrower.approved only: one pending delivery.
    let created = store
        .dispatch_webhook("lender", &["borrower.approved".to_owned()])
        .await
        .expect("dispatch");
    assert_eq!(created, 1);

    let future = Utc::now() + TimeDelta::minutes(1);
    assert_eq!(
        store
            .prune_events(Utc::now() - TimeDelta::hours(1))
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        store.prune_events(future).await.expect("prune"),
        1,
        "the event a webhook still owes is kept"
    );
    let kept = store.events_after(0, 10).await.expect("feed");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].event_type, "borrower.approved");

    let claimed = store
        .claim_deliveries("d1", 10, Duration::from_secs(30))
        .await
        .expect("claim");
    store
        .delivery_succeeded(&claimed[0].id, "d1", 200)
        .await
        .expect("delivered");
    assert_eq!(store.prune_events(future).await.expect("prune"), 1);
    assert_eq!(
        count(store, "SELECT count(*) FROM webhook_deliveries").await,
        0
    );

    let b = submit_and_claim(store, "prune-b", "w1").await;
    let mut commit = step(&b, "approved", Status::Completed, None);
    commit.events = vec![event("borrower.approved", 3)];
    store.commit_step(&commit).await.expect("commit");
    let feed = store.events_after(0, 10).await.expect("feed");
    assert_eq!(feed.len(), 1);
    assert!(feed[0].id > kept[0].id, "ids are never reused");
}

async fn deliveries_keep_order_per_workflow_and_record_attempts(db: TestDb) {
    let store = &db.store;
    let lease = Duration::from_secs(30);
    let a = submit_and_claim(store, "order-a", "w1").await;
    let b = submit_and_claim(store, "order-b", "w1").await;
    let mut first = step(&a, "create_loan", Status::Running, Some(Utc::now()));
    first.release_lease = false;
    first.events = vec![event("loan.created", 1), event("loan.signed", 2)];
    let committed = store.commit_step(&first).await.expect("a1");
    let mut other = step(&b, "approved", Status::Completed, None);
    other.events = vec![event("borrower.approved", 3)];
    store.commit_step(&other).await.expect("b");
    let mut last = step(&a, "paid", Status::Completed, None);
    last.expected_version = committed.version;
    last.events = vec![event("loan.paid", 4)];
    store.commit_step(&last).await.expect("a2");

    assert_eq!(
        store.dispatch_webhook("all", &[]).await.expect("dispatch"),
        4
    );
    assert_eq!(
        store.dispatch_webhook("all", &[]).await.expect("again"),
        0,
        "the cursor moved"
    );

    // Only the first of each workflow is due.
    let claimed = store
        .claim_deliveries("d1", 10, lease)
        .await
        .expect("claim");
    let types: Vec<&str> = claimed
        .iter()
        .map(|d| d.event.event_type.as_str())
        .collect();
    assert_eq!(types, ["loan.created", "borrower.approved"]);
    assert_eq!(claimed[0].id, format!("all-{}", claimed[0].event.id));
    assert!(
        store
            .claim_deliveries("d2", 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "claimed ones are not handed out twice"
    );

    // The first of workflow a fails and is retried later: a's next stays behind it.
    store
        .delivery_failed(
            &claimed[0].id,
            "d1",
            "receiver answered 500",
            Some(500),
            Some(Utc::now() - TimeDelta::seconds(1)),
        )
        .await
        .expect("failed once");
    store
        .delivery_succeeded(&claimed[1].id, "d1", 200)
        .await
        .expect("b delivered");
    let again = store
        .claim_deliveries("d1", 10, lease)
        .await
        .expect("claim");
    assert_eq!(
        again
            .iter()
            .map(|d| d.event.event_type.as_str())
            .collect::<Vec<_>>(),
        ["loan.created"]
    );
    assert_eq!(again[0].attempts, 1);
    // Given up: the rest of a's deliveries go on.
    store
        .delivery_failed(&again[0].id, "d1", "receiver answered 500", Some(500), None)
        .await
        .expect("given up");
    let next = store
        .claim_deliveries("d1", 10, lease)
        .await
        .expect("claim");
    assert_eq!(
        next.iter()
            .map(|d| d.event.event_type.as_str())
            .collect::<Vec<_>>(),
        ["loan.signed"]
    );

    let failed = store.deliveries(true, 10).await.expect("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    assert_eq!(failed[0].attempts, 2);
    assert_eq!(failed[0].last_status, Some(500));
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("receiver answered 500")
    );
    assert_eq!(store.deliveries(false, 10).await.expect("all").len(), 4);

    assert!(store.replay_delivery(&failed[0].id).await.expect("replay"));
    assert!(!store.replay_delivery("all-999999").await.expect("unknown"));
    let row = store
        .deliveries(false, 10)
        .await
        .expect("all")
        .into_iter()
        .find(|d| d.id == failed[0].id)
        .expect("the replayed one");
    assert_eq!(row.status, DeliveryStatus::Pending);
    assert_eq!(row.attempts, 2, "the attempts stay counted");
}

/// NOTIFY is PostgreSQL's (SQLite consumers poll the same cursor query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_each_steps_last_event() {
    store::testing::run(TestBackend::Postgres, true, notifies).await;
}

async fn notifies(db: TestDb) {
    let pool = db.store.pg_pool().expect("a PostgreSQL store");
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .expect("listener");
    listener
        .listen(store::EVENTS_CHANNEL)
        .await
        .expect("listen");
    let claimed = submit_and_claim(&db.store, "notify", "w1").await;
    let mut commit = step(&claimed, "paid", Status::Completed, None);
    commit.events = vec![event("loan.disbursed", 1), event("loan.paid", 2)];
    db.store.commit_step(&commit).await.expect("commit");
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification in time")
        .expect("a notification");
    let feed = db.store.events_after(0, 10).await.expect("feed");
    assert_eq!(heard.payload(), feed[1].id.to_string());
}

/// A worker of the build before the feed (a rolling deploy) calls `finflow_commit_step`
/// with the 37 arguments of migration 0007: after 0009 that call still resolves, to the new
/// function with no events, and commits its step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_older_worker_still_commits_through_the_old_signature() {
    store::testing::run(TestBackend::Postgres, true, old_signature).await;
}

async fn old_signature(db: TestDb) {
    let pool = db.store.pg_pool().expect("a PostgreSQL store");
    let claimed = submit_and_claim(&db.store, "old-caller", "w1").await;
    let result: String = sqlx::query_scalar(
        "SELECT result FROM finflow_commit_step($1::uuid, 'w1', $2::bigint, 'sleeping', \
         'create_loan', '{}'::jsonb, 1, now() + interval '1 hour', now(), NULL::text, \
         NULL::timestamptz, NULL::text, 1, NULL::text, true, false, '{}'::jsonb, \
         '{}'::bigint[], '{}'::text[], '{}'::text[], '{}'::text[], '{}'::bigint[], 'new', \
         'start', 'started', 1, now(), now(), 0::bigint, NULL::integer, NULL::text, \
         NULL::text, NULL::jsonb, NULL::jsonb, NULL::text, NULL::text, NULL::jsonb)",
    )
    .bind(claimed.workflow.id)
    .bind(claimed.workflow.version)
    .fetch_one(pool)
    .await
    .expect("the old call resolves");
    assert_eq!(result, "ok");
    let row = db
        .store
        .get(claimed.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(row.state, "create_loan");
    assert_eq!(
        db.store
            .journal(claimed.workflow.id)
            .await
            .expect("journal")
            .len(),
        1
    );
    assert_eq!(count(&db.store, "SELECT count(*) FROM events").await, 0);
}

async fn a_cancel_before_the_start_writes_its_events_with_its_journal_row(db: TestDb) {
    let store = &db.store;
    let pending = store
        .submit(&crate::new_workflow("cancel-feed"))
        .await
        .expect("submit");
    store
        .cancel(
            pending.id,
            "ops",
            "withdrawn",
            &[event("workflow.cancelled", 1)],
        )
        .await
        .expect("cancelled");
    let feed = store.events_after(0, 10).await.expect("feed");
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].event_type, "workflow.cancelled");
    assert_eq!(feed[0].journal_seq, Some(1));
    assert_eq!(feed[0].business_key.as_deref(), Some("cancel-feed"));
    // Refused (already cancelled): nothing more.
    assert!(matches!(
        store
            .cancel(
                pending.id,
                "ops",
                "again",
                &[event("workflow.cancelled", 2)]
            )
            .await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(count(store, "SELECT count(*) FROM events").await, 1);
}
