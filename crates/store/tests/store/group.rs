//! Group commit: steps committed at about the same moment share one transaction (on
//! PostgreSQL one call), each behind its own guard.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};
use store::testing::TestDb;
use store::{
    Announcement, Claimed, CorrelationKey, CorrelationKeys, InboxEvent, NewEvent, Source, Status,
    StepCommit, Store, StoreError, StoreOptions, Wait,
};
use uuid::Uuid;

use crate::{LEASE, step, submit_and_claim};

/// Workflows committed at once in each test: more than a lane can carry one by one.
const AT_ONCE: usize = 24;

store::test_both_backends!(
    concurrent_commits_share_batches_each_behind_its_own_guard,
    commits_made_in_one_moment_go_in_one_batch,
    a_step_the_database_refuses_fails_alone,
    concurrent_claims_share_batches_and_claim_each_workflow_once,
    concurrent_callbacks_share_batches_each_stored_once,
    concurrent_waits_share_batches_and_each_finds_its_callback,
    the_step_paths_writers_take_turns_in_the_process,
    a_step_commits_future_holds_its_rare_branch_boxed,
);

/// A step commit's future is small: the branch of a reconciliation step (its observations
/// written in the step's transaction, alone) is boxed, so the future every step awaits, and
/// that a step copies whole as it moves it, holds a pointer to that branch rather than its
/// state (13,528 bytes before in a release build, 656 now).
async fn a_step_commits_future_holds_its_rare_branch_boxed(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "small", "w1").await;
    let commit = step(&claimed, "done", Status::Completed, None);
    let committing = store.commit_step(&commit);
    let size = size_of_val(&committing);
    assert!(size <= 2_048, "a step commit's future is {size} bytes");
    committing.await.expect("committed");
}

async fn claimed_many(store: &Store, prefix: &str) -> Vec<Claimed> {
    let mut claimed = Vec::new();
    for i in 0..AT_ONCE {
        claimed.push(submit_and_claim(store, &format!("{prefix}-{i}"), "w1").await);
    }
    claimed
}

