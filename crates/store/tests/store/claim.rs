//! Claiming: one worker at a time, due work only, and hand-over when a lease expires.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use store::testing::{TestBackend, TestDb};
use store::{Status, StoreError};

use crate::{Hints, LEASE, new_workflow, step, submit_and_claim};

store::test_both_backends!(
    many_claimers_exactly_one_wins,
    only_due_unfinished_workflows_are_claimed,
    an_expired_lease_is_handed_over,
    claim_due_takes_each_due_workflow_once,
    release_hands_the_workflow_back,
);

async fn many_claimers_exactly_one_wins(db: TestDb) {
    let submitted = db
        .store
        .submit(&new_workflow("excl-1"))
        .await
        .expect("submit");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = db.store.clone();
        let id = submitted.id;
        tasks.push(tokio::spawn(async move {
            store.claim(id, &format!("worker-{i}"), LEASE).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(claimed) = task.await.expect("task").expect("claim answers") {
            winners.push(claimed);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claimer wins");
    let row = db
        .store
        .get(submitted.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(row.lease_owner, winners[0].workflow.lease_owner);
    assert_eq!(row.status, Status::Running);
    assert_eq!(row.version, 1, "one claim, one version bump");
    assert_eq!(winners[0].previous_status, Status::Pending);
    assert!(winners[0].lease_until().is_some_and(|t| t > Utc::now()));
}

async fn only_due_unfinished_workflows_are_claimed(db: TestDb) {
    let store = &db.store;
    // Scheduled in the future: not due.
    let claimed = submit_and_claim(store, "due-1", "w1").await;
    let stale = store.stale_claims();
    let later = Utc::now() + TimeDelta::seconds(60);
    store
        .commit_step(&step(&claimed, "sleeping", Status::Sleeping, Some(later)))
        .await
        .expect("commit");
    assert!(
        store
            .claim(claimed.workflow.id, "w2", LEASE)
            .await
            .expect("claim")
            .is_none()
    );

    // Finished: never claimed again, whatever wake-up arrives.
    let done = submit_and_claim(store, "due-2", "w1").await;
    store
        .commit_step(&step(&done, "done", Status::Completed, Some(Utc::now())))
        .await
        .expect("commit");
    let row = store
        .get(done.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(row.next_run_at, None, "a finished workflow is never due");
    assert!(row.finished_at.is_some());
    assert!(
        store
            .claim(done.workflow.id, "w2", LEASE)
            .await
            .expect("claim")
            .is_none()
    );

    // Unknown: none.
    assert!(
        store
            .claim(uuid::Uuid::new_v4(), "w2", LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    // Each of the three found nothing (the claims that did, of `due-2`, are not counted).
    assert_eq!(store.stale_claims(), stale + 3, "claims that found nothing");
}

/// A worker that dies holding a lease is replaced once the lease ends: the held workflow
/// stays due, so another worker's due scan claims it, and the dead worker's late commit is
/// refused (nothing written).
async fn an_expired_lease_is_handed_over(db: TestDb) {
    let store = &db.store;
    let submitted = store
        .submit(&new_workflow("lease-1"))
        .await
        .expect("submit");
    let short = Duration::from_millis(400);
    let mut hints = Hints::start(store).await;
    let a = store
        .claim(submitted.id, "worker-a", short)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(
        hints.count(submitted.id).await,
        0,
        "a claim sends no hint: the held workflow stays due for the scan"
    );

    // While the lease lives, nobody else (not even worker-a again) gets it.
    assert!(
        store
            .claim(submitted.id, "worker-b", LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    assert!(
        store
            .claim(submitted.id, "worker-a", LEASE)
            .await
            .expect("claim")
            .is_none()
    );

    assert!(
        store
            .claim_due("worker-b", 10, LEASE)
            .await
            .expect("scan")
            .is_empty(),
        "the scan skips a live lease"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut due = store.claim_due("worker-b", 10, LEASE).await.expect("scan");
    assert_eq!(due.len(), 1, "the scan takes it once the lease ended");
    let b = due.remove(0);
    assert_eq!(b.workflow.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(b.previous_status, Status::Running, "worker-a died mid-step");
    assert!(b.workflow.version > a.workflow.version);

    // worker-a wakes up from its stupor and tries to commit: refused, nothing written.
    let late = step(&a, "from-a", Status::Sleeping, Some(Utc::now()));
    assert!(
        matches!(store.commit_step(&late).await, Err(StoreError::LeaseLost(id)) if id == submitted.id)
    );
    assert!(
        store
            .journal(submitted.id)
            .await
            .expect("journal")
            .is_empty()
    );
    // worker-b's commit goes through.
    store
        .commit_step(&step(
            &b,
            "from-b",
            Status::Sleeping,
            Some(Utc::now() + TimeDelta::seconds(60)),
        ))
        .await
        .expect("b commits");
    let row = store.get(submitted.id).await.expect("get").expect("exists");
    assert_eq!(row.state, "from-b");
}

async fn claim_due_takes_each_due_workflow_once(db: TestDb) {
    let store = &db.store;
    let mut ids = HashSet::new();
    for i in 0..6 {
        ids.insert(
            store
                .submit(&new_workflow(&format!("poll-{i}")))
                .await
                .expect("submit")
                .id,
        );
    }
    // Two pollers at once, then a third: each due workflow goes to exactly one of them.
    let (a, b) = tokio::join!(
        store.claim_due("poller-a", 4, LEASE),
        store.claim_due("poller-b", 4, LEASE)
    );
    let (a, b) = (a.expect("claim_due"), b.expect("claim_due"));
    let rest = store
        .claim_due("poller-c", 10, LEASE)
        .await
        .expect("claim_due");
    let mut seen = HashSet::new();
    for claimed in a.iter().chain(&b).chain(&rest) {
        assert!(
            seen.insert(claimed.workflow.id),
            "claimed twice: {}",
            claimed.workflow.id
        );
        assert_eq!(claimed.previous_status, Status::Pending);
    }
    assert_eq!(seen, ids, "every due workflow was claimed");
    assert!(a.len() <= 4 && b.len() <= 4);
    assert!(
        store
            .claim_due("poller-d", 10, LEASE)
            .await
            .expect("claim_due")
            .is_empty()
    );
}

async fn release_hands_the_workflow_back(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "release-1", "w1").await;
    let id = claimed.workflow.id;
    store
        .release(id, "w1", claimed.workflow.version, claimed.previous_status)
        .await
        .expect("release");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!((row.status, row.lease_owner), (Status::Pending, None));
    let again = store
        .claim(id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("free and due again");
    assert!(matches!(
        store
            .release(id, "w1", again.workflow.version, Status::Pending)
            .await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        store
            .release(id, "w2", again.workflow.version, Status::Completed)
            .await,
        Err(StoreError::Refused(_))
    ));
    let until = store
        .renew_lease(id, "w2", again.workflow.version, LEASE * 2)
        .await
        .expect("renew");
    assert!(until > again.lease_until().expect("leased"));
    assert!(matches!(
        store
            .renew_lease(id, "w1", again.workflow.version, LEASE)
            .await,
        Err(StoreError::LeaseLost(_))
    ));
}

/// On PostgreSQL a claim locks the row `FOR NO KEY UPDATE`, the lock its update takes: a
/// transaction that holds the row for a foreign-key check (here a callback stored matched to
/// the workflow, not yet committed) neither holds the claim up nor hides the workflow from
/// the due scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_foreign_key_check_neither_holds_up_nor_hides_a_claim() {
    store::testing::run(TestBackend::Postgres, true, foreign_key_check_and_claims).await;
}

async fn foreign_key_check_and_claims(db: TestDb) {
    let store = &db.store;
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let first = store.submit(&new_workflow("fk-1")).await.expect("submit");
    let second = store.submit(&new_workflow("fk-2")).await.expect("submit");

    let mut callback = pool.begin().await.expect("begin");
    for (n, id) in [first.id, second.id].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO callback_inbox (source, event_id, title, payload, \
             matched_workflow_id, matched_at) \
             VALUES ('status', $1, 'user_created', '{}', $2, now())",
        )
        .bind(format!("evt-fk-{n}"))
        .bind(id)
        .execute(&mut *callback)
        .await
        .expect("a callback matched to the workflow");
    }

    let claimed = tokio::time::timeout(Duration::from_secs(5), store.claim(first.id, "w1", LEASE))
        .await
        .expect("not held up by the foreign-key check's lock")
        .expect("claim");
    assert!(claimed.is_some(), "claimed");
    let due = tokio::time::timeout(Duration::from_secs(5), store.claim_due("w2", 10, LEASE))
        .await
        .expect("the due scan is not held up either")
        .expect("scan");
    let ids: Vec<_> = due.iter().map(|c| c.workflow.id).collect();
    assert_eq!(ids, vec![second.id], "not skipped by the due scan");
    callback.rollback().await.expect("rollback");
}

/// On PostgreSQL a claim writes into the WAL the columns it changes, not the context
/// (migration 0024: the columns steps change are last in the row, the claim's among them;
/// since 0030 the context follows them, and a claim leaves it as it was). With a context of
/// 2 KB that compression cannot shrink, the claim's update of the workflow's row is one WAL
/// record of under 300 bytes; before 0024 it carried the row from `status` to `version`,
/// the context among them. And it is a heap-only update that writes no index entry (0031:
/// no index reads `status`, which it changes, and it keeps `next_run_at`); before 0031 it
/// wrote an entry into every index that holds the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_writes_what_it_changes_into_the_wal_not_the_context() {
    store::testing::run(TestBackend::Postgres, true, claim_logs_its_columns).await;
}

async fn claim_logs_its_columns(db: TestDb) {
    let store = &db.store;
    let pool = crate::pg_with_extension(store, "pg_walinspect").await;
    let noise = crate::incompressible_hex();
    let mut claimed = submit_and_claim(store, "wal-1", "w1").await;
    let mut records = Vec::new();
    let mut index_records = Vec::new();
    // A record that carries a full-page image (the page's first change after a checkpoint)
    // has no row data of its own: measured again on the next claim.
    for round in 0..3 {
        let mut sleep = step(&claimed, "sleeping", Status::Sleeping, Some(Utc::now()));
        sleep.context = serde_json::json!({ "noise": noise, "round": round });
        store.commit_step(&sleep).await.expect("sleep, due now");
        let context = crate::stored_context_bytes(pool, claimed.workflow.id).await;
        assert!(
            context > 2000,
            "a context of 2 KB as stored ({context} bytes)"
        );

        let start = crate::wal_insert_lsn(pool).await;
        claimed = store
            .claim(claimed.workflow.id, "w2", LEASE)
            .await
            .expect("claim")
            .expect("due and free");
        records = crate::workflow_updates_since(pool, &start).await;
        index_records = crate::wal_records_since(pool, &start, &["%"]).await;
        if records.iter().all(|(_, _, fpi)| *fpi == 0) {
            break;
        }
    }
    // The context not among its bytes.
    crate::assert_one_update_under(&records, 300, "the claim");
    assert_eq!(records[0].0, "HOT_UPDATE", "heap-only: {records:?}");
    let index_entries = crate::btree_entries(&index_records);
    assert!(
        index_entries.is_empty(),
        "no index entry written: {index_entries:?}"
    );
}

/// On PostgreSQL each claim statement commits its transaction without waiting for the WAL
/// flush (`synchronous_commit` off for that transaction only): what it claims is made durable
/// by its holder's next step commit, which is synchronous, before anything leaves the
/// database. A claim of nothing leaves the setting as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_does_not_wait_for_its_wal_flush() {
    store::testing::run(TestBackend::Postgres, true, claims_commit_asynchronously).await;
}

async fn claims_commit_asynchronously(db: TestDb) {
    use store::testing::{ClaimStatement, claim_in_transaction};
    let store = &db.store;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            store
                .submit(&new_workflow(&format!("async-{i}")))
                .await
                .expect("submit")
                .id,
        );
    }
    // One asked for, two asked for at once (each its own statement), the due scan's.
    let claims = [
        (ClaimStatement::Asked, &ids[..1]),
        (ClaimStatement::Asked, &ids[1..3]),
        (ClaimStatement::Due, &ids[3..]),
    ];
    for (statement, ids) in claims {
        let (claimed, before, after) = claim_in_transaction(store, statement, ids, "w1").await;
        assert_eq!(claimed, ids.len(), "{statement:?} claims");
        assert_eq!(
            (before.as_str(), after.as_str()),
            ("on", "off"),
            "{statement:?}"
        );
        // The same again finds them held: nothing claimed, nothing to commit, the setting
        // untouched.
        let (claimed, _, after) = claim_in_transaction(store, statement, ids, "w2").await;
        assert_eq!(
            (claimed, after.as_str()),
            (0, "on"),
            "{statement:?} {} again",
            ids.len()
        );
    }
    for id in ids {
        let row = store.get(id).await.expect("get").expect("exists");
        assert_eq!(
            row.lease_owner.as_deref(),
            Some("w1"),
            "claimed and committed"
        );
    }
    // The setting was the claim's transaction's only: a session of the pool, where the
    // step commits run, still commits synchronously.
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(pool)
        .await
        .expect("setting");
    assert_eq!(setting, "on");
}

/// On SQLite claims alone commit without syncing the WAL (`synchronous = NORMAL` for their
/// transaction only), as PostgreSQL's skip their WAL flush: the holder's next step commit,
/// at `FULL`, syncs the claim's frames with its own. Every other write runs at `FULL`, and a
/// connection back in the pool is at `FULL` whatever its last transaction ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_claim_alone_does_not_sync_the_wal() {
    store::testing::run(TestBackend::Sqlite, true, |db| async move {
        use store::testing::sqlite_synchronous_of_a_write;
        let store = &db.store;
        for _ in 0..2 {
            let (inside, after) = sqlite_synchronous_of_a_write(store, true).await;
            assert_eq!(inside, 1, "claims alone: NORMAL");
            assert!(after.iter().all(|&s| s == 2), "FULL again: {after:?}");
            let (inside, after) = sqlite_synchronous_of_a_write(store, false).await;
            assert_eq!(inside, 2, "other writes: FULL");
            assert!(after.iter().all(|&s| s == 2), "FULL: {after:?}");
        }
        // Claims through the store's own paths, alone and by the due scan, go on working.
        let mut ids = Vec::new();
        for i in 0..3 {
            let new = new_workflow(&format!("normal-{i}"));
            ids.push(store.submit(&new).await.expect("submit").id);
        }
        let claimed = store.claim(ids[0], "w1", LEASE).await.expect("claim");
        assert!(claimed.is_some(), "claimed alone");
        let due = store.claim_due("w1", 10, LEASE).await.expect("due scan");
        assert_eq!(due.len(), 2, "the due scan claims the other two");
        for id in ids {
            let row = store.get(id).await.expect("get").expect("exists");
            assert_eq!(row.lease_owner.as_deref(), Some("w1"));
        }
    })
    .await;
}

/// On PostgreSQL a claim names the columns it returns: a connection that prepared the claim
/// before a migration added or moved columns of `workflows` goes on claiming after it.
/// (With `RETURNING w.*` PostgreSQL refuses such a prepared statement: "cached plan must not
/// change result type", on that connection until it closes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_prepared_before_a_column_is_added_still_runs() {
    store::testing::run(TestBackend::Postgres, true, claim_across_a_new_column).await;
}

async fn claim_across_a_new_column(db: TestDb) {
    let store = store::Store::connect_with(
        &db.url,
        &store::StoreOptions {
            max_connections: Some(1),
            ..store::StoreOptions::default()
        },
    )
    .await
    .expect("a store of one connection");
    submit_and_claim(&store, "prepared-1", "w1").await;
    let migration = sqlx::PgPool::connect(&db.url)
        .await
        .expect("another session");
    sqlx::query("ALTER TABLE workflows ADD COLUMN added_later integer")
        .execute(&migration)
        .await
        .expect("a column added");
    let claimed = submit_and_claim(&store, "prepared-2", "w1").await;
    assert_eq!(claimed.workflow.business_key, "prepared-2");
}
