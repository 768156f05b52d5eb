//! Wake-ups without job rows: what makes a workflow due now sends a hint when its
//! transaction commits (PostgreSQL `finflow_due`, SQLite's in-process hand-over), never for
//! a rollback; a wake-up for later sends nothing (the due scan takes it then); a worker's
//! own hints stay in its process, and it answers those of non-workers, not other workers'.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use store::testing::TestDb;
use store::{Status, Store, StoreOptions};

use crate::{Hints, LEASE, new_workflow, step, submit_and_claim};

store::test_both_backends!(
    hints_are_sent_on_commit_only_and_only_for_now,
    step_commits_send_no_hint_for_their_own_future,
    a_step_released_due_now_sends_a_hint,
    each_worker_answers_its_own_hints_and_non_workers,
    a_worker_of_an_earlier_build_still_notifies_its_own,
    legacy_wakeup_rows_and_registrations_are_pruned,
);

async fn hints_are_sent_on_commit_only_and_only_for_now(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
    let postgres = crate::is_postgres(db.backend);

    // Submit + a hint for now, rolled back: nothing is heard.
    let mut tx = store.begin().await.expect("begin");
    let submitted = store
        .submit_in(&mut tx, &new_workflow("atomic-1"))
        .await
        .expect("submit_in");
    store
        .schedule_wakeup_in(&mut tx, submitted.id, Utc::now())
        .await
        .expect("schedule");
    tx.rollback().await.expect("rollback");
    assert_eq!(store.get(submitted.id).await.expect("get"), None);
    assert_eq!(hints.total().await, 0, "a rollback sends nothing");

    // The same, committed: PostgreSQL's hint arrives with the commit (one: the submit's and
    // the explicit one are the same notification, which PostgreSQL sends once per
    // transaction); SQLite hands over only what `Store::submit` itself commits.
    let mut tx = store.begin().await.expect("begin");
    let submitted = store
        .submit_in(&mut tx, &new_workflow("atomic-1"))
        .await
        .expect("submit_in");
    store
        .schedule_wakeup_in(&mut tx, submitted.id, Utc::now())
        .await
        .expect("schedule");
    tx.commit().await.expect("commit");
    assert_eq!(hints.count(submitted.id).await, usize::from(postgres));

    // A wake-up for later sends nothing: the due scan takes the workflow then.
    let mut tx = store.begin().await.expect("begin");
    store
        .schedule_wakeup_in(&mut tx, submitted.id, Utc::now() + TimeDelta::seconds(30))
        .await
        .expect("schedule");
    tx.commit().await.expect("commit");
    assert_eq!(hints.count(submitted.id).await, usize::from(postgres));

    // `Store::submit` hands over on both backends.
    let other = store
        .submit(&new_workflow("atomic-2"))
        .await
        .expect("submit");
    assert_eq!(hints.count(other.id).await, 1);
}

/// A claim sends no hint (the held workflow stays due for the scan); commits that keep the
/// lease, that are refused, or that sleep until later send none either; the workflow is
/// not due before its time.
async fn step_commits_send_no_hint_for_their_own_future(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
    let claimed = submit_and_claim(store, "sched-1", "worker-a").await;
    let id = claimed.workflow.id;
    assert_eq!(hints.count(id).await, 1, "the submit's");

    let mut keep = step(&claimed, "step-2", Status::Running, Some(Utc::now()));
    keep.release_lease = false;
    let kept = store
        .commit_step(&keep)
        .await
        .expect("commit keeping the lease");

    let mut stale = step(&claimed, "step-x", Status::Sleeping, Some(Utc::now()));
    stale.expected_version = claimed.workflow.version; // already used
    assert!(store.commit_step(&stale).await.is_err());

    let later = Utc::now() + TimeDelta::seconds(90);
    let mut sleep = step(&claimed, "step-3", Status::Sleeping, Some(later));
    sleep.expected_version = kept.version;
    store.commit_step(&sleep).await.expect("commit");
    assert_eq!(hints.count(id).await, 1, "no hint since the submit's");
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
    let due = store.claim_due("worker-b", 10, LEASE).await.expect("scan");
    assert!(due.is_empty(), "the scan does not take it before its time");
}

