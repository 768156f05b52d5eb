//! The callback inbox: dedupe, matching to waits (before and after the wait begins), and the
//! race between the two.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::json;
use store::testing::{TestBackend, TestDb};
use store::{CorrelationKey, CorrelationKeys, InboxEvent, Outcome, Source, Status, Wait};

use crate::{Hints, LEASE, count, is_about_now, step, submit_and_claim};

store::test_both_backends!(
    a_duplicate_callback_is_a_no_op,
    a_callback_wakes_the_workflow_waiting_for_it,
    an_early_callback_is_matched_when_the_wait_begins,
    an_early_callback_is_matched_by_each_correlation_key,
    an_early_callback_keeps_the_workflow_for_its_holder,
    callback_and_wait_racing_never_lose_the_event,
    what_a_store_makes_due_is_handed_over_in_process,
);

/// A Finfra status callback `title` about the borrower with NIK `nik`.
pub(crate) fn user_event(event_id: &str, title: &str, nik: &str) -> InboxEvent {
    InboxEvent {
        source: Source::Status,
        event_id: event_id.into(),
        title: title.into(),
        keys: CorrelationKeys {
            identity_number: Some(nik.into()),
            ..CorrelationKeys::default()
        },
        payload: json!({ "event_id": event_id, "callback_title": title, "status": "VERIFIED" }),
    }
}

