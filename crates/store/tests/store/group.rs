//! Group commit: steps committed at about the same moment share one transaction (on
//! PostgreSQL one call), each behind its own guard.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;
use store::testing::TestDb;
use store::{Claimed, NewEvent, Status, StepCommit, Store, StoreError};
use uuid::Uuid;

use crate::{step, submit_and_claim};

/// Workflows committed at once in each test: more than two lanes can carry one by one.
const AT_ONCE: usize = 24;

store::test_both_backends!(
    concurrent_commits_share_batches_each_behind_its_own_guard,
    a_step_the_database_refuses_fails_alone,
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
