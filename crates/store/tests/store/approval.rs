//! Four-eyes: a command that waits for a second person, on both backends.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use store::testing::TestDb;
use store::{RequestFilter, RequestStatus, Source, Status, StoreError};

use crate::{LEASE, step, submit_and_claim};

store::test_both_backends!(
    a_pending_command_is_queued_only_when_another_person_approves,
    rejected_expired_and_finished_requests_queue_nothing,
    a_command_that_reaches_a_finished_workflow_is_answered,
    a_late_command_older_than_a_day_is_answered_by_the_look_at_all,
);

const HOUR: Duration = Duration::from_secs(3600);

async fn a_pending_command_is_queued_only_when_another_person_approves(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "loan-4e", "w1").await;
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
    let data = json!({ "by": "alice", "reason": "bank fixed", "data": { "retry": true } });
    let request_id = store
        .request_command(id, "resolve", &data, "alice", "bank fixed", "money", HOUR)
        .await
        .expect("request");
    // Nothing reaches the workflow while it waits.
    assert!(store.claim(id, "w2", LEASE).await.expect("claim").is_none());
    let pending = store
        .command_requests(&RequestFilter {
            pending_only: true,
            limit: 10,
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, RequestStatus::Pending);
    assert_eq!(pending[0].requested_by, "alice");
    assert_eq!(pending[0].payload, data);

    // The requester cannot approve their own command; nothing changes.
    let own = store.approve_command(request_id, "alice", "me").await;
    assert!(
        matches!(&own, Err(StoreError::Refused(m)) if m.contains("second person")),
        "{own:?}"
    );
    let still = store.command_request(request_id).await.unwrap().unwrap();
    assert_eq!(still.status, RequestStatus::Pending);
    assert!(store.claim(id, "w2", LEASE).await.expect("claim").is_none());

    // Another person approves: queued in the inbox, the workflow is due.
    let approved = store
        .approve_command(request_id, "bob", "checked with the bank")
        .await
        .expect("approve");
    assert_eq!(approved.status, RequestStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("bob"));
    let inbox_id = approved.inbox_id.expect("queued");
    let woke = store
        .claim(id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("due now");
    assert_eq!(woke.events.len(), 1);
    assert_eq!(woke.events[0].id, inbox_id);
    assert_eq!(woke.events[0].source, Source::Operator);
    assert_eq!(woke.events[0].payload, data);

    // Decided once only.
    let again = store.approve_command(request_id, "carol", "again").await;
    assert!(
        matches!(&again, Err(StoreError::Refused(m)) if m.contains("already approved")),
        "{again:?}"
    );
}

async fn rejected_expired_and_finished_requests_queue_nothing(db: TestDb) {
    let store = &db.store;
    let claimed = submit_and_claim(store, "loan-4r", "w1").await;
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
    let data = json!({ "by": "alice", "reason": "r" });
    let ask = |ttl| store.request_command(id, "cancel", &data, "alice", "r", "signed", ttl);

    let rejected = ask(HOUR).await.expect("request");
    let own = store.reject_command(rejected, "alice", "mine").await;
    assert!(matches!(own, Err(StoreError::Refused(_))), "{own:?}");
    let done = store
        .reject_command(rejected, "bob", "not with this bank")
        .await
        .expect("reject");
    assert_eq!(done.status, RequestStatus::Rejected);
    assert_eq!(done.decided_reason.as_deref(), Some("not with this bank"));

    let expired = ask(Duration::from_millis(1)).await.expect("request");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = store.approve_command(expired, "bob", "late").await;
    assert!(
        matches!(&late, Err(StoreError::Refused(m)) if m.contains("expired")),
        "{late:?}"
    );
    let read = store.command_request(expired).await.unwrap().unwrap();
    assert_eq!(read.status, RequestStatus::Expired);
    assert!(read.inbox_id.is_none());
    assert!(store.claim(id, "w2", LEASE).await.expect("claim").is_none());

    // The workflow finishes while a request waits: approving it is refused, and the
    // request is closed as rejected with the reason; nothing stays pending.
    let other = submit_and_claim(store, "loan-4f", "w1").await;
    let orphan = store
        .request_command(
            other.workflow.id,
            "cancel",
            &data,
            "alice",
            "r",
            "signed",
            HOUR,
        )
        .await
        .expect("request");
    store
        .commit_step(&step(&other, "cancelled", Status::Cancelled, None))
        .await
        .expect("finish");
    let after_end = store.approve_command(orphan, "bob", "ok").await;
    assert!(
        matches!(&after_end, Err(StoreError::Refused(m)) if m.contains("cancelled")),
        "{after_end:?}"
    );
    let closed = store.command_request(orphan).await.unwrap().unwrap();
    assert_eq!(closed.status, RequestStatus::Rejected);
    assert!(
        closed
            .decided_reason
            .as_deref()
            .is_some_and(|r| r.contains("takes no more commands")),
        "{closed:?}"
    );
    assert!(closed.inbox_id.is_none());
}

/// A workflow `key` that finishes while an operator's cancel, queued as its last step ran,
/// waits unanswered: its id, the command's inbox id and payload.
async fn late_cancel(store: &store::Store, key: &str) -> (uuid::Uuid, i64, serde_json::Value) {
    let claimed = submit_and_claim(store, key, "w1").await;
    let id = claimed.workflow.id;
    let payload = json!({ "by": "alice", "reason": "stop it" });
    let inbox_id = store
        .record_command(id, "cancel", &payload)
        .await
        .expect("queued while the step runs");
    store
        .commit_step(&step(&claimed, "paid", Status::Completed, None))
        .await
        .expect("the last step");
    (id, inbox_id, payload)
}

/// A command queued while the workflow's last step was in flight: the workflow finishes
/// without it; it is then journaled as refused with the reason, and processed.
async fn a_command_that_reaches_a_finished_workflow_is_answered(db: TestDb) {
    let store = &db.store;
    let (id, inbox_id, payload) = late_cancel(store, "loan-late").await;
    let lately = Some(Utc::now() - store::LATE_COMMANDS_WINDOW);
    assert_eq!(
        store
            .answer_late_commands("w9", lately)
            .await
            .expect("answer"),
        1,
        "found among the commands of the last day"
    );
    let journal = store.journal(id).await.expect("journal");
    let last = journal.last().expect("a row");
    assert_eq!(last.entry.outcome, store::Outcome::CommandRefused);
    assert_eq!(last.entry.action, "cancel");
    assert!(
        last.entry
            .error
            .as_deref()
            .is_some_and(|e| e.contains("finished (completed)")),
        "{last:?}"
    );
    assert_eq!(last.entry.request_summary.as_ref(), Some(&payload));
    let event = store
        .matched_events(id)
        .await
        .expect("inbox")
        .into_iter()
        .find(|e| e.id == inbox_id)
        .expect("kept");
    assert!(event.processed_at.is_some(), "none stays unprocessed");
    assert_eq!(
        store.answer_late_commands("w9", None).await.expect("again"),
        0
    );
    let shown = store
        .operator_commands(Some(id), None, 10)
        .await
        .expect("list");
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].outcome.as_deref(), Some("command_refused"));
}

