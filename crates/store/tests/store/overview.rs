//! The overview's figures, read from the store as the console shows them.

use chrono::{TimeDelta, Utc};
use store::testing::TestDb;
use store::{JournalEntry, Outcome, Status, Store};

use crate::{LEASE, step, submit_and_claim};

store::test_both_backends!(the_funnel_counts_the_loans_that_reached_its_steps);

/// A workflow whose journal has a row for each of `steps`, in turn (each its own claim and
/// commit).
async fn journaled(store: &Store, key: &str, steps: &[&str]) {
    let mut claimed = submit_and_claim(store, key, "w1").await;
    for (i, name) in steps.iter().enumerate() {
        if i > 0 {
            claimed = store
                .claim(claimed.workflow.id, "w1", LEASE)
                .await
                .expect("claim")
                .expect("due now");
        }
        let mut commit = step(&claimed, name, Status::Sleeping, Some(Utc::now()));
        commit.journal = JournalEntry::new(*name, *name, Outcome::Ok);
        store.commit_step(&commit).await.expect("commit");
    }
}

/// The funnel counts each workflow once for each step it names that the workflow reached (a
/// step journaled twice, as a retry is, counts once), only since the time asked, and nothing
/// for the steps it does not name. On PostgreSQL its counts by step can read the index of
/// the steps it counts (migration 0029: the index holds those steps' rows only, and the
/// funnel's conditions must imply its own for the planner to take it).
async fn the_funnel_counts_the_loans_that_reached_its_steps(db: TestDb) {
    let store = &db.store;
    let since = Utc::now() - TimeDelta::seconds(5);
    journaled(store, "funnel-signed", &["disburse_loan", "disburse_loan"]).await;
    journaled(
        store,
        "funnel-disbursed",
        &["disburse_loan", "request_virtual_account"],
    )
    .await;
    journaled(
        store,
        "funnel-neither",
        &["create_borrower", "approve_borrower"],
    )
    .await;

    let funnel = store.funnel(since).await.expect("funnel");
    assert_eq!(funnel.submitted, 3);
    assert_eq!((funnel.signed, funnel.disbursed), (2, 1));
    let later = store
        .funnel(Utc::now() + TimeDelta::seconds(5))
        .await
        .expect("funnel");
    assert_eq!(
        (later.submitted, later.signed, later.disbursed),
        (0, 0, 0),
        "nothing since a time after every row"
    );

    if let store::Backend::Postgres(pool) = store.backend() {
        for counted in ["disburse_loan", "request_virtual_account"] {
            let sql = format!(
                "SELECT count(DISTINCT workflow_id) FROM step_journal \
                 WHERE finished_at >= now() - interval '1 day' AND step = '{counted}'"
            );
            assert_index_serves(pool, &sql, "step_journal_step_finished_idx").await;
        }
        // The statuses a workflow rests in can be read through `status_settled` (0031), as
        // the funnel's completed counts (here without their kind, which a table this small
        // reads through its business keys' index), the stuck list and the waiting counts ask
        // for them.
        for condition in [
            "status_settled = 'completed' AND finished_at >= now() - interval '1 day'",
            "status_settled = 'needs_attention'",
            "status_settled IS NULL AND status = 'waiting'",
        ] {
            let sql = format!("SELECT count(*) FROM workflows WHERE {condition}");
            assert_index_serves(pool, &sql, "workflows_settled_idx").await;
        }
    }
}

/// PostgreSQL can answer `sql` through `index`. A table this small reads faster whole, so
/// whole-table scans are off: the question is whether the index can serve the condition.
async fn assert_index_serves(pool: &sqlx::PgPool, sql: &str, index: &str) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .expect("set");
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&mut *tx)
        .await
        .expect("explain");
    assert!(
        plan.iter().any(|line| line.contains(index)),
        "{sql}: {plan:#?}"
    );
}
