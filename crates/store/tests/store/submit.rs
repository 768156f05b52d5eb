//! Submitting: idempotence on (kind, business key), conflicts, concurrency, and (PostgreSQL)
//! the SQL function inside the caller's own transaction.

use std::time::Duration;

use serde_json::json;
use store::testing::TestDb;
use store::{NewWorkflow, Status, StoreError, WAKEUP_QUEUE, Wakeup};

use crate::{count, is_about_now, new_workflow, same_input_reordered, wakeups};

store::test_both_backends!(
    submit_is_idempotent_and_conflicts_on_other_input,
    concurrent_submits_of_one_key_create_one_workflow,
    sql_function_in_the_callers_transaction,
);

async fn submit_is_idempotent_and_conflicts_on_other_input(db: TestDb) {
    let store = &db.store;
    let first = store
        .submit(&new_workflow("order-1"))
        .await
        .expect("submit");
    assert!(first.created);

    let row = store.get(first.id).await.expect("get").expect("exists");
    assert_eq!(row.kind, "onboard-borrower");
    assert_eq!(row.business_key, "order-1");
    assert_eq!(row.definition_name, "onboard-borrower");
    assert_eq!(row.definition_version, None);
    assert_eq!(row.status, Status::Pending);
    assert_eq!(row.state, store::INITIAL_STATE);
    assert_eq!(row.version, 0);
    assert_eq!(row.input, new_workflow("order-1").input);
    assert!(
        row.next_run_at
            .is_some_and(|at| is_about_now(at, Duration::from_secs(5))),
        "due at once"
    );
    assert_eq!(
        wakeups(store, first.id).await,
        1,
        "its first wake-up was scheduled"
    );

    // Same key, same input (keys in another order): the same workflow, nothing new.
    let mut again = new_workflow("order-1");
    again.input = same_input_reordered("order-1");
    let second = store.submit(&again).await.expect("resubmit");
    assert_eq!(second.id, first.id);
    assert!(!second.created);
    assert_eq!(wakeups(store, first.id).await, 1, "no second wake-up");

    // Same key, different input: a conflict naming the key; nothing changes.
    let mut other = new_workflow("order-1");
    other.input = json!({ "borrower": { "name": "Someone Else" } });
    match store.submit(&other).await {
        Err(StoreError::Conflict { kind, business_key }) => {
            assert_eq!(kind, "onboard-borrower");
            assert_eq!(business_key, "order-1");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = store.submit(&other).await.expect_err("conflict");
    assert!(err.to_string().contains("order-1"), "{err}");
    assert_eq!(
        store
            .get(first.id)
            .await
            .expect("get")
            .expect("exists")
            .input,
        row.input
    );

    // The same business key under another kind is another workflow.
    let loan = store
        .submit(&NewWorkflow::new("originate-loan", "order-1", json!({})))
        .await
        .expect("other kind");
    assert!(loan.created);
    assert_ne!(loan.id, first.id);

    // Empty keys are refused.
    let empty = store
        .submit(&NewWorkflow::new("onboard-borrower", "", json!({})))
        .await;
    assert!(matches!(empty, Err(StoreError::Refused(_))), "{empty:?}");
    assert_eq!(count(store, "SELECT count(*) FROM workflows").await, 2);
}

async fn concurrent_submits_of_one_key_create_one_workflow(db: TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store.submit(&new_workflow("race-1")).await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let submitted = task
            .await
            .expect("task")
            .expect("every racer gets an answer");
        created += usize::from(submitted.created);
        ids.push(submitted.id);
    }
    assert_eq!(created, 1, "exactly one racer created the workflow");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "all racers got the same id"
    );
    assert_eq!(count(&db.store, "SELECT count(*) FROM workflows").await, 1);
    assert_eq!(wakeups(&db.store, ids[0]).await, 1, "one wake-up");
}

