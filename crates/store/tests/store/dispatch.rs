//! Wake-ups are part of the transaction that makes a workflow due: a rollback leaves neither
//! the state change nor the task; a commit leaves both. And apalis itself delivers them.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use store::testing::TestDb;
use store::{Status, WAKEUP_QUEUE, Wakeup};

use crate::{LEASE, all_wakeups, execute_in, new_workflow, step, submit_and_claim, wakeups};

store::test_both_backends!(
    a_rolled_back_transaction_leaves_neither_state_nor_wakeup,
    step_commits_schedule_their_wakeup,
    apalis_delivers_the_wakeup_payload,
);

async fn a_rolled_back_transaction_leaves_neither_state_nor_wakeup(db: TestDb) {
    let store = &db.store;
    let before = all_wakeups(store).await;

    // Submit + an extra wake-up + the caller's own state change, rolled back.
    let mut tx = store.begin().await.expect("begin");
    let submitted = store
        .submit_in(&mut tx, &new_workflow("atomic-1"))
        .await
        .expect("submit_in");
    store
        .schedule_wakeup_in(&mut tx, submitted.id, Utc::now() + TimeDelta::seconds(30))
        .await
        .expect("schedule");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        store.get(submitted.id).await.expect("get"),
        None,
        "no workflow"
    );
    assert_eq!(all_wakeups(store).await, before, "no wake-up");

    // The same, committed: the workflow and both wake-ups.
    let mut tx = store.begin().await.expect("begin");
    let submitted = store
        .submit_in(&mut tx, &new_workflow("atomic-1"))
        .await
        .expect("submit_in");
    store
        .schedule_wakeup_in(&mut tx, submitted.id, Utc::now() + TimeDelta::seconds(30))
        .await
        .expect("schedule");
    tx.commit().await.expect("commit");
    assert!(store.get(submitted.id).await.expect("get").is_some());
    assert_eq!(wakeups(store, submitted.id).await, 2);

    // A state change of an existing workflow and its wake-up, rolled back, then committed.
    let id = submitted.id;
    let sql = if db.backend == store::testing::TestBackend::Postgres {
        "UPDATE workflows SET state = 'nudged', version = version + 1 WHERE id = $1::uuid"
    } else {
        "UPDATE workflows SET state = 'nudged', version = version + 1 WHERE id = $1"
    };
    let mut tx = store.begin().await.expect("begin");
    execute_in(&mut tx, sql, id.to_string()).await;
    store
        .schedule_wakeup_in(&mut tx, id, Utc::now())
        .await
        .expect("schedule");
    tx.rollback().await.expect("rollback");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (row.state.as_str(), row.version),
        ("new", 0),
        "state unchanged"
    );
    assert_eq!(wakeups(store, id).await, 2, "no new wake-up");

    let mut tx = store.begin().await.expect("begin");
    execute_in(&mut tx, sql, id.to_string()).await;
    store
        .schedule_wakeup_in(&mut tx, id, Utc::now())
        .await
        .expect("schedule");
    tx.commit().await.expect("commit");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!((row.state.as_str(), row.version), ("nudged", 1));
    assert_eq!(wakeups(store, id).await, 3);
}