async fn a_duplicate_callback_is_a_no_op(db: TestDb) {
    let store = &db.store;
    let event = user_event("evt-1", "user_verified", "3201000000000011");
    let first = store.record_callback(&event).await.expect("record");
    assert!(!first.duplicate);
    assert_eq!(first.woke, None, "nobody waits");
    let mut again = event.clone();
    again.payload = json!({ "redelivered": true });
    let second = store.record_callback(&again).await.expect("record again");
    assert!(second.duplicate);
    assert_eq!(second.inbox_id, first.inbox_id);
    assert_eq!(count(store, "SELECT count(*) FROM callback_inbox").await, 1);
    let row = store
        .inbox_event(Source::Status, "evt-1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(row.payload, event.payload, "the first delivery is kept");
    // Same event id from another source is another event.
    let mut va = event.clone();
    va.source = Source::VirtualAccount;
    assert!(!store.record_callback(&va).await.expect("record").duplicate);
}

/// A waiting workflow is woken by its callback in the transaction that stores it: after
/// `record_callback` returns, the event is matched, the workflow due now, its wake-up
/// scheduled. The worker then claims it, gets the event, and consumes it with its step.
async fn a_callback_wakes_the_workflow_waiting_for_it(db: TestDb) {
    let store = &db.store;
    let nik = "3201000000000012";
    let claimed = submit_and_claim(store, "wake-1", "w1").await;
    let id = claimed.workflow.id;
    let deadline = Utc::now() + TimeDelta::hours(1);
    let mut wait = step(
        &claimed,
        "wait_user_verified",
        Status::Waiting,
        Some(deadline),
    );
    wait.waiting_for = Some("user_verified".into());
    wait.deadline = Some(deadline);
    wait.waits = vec![
        Wait::new("user_verified", CorrelationKey::IdentityNumber, nik),
        Wait::new("user_rejected", CorrelationKey::IdentityNumber, nik),
    ];
    store.commit_step(&wait).await.expect("start waiting");
    // Two titles under one key: one row, read back as a wait for each.
    assert_eq!(count(store, "SELECT count(*) FROM workflow_waits").await, 1);
    let waits: Vec<(String, CorrelationKey)> = store
        .waits(id)
        .await
        .expect("waits")
        .into_iter()
        .map(|w| (w.event, w.key_name))
        .collect();
    assert_eq!(
        waits,
        [
            ("user_rejected".to_owned(), CorrelationKey::IdentityNumber),
            ("user_verified".to_owned(), CorrelationKey::IdentityNumber),
        ]
    );
    assert!(
        store.claim(id, "w2", LEASE).await.expect("claim").is_none(),
        "waiting, not due"
    );
    let mut hints = Hints::start(store).await;

    // Other titles or keys do not match.
    let other = store
        .record_callback(&user_event("evt-a", "user_approved", nik))
        .await
        .expect("record");
    assert_eq!(other.woke, None);
    let other = store
        .record_callback(&user_event("evt-b", "user_verified", "3201000000000099"))
        .await
        .expect("record");
    assert_eq!(other.woke, None);

    let recorded = store
        .record_callback(&user_event("evt-c", "user_verified", nik))
        .await
        .expect("record");
    assert_eq!(recorded.woke, Some(id));
    let row = store.get(id).await.expect("get").expect("exists");
    assert!(
        row.next_run_at
            .is_some_and(|at| is_about_now(at, Duration::from_secs(5))),
        "due now"
    );
    assert_eq!(row.status, Status::Waiting);
    assert_eq!(
        hints.count(id).await,
        1,
        "woken by the transaction that stored it"
    );
    let inbox = store
        .inbox_event(Source::Status, "evt-c")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(inbox.matched_workflow_id, Some(id));

    let woke = store
        .claim(id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("due now");
    assert_eq!(woke.previous_status, Status::Waiting);
    assert_eq!(woke.events.len(), 1);
    assert_eq!(woke.events[0].id, recorded.inbox_id);
    assert_eq!(woke.events[0].title, "user_verified");

    let mut consume = step(
        &woke,
        "verified",
        Status::Sleeping,
        Some(Utc::now() + TimeDelta::hours(2)),
    );
    consume.journal.outcome = Outcome::Callback;
    consume.processed_events = vec![recorded.inbox_id];
    let committed = store.commit_step(&consume).await.expect("consume");
    assert!(committed.pending_events.is_empty());
    assert!(store.pending_events(id).await.expect("pending").is_empty());
    let inbox = store
        .inbox_event(Source::Status, "evt-c")
        .await
        .expect("read")
        .expect("stored");
    assert!(inbox.processed_at.is_some());
    assert_eq!(
        count(store, "SELECT count(*) FROM workflow_waits").await,
        0,
        "waits replaced"
    );
}

/// The step of `claimed` that begins a wait for `user_created` about the borrower with NIK
/// `nik`, until `deadline`.
pub(crate) fn wait_user_created(
    claimed: &store::Claimed,
    nik: &str,
    deadline: chrono::DateTime<Utc>,
) -> store::StepCommit {
    let mut wait = step(
        claimed,
        "wait_user_created",
        Status::Waiting,
        Some(deadline),
    );
    wait.waits = vec![Wait::new(
        "user_created",
        CorrelationKey::IdentityNumber,
        nik,
    )];
    wait
}

/// `user_created` arrives before the workflow waits for it (the create call's response is
/// slower than the callback). It is kept; when the workflow commits its wait, the same
/// transaction matches it and makes the workflow due now.
async fn an_early_callback_is_matched_when_the_wait_begins(db: TestDb) {
    let store = &db.store;
    let nik = "3201000000000013";
    let early = store
        .record_callback(&user_event("evt-early", "user_created", nik))
        .await
        .expect("record");
    assert_eq!(early.woke, None);

    let claimed = submit_and_claim(store, "early-1", "w1").await;
    let id = claimed.workflow.id;
    let deadline = Utc::now() + TimeDelta::hours(1);
    let wait = wait_user_created(&claimed, nik, deadline);
    let committed = store.commit_step(&wait).await.expect("start waiting");
    assert_eq!(committed.pending_events, vec![early.inbox_id]);
    assert!(
        committed.next_run_at.is_some_and(|at| at < deadline),
        "due now, not at the deadline"
    );

    let row = store.get(id).await.expect("get").expect("exists");
    assert!(
        row.next_run_at
            .is_some_and(|at| is_about_now(at, Duration::from_secs(5)))
    );
    let inbox = store
        .inbox_event(Source::Status, "evt-early")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(inbox.matched_workflow_id, Some(id));
    let woke = store
        .claim(id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("due now");
    assert_eq!(woke.events.len(), 1);
}

/// As above, for every correlation key a wait can name: a callback stored before the wait
/// begins is matched by its title and that key's value, and only that one: not a callback
/// with the same title and another value of the key, nor one with the same value under
/// another title, nor one carrying the value under another key.
async fn an_early_callback_is_matched_by_each_correlation_key(db: TestDb) {
    let store = &db.store;
    let keys_with = |key: CorrelationKey, value: &str| {
        let mut keys = CorrelationKeys::default();
        let slot = match key {
            CorrelationKey::IdentityNumber => &mut keys.identity_number,
            CorrelationKey::UserId => &mut keys.user_id,
            CorrelationKey::KycId => &mut keys.kyc_id,
            CorrelationKey::LoanUniqueId => &mut keys.loan_unique_id,
            CorrelationKey::ExternalId => &mut keys.external_id,
        };
        *slot = Some(value.to_owned());
        keys
    };
    for (n, key) in CorrelationKey::ALL.into_iter().enumerate() {
        let name = key.as_str();
        // A NIK has 16 digits; the other keys are Finfra's ids or ours.
        let value = format!("32010000000001{n:02}");
        let other_value = format!("32010000000002{n:02}");
        let other_key = CorrelationKey::ALL[(n + 1) % CorrelationKey::ALL.len()];
        let title = format!("{name}_event");
        let record = |event_id: String, title: String, keys: CorrelationKeys| async move {
            store
                .record_callback(&InboxEvent {
                    source: Source::Status,
                    event_id: event_id.clone(),
                    title,
                    keys,
                    payload: json!({ "event_id": event_id }),
                })
                .await
                .expect("record")
                .inbox_id
        };
        let matching = record(format!("{name}-1"), title.clone(), keys_with(key, &value)).await;
        let unmatched = [
            record(
                format!("{name}-2"),
                title.clone(),
                keys_with(key, &other_value),
            )
            .await,
            record(
                format!("{name}-3"),
                format!("{name}_other"),
                keys_with(key, &value),
            )
            .await,
            record(
                format!("{name}-4"),
                title.clone(),
                keys_with(other_key, &value),
            )
            .await,
        ];

        let claimed = submit_and_claim(store, &format!("by-{name}"), "w1").await;
        let deadline = Utc::now() + TimeDelta::hours(1);
        let mut wait = step(&claimed, "waiting", Status::Waiting, Some(deadline));
        wait.waits = vec![Wait::new(title.as_str(), key, value.as_str())];
        let committed = store.commit_step(&wait).await.expect("start waiting");
        assert_eq!(committed.pending_events, vec![matching], "{name}");
        for (id, n) in unmatched.iter().zip(2..) {
            let event = store
                .inbox_event(Source::Status, &format!("{name}-{n}"))
                .await
                .expect("read")
                .expect("stored");
            assert_eq!(event.id, *id);
            assert_eq!(event.matched_workflow_id, None, "{name}-{n}");
        }
    }
}

/// As above, with the holder's lease given (`hold_for_events`, what the executor passes):
/// instead of being released and made due for a claim, the workflow stays with its holder,
/// claimed again in the same commit, and the commit returns the callback as a claim would.
/// Nothing is handed over, no other worker can claim it, and the holder's next commit (at
/// the version returned) consumes the callback. Without the lease it is released as before.
async fn an_early_callback_keeps_the_workflow_for_its_holder(db: TestDb) {
    let store = &db.store;
    let mut due = store.due_now();
    let nik = "3201000000000014";
    let early = store
        .record_callback(&user_event("evt-kept", "user_created", nik))
        .await
        .expect("record");
    let claimed = submit_and_claim(store, "kept-1", "w1").await;
    let id = claimed.workflow.id;
    assert_eq!(due.try_recv().ok(), Some(id), "the submit is handed over");
    let deadline = Utc::now() + TimeDelta::hours(1);
    let mut wait = wait_user_created(&claimed, nik, deadline);
    wait.hold_for_events = Some(LEASE);
    let committed = store.commit_step(&wait).await.expect("start waiting");
    assert_eq!(committed.pending_events, vec![early.inbox_id]);
    let kept: Vec<i64> = committed.kept.iter().map(|e| e.id).collect();
    assert_eq!(
        kept,
        vec![early.inbox_id],
        "the callback comes back with the commit"
    );
    assert_eq!(committed.kept[0].event_id, "evt-kept");
    assert_eq!(committed.kept[0].matched_workflow_id, Some(id));
    assert_eq!(
        committed.version,
        claimed.workflow.version + 2,
        "the step, then the holder's claim"
    );
    assert!(
        due.try_recv().is_err(),
        "not handed over: its holder goes on"
    );

    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.status, Status::Running);
    assert_eq!(row.lease_owner.as_deref(), Some("w1"));
    assert!(row.lease_until.is_some_and(|until| is_about_now(
        until - TimeDelta::from_std(LEASE).unwrap(),
        Duration::from_secs(5)
    )));
    assert_eq!(row.version, committed.version);
    assert_eq!(row.state, "wait_user_created");
    assert!(
        store.claim(id, "w2", LEASE).await.expect("claim").is_none(),
        "held by w1"
    );

    let mut consume = step(&claimed, "user_created", Status::Sleeping, Some(deadline));
    consume.expected_version = committed.version;
    consume.processed_events = vec![early.inbox_id];
    consume.hold_for_events = Some(LEASE);
    let next = store
        .commit_step(&consume)
        .await
        .expect("the holder commits");
    assert!(next.kept.is_empty(), "nothing waits any more");
    assert!(next.pending_events.is_empty());
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!((row.status, row.lease_owner), (Status::Sleeping, None));
    let journal = store.journal(id).await.expect("journal");
    assert_eq!(journal.len(), 2, "no row for the holder's own claim");

    // Without the holder's lease (a worker of the build before), released and due now.
    let other = "3201000000000015";
    let early = store
        .record_callback(&user_event("evt-released", "user_created", other))
        .await
        .expect("record");
    let claimed = submit_and_claim(store, "kept-2", "w1").await;
    let _ = due.try_recv();
    let wait = wait_user_created(&claimed, other, deadline);
    let committed = store.commit_step(&wait).await.expect("start waiting");
    assert_eq!(committed.pending_events, vec![early.inbox_id]);
    assert!(committed.kept.is_empty());
    assert_eq!(committed.version, claimed.workflow.version + 1);
    assert_eq!(
        due.try_recv().ok(),
        Some(claimed.workflow.id),
        "handed over"
    );
    let row = store
        .get(claimed.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((row.status, row.lease_owner), (Status::Waiting, None));
}

/// A worker of the build before 0022 (a rolling deploy) sends its batches without
/// `hold_secs`: its commit that finds a callback waiting releases the workflow and makes it
/// due, as it always did, and reads the columns it always read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_of_the_build_before_releases_when_a_callback_waits() {
    store::testing::run(TestBackend::Postgres, true, batch_of_the_build_before).await;
}

async fn batch_of_the_build_before(db: TestDb) {
    let store = &db.store;
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let user_id = "old-batch-user";
    let mut event = user_event("evt-old-batch", "user_verified", "3201000000000016");
    event.keys = CorrelationKeys {
        user_id: Some(user_id.into()),
        ..CorrelationKeys::default()
    };
    let early = store.record_callback(&event).await.expect("record");
    let claimed = submit_and_claim(store, "old-batch-1", "w1").await;
    let element = json!({
        "workflow_id": claimed.workflow.id,
        "worker_id": "w1",
        "expected_version": claimed.workflow.version,
        "status": "waiting",
        "state": "wait_user_verified",
        "context": {},
        "attempt": 1,
        "next_run_at": (Utc::now() + TimeDelta::hours(1)).to_rfc3339(),
        "caller_now": Utc::now().to_rfc3339(),
        "release": true,
        "terminal": false,
        "facts": {},
        "lock_keys": [],
        "wait_events": ["user_verified"],
        "wait_keys": ["user_id"],
        "wait_values": [user_id],
        "processed": [],
        "j_step": "create_borrower",
        "j_action": "create_borrower",
        "j_outcome": "ok",
        "j_attempt": 1,
        "j_started_at": Utc::now().to_rfc3339(),
        "j_finished_at": Utc::now().to_rfc3339(),
        "j_duration_ms": 0,
        "event_types": [],
        "event_payloads": [],
    });
    let (result, pending): (String, Vec<i64>) = sqlx::query_as(
        "SELECT result, pending_events FROM finflow_commit_steps($1::jsonb) ORDER BY idx",
    )
    .bind(json!([element]))
    .fetch_one(pool)
    .await
    .expect("the old batch is committed");
    assert_eq!((result.as_str(), pending), ("ok", vec![early.inbox_id]));
    let row = store
        .get(claimed.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((row.status, row.lease_owner), (Status::Waiting, None));
    assert!(
        row.next_run_at
            .is_some_and(|at| is_about_now(at, Duration::from_secs(5))),
        "due now"
    );
}

/// On PostgreSQL a commit that keeps its workflow for a callback waiting writes the
/// workflow's row once (migration 0023), as a heap-only tuple: one new version on the row's
/// page, which no index entry points to. Its holder's claim had left it running and due, and
/// the kept workflow stays both, with the time it became due, so no indexed column changes.
/// (0022 wrote two versions, the first one in every index: status and time moved, then back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_kept_workflow_is_written_once_as_a_heap_only_tuple() {
    store::testing::run(TestBackend::Postgres, true, kept_row_written_once).await;
}

async fn kept_row_written_once(db: TestDb) {
    let store = &db.store;
    let pool = crate::pg_with_extension(store, "pageinspect").await;
    let nik = "3201000000000017";
    store
        .record_callback(&user_event("evt-once", "user_created", nik))
        .await
        .expect("record");
    let claimed = submit_and_claim(store, "once-1", "w1").await;
    let id = claimed.workflow.id;
    let (page, before) = row_page(pool, id).await;
    let versions = |page: i32| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM heap_page_items(get_raw_page('workflows', $1)) \
             WHERE t_data IS NOT NULL",
        )
        .bind(page)
        .fetch_one(pool)
        .await
        .expect("page items")
    };
    let on_page = versions(page).await;

    let mut wait = wait_user_created(&claimed, nik, Utc::now() + TimeDelta::hours(1));
    wait.hold_for_events = Some(LEASE);
    let committed = store.commit_step(&wait).await.expect("start waiting");
    assert_eq!(committed.kept.len(), 1, "kept for its holder");

    let (after_page, after) = row_page(pool, id).await;
    assert_eq!(after_page, page, "on the same page");
    assert_ne!(after, before);
    assert_eq!(versions(page).await, on_page + 1, "one new row version");
    let heap_only: bool = sqlx::query_scalar(
        "SELECT (t_infomask2 & 32768) <> 0 FROM heap_page_items(get_raw_page('workflows', $1)) \
         WHERE lp = $2",
    )
    .bind(page)
    .bind(after)
    .fetch_one(pool)
    .await
    .expect("the new version");
    assert!(heap_only, "a HOT update: no index entry");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.status, Status::Running);
    assert_eq!(
        row.next_run_at, claimed.workflow.next_run_at,
        "due since the time it became due"
    );
}