/// `finflow_submit(kind, business_key, input)` (PostgreSQL) inside the caller's transaction:
/// rolled back, it leaves no workflow and no wake-up; committed, both; it shares the Rust
/// API's idempotence and raises SQLSTATE FF409 on a conflict. On SQLite the same is done
/// with `Store::submit_in` (there is no SQL function).
async fn sql_function_in_the_callers_transaction(db: TestDb) {
    let store = &db.store;
    let Some(pool) = store.pg_pool() else {
        // SQLite: the Rust equivalent inside a caller's transaction.
        let mut tx = store.begin().await.expect("begin");
        let submitted = store
            .submit_in(&mut tx, &new_workflow("tx-1"))
            .await
            .expect("submit_in");
        tx.rollback().await.expect("rollback");
        assert_eq!(store.get(submitted.id).await.expect("get"), None);
        assert_eq!(wakeups(store, submitted.id).await, 0);
        let mut tx = store.begin().await.expect("begin");
        let submitted = store
            .submit_in(&mut tx, &new_workflow("tx-1"))
            .await
            .expect("submit_in");
        tx.commit().await.expect("commit");
        assert!(store.get(submitted.id).await.expect("get").is_some());
        assert_eq!(wakeups(store, submitted.id).await, 1);
        return;
    };
    let input = new_workflow("sql-1").input;

    // Rolled back: nothing.
    let mut tx = pool.begin().await.expect("begin");
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT finflow_submit('onboard-borrower', 'sql-1', $1)")
            .bind(&input)
            .fetch_one(&mut *tx)
            .await
            .expect("finflow_submit");
    assert_eq!(
        wakeups(store, id).await,
        0,
        "not visible outside the transaction"
    );
    tx.rollback().await.expect("rollback");
    assert_eq!(store.get(id).await.expect("get"), None);
    assert_eq!(
        wakeups(store, id).await,
        0,
        "the rollback removed the wake-up"
    );

    // Committed: the workflow and its wake-up.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("CREATE TEMP TABLE caller_orders (id int)")
        .execute(&mut *tx)
        .await
        .expect("caller's own write");
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT finflow_submit('onboard-borrower', 'sql-1', $1, 'onboard-borrower', 3)",
    )
    .bind(&input)
    .fetch_one(&mut *tx)
    .await
    .expect("finflow_submit");
    tx.commit().await.expect("commit");
    let row = store.get(id).await.expect("get").expect("committed");
    assert_eq!(row.status, Status::Pending);
    assert_eq!(row.state, "new");
    assert_eq!(row.definition_version, Some(3));
    assert!(row.next_run_at.is_some());
    assert_eq!(wakeups(store, id).await, 1);

    // The SQL-inserted wake-up is the row apalis's own push writes: same queue, status,
    // attempts; its payload decodes as a `Wakeup`.
    let (job, status, max_attempts): (Vec<u8>, String, i32) = sqlx::query_as(
        "SELECT job, status, max_attempts FROM apalis.jobs WHERE job_type = $1 \
         AND convert_from(job, 'UTF8')::jsonb ->> 'workflow_id' = $2",
    )
    .bind(WAKEUP_QUEUE)
    .bind(id.to_string())
    .fetch_one(pool)
    .await
    .expect("the wake-up row");
    let wakeup: Wakeup = serde_json::from_slice(&job).expect("payload decodes as Wakeup");
    assert_eq!(wakeup.workflow_id, id);
    assert_eq!(status, "Pending");
    assert_eq!(max_attempts as usize, store::WAKEUP_MAX_ATTEMPTS);

    // Idempotent across both paths.
    let again: uuid::Uuid =
        sqlx::query_scalar("SELECT finflow_submit('onboard-borrower', 'sql-1', $1)")
            .bind(&input)
            .fetch_one(pool)
            .await
            .expect("resubmit in SQL");
    assert_eq!(again, id);
    let rust = store
        .submit(&new_workflow("sql-1"))
        .await
        .expect("resubmit in Rust");
    assert_eq!((rust.id, rust.created), (id, false));
    assert_eq!(wakeups(store, id).await, 1);

    // A conflict is a clear error with its own SQLSTATE, and aborts the caller's transaction.
    let mut tx = pool.begin().await.expect("begin");
    let err = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT finflow_submit('onboard-borrower', 'sql-1', '{\"other\": true}'::jsonb)",
    )
    .fetch_one(&mut *tx)
    .await
    .expect_err("conflict");
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.code().as_deref(), Some(store::CONFLICT_SQLSTATE));
    assert!(db_err.message().contains("sql-1"), "{}", db_err.message());
    tx.rollback().await.expect("rollback");
}
