//! Step commits: all of a step's outcome or nothing.

use chrono::{TimeDelta, Utc};
use serde_json::json;
use store::testing::{TestBackend, TestDb};
use store::{CorrelationKey, Outcome, Status, StoreError, Wait};

use crate::{Hints, count, step, submit_and_claim};

store::test_both_backends!(
    a_commit_writes_state_journal_and_schedule,
    a_version_conflict_writes_nothing,
    inline_continuation_then_completion,
    cancel_stops_an_unstarted_workflow_and_beats_its_first_step,
    the_first_step_pins_the_definition_name_and_version_once,
);

async fn a_commit_writes_state_journal_and_schedule(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "commit-1", "w1").await;
    let id = claimed.workflow.id;
    let next = Utc::now() + TimeDelta::seconds(45);
    let mut commit = step(&claimed, "create_borrower", Status::Sleeping, Some(next));
    commit.journal.finfra_status = Some(500);
    commit.journal.error = Some("Finfra answered 500".into());
    commit.journal.outcome = Outcome::Retry;
    commit.journal.operation_key = Some("op-123".into());
    commit.journal.request_summary = Some(json!({ "nik": "32******01" }));
    commit.journal.finished_at = commit.journal.started_at + TimeDelta::milliseconds(1250);
    commit.last_error = Some("Finfra answered 500".into());
    commit.deadline = Some(next + TimeDelta::hours(1));
    let committed = store.commit_step(&commit).await.expect("commit");
    assert_eq!(committed.version, claimed.workflow.version + 1);
    assert_eq!(committed.seq, 1);
    assert!(committed.pending_events.is_empty());

    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.state, "create_borrower");
    assert_eq!(row.status, Status::Sleeping);
    assert_eq!(row.context, json!({ "step": "create_borrower" }));
    assert_eq!(row.attempt, 1);
    assert_eq!(row.version, committed.version);
    assert_eq!(row.definition_version, Some(1), "pinned by the first step");
    assert_eq!(row.lease_owner, None);
    assert_eq!(row.last_error.as_deref(), Some("Finfra answered 500"));
    let ms = |t: chrono::DateTime<Utc>| t.timestamp_millis();
    assert_eq!(row.next_run_at.map(ms), Some(ms(next)));
    assert_eq!(row.deadline.map(ms), commit.deadline.map(ms));

    let journal = store.journal(id).await.expect("journal");
    assert_eq!(journal.len(), 1);
    let j = &journal[0];
    assert_eq!((j.seq, j.worker_id.as_str()), (1, "w1"));
    assert_eq!(j.entry.outcome, Outcome::Retry);
    assert_eq!(j.entry.finfra_status, Some(500));
    assert_eq!(j.entry.operation_key.as_deref(), Some("op-123"));
    assert_eq!(
        j.entry.request_summary,
        Some(json!({ "nik": "32******01" }))
    );
    assert_eq!(j.duration_ms, 1250);

    // The next step numbers its journal row 2.
    let again = store.claim(id, "w1", crate::LEASE).await.expect("claim");
    assert!(again.is_none(), "not due for 45 s");
}