/// On PostgreSQL a stored callback writes no entry into an index of its time (the inbox's
/// `received_at` is indexed by block range: migration 0029), and the step that consumes it
/// writes one index entry, its journal row's key (workflow_id, seq): none for its operation
/// key nor its (step, finished_at), a step the overview's funnel does not count (0029), none
/// of the BRIN of finished_at, and none for marking the callback consumed, a heap-only update
/// of the inbox row (0026; before it, five entries for the journal row and three for the
/// mark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_storing_and_consuming_a_callback_write_only_the_index_entries_read() {
    store::testing::run(
        TestBackend::Postgres,
        true,
        storing_and_consuming_write_only_the_index_entries_read,
    )
    .await;
}

/// The server's WAL position, as text.
async fn wal_lsn(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
        .fetch_one(pool)
        .await
        .expect("lsn")
}

async fn storing_and_consuming_write_only_the_index_entries_read(db: TestDb) {
    let store = &db.store;
    let pool = crate::pg_with_extension(store, "pg_walinspect").await;
    let nik = "3201000000000018";
    let claimed = submit_and_claim(store, "entries-1", "w1").await;
    let id = claimed.workflow.id;
    let wait = wait_user_created(&claimed, nik, Utc::now() + TimeDelta::hours(1));
    store.commit_step(&wait).await.expect("start waiting");
    let start = wal_lsn(pool).await;
    let recorded = store
        .record_callback(&user_event("evt-entries", "user_created", nik))
        .await
        .expect("record");
    assert_eq!(recorded.woke, Some(id));
    let records =
        crate::wal_records_since(pool, &start, &["step_journal%", "callback_inbox%"]).await;
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("callback_inbox Heap/INSERT")),
        "the callback stored: {records:?}"
    );
    let stored = crate::btree_entries(&records);
    assert!(
        !stored.is_empty()
            && stored
                .iter()
                .all(|r| !r.starts_with("callback_inbox_received_at_idx")),
        "the callback's keys indexed, its time not: {records:?}"
    );
    let woke = store
        .claim(id, "w2", LEASE)
        .await
        .expect("claim")
        .expect("due now");
    assert_eq!(woke.events.len(), 1);

    let start = wal_lsn(pool).await;
    let mut consume = step(&woke, "created", Status::Sleeping, Some(Utc::now()));
    consume.journal.outcome = Outcome::Callback;
    consume.journal.operation_key = Some("op-entries-1".into());
    consume.processed_events = vec![recorded.inbox_id];
    store.commit_step(&consume).await.expect("consume");

    let records =
        crate::wal_records_since(pool, &start, &["step_journal%", "callback_inbox%"]).await;
    let btree = crate::btree_entries(&records);
    assert_eq!(
        btree.len(),
        1,
        "one index entry, the journal row's key: {records:?}"
    );
    assert!(
        btree.iter().all(|r| r.starts_with("step_journal_pkey ")),
        "the journal row's key, none of the inbox's: {records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("callback_inbox Heap/HOT_UPDATE")),
        "the callback marked consumed by a heap-only update: {records:?}"
    );
    let inbox = store
        .inbox_event(Source::Status, "evt-entries")
        .await
        .expect("read")
        .expect("stored");
    assert!(inbox.processed_at.is_some(), "consumed");
    assert!(store.pending_events(id).await.expect("pending").is_empty());
}