/// A step that lets the workflow go while it is due at once (a retry without backoff) sends
/// a hint, so that it is taken again now rather than at the next scan.
async fn a_step_released_due_now_sends_a_hint(db: TestDb) {
    let store = &db.store;
    let mut hints = Hints::start(store).await;
    let claimed = submit_and_claim(store, "again-1", "worker-a").await;
    let id = claimed.workflow.id;
    assert_eq!(hints.count(id).await, 1, "the submit's");
    let again = step(&claimed, "step-2", Status::Sleeping, Some(Utc::now()));
    assert!(again.release_lease);
    store.commit_step(&again).await.expect("commit");
    assert_eq!(hints.count(id).await, 2, "released and due now");
    assert!(
        store
            .claim(id, "worker-b", LEASE)
            .await
            .expect("claim")
            .is_some(),
        "due now"
    );
}

/// Two workers and a CLI on one PostgreSQL database: a worker's own hints reach its own
/// process in memory and no listener (its connections send no notification for them); the
/// CLI's reach every worker by notification; what a worker makes due for a workflow that may
/// be another's (`schedule_wakeup_in`) is notified, and only it answers. (SQLite: one
/// process, no listener.)
async fn each_worker_answers_its_own_hints_and_non_workers(db: TestDb) {
    let worker = |url: String| async move {
        Store::connect_with(
            &url,
            &StoreOptions {
                worker: true,
                ..StoreOptions::default()
            },
        )
        .await
        .expect("a worker's store")
    };
    let a = worker(db.url.clone()).await;
    let Some(mut a_hears) = a.listen_due().await.expect("listen") else {
        assert!(!crate::is_postgres(db.backend));
        return;
    };
    let b = worker(db.url.clone()).await;
    let mut b_hears = b.listen_due().await.expect("listen").expect("PostgreSQL");
    let (mut a_local, mut b_local) = (a.due_now(), b.due_now());
    // Everything any session sends, whoever answers it.
    let mut everything = Hints::start(&db.store).await;
    assert!(a.origin().starts_with(store::WORKER_ORIGIN_PREFIX));
    assert_ne!(a.origin(), b.origin());
    assert_eq!(db.store.origin(), "finflow", "not a worker");
    assert!(a.hands_over_due() && !db.store.hands_over_due());

    let by_a = a.submit(&new_workflow("by-a")).await.expect("submit").id;
    let by_b = b.submit(&new_workflow("by-b")).await.expect("submit").id;
    let by_cli = db
        .store
        .submit(&new_workflow("by-cli"))
        .await
        .expect("submit")
        .id;
    let mut tx = a.begin().await.expect("begin");
    a.schedule_wakeup_in(&mut tx, by_b, Utc::now())
        .await
        .expect("schedule");
    tx.commit().await.expect("commit");

    assert_eq!(heard(&mut a_hears).await, [by_cli, by_b]);
    assert_eq!(heard(&mut b_hears).await, [by_cli]);
    assert_eq!(a_local.try_recv().ok(), Some(by_a));
    assert_eq!(b_local.try_recv().ok(), Some(by_b));
    assert!(a_local.try_recv().is_err() && b_local.try_recv().is_err());
    assert_eq!(
        (everything.count(by_a).await, everything.count(by_b).await),
        (0, 1),
        "the workers' own submits sent no notification"
    );
}