/// A step of each of `claimed`, with two lifecycle events ([`with_events`]).
fn each_with_events(claimed: &[Claimed]) -> Vec<StepCommit> {
    claimed
        .iter()
        .enumerate()
        .map(|(i, c)| with_events(c, i))
        .collect()
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

/// Commits made in one moment (here by one task, one after another without a wait between
/// them) go in one batch: the first to take the lane lets the ready tasks go first, and
/// those join its batch rather than wait for the next.
async fn commits_made_in_one_moment_go_in_one_batch(db: TestDb) {
    let store = &db.store;
    let commits = each_with_events(&claimed_many(store, "moment").await);

    let results = join_all(commits.iter().map(|c| store.commit_step(c))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(store.commit_batch_sizes(), vec![(AT_ONCE, 1)]);
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

    let commits = each_with_events(&claimed);
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

/// On PostgreSQL a batch of step commits is written statement by statement for the whole
/// batch (migration 0027), without a call of `finflow_commit_step` per step; each step's
/// answer, and what the batch leaves stored, are those of the same batch written step by step
/// (`finflow_commit_steps_in_turn`, the loop of 0022). Two twin batches, one each way, of
/// every kind of step a batch can carry: a step that goes on, one whose lease was lost, an
/// unknown workflow, a wait kept for its holder by a callback already there, the same wait
/// released due now, an end consuming its callback, a wait with nothing there yet, an end
/// announced to a workflow waiting for it, a new wait for an end announced before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_written_statement_by_statement_answers_as_step_by_step() {
    store::testing::run(
        store::testing::TestBackend::Postgres,
        true,
        batch_statement_by_statement,
    )
    .await;
}

/// A batch naming one workflow twice is written step by step: its second step finds the
/// version the first one moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_naming_a_workflow_twice_is_written_step_by_step() {
    store::testing::run(
        store::testing::TestBackend::Postgres,
        true,
        |db| async move {
            let store = &db.store;
            let claimed = submit_and_claim(store, "twice", "w1").await;
            let mut first = step(&claimed, "next", Status::Running, Some(Utc::now()));
            first.release_lease = false;
            let second = step(&claimed, "done", Status::Completed, None);
            let batch = json!([
                store::testing::commit_params(store, &first),
                store::testing::commit_params(store, &second),
            ]);
            let (rows, step_calls) = call_batch(store, false, &batch).await;
            assert_eq!(step_calls, 2, "one call of finflow_commit_step a step");
            let results: Vec<&str> = rows.iter().map(|r| r.result.as_str()).collect();
            assert_eq!(results, ["ok", "lease_lost"]);
            let row = store
                .get(claimed.workflow.id)
                .await
                .expect("get")
                .expect("exists");
            assert_eq!((row.state.as_str(), row.status), ("next", Status::Running));
        },
    )
    .await;
}

/// On PostgreSQL a process has one batch of step commits in the database at a time: the
/// commits made while one waits there (here for a row the test holds) go together in the
/// next, once it has answered, not beside it. And that next batch leaves as the first
/// answers, sent by the first batch's own task: here the commits that wait in it are
/// futures the test polls once, to queue them, and not again until they are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_batch_of_commits_is_in_flight_at_a_time() {
    store::testing::run(
        store::testing::TestBackend::Postgres,
        true,
        |db| async move {
            let store = &db.store;
            let pool = store.pg_pool().expect("a PostgreSQL store");
            let claimed = claimed_many(store, "in-flight").await;
            let mut commits = each_with_events(&claimed).into_iter();
            let in_database = || async {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND state = 'active' AND query LIKE '%FROM finflow_commit_steps(%' \
                     AND pid <> pg_backend_pid()",
                )
                .fetch_one(pool)
                .await
                .expect("activity")
            };

            let mut holder = pool.begin().await.expect("begin");
            sqlx::query("SELECT 1 FROM workflows WHERE id = $1 FOR UPDATE")
                .bind(claimed[0].workflow.id)
                .execute(&mut *holder)
                .await
                .expect("hold the first row");
            let first = commits.next().expect("first");
            let begun = std::time::Instant::now();
            let held = tokio::spawn({
                let store = store.clone();
                async move { store.commit_step(&first).await }
            });
            for _ in 0..1000 {
                if in_database().await > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(
                in_database().await,
                1,
                "the first batch waits for the held row"
            );
            let waiting = std::time::Instant::now();
            let rest: Vec<StepCommit> = commits.collect();
            let mut queued: Vec<_> = rest
                .iter()
                .map(|commit| Box::pin(store.commit_step(commit)))
                .collect();
            for commit in &mut queued {
                assert!(polled_once(commit).await.is_pending(), "waits for the lane");
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert_eq!(in_database().await, 1, "one batch in the database");
            let waited = waiting.elapsed();
            holder.commit().await.expect("let go");
            assert!(held.await.expect("task").is_ok());

            // Written without their own futures running.
            let ids: Vec<Uuid> = rest.iter().map(|c| c.workflow_id).collect();
            let mut journaled = 0;
            for _ in 0..1000 {
                journaled = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM step_journal \
                     WHERE workflow_id = ANY($1) AND action = 'test_step'",
                )
                .bind(&ids)
                .fetch_one(pool)
                .await
                .expect("journal");
                if journaled == ids.len() as i64 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(
                journaled,
                ids.len() as i64,
                "the next batch left at the answer"
            );
            for commit in queued {
                assert!(commit.await.is_ok());
            }
            assert_eq!(store.commit_batch_sizes(), vec![(1, 1), (AT_ONCE - 1, 1)]);
            // The lane was busy while the first batch waited in the database, and no longer
            // than the test ran.
            let lanes = store.lanes_busy();
            let names: Vec<&str> = lanes.iter().map(|(lane, _)| *lane).collect();
            assert_eq!(names, ["commit", "claim", "callback"]);
            let busy = lanes[0].1;
            assert!(
                busy >= waited && busy <= begun.elapsed(),
                "busy {busy:?}, waited {waited:?}, ran {:?}",
                begun.elapsed()
            );
        },
    )
    .await;
}

/// `future` polled once, in this task.
async fn polled_once<F: Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx)))
        .await
}

