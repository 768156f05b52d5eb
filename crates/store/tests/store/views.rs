//! Operator views: counts per kind, state and status; one row per workflow with its latest
//! step; what is stuck.

use chrono::{TimeDelta, Utc};
use serde_json::json;
use store::testing::TestDb;
use store::{NewWorkflow, Status, StatusCount};

use crate::{count, step, submit_and_claim};

store::test_both_backends!(views_show_counts_and_latest_steps);

async fn views_show_counts_and_latest_steps(db: TestDb) {
    let store = &db.store;
    for key in ["v-1", "v-2", "v-3"] {
        store
            .submit(&crate::new_workflow(key))
            .await
            .expect("submit");
    }
    store
        .submit(&NewWorkflow::new(
            "originate-loan",
            "loan-1",
            json!({ "amount": "1000000" }),
        ))
        .await
        .expect("submit");
    let claimed = submit_and_claim(store, "v-4", "w1").await;
    let mut waiting = step(
        &claimed,
        "wait_user_verified",
        Status::Waiting,
        Some(Utc::now() + TimeDelta::hours(1)),
    );
    waiting.journal.action = "create_borrower".into();
    store.commit_step(&waiting).await.expect("commit");
    let pending = store
        .find_by_business_key("onboard-borrower", "v-3")
        .await
        .expect("find")
        .expect("exists");
    store
        .cancel(pending.id, "ops", "test")
        .await
        .expect("cancel");

    let counts = store.status_counts().await.expect("counts");
    let expect = |kind: &str, state: &str, status: Status, count: i64| StatusCount {
        kind: kind.into(),
        state: state.into(),
        status,
        count,
    };
    assert_eq!(
        counts,
        vec![
            expect("onboard-borrower", "new", Status::Cancelled, 1),
            expect("onboard-borrower", "new", Status::Pending, 2),
            expect("onboard-borrower", "wait_user_verified", Status::Waiting, 1),
            expect("originate-loan", "new", Status::Pending, 1),
        ]
    );

    // workflow_overview: one row per workflow, with its latest journal step.
    assert_eq!(
        count(store, "SELECT count(*) FROM workflow_overview").await,
        5
    );
    let (last_action, last_seq): (Option<String>, Option<i32>) =
        match store.backend() {
            store::Backend::Postgres(pool) => sqlx::query_as(
                "SELECT last_action, last_seq FROM workflow_overview WHERE business_key = 'v-4'",
            )
            .fetch_one(pool)
            .await,
            store::Backend::Sqlite(pool) => sqlx::query_as(
                "SELECT last_action, last_seq FROM workflow_overview WHERE business_key = 'v-4'",
            )
            .fetch_one(pool)
            .await,
        }
        .expect("overview row");
    assert_eq!(
        (last_action.as_deref(), last_seq),
        (Some("create_borrower"), Some(1))
    );
    assert_eq!(
        count(
            store,
            "SELECT count(*) FROM workflow_overview WHERE last_seq IS NULL"
        )
        .await,
        3,
        "never-started workflows have no step"
    );

    // stuck_workflows is queryable and empty: nothing is overdue or needs a person yet.
    assert_eq!(
        count(store, "SELECT count(*) FROM stuck_workflows").await,
        0
    );

    // On SQLite, timestamps read as ISO-8601 text in plain SQL.
    if let Some(pool) = store.sqlite_pool() {
        let created: String =
            sqlx::query_scalar("SELECT created_at FROM workflow_overview LIMIT 1")
                .fetch_one(pool)
                .await
                .expect("text timestamp");
        assert_eq!(created.len(), 24, "{created}");
        assert!(
            created.ends_with('Z') && created.as_bytes()[10] == b'T',
            "{created}"
        );
    }
}