/// A commit with a stale version (or by a worker that does not hold the lease) changes
/// nothing: not the row, not the journal, not the waits, not the inbox, no wake-up.
async fn a_version_conflict_writes_nothing(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "conflict-1", "w1").await;
    let id = claimed.workflow.id;
    let before = store.get(id).await.expect("get").expect("exists");
    let mut hints = Hints::start(store).await;

    let mut stale = step(&claimed, "never", Status::Waiting, Some(Utc::now()));
    stale.expected_version -= 1;
    stale.waits = vec![Wait::new(
        "user_created",
        CorrelationKey::IdentityNumber,
        "3201000000000001",
    )];
    assert!(matches!(
        store.commit_step(&stale).await,
        Err(StoreError::LeaseLost(_))
    ));

    let mut other = step(&claimed, "never", Status::Waiting, Some(Utc::now()));
    other.worker_id = "intruder".into();
    assert!(matches!(
        store.commit_step(&other).await,
        Err(StoreError::LeaseLost(_))
    ));

    let mut missing = step(&claimed, "never", Status::Waiting, None);
    missing.workflow_id = uuid::Uuid::new_v4();
    assert!(matches!(
        store.commit_step(&missing).await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(store.get(id).await.expect("get").expect("exists"), before);
    assert!(store.journal(id).await.expect("journal").is_empty());
    assert_eq!(count(store, "SELECT count(*) FROM workflow_waits").await, 0);
    assert_eq!(hints.count(id).await, 0, "no hint");
}

/// Keeping the lease lets a worker chain steps (each committed), then finish: a terminal
/// status clears the schedule, the lease and the waits, and stamps `finished_at`.
async fn inline_continuation_then_completion(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "inline-1", "w1").await;
    let id = claimed.workflow.id;

    let mut first = step(&claimed, "validated", Status::Running, Some(Utc::now()));
    first.release_lease = false;
    first.waits = vec![Wait::new(
        "user_created",
        CorrelationKey::IdentityNumber,
        "3201000000000002",
    )];
    let c1 = store.commit_step(&first).await.expect("first");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.lease_owner.as_deref(), Some("w1"), "lease kept");

    let mut done = step(&claimed, "approved", Status::Completed, Some(Utc::now()));
    done.expected_version = c1.version;
    done.waits = vec![Wait::new("ignored", CorrelationKey::UserId, "u")];
    let c2 = store.commit_step(&done).await.expect("second");
    assert_eq!((c1.seq, c2.seq), (1, 2));
    assert_eq!(c2.next_run_at, None);

    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.status, Status::Completed);
    assert!(row.finished_at.is_some());
    assert_eq!(
        (row.next_run_at, row.lease_owner, row.lease_until),
        (None, None, None)
    );
    assert_eq!(
        count(store, "SELECT count(*) FROM workflow_waits").await,
        0,
        "waits cleared"
    );
    let seqs: Vec<i32> = store
        .journal(id)
        .await
        .expect("journal")
        .iter()
        .map(|j| j.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

async fn cancel_stops_an_unstarted_workflow_and_beats_its_first_step(db: TestDb) {
    let store = &db.store;
    // A workflow in the middle of a step.
    let claimed = submit_and_claim(store, "cancel-1", "w1").await;
    let id = claimed.workflow.id;
    let cancelled = store
        .cancel(id, "ops@lender", "customer withdrew", &[])
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!(cancelled.last_error.as_deref(), Some("customer withdrew"));
    assert!(cancelled.finished_at.is_some());
    assert_eq!((cancelled.next_run_at, cancelled.lease_owner), (None, None));

    // The worker's commit of the step it was running is refused...
    let late = step(&claimed, "created", Status::Waiting, Some(Utc::now()));
    assert!(matches!(
        store.commit_step(&late).await,
        Err(StoreError::LeaseLost(_))
    ));
    // ...and it records what its call did without changing the workflow.
    let mut note = store::JournalEntry::new("new", "create_borrower", Outcome::Ok);
    note.finfra_status = Some(200);
    assert_eq!(
        store.append_journal(id, "w1", &note).await.expect("append"),
        2
    );

    let journal = store.journal(id).await.expect("journal");
    assert_eq!(journal[0].entry.action, "cancel");
    assert_eq!(journal[0].entry.outcome, Outcome::Cancelled);
    assert_eq!(journal[0].worker_id, "ops@lender");
    assert_eq!(journal[0].entry.error.as_deref(), Some("customer withdrew"));

    // Refused once finished; unknown ids are NotFound.
    match store.cancel(id, "ops", "again", &[]).await {
        Err(StoreError::Refused(msg)) => assert!(msg.contains("already cancelled"), "{msg}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(matches!(
        store.cancel(uuid::Uuid::new_v4(), "ops", "x", &[]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .claim(id, "w2", crate::LEASE)
            .await
            .expect("claim")
            .is_none()
    );

    // A pending workflow (never started) can be cancelled too.
    let pending = store
        .submit(&crate::new_workflow("cancel-2"))
        .await
        .expect("submit");
    store
        .cancel(pending.id, "ops", "duplicate order", &[])
        .await
        .expect("cancel pending");

    // One that has started is cancelled through its state machine (a command), never here:
    // only the workflow knows what to undo at Finfra, and when a cancel is no longer safe.
    let started = submit_and_claim(store, "cancel-3", "w1").await;
    store
        .commit_step(&step(
            &started,
            "create_borrower",
            Status::Running,
            Some(Utc::now()),
        ))
        .await
        .expect("start");
    match store
        .cancel(started.workflow.id, "ops", "too late", &[])
        .await
    {
        Err(StoreError::Refused(msg)) => assert!(msg.contains("has started"), "{msg}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

/// A workflow submitted without a definition (as `finflow_submit` allows) learns its
/// definition from its input when it starts: the first step pins the name and the version,
/// and later steps cannot change them.
async fn the_first_step_pins_the_definition_name_and_version_once(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "pin-1", "w1").await;
    let id = claimed.workflow.id;
    assert_eq!(claimed.workflow.definition_name, "onboard-borrower");
    assert_eq!(claimed.workflow.definition_version, None);
    let mut commit = step(&claimed, "ekyc_ocr", Status::Running, Some(Utc::now()));
    commit.pin_definition_version = Some(3);
    commit.pin_definition_name = Some("personal-bnpl".into());
    commit.release_lease = false;
    let committed = store.commit_step(&commit).await.expect("commit");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (row.definition_name.as_str(), row.definition_version),
        ("personal-bnpl", Some(3))
    );

    commit.expected_version = committed.version;
    commit.pin_definition_version = Some(4);
    commit.pin_definition_name = Some("business-bnpl".into());
    commit.release_lease = true;
    store.commit_step(&commit).await.expect("second commit");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(
        (row.definition_name.as_str(), row.definition_version),
        ("personal-bnpl", Some(3)),
        "a pinned definition stays"
    );
}

/// A journal row appended while the holder's step commits (`append_journal`: what a worker
/// learned after it lost a workflow, an operator's note) takes the workflow's row lock; the
/// step's commit waits for it and numbers its own journal row after it. On PostgreSQL the
/// commit checks its lease with a locking read and numbers the row in the next statement
/// (migration 0023): numbered in the same statement as the lock, it would take the number
/// the other transaction had just used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_journal_row_appended_while_a_step_commits_is_numbered_first() {
    store::testing::run(
        TestBackend::Postgres,
        true,
        journal_row_appended_while_committing,
    )
    .await;
}

async fn journal_row_appended_while_committing(db: TestDb) {
    let store = &db.store;
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let claimed = submit_and_claim(store, "append-race-1", "w1").await;
    let id = claimed.workflow.id;

    // The append, held open with its row written: as `append_journal` does it.
    let mut append = pool.begin().await.expect("begin");
    sqlx::query("SELECT version FROM workflows WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *append)
        .await
        .expect("lock");
    sqlx::query(
        "INSERT INTO step_journal (workflow_id, seq, step, action, outcome, attempt, \
         started_at, finished_at, duration_ms, worker_id) \
         VALUES ($1, 1, 'new', 'note', 'ok', 0, now(), now(), 0, 'ops')",
    )
    .bind(id)
    .execute(&mut *append)
    .await
    .expect("the appended row");

    let commit = tokio::spawn({
        let store = store.clone();
        let next = step(
            &claimed,
            "create_borrower",
            Status::Sleeping,
            Some(Utc::now()),
        );
        async move { store.commit_step(&next).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !commit.is_finished(),
        "the commit waits for the append's lock"
    );
    append.commit().await.expect("commit the append");

    let committed = commit
        .await
        .expect("join")
        .expect("the step commits after it");
    assert_eq!(committed.seq, 2, "numbered after the appended row");
    let journal = store.journal(id).await.expect("journal");
    let rows: Vec<(i32, &str)> = journal
        .iter()
        .map(|j| (j.seq, j.entry.action.as_str()))
        .collect();
    assert_eq!(rows, vec![(1, "note"), (2, "test_step")]);
}

/// On PostgreSQL a step's commit writes into the WAL the bytes of its workflow's row that
/// changed, not the whole context (migration 0030: the context is the row's last column, so
/// what follows the last change within it is an unchanged suffix PostgreSQL leaves out of an
/// update that stays on its page). A context of 2 KB (random hex digits: compression cannot
/// shrink them, so it is stored as it is) whose first value alone changes: each inline
/// step's update of the row is one WAL record of under 300 bytes. Before 0030 the columns a
/// step changes followed the context, which the record then carried whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_step_writes_what_changed_of_its_context_into_the_wal() {
    store::testing::run(TestBackend::Postgres, true, step_logs_what_changed).await;
}

async fn step_logs_what_changed(db: TestDb) {
    let store = &db.store;
    let pool = crate::pg_with_extension(store, "pg_walinspect").await;
    let noise = crate::incompressible_hex();
    let claimed = submit_and_claim(store, "wal-step-1", "w1").await;
    let mut inline = step(
        &claimed,
        "working",
        Status::Running,
        claimed.workflow.next_run_at,
    );
    inline.release_lease = false;
    let mut records = Vec::new();
    // A record that carries a full-page image (the page's first change after a checkpoint)
    // has no row data of its own: measured again on the next step. The first step writes
    // the context the first time, so it is not measured.
    for round in 0..4 {
        // "a" sorts before "noise": the first value of the stored object.
        inline.context = json!({ "a": round, "noise": noise });
        let start = crate::wal_insert_lsn(pool).await;
        let committed = store.commit_step(&inline).await.expect("an inline step");
        inline.expected_version = committed.version;
        records = crate::workflow_updates_since(pool, &start).await;
        if round > 0 && records.iter().all(|(_, _, fpi)| *fpi == 0) {
            break;
        }
    }
    let context = crate::stored_context_bytes(pool, claimed.workflow.id).await;
    assert!(
        context > 2000,
        "a context of 2 KB as stored ({context} bytes)"
    );
    // Not the context's unchanged part.
    crate::assert_one_update_under(&records, 300, "the step");
}