/// One answer of a batch, as `finflow_commit_steps` returns it.
#[derive(Debug, sqlx::FromRow)]
struct BatchRow {
    result: String,
    new_version: Option<i64>,
    journal_seq: Option<i32>,
    stored_next_run_at: Option<DateTime<Utc>>,
    pending_events: Option<Vec<i64>>,
    kept_events: Option<serde_json::Value>,
}

/// Calls `finflow_commit_steps` (or, `in_turn`, `finflow_commit_steps_in_turn` with the batch
/// parsed as the first does) with `batch` in a transaction of its own: the answers, and how
/// many times `finflow_commit_step` ran.
async fn call_batch(store: &Store, in_turn: bool, batch: &Value) -> (Vec<BatchRow>, i64) {
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL track_functions = 'pl'")
        .execute(&mut *tx)
        .await
        .expect("track functions");
    let sql = if in_turn {
        "SELECT result, new_version, journal_seq, stored_next_run_at, pending_events, \
         kept_events FROM finflow_commit_steps_in_turn(ARRAY(SELECT s FROM \
         jsonb_populate_recordset(NULL::finflow_step_params, $1::jsonb) AS s)) ORDER BY idx"
    } else {
        "SELECT result, new_version, journal_seq, stored_next_run_at, pending_events, \
         kept_events FROM finflow_commit_steps($1::jsonb) ORDER BY idx"
    };
    let rows: Vec<BatchRow> = sqlx::query_as(sql)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await
        .expect("the batch is written");
    let calls: i64 = sqlx::query_scalar(
        "SELECT coalesce(pg_stat_get_xact_function_calls('finflow_commit_step'::regproc), 0)",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("function calls");
    tx.commit().await.expect("commit");
    (rows, calls)
}

/// A callback `title` about `key` = `value`.
fn callback(event_id: &str, title: &str, keys: CorrelationKeys) -> InboxEvent {
    InboxEvent {
        source: Source::Status,
        event_id: event_id.into(),
        title: title.into(),
        keys,
        payload: json!({ "event_id": event_id }),
    }
}

/// The twin `twin`'s batch (one step of each kind, in the order of the test's comment),
/// with the workflows it names and the callbacks it stored first.
async fn twin_batch(store: &Store, twin: &str, later: DateTime<Utc>) -> (Value, Vec<Uuid>) {
    let claim = |role: &str| {
        let key = format!("{twin}-{role}");
        async move { submit_and_claim(store, &key, "w1").await }
    };
    let on = claim("on").await;
    let mut goes_on = step(&on, "next", Status::Running, Some(Utc::now()));
    goes_on.release_lease = false;
    goes_on.events = vec![NewEvent {
        event_type: "test.went_on".into(),
        payload: json!({ "twin": twin }),
    }];

    let lost = claim("lost").await;
    let mut lease_lost = step(&lost, "done", Status::Completed, None);
    lease_lost.expected_version -= 1;

    let unknown_claimed = claim("unknown").await;
    let mut unknown = step(&unknown_claimed, "done", Status::Completed, None);
    unknown.workflow_id = Uuid::new_v4();

    let mut parked = Vec::new();
    for (role, hold) in [("kept", Some(LEASE)), ("due", None)] {
        let user = format!("{twin}-{role}-user");
        store
            .record_callback(&callback(
                &format!("{twin}-{role}-verified"),
                "user_verified",
                CorrelationKeys {
                    user_id: Some(user.clone()),
                    ..CorrelationKeys::default()
                },
            ))
            .await
            .expect("record");
        let claimed = claim(role).await;
        let mut wait = step(&claimed, "await_verified", Status::Waiting, Some(later));
        wait.waits = vec![Wait::new("user_verified", CorrelationKey::UserId, user)];
        wait.hold_for_events = hold;
        parked.push((claimed, wait));
    }

    let ends = claim("ends").await;
    let kyc = format!("{twin}-kyc");
    let mut first = step(&ends, "await_kyc", Status::Waiting, Some(later));
    first.waits = vec![Wait::new(
        "kyc_verified",
        CorrelationKey::KycId,
        kyc.clone(),
    )];
    store.commit_step(&first).await.expect("the wait");
    store
        .record_callback(&callback(
            &format!("{twin}-kyc-verified"),
            "kyc_verified",
            CorrelationKeys {
                kyc_id: Some(kyc),
                ..CorrelationKeys::default()
            },
        ))
        .await
        .expect("record");
    let ends = store
        .claim(ends.workflow.id, "w1", LEASE)
        .await
        .expect("claim")
        .expect("woken");
    assert_eq!(ends.events.len(), 1, "the callback it ends on");
    let mut end = step(&ends, "done", Status::Completed, None);
    end.processed_events = vec![ends.events[0].id];

    let waits = claim("waits").await;
    let mut nothing_yet = step(&waits, "await_created", Status::Waiting, Some(later));
    nothing_yet.waits = vec![Wait::new(
        "user_created",
        CorrelationKey::IdentityNumber,
        format!("{twin}-nik"),
    )];

    // An end announced to a workflow waiting for it outside the batch, and a new wait for an
    // end announced before the batch.
    let announcement = |of: &str| Announcement {
        title: "workflow_finished".into(),
        external_id: format!("onboard-borrower/{twin}-{of}"),
        payload: json!({ "of": of }),
    };
    let waiter = claim("waiter").await;
    let mut waits_for_end = step(&waiter, "await_borrower", Status::Waiting, Some(later));
    waits_for_end.waits = vec![Wait::new(
        "workflow_finished",
        CorrelationKey::ExternalId,
        announcement("announces").external_id,
    )];
    store
        .commit_step(&waits_for_end)
        .await
        .expect("the waiter's wait");
    let announces = claim("announces").await;
    let mut announced_end = step(&announces, "done", Status::Completed, None);
    announced_end.announce = Some(announcement("announces"));
    let ended_before = claim("ended-before").await;
    let mut earlier_end = step(&ended_before, "done", Status::Completed, None);
    earlier_end.announce = Some(announcement("ended-before"));
    store
        .commit_step(&earlier_end)
        .await
        .expect("an earlier end");
    let late = claim("late").await;
    let mut late_wait = step(&late, "await_borrower", Status::Waiting, Some(later));
    late_wait.waits = vec![Wait::new(
        "workflow_finished",
        CorrelationKey::ExternalId,
        announcement("ended-before").external_id,
    )];

    let commits = [
        goes_on,
        lease_lost,
        unknown,
        parked[0].1.clone(),
        parked[1].1.clone(),
        end,
        nothing_yet,
        announced_end,
        late_wait,
    ];
    let ids = commits
        .iter()
        .map(|c| c.workflow_id)
        .chain([waiter.workflow.id])
        .collect();
    let batch = commits
        .iter()
        .map(|c| store::testing::commit_params(store, c))
        .collect();
    (Value::Array(batch), ids)
}

/// A time as the comparison sees it: none, about now, or exactly `later`.
fn when(at: Option<DateTime<Utc>>, later: DateTime<Utc>) -> &'static str {
    match at {
        None => "none",
        Some(at) if at == later => "later",
        Some(at) if crate::is_about_now(at, std::time::Duration::from_secs(10)) => "now",
        Some(_) => "other",
    }
}

