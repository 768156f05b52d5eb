//! Group commit: steps committed at about the same moment share one transaction (on
//! PostgreSQL one call), each behind its own guard.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;
use store::testing::TestDb;
use store::{
    Claimed, CorrelationKey, CorrelationKeys, InboxEvent, NewEvent, Source, Status, StepCommit,
    Store, StoreError, StoreOptions, Wait,
};
use uuid::Uuid;

use crate::{step, submit_and_claim};

/// Workflows committed at once in each test: more than two lanes can carry one by one.
const AT_ONCE: usize = 24;

store::test_both_backends!(
    concurrent_commits_share_batches_each_behind_its_own_guard,
    a_step_the_database_refuses_fails_alone,
    concurrent_claims_share_batches_and_claim_each_workflow_once,
    concurrent_callbacks_share_batches_each_stored_once,
    concurrent_waits_share_batches_and_each_finds_its_callback,
    the_step_paths_writers_take_turns_in_the_process,
);

async fn claimed_many(store: &Store, prefix: &str) -> Vec<Claimed> {
    let mut claimed = Vec::new();
    for i in 0..AT_ONCE {
        claimed.push(submit_and_claim(store, &format!("{prefix}-{i}"), "w1").await);
    }
    claimed
}

/// Each step with two lifecycle events, numbered by its workflow.
fn with_events(claimed: &Claimed, i: usize) -> StepCommit {
    let mut commit = step(claimed, "done", Status::Completed, None);
    commit.events = (0..2)
        .map(|n| NewEvent {
            event_type: format!("test.event{n}"),
            payload: json!({ "workflow": i, "n": n }),
        })
        .collect();
    commit
}

/// The `i`th workflow's wait for its borrower's `kyc_verified` (user id `user-<i>`).
fn kyc_wait(claimed: &Claimed, i: usize) -> StepCommit {
    let mut commit = step(claimed, "await_kyc", Status::Waiting, None);
    commit.waits = vec![Wait::new(
        "kyc_verified",
        CorrelationKey::UserId,
        format!("user-{i}"),
    )];
    commit
}

/// The `kyc_verified` callback the `i`th workflow of [`kyc_wait`] waits for.
fn kyc_verified(i: usize) -> InboxEvent {
    InboxEvent {
        source: Source::Status,
        event_id: format!("kyc-{i}"),
        title: "kyc_verified".into(),
        keys: CorrelationKeys {
            user_id: Some(format!("user-{i}")),
            ..CorrelationKeys::default()
        },
        payload: json!({ "event_id": format!("kyc-{i}"), "user_id": format!("user-{i}") }),
    }
}

/// PostgreSQL: transactions that wrote journal rows of more than one workflow (rows
/// inserted by one transaction share its `xmin`). SQLite has no such trace: `None`.
async fn shared_transactions(store: &Store) -> Option<i64> {
    let pool = store.pg_pool()?;
    let shared = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT xmin::text FROM step_journal GROUP BY 1 \
         HAVING count(DISTINCT workflow_id) > 1) t",
    )
    .fetch_one(pool)
    .await
    .expect("count");
    Some(shared)
}

