//! What a reconciliation step observed is written with its commit, or not at all: findings
//! (one open per loan and kind, updated when found again, resolved when a later page shows
//! the loan without it), the loans compared, and nudges that make a workflow due with an
//! inbox row telling it to read Finfra.

use chrono::Utc;
use store::testing::TestDb;
use store::{NUDGE_TITLE, NewFinding, Observed, Source, Status, StoreError};

use crate::{step, submit_and_claim};

store::test_both_backends!(
    observations_are_written_with_the_step,
    observations_of_a_step_that_lost_its_lease_are_not_written,
);

fn finding(loan: &str, kind: &str, theirs: &str) -> NewFinding {
    NewFinding {
        loan_unique_id: loan.to_owned(),
        workflow_id: None,
        kind: kind.to_owned(),
        ours: Some("SIGNED".to_owned()),
        theirs: Some(theirs.to_owned()),
        money: false,
    }
}

async fn observations_are_written_with_the_step(db: TestDb) {
    let store = &db.store;
    let behind = submit_and_claim(store, "behind", "w0").await;
    let parked = step(&behind, "await_signed", Status::Waiting, None);
    store.commit_step(&parked).await.expect("the loan waits");
    let run = submit_and_claim(store, "run-1", "w1").await;

    let mut first = step(&run, "fetch_page", Status::Running, Some(Utc::now()));
    first.release_lease = false;
    first.observed = Observed {
        findings: vec![
            finding("op-1", "status_differs", "DISBURSED"),
            finding("op-2", "orphan", "PENDING"),
        ],
        seen: vec!["op-1".into(), "op-2".into()],
        nudge: vec![behind.workflow.id],
        complete: false,
    };
    let committed = store.commit_step(&first).await.expect("page 1");
    let open = store.findings(true, 10).await.expect("findings");
    assert_eq!(open.len(), 2);
    assert!(open.iter().all(|f| f.run == run.workflow.id));

    // The nudge: an inbox row for the loan's workflow, which is due now.
    let nudged = store
        .get(behind.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert!(nudged.next_run_at.is_some_and(|at| at <= Utc::now()));
    let events = store
        .matched_events(behind.workflow.id)
        .await
        .expect("inbox");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].source, events[0].title.as_str()),
        (Source::Internal, NUDGE_TITLE)
    );

    // Page 2 of the same run shows op-1 again, in line now, and op-2 still an orphan.
    let mut second = step(&run, "done", Status::Completed, None);
    second.expected_version = committed.version;
    second.observed = Observed {
        findings: vec![finding("op-2", "orphan", "SIGNED")],
        seen: vec!["op-1".into(), "op-2".into()],
        nudge: Vec::new(),
        complete: true,
    };
    store.commit_step(&second).await.expect("page 2");
    let all = store.findings(false, 10).await.expect("findings");
    let op1 = all
        .iter()
        .find(|f| f.loan_unique_id == "op-1")
        .expect("op-1");
    assert!(op1.resolved_at.is_some(), "op-1 is in line: resolved");
    let op2: Vec<_> = all.iter().filter(|f| f.loan_unique_id == "op-2").collect();
    assert_eq!(op2.len(), 1, "found again: the same finding, updated");
    assert_eq!(op2[0].finfra_value.as_deref(), Some("SIGNED"));
    assert!(op2[0].resolved_at.is_none());
    assert!(op2[0].last_seen_at >= op2[0].first_seen_at);
    let seen = crate::count(store, "SELECT count(*) FROM reconcile_seen").await;
    assert_eq!(
        seen, 0,
        "a run that compared its last loan keeps no list of loans seen"
    );
}

async fn observations_of_a_step_that_lost_its_lease_are_not_written(db: TestDb) {
    let store = &db.store;
    let run = submit_and_claim(store, "run-2", "w1").await;
    let mut stale = step(&run, "fetch_page", Status::Running, Some(Utc::now()));
    stale.expected_version -= 1;
    stale.observed = Observed {
        findings: vec![finding("op-9", "orphan", "PENDING")],
        seen: vec!["op-9".into()],
        nudge: Vec::new(),
        complete: false,
    };
    assert!(matches!(
        store.commit_step(&stale).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(
        store
            .findings(false, 10)
            .await
            .expect("findings")
            .is_empty()
    );
    assert_eq!(
        crate::count(store, "SELECT count(*) FROM reconcile_seen").await,
        0
    );
}