/// What one twin's workflow looks like after its batch, without ids and times.
async fn stored(store: &Store, id: Uuid, later: DateTime<Utc>) -> Value {
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let Some(row) = store.get(id).await.expect("get") else {
        return json!(null);
    };
    let waits: Vec<(String, String)> = sqlx::query_as(
        "SELECT e, key_name FROM workflow_waits, unnest(events) AS e WHERE workflow_id = $1 \
         ORDER BY 1, 2",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("waits");
    let inbox: Vec<(String, bool)> = sqlx::query_as(
        "SELECT title, processed_at IS NOT NULL FROM callback_inbox \
         WHERE matched_workflow_id = $1 ORDER BY 1",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("inbox");
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type || '/' || journal_seq FROM events WHERE workflow_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("events");
    json!({
        "state": row.state,
        "status": row.status.as_str(),
        "version": row.version,
        "lease_owner": row.lease_owner,
        "lease_until": row.lease_until.is_some(),
        "next_run_at": when(row.next_run_at, later),
        "finished": row.finished_at.is_some(),
        "journal": store.journal(id).await.expect("journal").len(),
        "waits": waits,
        "inbox": inbox,
        "events": events,
    })
}

async fn batch_statement_by_statement(db: TestDb) {
    let store = &db.store;
    let later = Utc::now() + TimeDelta::hours(1);
    let later = DateTime::from_timestamp_micros(later.timestamp_micros()).expect("a time");
    let (together, together_ids) = twin_batch(store, "together", later).await;
    let (in_turn, in_turn_ids) = twin_batch(store, "in-turn", later).await;

    let (together_rows, calls) = call_batch(store, false, &together).await;
    assert_eq!(calls, 0, "no step went through finflow_commit_step");
    let (in_turn_rows, calls) = call_batch(store, true, &in_turn).await;
    assert_eq!(calls, 9, "step by step");

    let answer = |row: &BatchRow| {
        json!({
            "result": row.result,
            "version": row.new_version,
            "seq": row.journal_seq,
            "next_run_at": when(row.stored_next_run_at, later),
            "pending": row.pending_events.as_ref().map(Vec::len),
            "kept": row.kept_events.as_ref().map(|k| k.as_array().map(|a| {
                a.iter().map(|e| e["title"].clone()).collect::<Vec<_>>()
            })),
        })
    };
    let together_answers: Vec<Value> = together_rows.iter().map(answer).collect();
    let in_turn_answers: Vec<Value> = in_turn_rows.iter().map(answer).collect();
    assert_eq!(together_answers, in_turn_answers);
    let results: Vec<&str> = together_rows.iter().map(|r| r.result.as_str()).collect();
    assert_eq!(
        results,
        [
            "ok",
            "lease_lost",
            "not_found",
            "ok",
            "ok",
            "ok",
            "ok",
            "ok",
            "ok"
        ]
    );
    assert_eq!(together_answers[8]["pending"], 1, "the earlier end, found");
    assert_eq!(
        together_answers[3]["kept"],
        json!(["user_verified"]),
        "kept"
    );
    assert_eq!(
        together_answers[4]["next_run_at"], "now",
        "released due now"
    );
    assert_eq!(together_answers[6]["next_run_at"], "later", "parked");

    for (a, b) in together_ids.iter().zip(&in_turn_ids) {
        assert_eq!(
            stored(store, *a, later).await,
            stored(store, *b, later).await,
            "the twins of {a} and {b}"
        );
    }
    let went_on = stored(store, together_ids[0], later).await;
    assert_eq!(went_on["events"], json!(["test.went_on/1"]));
    let ended = stored(store, together_ids[5], later).await;
    assert_eq!(ended["inbox"], json!([["kyc_verified", true]]), "consumed");
    let waiter = stored(store, together_ids[9], later).await;
    assert_eq!(
        waiter["next_run_at"], "now",
        "woken by the end it waited for"
    );
    assert_eq!(waiter["inbox"], json!([["workflow_finished", false]]));
}

/// On PostgreSQL a batch of callbacks is stored statement by statement for the whole batch
/// (migration 0028; the function it called per callback is gone), and answers each callback
/// as one by one: two copies of one callback in the batch (the first stored, the second told
/// it is a duplicate of it), another callback for the same waiting workflow (stored, matched
/// to it too), a copy of a callback stored before the batch (a duplicate of that one), a
/// callback nobody waits for (stored unmatched), a callback for a workflow that has finished,
/// whose wait row is still there (stored unmatched). The waiting workflow is due once, with
/// both its callbacks pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_of_callbacks_is_stored_statement_by_statement() {
    store::testing::run(
        store::testing::TestBackend::Postgres,
        true,
        |db| async move {
            let store = &db.store;
            let claimed = claimed_many(store, "callbacks").await;
            let (waiting, finished) = (&claimed[0], &claimed[1]);
            store
                .commit_step(&kyc_wait(waiting, 0))
                .await
                .expect("the wait");
            store
                .commit_step(&step(finished, "done", Status::Completed, None))
                .await
                .expect("the end");
            let pool = store.pg_pool().expect("a PostgreSQL store");
            // A wait row left behind for the finished workflow: the match passes it over.
            sqlx::query(
                "INSERT INTO workflow_waits (workflow_id, events, key_name, key_value) \
                 VALUES ($1, '{kyc_verified}', 'user_id', 'user-1')",
            )
            .bind(finished.workflow.id)
            .execute(pool)
            .await
            .expect("a wait of the finished workflow");
            let before = store
                .record_callback(&kyc_verified(7))
                .await
                .expect("stored before the batch");
            let params = |event_id: &str, user: &str| {
                json!({
                    "lock_keys": [], "source": "status", "event_id": event_id,
                    "title": "kyc_verified", "user_id": user, "identity_number": null,
                    "kyc_id": null, "loan_unique_id": null, "external_id": null,
                    "payload": { "event_id": event_id },
                })
            };
            let batch = json!([
                params("kyc-0", "user-0"),
                params("kyc-0", "user-0"),
                params("kyc-0-again", "user-0"),
                params("kyc-7", "user-7"),
                params("nobody", "user-nobody"),
                params("kyc-1", "user-1"),
            ]);

            // The server's count of updates "in the current transaction" also holds this
            // session's earlier transactions until its statistics are flushed (at most once a
            // second): the batch's are the difference.
            let updated = "SELECT pg_stat_get_xact_tuples_updated('workflows'::regclass)";
            let mut tx = pool.begin().await.expect("begin");
            let updated_before: i64 = sqlx::query_scalar(updated)
                .fetch_one(&mut *tx)
                .await
                .expect("updates before");
            let rows: Vec<(i32, i64, bool, Option<Uuid>)> = sqlx::query_as(
                "SELECT idx, inbox_id, duplicate, woke FROM finflow_record_callbacks($1::jsonb) \
                 ORDER BY idx",
            )
            .bind(&batch)
            .fetch_all(&mut *tx)
            .await
            .expect("the batch is stored");
            let updates = sqlx::query_scalar::<_, i64>(updated)
                .fetch_one(&mut *tx)
                .await
                .expect("updates")
                - updated_before;
            tx.commit().await.expect("commit");

            let per_callback: Option<String> =
                sqlx::query_scalar("SELECT to_regproc('finflow_record_callback')::text")
                    .fetch_one(pool)
                    .await
                    .expect("the function per callback");
            assert_eq!(per_callback, None, "the function per callback is gone");
            assert_eq!(updates, 1, "the waiting workflow made due once");
            let w = waiting.workflow.id;
            let answers: Vec<(i32, bool, Option<Uuid>)> =
                rows.iter().map(|r| (r.0, r.2, r.3)).collect();
            assert_eq!(
                answers,
                [
                    (0, false, Some(w)),
                    (1, true, None),
                    (2, false, Some(w)),
                    (3, true, None),
                    (4, false, None),
                    (5, false, None),
                ]
            );
            assert_eq!(rows[1].1, rows[0].1, "the copy names the stored one");
            assert_eq!(rows[3].1, before.inbox_id, "the copy names the one before");
            let ids: BTreeSet<i64> = rows.iter().map(|r| r.1).collect();
            assert_eq!(ids.len(), 5, "five callbacks stored: {rows:?}");

            let pending: Vec<i64> = store
                .pending_events(w)
                .await
                .expect("pending")
                .iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(pending, [rows[0].1, rows[2].1]);
            let row = store.get(w).await.expect("get").expect("exists");
            assert!(row.next_run_at.is_some_and(|at| at <= Utc::now()), "due");
            let unmatched: Vec<(String, Option<Uuid>)> = sqlx::query_as(
                "SELECT event_id, matched_workflow_id FROM callback_inbox \
                 WHERE event_id IN ('nobody', 'kyc-1') ORDER BY event_id",
            )
            .fetch_all(pool)
            .await
            .expect("inbox");
            assert_eq!(
                unmatched,
                [("kyc-1".to_owned(), None), ("nobody".to_owned(), None)]
            );
        },
    )
    .await;
}