async fn concurrent_commits_share_batches_each_behind_its_own_guard(db: TestDb) {
    let store = &db.store;
    let claimed = claimed_many(store, "group").await;
    let stale = claimed[AT_ONCE / 2].workflow.id;
    let commits: Vec<StepCommit> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut commit = with_events(c, i);
            if c.workflow.id == stale {
                commit.expected_version -= 1; // its lease was lost meanwhile
            }
            commit
        })
        .collect();

    let results = join_all(commits.iter().map(|c| store.commit_step(c))).await;

    let sizes = store.commit_batch_sizes();
    let batched: u64 = sizes
        .iter()
        .filter(|(size, _)| *size > 1)
        .map(|(_, n)| n)
        .sum();
    assert!(batched > 0, "some commits went together: {sizes:?}");
    assert_eq!(
        sizes.iter().map(|(size, n)| *size as u64 * n).sum::<u64>(),
        AT_ONCE as u64,
        "each commit sent once: {sizes:?}"
    );
    if let Some(shared) = shared_transactions(store).await {
        assert!(shared > 0, "one transaction, several workflows");
    }

    for (commit, result) in commits.iter().zip(&results) {
        let id = commit.workflow_id;
        if id == stale {
            assert!(matches!(result, Err(StoreError::LeaseLost(got)) if *got == id));
            assert!(store.journal(id).await.expect("journal").is_empty());
            let row = store.get(id).await.expect("get").expect("exists");
            assert_eq!(row.status, Status::Running, "untouched");
            assert_eq!(row.lease_owner.as_deref(), Some("w1"));
        } else {
            let committed = result.as_ref().expect("committed");
            assert_eq!(committed.seq, 1);
            let row = store.get(id).await.expect("get").expect("exists");
            assert_eq!(row.status, Status::Completed);
            assert_eq!(row.version, committed.version);
        }
    }

    // The events: two per committed step, in step order, tied to its journal row, with the
    // workflow's kind and business key, ids in commit order.
    let feed = store.events_after(0, 500).await.expect("events");
    assert_eq!(feed.len(), 2 * (AT_ONCE - 1));
    let mut seen = BTreeSet::new();
    for pair in feed.chunks(2) {
        let id = pair[0].workflow_id.expect("a step's");
        assert_ne!(id, stale);
        assert!(seen.insert(id), "one step's events are together");
        assert_eq!(pair[1].workflow_id, Some(id));
        assert_eq!(pair[0].event_type, "test.event0");
        assert_eq!(pair[1].event_type, "test.event1");
        assert_eq!(pair[0].journal_seq, Some(1));
        assert_eq!(pair[0].kind.as_deref(), Some("onboard-borrower"));
        let row = store.get(id).await.expect("get").expect("exists");
        assert_eq!(
            pair[0].business_key.as_deref(),
            Some(row.business_key.as_str())
        );
        assert_eq!(pair[1].payload["n"], 1);
    }
}

/// One step of a batch that the database refuses (not a lost lease: a constraint, say)
/// fails alone; the batch's other steps commit. On PostgreSQL the batch's call fails as a
/// whole and its steps are sent again one by one; on SQLite each step of a batch is written
/// inside a savepoint, rolled back to when it fails.
async fn a_step_the_database_refuses_fails_alone(db: TestDb) {
    let store = &db.store;
    let claimed = claimed_many(store, "refused").await;
    let refused: Uuid = claimed[AT_ONCE / 2].workflow.id;
    // A fault the database raises for one workflow's journal row.
    match store.backend() {
        store::Backend::Postgres(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.workflow_id = '{refused}' THEN RAISE EXCEPTION 'refused by the test'; \
                 END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_one BEFORE INSERT ON step_journal \
                 FOR EACH ROW EXECUTE FUNCTION refuse_one();"
        )))
        .execute(pool)
        .await
        .map(drop),
        store::Backend::Sqlite(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON step_journal \
                 WHEN NEW.workflow_id = '{refused}' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        )))
        .execute(pool)
        .await
        .map(drop),
    }
    .expect("trigger");

    let commits: Vec<StepCommit> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| with_events(c, i))
        .collect();
    let results = join_all(commits.iter().map(|c| store.commit_step(c))).await;
    let sizes = store.commit_batch_sizes();
    let sent: u64 = sizes.iter().map(|(size, n)| *size as u64 * n).sum();
    assert!(sizes.iter().any(|(size, _)| *size > 1), "{sizes:?}");
    if store.pg_pool().is_some() {
        assert!(
            sent > AT_ONCE as u64,
            "a batch failed and its commits went again alone: {sizes:?}"
        );
    } else {
        assert_eq!(sent, AT_ONCE as u64, "each sent once: {sizes:?}");
    }

    for (commit, result) in commits.iter().zip(&results) {
        let id = commit.workflow_id;
        if id == refused {
            let error = result.as_ref().expect_err("refused");
            assert!(
                matches!(error, StoreError::Database(_)),
                "a database error: {error}"
            );
            let row = store.get(id).await.expect("get").expect("exists");
            assert_eq!(row.status, Status::Running, "nothing of it written");
            assert_eq!(row.version, claimed[AT_ONCE / 2].workflow.version);
        } else {
            result.as_ref().expect("the others commit");
            assert_eq!(store.journal(id).await.expect("journal").len(), 1);
        }
    }
    let events = store.events_after(0, 500).await.expect("events");
    assert_eq!(events.len(), 2 * (AT_ONCE - 1));
    assert!(events.iter().all(|e| e.workflow_id != Some(refused)));
}

