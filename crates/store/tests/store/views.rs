//! Operator views: counts per kind, state and status; one row per workflow with its latest
//! step; what is stuck.

use chrono::{TimeDelta, Utc};
use serde_json::json;
use store::testing::TestDb;
use store::{CorrelationKeys, InboxEvent, NewWorkflow, Source, Status, StatusCount};

use crate::{count, step, submit_and_claim};

store::test_both_backends!(
    views_show_counts_and_latest_steps,
    borrowers_loans_and_unmatched_callbacks_read_the_facts,
    due_count_counts_what_the_due_scan_would_claim,
);

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
        .cancel(pending.id, "ops", "test", &[])
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

/// `borrowers` and `loans` read each workflow's facts; `unmatched_callbacks` lists what no
/// workflow took, with which key it carries, without the NIK.
async fn borrowers_loans_and_unmatched_callbacks_read_the_facts(db: TestDb) {
    let store = &db.store;
    let onboarding = submit_and_claim(store, "b-1", "w1").await;
    let mut approved = step(&onboarding, "approved", Status::Completed, None);
    approved.facts = json!({
        "user_id": "6a41ff87dda4eefd0b7b0300", "borrower_type": "PERSONAL",
        "borrower_status": "APPROVED", "credit_score": 720, "approved": true
    });
    store.commit_step(&approved).await.expect("commit");

    let loan = store
        .submit(&NewWorkflow::new(
            "originate-loan",
            "loan-1",
            json!({ "borrower": { "onboarding": "b-1" } }),
        ))
        .await
        .expect("submit");
    let claimed = store
        .claim(loan.id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut repaying = step(&claimed, "repaying", Status::Waiting, None);
    // The onboarding's key as the workflow crate writes it in the facts: the view reads it
    // there, not in the input (migration 0013).
    repaying.facts = json!({
        "onboarding_business_key": "b-1",
        "loan_unique_id": "op-1", "loan_type": "BNPL", "loan_status": "DISBURSED",
        "total_amount": "3157500.00", "amount_paid": "1052500.00",
        "amount_outstanding": "2105000.00", "payments": 1, "disbursement_failures": 0,
        "overdue_installments": []
    });
    store.commit_step(&repaying).await.expect("commit");

    store
        .record_callback(&InboxEvent {
            source: Source::Status,
            event_id: "evt-lost".into(),
            title: "user_created".into(),
            keys: CorrelationKeys {
                identity_number: Some("3201000000000077".into()),
                ..CorrelationKeys::default()
            },
            payload: json!({ "event_id": "evt-lost" }),
        })
        .await
        .expect("record");

    let sql_borrower = "SELECT user_id, borrower_status, CAST(credit_score AS TEXT) FROM borrowers";
    let sql_loan = "SELECT business_key, onboarding_business_key, loan_status, \
                    CAST(amount_paid AS TEXT), CAST(payments AS BIGINT) FROM loans";
    let sql_unmatched = "SELECT event_id, title, correlation_keys FROM unmatched_callbacks";
    type BorrowerRow = (Option<String>, Option<String>, Option<String>);
    type LoanRow = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    type Rows = (
        Vec<BorrowerRow>,
        Vec<LoanRow>,
        Vec<(String, String, Option<String>)>,
    );
    let (borrowers, loans, unmatched): Rows = match store.backend() {
        store::Backend::Postgres(pool) => (
            sqlx::query_as(sql_borrower)
                .fetch_all(pool)
                .await
                .expect("borrowers"),
            sqlx::query_as(sql_loan)
                .fetch_all(pool)
                .await
                .expect("loans"),
            sqlx::query_as(sql_unmatched)
                .fetch_all(pool)
                .await
                .expect("unmatched"),
        ),
        store::Backend::Sqlite(pool) => (
            sqlx::query_as(sql_borrower)
                .fetch_all(pool)
                .await
                .expect("borrowers"),
            sqlx::query_as(sql_loan)
                .fetch_all(pool)
                .await
                .expect("loans"),
            sqlx::query_as(sql_unmatched)
                .fetch_all(pool)
                .await
                .expect("unmatched"),
        ),
    };
    assert_eq!(
        borrowers,
        vec![(
            Some("6a41ff87dda4eefd0b7b0300".into()),
            Some("APPROVED".into()),
            Some("720".into())
        )]
    );
    assert_eq!(
        loans,
        vec![(
            "loan-1".into(),
            Some("b-1".into()),
            Some("DISBURSED".into()),
            Some("1052500.00".into()),
            Some(1)
        )]
    );
    assert_eq!(
        unmatched,
        vec![(
            "evt-lost".into(),
            "user_created".into(),
            Some("identity_number".into())
        )]
    );
}

/// The backlog gauge: due and free, as `claim_due` sees it.
async fn due_count_counts_what_the_due_scan_would_claim(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.due_count().await.expect("count"), 0);
    store
        .submit(&crate::new_workflow("due-1"))
        .await
        .expect("submit");
    let held = submit_and_claim(store, "due-2", "w1").await;
    assert_eq!(
        store.due_count().await.expect("count"),
        1,
        "a held one is not free"
    );
    let later = step(
        &held,
        "sleeping",
        Status::Sleeping,
        Some(Utc::now() + TimeDelta::hours(1)),
    );
    store.commit_step(&later).await.expect("commit");
    assert_eq!(
        store.due_count().await.expect("count"),
        1,
        "nor one due later"
    );
}
