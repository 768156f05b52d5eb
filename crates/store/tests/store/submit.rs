//! Submitting: idempotence on (kind, business key), conflicts, concurrency, and (PostgreSQL)
//! the SQL function inside the caller's own transaction; the business-key rule; one
//! onboarding per borrower at a time; returning borrowers.

use std::time::Duration;

use serde_json::{Value, json};
use store::testing::{TestBackend, TestDb};
use store::{DueNotice, NewWorkflow, ReturningBorrower, Status, Store, StoreError, Submitted};
use uuid::Uuid;

use crate::{Hints, LEASE, count, is_about_now, new_workflow, same_input_reordered, step};

store::test_both_backends!(
    submit_is_idempotent_and_conflicts_on_other_input,
    concurrent_submits_of_one_key_create_one_workflow,
    sql_function_in_the_callers_transaction,
    business_keys_follow_the_rule,
    the_identity_key_is_the_hash_of_the_nik,
    one_unfinished_onboarding_per_borrower,
    concurrent_onboardings_of_one_borrower_create_one,
    returning_borrowers,
);

/// Runs `test` on a fresh, migrated PostgreSQL database only (what SQLite has no equivalent
/// of: the SQL functions).
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    store::testing::run(TestBackend::Postgres, true, test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_rust_agree_on_business_keys_and_identity_keys() {
    on_postgres(sql_and_rust_agree).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_function_refuses_bad_keys_and_held_borrowers() {
    on_postgres(sql_function_refusals).await;
}

/// The rule, as every refusal states it.
const RULE: &str =
    "business key must be 1 to 200 printable characters without surrounding whitespace: ";

/// An onboarding of the borrower with `nik` (a JSON value: usually a string) under `key`.
fn onboarding(key: &str, nik: Value) -> NewWorkflow {
    NewWorkflow::new(
        "onboard-borrower",
        key,
        json!({
            "borrower": {
                "type": "PERSONAL",
                "authorised_signatory": {
                    "first_name": "Budi",
                    "documents": { "ktp": { "number": nik, "file": "ktp.jpg" } }
                }
            },
            "key": key
        }),
    )
}

/// One of `workflows/inputs/`.
fn sample_input(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../workflows/inputs")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample input")).expect("JSON")
}