/// Claims made at once go together; each due workflow is claimed once, by the first claim
/// asking for it (a second wake-up of it finds it held), and what is not due stays unclaimed.
async fn concurrent_claims_share_batches_and_claim_each_workflow_once(db: TestDb) {
    let store = &db.store;
    let mut due = Vec::new();
    for i in 0..AT_ONCE {
        let submitted = store
            .submit(&crate::new_workflow(&format!("claim-{i}")))
            .await
            .expect("submit");
        due.push(submitted.id);
    }
    // One held by another worker: not free.
    let held = due[0];
    store
        .claim(held, "other", crate::LEASE)
        .await
        .expect("claim")
        .expect("due");
    let unknown = Uuid::new_v4();
    // Every workflow asked for twice, by two workers, and one that does not exist.
    let asks: Vec<(Uuid, &str)> = due
        .iter()
        .flat_map(|id| [(*id, "w1"), (*id, "w2")])
        .chain([(unknown, "w1")])
        .collect();

    let results = join_all(
        asks.iter()
            .map(|(id, worker)| store.claim(*id, worker, crate::LEASE)),
    )
    .await;

    let sizes = store.claim_batch_sizes();
    assert!(sizes.iter().any(|(size, _)| *size > 1), "{sizes:?}");
    for id in &due {
        let won: Vec<&str> = asks
            .iter()
            .zip(&results)
            .filter(|((asked, _), _)| asked == id)
            .filter_map(|((_, worker), result)| {
                result.as_ref().expect("no error").as_ref().map(|c| {
                    assert_eq!(c.workflow.id, *id);
                    assert_eq!(c.workflow.lease_owner.as_deref(), Some(*worker));
                    *worker
                })
            })
            .collect();
        if *id == held {
            assert!(won.is_empty(), "a held workflow is not claimed again");
        } else {
            assert_eq!(won.len(), 1, "claimed once: {won:?}");
            let row = store.get(*id).await.expect("get").expect("exists");
            assert_eq!(row.lease_owner.as_deref(), Some(won[0]));
            assert_eq!(row.status, Status::Running);
        }
    }
    assert!(
        results
            .last()
            .expect("the unknown")
            .as_ref()
            .expect("ok")
            .is_none()
    );
}

/// Callbacks handed in at once are stored together; each is stored once (a duplicate in the
/// same batch is told so), and each wakes the workflow waiting for it.
async fn concurrent_callbacks_share_batches_each_stored_once(db: TestDb) {
    let store = &db.store;
    let claimed = claimed_many(store, "callback").await;
    let mut waiting = Vec::new();
    for (i, c) in claimed.iter().enumerate() {
        store.commit_step(&kyc_wait(c, i)).await.expect("commit");
        waiting.push(c.workflow.id);
    }
    // Each callback twice (Finfra retried it), all at once.
    let events: Vec<InboxEvent> = (0..AT_ONCE)
        .flat_map(|i| [kyc_verified(i), kyc_verified(i)])
        .collect();

    let results = join_all(events.iter().map(|e| store.record_callback(e))).await;

    let sizes = store.callback_batch_sizes();
    assert!(sizes.iter().any(|(size, _)| *size > 1), "{sizes:?}");
    for (i, pair) in results.chunks(2).enumerate() {
        // The two copies may go in two batches at once: either may be the one stored.
        let (a, b) = (
            pair[0].as_ref().expect("stored"),
            pair[1].as_ref().expect("stored"),
        );
        let (first, again) = if a.duplicate { (b, a) } else { (a, b) };
        assert!(!first.duplicate, "{i}: one copy stored");
        assert!(again.duplicate, "{i}: the other told it is a duplicate");
        assert_eq!(again.inbox_id, first.inbox_id);
        assert_eq!(first.woke, Some(waiting[i]), "{i} woke its workflow");
        assert_eq!(again.woke, None);
    }
    assert_eq!(
        crate::count(store, "SELECT count(*) FROM callback_inbox").await,
        AT_ONCE as i64
    );
    for id in &waiting {
        let pending = store.pending_events(*id).await.expect("pending");
        assert_eq!(pending.len(), 1, "matched to its workflow");
    }
}