/// During a rolling deploy a worker of an earlier build (connections named
/// `finflow-worker:<12 hex digits>`) hands nothing over in memory: its own hints are still
/// notified; a worker of this build (`finflow-worker:<pid>-<tag>`) sends none.
/// (PostgreSQL only.)
async fn a_worker_of_an_earlier_build_still_notifies_its_own(db: TestDb) {
    use sqlx::Connection as _;
    if !crate::is_postgres(db.backend) {
        return;
    }
    let id = db
        .store
        .submit(&new_workflow("rolling"))
        .await
        .expect("submit")
        .id;
    let mut everything = Hints::start(&db.store).await;
    for (name, notified) in [
        ("finflow-worker:0123456789ab", 1),
        ("finflow-worker:4242-0123abcd", 1),
        ("finflow", 2),
    ] {
        let mut conn = sqlx::PgConnection::connect(&db.url)
            .await
            .expect("a session");
        sqlx::query("SELECT set_config('application_name', $1, false)")
            .bind(name)
            .execute(&mut conn)
            .await
            .expect("name the session");
        sqlx::query("SELECT finflow_schedule_wakeup($1)")
            .bind(id)
            .execute(&mut conn)
            .await
            .expect("wake-up");
        assert_eq!(everything.count(id).await, notified, "after {name}");
    }
}

/// Wake-up rows and worker registrations of earlier builds are pruned: finished rows past
/// the cut-off go, pending ones stay; a registration seen within the cut-off stays. A
/// worker's heartbeat registers it.
async fn legacy_wakeup_rows_and_registrations_are_pruned(db: TestDb) {
    let store = &db.store;
    let (jobs, done_at) = match store.backend() {
        store::Backend::Postgres(_) => ("apalis.jobs", "now() - interval '1 hour'"),
        store::Backend::Sqlite(_) => ("Jobs", "unixepoch() - 3600"),
    };
    for (status, done) in [("Done", done_at), ("Pending", "NULL")] {
        let sql = format!(
            "INSERT INTO {jobs} (id, job_type, job, status, attempts, max_attempts, run_at, \
             done_at, priority) VALUES ('{}', '{}', CAST('{{}}' AS {}), '{status}', 0, 10, {}, \
             {done}, 0)",
            uuid::Uuid::new_v4().simple(),
            store::WAKEUP_QUEUE,
            if crate::is_postgres(db.backend) {
                "bytea"
            } else {
                "blob"
            },
            if crate::is_postgres(db.backend) {
                "now()"
            } else {
                "unixepoch()"
            },
        );
        let inserted = match store.backend() {
            store::Backend::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
            store::Backend::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
        };
        assert_eq!(inserted.expect("a wake-up row of an earlier build"), 1);
    }
    assert_eq!(
        store
            .prune_wakeups(Utc::now() - TimeDelta::minutes(10))
            .await
            .expect("prune"),
        1,
        "the finished row"
    );
    assert_eq!(
        store
            .prune_wakeups(Utc::now() + TimeDelta::minutes(10))
            .await
            .expect("prune"),
        0,
        "the pending row stays"
    );

    store.heartbeat("worker-1").await.expect("heartbeat");
    store.heartbeat("worker-1").await.expect("heartbeat again");
    let seen = store
        .workers_seen(Utc::now() - TimeDelta::minutes(1), Utc::now())
        .await
        .expect("workers");
    assert_eq!(
        seen.iter()
            .map(|w| w.worker_id.as_str())
            .collect::<Vec<_>>(),
        ["worker-1"]
    );
    assert_eq!(
        store
            .prune_workers(Utc::now() - TimeDelta::days(1))
            .await
            .expect("prune workers"),
        0,
        "a worker seen in the last day is kept"
    );
    assert_eq!(
        store
            .prune_workers(Utc::now() + TimeDelta::minutes(1))
            .await
            .expect("prune workers"),
        1,
        "gone after the cut-off"
    );
}

/// The hints `listener` hears until half a second passes without one.
async fn heard(listener: &mut store::DueListener) -> Vec<uuid::Uuid> {
    let mut heard = Vec::new();
    while let Ok(id) = tokio::time::timeout(Duration::from_millis(500), listener.next()).await {
        heard.push(id.expect("a hint"));
    }
    heard
}