/// The stored `identity_key` of workflow `id`.
async fn stored_identity_key(store: &Store, id: Uuid) -> Option<String> {
    match store.backend() {
        store::Backend::Postgres(pool) => {
            sqlx::query_scalar("SELECT identity_key FROM workflows WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        }
        store::Backend::Sqlite(pool) => {
            sqlx::query_scalar("SELECT identity_key FROM workflows WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(pool)
                .await
        }
    }
    .expect("reading identity_key")
}

/// Claims `id` and commits it to `status` (state `state`) with `facts`, releasing the lease.
async fn move_to(store: &Store, id: Uuid, state: &str, status: Status, facts: Value) {
    let claimed = store
        .claim(id, "test-worker", LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut commit = step(
        &claimed,
        state,
        status,
        Some(chrono::Utc::now()).filter(|_| status == Status::Sleeping),
    );
    commit.facts = facts;
    store.commit_step(&commit).await.expect("commit");
}

#[track_caller]
fn expect_held(result: Result<Submitted, StoreError>, key: &str, id: Uuid) {
    match result {
        Err(StoreError::OnboardingInProgress {
            business_key,
            workflow_id,
        }) => {
            assert_eq!((business_key.as_str(), workflow_id), (key, id));
        }
        other => panic!("expected the borrower to be held by {key:?}, got {other:?}"),
    }
}

async fn submit_is_idempotent_and_conflicts_on_other_input(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
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
    assert_eq!(hints.count(first.id).await, 1, "the workers were told");

    // Same key, same input (keys in another order): the same workflow, nothing new.
    let mut again = new_workflow("order-1");
    again.input = same_input_reordered("order-1");
    let second = store.submit(&again).await.expect("resubmit");
    assert_eq!(second.id, first.id);
    assert!(!second.created);
    assert_eq!(hints.count(first.id).await, 1, "no second hint");

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

    // Empty keys and kinds are refused.
    let empty = store
        .submit(&NewWorkflow::new("onboard-borrower", "", json!({})))
        .await;
    assert!(
        matches!(empty, Err(StoreError::InvalidBusinessKey(_))),
        "{empty:?}"
    );
    let empty = store.submit(&NewWorkflow::new("", "k", json!({}))).await;
    assert!(matches!(empty, Err(StoreError::Refused(_))), "{empty:?}");
    assert_eq!(count(store, "SELECT count(*) FROM workflows").await, 2);
}

async fn concurrent_submits_of_one_key_create_one_workflow(db: TestDb) {
    let mut hints = Hints::start(&db.store).await;
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
    assert_eq!(hints.total().await, 1, "one hint");
}

/// `finflow_submit(kind, business_key, input)` (PostgreSQL) inside the caller's transaction:
/// rolled back, it leaves no workflow and tells no worker; committed, the workflow and a
/// hint to the fleet (`finflow_due`, naming the sender); it shares the Rust API's
/// idempotence and raises SQLSTATE FF409 on a conflict. On SQLite the same is done with
/// `Store::submit_in` (there is no SQL function).
async fn sql_function_in_the_callers_transaction(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
    let Some(pool) = store.pg_pool() else {
        // SQLite: the Rust equivalent inside a caller's transaction.
        let mut tx = store.begin().await.expect("begin");
        let submitted = store
            .submit_in(&mut tx, &new_workflow("tx-1"))
            .await
            .expect("submit_in");
        tx.rollback().await.expect("rollback");
        assert_eq!(store.get(submitted.id).await.expect("get"), None);
        let mut tx = store.begin().await.expect("begin");
        let submitted = store
            .submit_in(&mut tx, &new_workflow("tx-1"))
            .await
            .expect("submit_in");
        tx.commit().await.expect("commit");
        let row = store
            .get(submitted.id)
            .await
            .expect("get")
            .expect("committed");
        assert!(row.next_run_at.is_some(), "due: the scan takes it");
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
        hints.count(id).await,
        0,
        "nothing is heard before the commit"
    );
    tx.rollback().await.expect("rollback");
    assert_eq!(store.get(id).await.expect("get"), None);
    assert_eq!(hints.count(id).await, 0, "nor after a rollback");

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
    assert_eq!(hints.count(id).await, 1, "the commit told the fleet");

    // The hint names the workflow and the session that sent it: not a worker, so every
    // worker answers it.
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .expect("listener");
    listener.listen(store::DUE_CHANNEL).await.expect("listen");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL application_name = 'lender-orders'")
        .execute(&mut *tx)
        .await
        .expect("name the session");
    let other: uuid::Uuid =
        sqlx::query_scalar("SELECT finflow_submit('onboard-borrower', 'sql-2', $1)")
            .bind(&new_workflow("sql-2").input)
            .fetch_one(&mut *tx)
            .await
            .expect("finflow_submit");
    tx.commit().await.expect("commit");
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("heard within 5 s")
        .expect("a notification");
    let notice = DueNotice::parse(notification.payload()).expect("a due notice");
    assert_eq!(
        (notice.workflow_id, notice.origin.as_str()),
        (other, "lender-orders")
    );
    assert!(notice.answered_by("finflow-worker:any"), "{notice:?}");

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
    assert_eq!(hints.count(id).await, 1, "no second hint");

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

/// Keys with a newline, a tab, 5,000 characters, a lone space or surrounding whitespace are
/// refused with the rule and the problem, and nothing is stored; keys with inner spaces,
/// non-ASCII letters and exactly 200 characters are fine.
async fn business_keys_follow_the_rule(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
    let long = "k".repeat(5000);
    for (key, problem) in [
        ("budi\nx", "it has a newline at position 5"),
        ("a\tb", "it has a tab at position 2"),
        ("line\r", "it has a carriage return at position 5"),
        (
            "bell\u{7}",
            "it has a non-printable character (U+0007) at position 5",
        ),
        (long.as_str(), "it has 5000 characters"),
        ("", "it is empty"),
        (" ", "it starts with whitespace"),
        (" budi", "it starts with whitespace"),
        ("budi ", "it ends with whitespace"),
        ("budi\u{a0}", "it ends with whitespace"),
    ] {
        let err = store.submit(&new_workflow(key)).await.expect_err("refused");
        assert!(
            matches!(err, StoreError::InvalidBusinessKey(_)),
            "{key:?}: {err:?}"
        );
        assert_eq!(err.to_string(), format!("{RULE}{problem}"), "{key:?}");
        assert!(!err.is_transient());
    }
    assert_eq!(count(store, "SELECT count(*) FROM workflows").await, 0);
    assert_eq!(hints.total().await, 0, "no worker was told");

    let max = "é".repeat(store::BUSINESS_KEY_MAX_CHARS);
    for key in ["order 42", "Budi Santoso / 2026", "日本-ñ", max.as_str()] {
        let submitted = store.submit(&new_workflow(key)).await.expect(key);
        let row = store.get(submitted.id).await.expect("get").expect("stored");
        assert_eq!(row.business_key, key);
    }
}

/// `workflows.identity_key` is the SHA-256 of the NIK of an onboarding (never the NIK), the
/// same as `store::identity_key`, and NULL for other kinds or without a NIK string.
async fn the_identity_key_is_the_hash_of_the_nik(db: TestDb) {
    let store = &db.store;
    let nik = "3275062009921981";
    let mut cases = vec![
        onboarding("plain", json!(nik)),
        onboarding("unicode", json!("ñ日本\"\\ 🙂")),
        onboarding("number", json!(3_275_062_009_921_981_u64)),
        onboarding("null", Value::Null),
        NewWorkflow::new("onboard-borrower", "no-nik", json!({ "borrower": {} })),
        new_workflow("no-borrower-document"),
    ];
    let mut loan = onboarding("loan", json!(nik));
    loan.kind = "originate-loan".into();
    cases.push(loan);
    for new in &cases {
        let id = store.submit(new).await.expect("submit").id;
        let stored = stored_identity_key(store, id).await;
        assert_eq!(
            stored,
            store::identity_key(&new.kind, &new.input),
            "{}",
            new.business_key
        );
        let expected_some = matches!(new.business_key.as_str(), "plain" | "unicode");
        assert_eq!(stored.is_some(), expected_some, "{}", new.business_key);
        if let Some(stored) = stored {
            assert_eq!(stored.len(), 64);
            assert!(!stored.contains(nik), "never the NIK itself");
        }
    }
}

/// A new onboarding of a borrower whose onboarding under another key has not finished
/// (pending, running, sleeping, needs_attention) is refused, naming that key; a finished one
/// (cancelled, failed, completed) releases the borrower. The same key stays idempotent, and
/// another input under it stays a conflict.
async fn one_unfinished_onboarding_per_borrower(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
    let nik = json!("3275062009921981");
    let budi = store
        .submit(&onboarding("budi", nik.clone()))
        .await
        .expect("first onboarding");
    assert!(budi.created);

    // Pending holds it.
    let err = store
        .submit(&onboarding("budi-2", nik.clone()))
        .await
        .expect_err("held");
    assert_eq!(
        err.to_string(),
        format!(
            "borrower already being onboarded under business key \"budi\" (workflow {}): \
             wait for it to finish or cancel it",
            budi.id
        )
    );
    assert!(!err.is_transient());
    expect_held(
        store.submit(&onboarding("budi-2", nik.clone())).await,
        "budi",
        budi.id,
    );
    assert_eq!(count(store, "SELECT count(*) FROM workflows").await, 1);
    assert_eq!(hints.total().await, 1, "only the first was announced");

    // The same key: the same input is idempotent, another input a conflict, whatever its NIK.
    let again = store
        .submit(&onboarding("budi", nik.clone()))
        .await
        .expect("resubmit");
    assert_eq!((again.id, again.created), (budi.id, false));
    let mut other_input = onboarding("budi", nik.clone());
    other_input.input["borrower"]["type"] = json!("BUSINESS");
    assert!(matches!(
        store.submit(&other_input).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .submit(&onboarding("budi", json!("3275064107850003")))
            .await,
        Err(StoreError::Conflict { .. })
    ));

    // Other borrowers, other kinds and onboardings without a NIK are not held.
    store
        .submit(&onboarding("sari", json!("3275064107850003")))
        .await
        .expect("another borrower");
    let mut loan = onboarding("loan-budi", nik.clone());
    loan.kind = "originate-loan".into();
    store.submit(&loan).await.expect("another kind");
    store
        .submit(&new_workflow("no-nik-1"))
        .await
        .expect("no NIK");
    store
        .submit(&new_workflow("no-nik-2"))
        .await
        .expect("no NIK");

    // Running (claimed), sleeping and needs_attention hold it too.
    let claimed = store
        .claim(budi.id, "test-worker", LEASE)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(claimed.workflow.status, Status::Running);
    expect_held(
        store.submit(&onboarding("budi-2", nik.clone())).await,
        "budi",
        budi.id,
    );
    let sleep = step(&claimed, "new", Status::Sleeping, Some(chrono::Utc::now()));
    store.commit_step(&sleep).await.expect("commit");
    expect_held(
        store.submit(&onboarding("budi-2", nik.clone())).await,
        "budi",
        budi.id,
    );
    // State "new" so that `cancel` takes it below.
    move_to(store, budi.id, "new", Status::NeedsAttention, json!({})).await;
    assert_eq!(
        store.get(budi.id).await.expect("get").expect("row").status,
        Status::NeedsAttention
    );
    expect_held(
        store.submit(&onboarding("budi-2", nik.clone())).await,
        "budi",
        budi.id,
    );

    // Cancelled releases it.
    store
        .cancel(budi.id, "tester", "duplicate", &[])
        .await
        .expect("cancel");
    let second = store
        .submit(&onboarding("budi-2", nik.clone()))
        .await
        .expect("after a cancel");
    assert!(second.created);
    expect_held(
        store.submit(&onboarding("budi-3", nik.clone())).await,
        "budi-2",
        second.id,
    );

    // Failed releases it.
    move_to(store, second.id, "rejected", Status::Failed, json!({})).await;
    let third = store
        .submit(&onboarding("budi-3", nik.clone()))
        .await
        .expect("after a failure");
    expect_held(
        store.submit(&onboarding("budi-4", nik.clone())).await,
        "budi-3",
        third.id,
    );

    // Completed releases it.
    move_to(
        store,
        third.id,
        "approved",
        Status::Completed,
        json!({ "user_id": "u-3" }),
    )
    .await;
    store
        .submit(&onboarding("budi-4", nik.clone()))
        .await
        .expect("after a completion");
}

/// Eight submits of one borrower under eight keys at once, each in a transaction that stays
/// open a while after the submit, so that without a lock every check would run before any
/// insert commits: exactly one is stored, every other is refused naming it. On PostgreSQL
/// all eight transactions are open before any submits (the advisory lock makes each wait for
/// the one before); on SQLite `begin` takes the write lock, which queues them already.
async fn concurrent_onboardings_of_one_borrower_create_one(db: TestDb) {
    const RACERS: usize = 8; // below the pool's 10 PostgreSQL connections: all open at once
    let postgres = crate::is_postgres(db.backend);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let store = db.store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("racer-{i}");
            let new = onboarding(&key, json!("3275062009921981"));
            if !postgres {
                barrier.wait().await;
            }
            let mut tx = store.begin().await.expect("begin");
            if postgres {
                barrier.wait().await;
            }
            let result = store.submit_in(&mut tx, &new).await;
            if result.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.commit().await.expect("commit");
            } else {
                tx.rollback().await.expect("rollback");
            }
            (key, result)
        }));
    }
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (key, Ok(submitted)) => {
                assert!(submitted.created);
                winners.push((key, submitted.id));
            }
            (
                _,
                Err(StoreError::OnboardingInProgress {
                    business_key,
                    workflow_id,
                }),
            ) => refused.push((business_key, workflow_id)),
            (key, Err(other)) => panic!("{key}: {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one racer created an onboarding: {winners:?}"
    );
    assert_eq!(refused.len(), RACERS - 1);
    assert!(
        refused.iter().all(|held| *held == winners[0]),
        "every other racer was told who holds the borrower: {refused:?}"
    );
    assert_eq!(count(&db.store, "SELECT count(*) FROM workflows").await, 1);
}