/// Waits committed at once go together, each with its correlation-key lock (on PostgreSQL a
/// batch with several keyed commits locks all their keys first, in order): a wait whose
/// callback was stored before it finds it at its commit, due at once; the others are woken
/// by their callbacks afterwards.
async fn concurrent_waits_share_batches_and_each_finds_its_callback(db: TestDb) {
    let store = &db.store;
    let claimed = claimed_many(store, "wait").await;
    let early = |i: usize| i.is_multiple_of(2);
    let mut early_ids = Vec::new();
    for i in (0..AT_ONCE).filter(|i| early(*i)) {
        let stored = store
            .record_callback(&kyc_verified(i))
            .await
            .expect("stored");
        assert_eq!(stored.woke, None, "nobody waits yet");
        early_ids.push(stored.inbox_id);
    }
    let commits: Vec<StepCommit> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| kyc_wait(c, i))
        .collect();

    let results = join_all(commits.iter().map(|c| store.commit_step(c))).await;

    let sizes = store.commit_batch_sizes();
    assert!(sizes.iter().any(|(size, _)| *size > 1), "{sizes:?}");
    let mut early_found = early_ids.iter();
    for (i, result) in results.iter().enumerate() {
        let committed = result.as_ref().expect("committed");
        if early(i) {
            let id = early_found.next().expect("one early callback each");
            assert_eq!(
                committed.pending_events,
                vec![*id],
                "{i} found its callback"
            );
        } else {
            assert!(committed.pending_events.is_empty(), "{i}");
        }
    }
    for i in (0..AT_ONCE).filter(|i| !early(*i)) {
        let stored = store
            .record_callback(&kyc_verified(i))
            .await
            .expect("stored");
        assert_eq!(stored.woke, Some(claimed[i].workflow.id), "{i} woken");
    }
    for c in &claimed {
        let pending = store.pending_events(c.workflow.id).await.expect("pending");
        assert_eq!(pending.len(), 1, "each matched to its own callback");
    }
}

/// SQLite: the step path's writers of one store (the batches of step commits, claims and
/// callbacks) take turns in the process, first come, first served, instead of meeting on
/// SQLite's write lock, whose wait polls with growing sleeps. With no wait for that lock at
/// all (`busy_timeout` zero: a writer that found it taken would fail with "database is
/// locked"), waits, their callbacks and the due scan's claims, all at once, all succeed, and
/// each workflow finds its own callback. (PostgreSQL has no such lock: the same calls run.)
async fn the_step_paths_writers_take_turns_in_the_process(db: TestDb) {
    let store = Store::connect_with(
        &db.url,
        &StoreOptions {
            busy_timeout: std::time::Duration::ZERO,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("a store that never waits for SQLite's lock");
    let claimed = claimed_many(&store, "turn").await;
    let commits: Vec<StepCommit> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| kyc_wait(c, i))
        .collect();
    let callbacks: Vec<InboxEvent> = (0..AT_ONCE).map(kyc_verified).collect();

    let (committed, stored, scans) = tokio::join!(
        join_all(commits.iter().map(|c| store.commit_step(c))),
        join_all(callbacks.iter().map(|c| store.record_callback(c))),
        join_all((0..AT_ONCE).map(|_| store.claim_due("w2", 4, crate::LEASE))),
    );

    for (i, result) in committed.iter().enumerate() {
        result.as_ref().unwrap_or_else(|e| panic!("wait {i}: {e}"));
    }
    for (i, result) in stored.iter().enumerate() {
        result
            .as_ref()
            .unwrap_or_else(|e| panic!("callback {i}: {e}"));
    }
    for result in &scans {
        result.as_ref().expect("a due scan");
    }
    for c in &claimed {
        let pending = store.pending_events(c.workflow.id).await.expect("pending");
        assert_eq!(pending.len(), 1, "each matched to its own callback");
    }
}