/// A claim schedules no wake-up (the held workflow stays due for the scan); a releasing
/// commit schedules `next_run_at`; a commit that keeps the lease schedules none; a failed
/// commit schedules none.
async fn step_commits_schedule_their_wakeup(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "sched-1", "worker-a").await;
    let id = claimed.workflow.id;
    assert_eq!(wakeups(store, id).await, 1, "the submit's");

    let mut keep = step(&claimed, "step-2", Status::Running, Some(Utc::now()));
    keep.release_lease = false;
    let kept = store
        .commit_step(&keep)
        .await
        .expect("commit keeping the lease");
    assert_eq!(
        wakeups(store, id).await,
        1,
        "the holder carries on; no wake-up"
    );

    let mut stale = step(&claimed, "step-x", Status::Sleeping, Some(Utc::now()));
    stale.expected_version = claimed.workflow.version; // already used
    assert!(store.commit_step(&stale).await.is_err());
    assert_eq!(
        wakeups(store, id).await,
        1,
        "a refused commit schedules nothing"
    );

    let later = Utc::now() + TimeDelta::seconds(90);
    let mut sleep = step(&claimed, "step-3", Status::Sleeping, Some(later));
    sleep.expected_version = kept.version;
    store.commit_step(&sleep).await.expect("commit");
    assert_eq!(wakeups(store, id).await, 2, "next_run_at scheduled");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.lease_owner, None);
    assert!(
        store
            .claim(id, "worker-b", LEASE)
            .await
            .expect("claim")
            .is_none(),
        "not due yet"
    );
}

/// A real apalis worker on the store's pool, queue [`WAKEUP_QUEUE`], handler argument
/// [`Wakeup`], receives the wake-up that `submit` scheduled.
async fn apalis_delivers_the_wakeup_payload(db: TestDb) {
    use apalis::prelude::*;

    let submitted = db
        .store
        .submit(&new_workflow("deliver-1"))
        .await
        .expect("submit");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Wakeup>();

    async fn handle(
        wakeup: Wakeup,
        sender: Data<tokio::sync::mpsc::UnboundedSender<Wakeup>>,
        worker: WorkerContext,
    ) -> Result<(), BoxDynError> {
        let _ = sender.send(wakeup);
        worker.stop()?;
        Ok(())
    }

    let run = match db.store.backend() {
        store::Backend::Postgres(pool) => {
            let config = apalis_postgres::Config::default().queue(WAKEUP_QUEUE);
            let storage = apalis_postgres::PostgresStorage::<Wakeup>::new(pool)
                .with_config(config)
                .poll_with_interval(Duration::from_millis(100));
            let worker = WorkerBuilder::new(format!("test-{}", uuid::Uuid::new_v4()))
                .backend(storage)
                .data(tx)
                .build(handle);
            tokio::spawn(async move { worker.run().await.map_err(|e| e.to_string()) })
        }
        store::Backend::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default().queue(WAKEUP_QUEUE);
            let storage = apalis_sqlite::SqliteStorage::<Wakeup>::new(pool)
                .with_config(config)
                .poll_with_interval(Duration::from_millis(100));
            let worker = WorkerBuilder::new(format!("test-{}", uuid::Uuid::new_v4()))
                .backend(storage)
                .data(tx)
                .build(handle);
            tokio::spawn(async move { worker.run().await.map_err(|e| e.to_string()) })
        }
    };
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("apalis delivered the wake-up within 10 s")
        .expect("a wake-up");
    assert_eq!(got.workflow_id, submitted.id);
    let _ = tokio::time::timeout(Duration::from_secs(5), run).await;

    // The delivered task is finished; pruning removes it and keeps pending ones.
    let other = db
        .store
        .submit(&new_workflow("deliver-2"))
        .await
        .expect("submit");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pruned = db
            .store
            .prune_wakeups(Utc::now() + TimeDelta::minutes(1))
            .await
            .expect("prune");
        if pruned == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivered wake-up was never done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wakeups(&db.store, submitted.id).await, 0);
    assert_eq!(
        wakeups(&db.store, other.id).await,
        1,
        "a pending wake-up is kept"
    );

    // Worker registrations: one seen within the cut-off stays; past it, with its finished
    // task pruned, it goes.
    assert_eq!(
        db.store
            .prune_workers(Utc::now() - TimeDelta::days(1))
            .await
            .expect("prune workers"),
        0,
        "a worker seen in the last day is kept"
    );
    let gone = db
        .store
        .prune_workers(Utc::now() + TimeDelta::minutes(1))
        .await
        .expect("prune workers");
    assert!(gone >= 1, "the test worker's registration was pruned");
}