/// `returning_borrower`: none before any completed onboarding; then the newest completed
/// onboarding of the same borrower with a user id, ignoring failed ones, completed ones
/// without a user id, other borrowers and the workflow itself.
async fn returning_borrowers(db: TestDb) {
    let store = &db.store;
    let nik = json!("3275062009921981");
    // The finish order must be visible in `finished_at` (milliseconds on SQLite).
    let pause = || tokio::time::sleep(Duration::from_millis(15));

    let first = store
        .submit(&onboarding("budi", nik.clone()))
        .await
        .expect("submit")
        .id;
    assert_eq!(store.returning_borrower(first).await.expect("query"), None);
    move_to(
        store,
        first,
        "approved",
        Status::Completed,
        json!({ "user_id": "user-1", "borrower_status": "VERIFIED" }),
    )
    .await;
    assert_eq!(
        store.returning_borrower(first).await.expect("query"),
        None,
        "not its own returning borrower"
    );
    pause().await;

    let second = store
        .submit(&onboarding("budi-2", nik.clone()))
        .await
        .expect("submit")
        .id;
    let one = Some(ReturningBorrower {
        business_key: "budi".into(),
        workflow_id: first,
        user_id: "user-1".into(),
    });
    assert_eq!(store.returning_borrower(second).await.expect("query"), one);
    move_to(
        store,
        second,
        "approved",
        Status::Completed,
        json!({ "user_id": "user-2" }),
    )
    .await;
    pause().await;

    // Finished later, but failed, without a user id, or another borrower.
    for (key, status, facts, nik) in [
        (
            "budi-failed",
            Status::Failed,
            json!({ "user_id": "user-f" }),
            nik.clone(),
        ),
        (
            "budi-null",
            Status::Completed,
            json!({ "user_id": null }),
            nik.clone(),
        ),
        ("budi-none", Status::Completed, json!({}), nik.clone()),
        (
            "budi-number",
            Status::Completed,
            json!({ "user_id": 42 }),
            nik.clone(),
        ),
        (
            "sari",
            Status::Completed,
            json!({ "user_id": "user-s" }),
            json!("3275064107850003"),
        ),
    ] {
        let id = store
            .submit(&onboarding(key, nik))
            .await
            .expect("submit")
            .id;
        move_to(store, id, "done", status, facts).await;
        pause().await;
    }

    let third = store
        .submit(&onboarding("budi-3", nik.clone()))
        .await
        .expect("submit")
        .id;
    let newest = Some(ReturningBorrower {
        business_key: "budi-2".into(),
        workflow_id: second,
        user_id: "user-2".into(),
    });
    assert_eq!(
        store.returning_borrower(third).await.expect("query"),
        newest
    );
    assert_eq!(
        store.returning_borrower(first).await.expect("query"),
        newest,
        "the newest other one"
    );
    assert_eq!(
        store.returning_borrower(second).await.expect("query"),
        one,
        "never itself"
    );

    // Other kinds and onboardings without a NIK have no identity, so no returning borrower.
    let mut loan = onboarding("loan-budi", nik.clone());
    loan.kind = "originate-loan".into();
    let loan = store.submit(&loan).await.expect("loan").id;
    assert_eq!(store.returning_borrower(loan).await.expect("query"), None);
    let anonymous = store
        .submit(&new_workflow("no-nik"))
        .await
        .expect("submit")
        .id;
    assert_eq!(
        store.returning_borrower(anonymous).await.expect("query"),
        None
    );
    let unknown = Uuid::new_v4();
    assert!(matches!(
        store.returning_borrower(unknown).await,
        Err(StoreError::NotFound(id)) if id == unknown
    ));
}