/// A late command received before the last day (every worker stopped meanwhile) is not
/// among those the routine look reads; the look at all of them (a worker's first, then
/// hourly) answers it.
async fn a_late_command_older_than_a_day_is_answered_by_the_look_at_all(db: TestDb) {
    let store = &db.store;
    let (id, inbox_id, _) = late_cancel(store, "loan-older").await;
    // Received two days ago, as each database writes its times.
    match store.backend() {
        store::Backend::Postgres(pool) => sqlx::query(
            "UPDATE callback_inbox SET received_at = received_at - interval '2 days' \
             WHERE id = $1",
        )
        .bind(inbox_id)
        .execute(pool)
        .await
        .map(drop),
        store::Backend::Sqlite(pool) => sqlx::query(
            "UPDATE callback_inbox \
             SET received_at = strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '-2 days') \
             WHERE id = $1",
        )
        .bind(inbox_id)
        .execute(pool)
        .await
        .map(drop),
    }
    .expect("received two days ago");
    let lately = Some(Utc::now() - store::LATE_COMMANDS_WINDOW);
    assert_eq!(
        store
            .answer_late_commands("w9", lately)
            .await
            .expect("look"),
        0,
        "not among the last day's"
    );
    assert_eq!(
        store.answer_late_commands("w9", None).await.expect("look"),
        1,
        "answered by the look at all"
    );
    let journal = store.journal(id).await.expect("journal");
    assert_eq!(
        journal.last().expect("a row").entry.outcome,
        store::Outcome::CommandRefused
    );
}
