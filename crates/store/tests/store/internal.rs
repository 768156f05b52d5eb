//! Events from inside finflow: a workflow's end announced to every workflow waiting for it
//! (before or after it ended), operators' commands, and the facts column.

use chrono::{TimeDelta, Utc};
use serde_json::json;
use store::testing::TestDb;
use store::{Announcement, CorrelationKey, Source, Status, StoreError, Wait};

use crate::{LEASE, step, submit_and_claim};

store::test_both_backends!(
    an_end_reaches_every_waiter_once,
    a_command_is_matched_and_makes_the_workflow_due,
    facts_are_written_with_each_step,
);

const TITLE: &str = "workflow_finished";
const KEY: &str = "onboard-borrower/b-1";

/// Commits `claimed` into a wait for the end of `KEY`.
async fn wait_for_end(store: &store::Store, claimed: &store::Claimed) -> store::Committed {
    let deadline = Utc::now() + TimeDelta::hours(1);
    let mut wait = step(claimed, "await_onboarding", Status::Waiting, Some(deadline));
    wait.waits = vec![Wait::new(TITLE, CorrelationKey::ExternalId, KEY)];
    store.commit_step(&wait).await.expect("wait")
}

async fn an_end_reaches_every_waiter_once(db: TestDb) {
    let store = &db.store;
    let early_a = submit_and_claim(store, "loan-a", "w1").await;
    let early_b = submit_and_claim(store, "loan-b", "w1").await;
    assert!(
        wait_for_end(store, &early_a)
            .await
            .pending_events
            .is_empty()
    );
    assert!(
        wait_for_end(store, &early_b)
            .await
            .pending_events
            .is_empty()
    );

    // The onboarding ends, announcing it.
    let onboarding = submit_and_claim(store, "b-1", "w1").await;
    let payload =
        json!({ "workflow_id": onboarding.workflow.id.to_string(), "status": "completed" });
    let mut end = step(&onboarding, "approved", Status::Completed, None);
    end.announce = Some(Announcement {
        title: TITLE.into(),
        external_id: KEY.into(),
        payload: payload.clone(),
    });
    store.commit_step(&end).await.expect("finish");

    let announced = store
        .inbox_event(Source::Internal, &onboarding.workflow.id.to_string())
        .await
        .expect("read")
        .expect("the announcement is kept");
    assert!(announced.processed_at.is_some(), "it wakes nobody itself");
    assert_eq!(announced.matched_workflow_id, None);

    for early in [&early_a, &early_b] {
        let woke = store
            .claim(early.workflow.id, "w2", LEASE)
            .await
            .expect("claim")
            .expect("each waiter is due now");
        assert_eq!(woke.events.len(), 1, "one copy each");
        let event = &woke.events[0];
        assert_eq!(event.source, Source::Internal);
        assert_eq!(event.title, TITLE);
        assert_eq!(event.payload, payload);
        assert_eq!(
            event.event_id,
            format!("{}:{}", onboarding.workflow.id, early.workflow.id)
        );
        // Consumed, then waiting again for the same end: no second copy.
        let mut consume = step(&woke, "await_onboarding", Status::Waiting, None);
        consume.waits = vec![Wait::new(TITLE, CorrelationKey::ExternalId, KEY)];
        consume.processed_events = vec![event.id];
        let committed = store.commit_step(&consume).await.expect("consume");
        assert!(committed.pending_events.is_empty(), "consumed once");
    }

    // A loan that starts waiting after the end gets its copy with its wait.
    let late = submit_and_claim(store, "loan-c", "w1").await;
    let committed = wait_for_end(store, &late).await;
    assert_eq!(committed.pending_events.len(), 1, "due at once");
    let woke = store
        .claim(late.workflow.id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(woke.events.len(), 1);
    assert_eq!(woke.events[0].payload, payload);
}

async fn a_command_is_matched_and_makes_the_workflow_due(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "cmd-1", "w1").await;
    let id = claimed.workflow.id;
    store
        .commit_step(&step(
            &claimed,
            "needs_attention",
            Status::NeedsAttention,
            None,
        ))
        .await
        .expect("park");
    assert!(store.claim(id, "w2", LEASE).await.expect("claim").is_none());

    let data = json!({ "by": "ops", "reason": "lost callback", "data": { "retry": true } });
    let inbox_id = store
        .record_command(id, "resolve", &data)
        .await
        .expect("record");
    let woke = store
        .claim(id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("due now");
    assert_eq!(woke.events.len(), 1);
    assert_eq!(woke.events[0].id, inbox_id);
    assert_eq!(woke.events[0].source, Source::Operator);
    assert_eq!(woke.events[0].title, "resolve");
    assert_eq!(woke.events[0].payload, data);

    let mut done = step(&woke, "cancelled", Status::Cancelled, None);
    done.processed_events = vec![inbox_id];
    store.commit_step(&done).await.expect("finish");
    let refused = store.record_command(id, "cancel", &data).await;
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("cancelled")),
        "{refused:?}"
    );
    let unknown = store
        .record_command(uuid::Uuid::new_v4(), "cancel", &data)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
}

async fn facts_are_written_with_each_step(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "facts-1", "w1").await;
    let mut commit = step(&claimed, "create_loan", Status::Running, Some(Utc::now()));
    commit.facts = json!({ "loan_unique_id": "op-1", "amount_paid": "0.00" });
    store.commit_step(&commit).await.expect("commit");
    let row = store
        .get(claimed.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(row.facts["loan_unique_id"], "op-1");
    assert_eq!(row.facts["amount_paid"], "0.00");
}