/// PostgreSQL's `finflow_business_key_problem` and `finflow_identity_key` say what the Rust
/// store says: every character up to U+3100 (and a few beyond) alone, first, last and inside
/// a key, and the lengths around 200; NIKs of every shape.
async fn sql_and_rust_agree(db: TestDb) {
    let pool = db.store.pg_pool().expect("PostgreSQL");
    let mut keys: Vec<String> = Vec::new();
    let extra = [0xFEFF, 0x1_F642, 0x10_FFFF];
    for c in (1..=0x3100_u32).chain(extra).filter_map(char::from_u32) {
        keys.extend([
            c.to_string(),
            format!("a{c}"),
            format!("{c}a"),
            format!("a{c}b"),
        ]);
    }
    for n in [199, 200, 201, 5000] {
        keys.push("k".repeat(n));
        keys.push("é".repeat(n));
    }
    keys.extend([String::new(), " \n".into(), "\n ".into(), "a\tb\nc".into()]);
    let sql: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT finflow_business_key_problem(k) FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) \
         ORDER BY n",
    )
    .bind(&keys)
    .fetch_all(pool)
    .await
    .expect("finflow_business_key_problem");
    assert_eq!(sql.len(), keys.len());
    for (key, sql) in keys.iter().zip(sql) {
        let rust = store::check_business_key(key).err().map(|e| e.to_string());
        assert_eq!(
            sql.map(|problem| format!("{RULE}{problem}")),
            rust,
            "{key:?}"
        );
    }

    let mut inputs = vec![
        (
            "onboard-borrower",
            onboarding("k", json!("3275062009921981")).input,
        ),
        (
            "onboard-borrower",
            onboarding("k", json!("ñ日本\"\\ 🙂\u{7}")).input,
        ),
        (
            "onboard-borrower",
            onboarding("k", json!(" 3275062009921981 ")).input,
        ),
        ("onboard-borrower", onboarding("k", json!("")).input),
        (
            "onboard-borrower",
            onboarding("k", json!(3_275_062_009_921_981_u64)).input,
        ),
        (
            "onboard-borrower",
            onboarding("k", json!(["3275062009921981"])).input,
        ),
        (
            "onboard-borrower",
            onboarding("k", json!({ "n": "1" })).input,
        ),
        ("onboard-borrower", onboarding("k", Value::Null).input),
        ("onboard-borrower", json!({ "borrower": [1, 2] })),
        ("onboard-borrower", json!({ "borrower": "x" })),
        ("onboard-borrower", json!("3275062009921981")),
        ("onboard-borrower", json!({})),
        (
            "originate-loan",
            onboarding("k", json!("3275062009921981")).input,
        ),
    ];
    inputs.push(("onboard-borrower", sample_input("onboard-business.json")));
    for (kind, input) in &inputs {
        let sql: Option<String> = sqlx::query_scalar("SELECT finflow_identity_key($1, $2)")
            .bind(kind)
            .bind(input)
            .fetch_one(pool)
            .await
            .expect("finflow_identity_key");
        assert_eq!(sql, store::identity_key(kind, input), "{kind} {input}");
    }
}