/// The page and line pointer of a workflow's live row.
async fn row_page(pool: &sqlx::PgPool, id: uuid::Uuid) -> (i32, i32) {
    sqlx::query_as(
        "SELECT (ctid::text::point)[0]::int, (ctid::text::point)[1]::int \
         FROM workflows WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("ctid")
}

/// A callback and the commit that starts the wait for it, at the same moment, many times:
/// whichever commits first, the event ends up matched and the workflow due now.
async fn callback_and_wait_racing_never_lose_the_event(db: TestDb) {
    let store = &db.store;
    for i in 0..15 {
        let nik = format!("32010000000{i:05}");
        let claimed = submit_and_claim(store, &format!("race-{i}"), "w1").await;
        let id = claimed.workflow.id;
        let deadline = Utc::now() + TimeDelta::hours(1);
        let wait = wait_user_created(&claimed, &nik, deadline);
        let event = user_event(&format!("evt-race-{i}"), "user_created", &nik);
        let (committed, recorded) = tokio::join!(
            {
                let store = store.clone();
                async move { store.commit_step(&wait).await }
            },
            {
                let store = store.clone();
                async move { store.record_callback(&event).await }
            }
        );
        committed.expect("commit");
        let recorded = recorded.expect("record");
        let inbox = store
            .inbox_event(Source::Status, &format!("evt-race-{i}"))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(
            inbox.matched_workflow_id,
            Some(id),
            "round {i}: event matched"
        );
        let row = store.get(id).await.expect("get").expect("exists");
        assert!(
            row.next_run_at.is_some_and(|at| at < deadline),
            "round {i}: due now, not at the deadline (woke: {:?})",
            recorded.woke
        );
    }
}

/// A submit and a callback that wakes its workflow are handed over to listeners in the same
/// process after they commit; a duplicate, or a callback nobody waits for, is not.
async fn what_a_store_makes_due_is_handed_over_in_process(db: TestDb) {
    let store = &db.store;
    let mut due = store.due_now();
    let nik = "3201000000000013";
    let claimed = submit_and_claim(store, "hand-1", "w1").await;
    let id = claimed.workflow.id;
    assert_eq!(due.try_recv().ok(), Some(id), "the submit is handed over");
    let mut wait = step(&claimed, "wait_user_verified", Status::Waiting, None);
    wait.waits = vec![Wait::new(
        "user_verified",
        CorrelationKey::IdentityNumber,
        nik,
    )];
    store.commit_step(&wait).await.expect("start waiting");
    assert!(due.try_recv().is_err(), "a wait is not due");
    store
        .record_callback(&user_event("evt-h0", "user_approved", nik))
        .await
        .expect("record");
    assert!(due.try_recv().is_err(), "nobody waits for it");
    store
        .record_callback(&user_event("evt-h1", "user_verified", nik))
        .await
        .expect("record");
    assert_eq!(
        due.try_recv().ok(),
        Some(id),
        "the woken workflow is handed over"
    );
    store
        .record_callback(&user_event("evt-h1", "user_verified", nik))
        .await
        .expect("record");
    assert!(due.try_recv().is_err(), "a duplicate wakes nobody");
}