/// `finflow_submit` (PostgreSQL) refuses a bad key with SQLSTATE 22023 and a held borrower
/// with FF423, naming the other key in the message and the DETAIL; also inside one caller's
/// transaction (the first onboarding not yet committed), and in REPEATABLE READ, where its
/// check could not see a concurrent submit.
async fn sql_function_refusals(db: TestDb) {
    let store = &db.store;
    let pool = store.pg_pool().expect("PostgreSQL");
    let input = onboarding("x", json!("3275062009921981")).input;

    let err = sqlx::query_scalar::<_, Uuid>("SELECT finflow_submit('onboard-borrower', $1, $2)")
        .bind("budi\nx")
        .bind(&input)
        .fetch_one(pool)
        .await
        .expect_err("bad key");
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(
        db_err.code().as_deref(),
        Some(store::INVALID_BUSINESS_KEY_SQLSTATE)
    );
    assert_eq!(
        db_err.message(),
        format!("finflow_submit: {RULE}it has a newline at position 5")
    );
    for key in [" ", "", &"k".repeat(5000)] {
        let err =
            sqlx::query_scalar::<_, Uuid>("SELECT finflow_submit('onboard-borrower', $1, $2)")
                .bind(key)
                .bind(&input)
                .fetch_one(pool)
                .await
                .expect_err("bad key");
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.code().as_deref(), Some("22023"), "{key:?}");
        assert!(db_err.message().contains(RULE), "{}", db_err.message());
    }
    assert_eq!(count(store, "SELECT count(*) FROM workflows").await, 0);

    let budi: Uuid = sqlx::query_scalar("SELECT finflow_submit('onboard-borrower', 'budi', $1)")
        .bind(&input)
        .fetch_one(pool)
        .await
        .expect("first onboarding");
    let err =
        sqlx::query_scalar::<_, Uuid>("SELECT finflow_submit('onboard-borrower', 'budi-2', $1)")
            .bind(&input)
            .fetch_one(pool)
            .await
            .expect_err("held");
    let db_err = err
        .as_database_error()
        .expect("a database error")
        .downcast_ref::<sqlx::postgres::PgDatabaseError>();
    assert_eq!(db_err.code(), store::ONBOARDING_IN_PROGRESS_SQLSTATE);
    assert_eq!(
        db_err.message(),
        format!(
            "finflow_submit: borrower already being onboarded under business key \"budi\" \
             (workflow {budi}): wait for it to finish or cancel it"
        )
    );
    assert_eq!(
        db_err.detail(),
        Some(format!("workflow {budi} holds this borrower under business key budi").as_str())
    );
    // The same key in SQL is still idempotent.
    let again: Uuid = sqlx::query_scalar("SELECT finflow_submit('onboard-borrower', 'budi', $1)")
        .bind(&input)
        .fetch_one(pool)
        .await
        .expect("resubmit");
    assert_eq!(again, budi);

    // Two onboardings of one borrower in one caller's transaction: the second sees the first.
    let other = onboarding("x", json!("3275064107850003")).input;
    let mut tx = pool.begin().await.expect("begin");
    let sari: Uuid = sqlx::query_scalar("SELECT finflow_submit('onboard-borrower', 'sari', $1)")
        .bind(&other)
        .fetch_one(&mut *tx)
        .await
        .expect("first in the transaction");
    let err =
        sqlx::query_scalar::<_, Uuid>("SELECT finflow_submit('onboard-borrower', 'sari-2', $1)")
            .bind(&other)
            .fetch_one(&mut *tx)
            .await
            .expect_err("held by the transaction's own onboarding");
    let db_err = err
        .as_database_error()
        .expect("a database error")
        .downcast_ref::<sqlx::postgres::PgDatabaseError>();
    assert_eq!(db_err.code(), "FF423");
    assert!(
        db_err.message().contains("\"sari\""),
        "{}",
        db_err.message()
    );
    assert!(db_err.message().contains(&sari.to_string()));
    tx.rollback().await.expect("rollback");

    // The Rust API on PostgreSQL reads the holder back from the DETAIL, in the caller's
    // transaction too.
    let mut tx = store.begin().await.expect("begin");
    store
        .submit_in(&mut tx, &onboarding("sari", json!("3275064107850003")))
        .await
        .expect("first");
    let held = store
        .submit_in(
            &mut tx,
            &onboarding("sari \"2\" / x", json!("3275064107850003")),
        )
        .await;
    assert!(
        matches!(&held, Err(StoreError::OnboardingInProgress { business_key, .. }) if business_key == "sari"),
        "{held:?}"
    );
    tx.rollback().await.expect("rollback");
    let quoted = store
        .submit(&onboarding("sari \"2\" / x", json!("3275064107850003")))
        .await
        .expect("a key with quotes");
    expect_held(
        store
            .submit(&onboarding("sari-3", json!("3275064107850003")))
            .await,
        "sari \"2\" / x",
        quoted.id,
    );

    // REPEATABLE READ would hide a concurrent submit from the check: refused.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .expect("isolation");
    let err = sqlx::query_scalar::<_, Uuid>("SELECT finflow_submit('onboard-borrower', 'rr', $1)")
        .bind(onboarding("x", json!("3275062009921999")).input)
        .fetch_one(&mut *tx)
        .await
        .expect_err("refused in repeatable read");
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("0A000")
    );
    tx.rollback().await.expect("rollback");
    // Other kinds are not concerned.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .expect("isolation");
    sqlx::query_scalar::<_, Uuid>("SELECT finflow_submit('originate-loan', 'rr', '{}'::jsonb)")
        .fetch_one(&mut *tx)
        .await
        .expect("a loan in repeatable read");
    tx.rollback().await.expect("rollback");
}
