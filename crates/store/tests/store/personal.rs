//! Personal data at rest: sealed inputs and callback payloads, keyed hashes that still
//! match, erasure that keeps the money record, rotation, sealing of plain rows.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use privacy::{KeyRing, PrivacyConfig};
use secrecy::SecretString;
use serde_json::json;
use store::testing::TestDb;
use store::{
    CorrelationKey, CorrelationKeys, InboxEvent, NewWorkflow, Source, Status, Store, StoreError,
    Wait,
};

use crate::{LEASE, count, step};

store::test_both_backends!(
    inputs_and_callbacks_are_sealed_and_nik_matching_still_works,
    purge_and_erase_destroy_personal_data_and_keep_the_money_record,
    an_open_loan_known_by_the_borrowers_user_id_holds_the_erasure,
    rotation_rewraps_and_plain_rows_are_sealed_in_batches,
    a_reveal_is_journaled_and_keys_that_do_not_fit_are_refused,
);

const NIK: &str = "3174091203850007";
const NAME: &str = "Siti Rahmawati";
const PHONE: &str = "+6281234567890";

fn ring(labels: &[(&str, u8)], active: &str) -> Arc<KeyRing> {
    use base64::Engine as _;
    let b64 = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let config = PrivacyConfig {
        keys: labels
            .iter()
            .map(|(label, byte)| ((*label).to_owned(), SecretString::from(b64(*byte))))
            .collect(),
        active: Some(active.to_owned()),
        hash_key: Some(SecretString::from(b64(99))),
        retain: None,
    };
    Arc::new(KeyRing::from_config(&config).expect("keys"))
}

fn onboarding(key: &str) -> NewWorkflow {
    NewWorkflow::new(
        "onboard-borrower",
        key,
        json!({
            "definition": "personal-single-payment",
            "borrower": {
                "type": "PERSONAL",
                "authorised_signatory": {
                    "name": NAME,
                    "phone_number": PHONE,
                    "documents": { "ktp": { "number": NIK } }
                }
            }
        }),
    )
}

/// Every text a table holds of the workflows and the inbox, as one string per row.
async fn stored_text(db: &TestDb) -> Vec<String> {
    let sqls: &[&str] = match db.backend {
        store::testing::TestBackend::Postgres => &[
            "SELECT w::text FROM workflows w",
            "SELECT c::text FROM callback_inbox c",
            "SELECT x::text FROM workflow_waits x",
        ],
        store::testing::TestBackend::Sqlite => &[
            "SELECT input || context || coalesce(identity_key, '') || coalesce(nik_last4, '') FROM workflows",
            "SELECT payload || coalesce(identity_number, '') FROM callback_inbox",
            "SELECT key_value FROM workflow_waits",
        ],
    };
    let mut out = Vec::new();
    for sql in sqls {
        let rows: Vec<String> = match db.store.backend() {
            store::Backend::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(*sql))
                .fetch_all(pool)
                .await
                .expect(sql),
            store::Backend::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(*sql))
                .fetch_all(pool)
                .await
                .expect(sql),
        };
        out.extend(rows);
    }
    out
}

fn assert_no_personal_data(texts: &[String]) {
    for text in texts {
        for secret in [NIK, NAME, PHONE] {
            assert!(!text.contains(secret), "{secret:?} stored plain in {text}");
        }
    }
}

fn user_created(event_id: &str) -> InboxEvent {
    InboxEvent {
        source: Source::Status,
        event_id: event_id.into(),
        title: "user_created".into(),
        keys: CorrelationKeys {
            identity_number: Some(NIK.into()),
            ..CorrelationKeys::default()
        },
        payload: json!({ "callback_title": "user_created", "identity_number": NIK, "name": NAME }),
    }
}

async fn inputs_and_callbacks_are_sealed_and_nik_matching_still_works(db: TestDb) {
    let store = db
        .store
        .clone()
        .with_keys(ring(&[("2026-12", 1)], "2026-12"));
    let submitted = store.submit(&onboarding("siti-1")).await.expect("submit");
    // The same input again is the same workflow (compared by hash: each seal differs).
    let again = store.submit(&onboarding("siti-1")).await.expect("resubmit");
    assert_eq!((again.id, again.created), (submitted.id, false));
    let claimed = store
        .claim(submitted.id, "w1", LEASE)
        .await
        .expect("claim")
        .expect("due");
    let row = &claimed.workflow;
    assert!(privacy::is_sealed(&row.input), "{}", row.input);
    assert!(
        row.data_key
            .as_deref()
            .is_some_and(|k| k.starts_with("2026-12:"))
    );
    assert_eq!(
        store.input(row).expect("open"),
        onboarding("siti-1").input,
        "the worker reads the input as submitted"
    );
    // A store without the keys cannot read it, and says so.
    assert!(matches!(db.store.input(row), Err(StoreError::Privacy(_))));

    // A wait on the NIK and the callback carrying it still meet.
    let mut wait = step(&claimed, "await_user_created", Status::Waiting, None);
    wait.waits = vec![Wait::new(
        "user_created",
        CorrelationKey::IdentityNumber,
        NIK,
    )];
    store.commit_step(&wait).await.expect("wait");
    let recorded = store
        .record_callback(&user_created("evt-1"))
        .await
        .expect("record");
    assert_eq!(recorded.woke, Some(submitted.id), "matched by keyed hash");
    let stored = store
        .inbox_event(Source::Status, "evt-1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        store
            .open_payload("status", "evt-1", &stored.payload)
            .expect("open"),
        user_created("evt-1").payload
    );
    assert!(
        store
            .open_payload("status", "evt-2", &stored.payload)
            .is_err(),
        "a payload is bound to its row"
    );
    assert_no_personal_data(&stored_text(&db).await);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM workflows WHERE nik_last4 = '0007'"
        )
        .await,
        1,
        "the masked form is kept for searching"
    );
}

/// A borrower's onboarding `key` finished with Finfra's `user_id` among its facts, and a
/// loan of theirs (`loan-<key>`) waiting with `loan_facts`: the ids of both.
async fn onboarded_with_an_open_loan(
    store: &Store,
    key: &str,
    user_id: &str,
    loan_facts: serde_json::Value,
) -> (uuid::Uuid, uuid::Uuid) {
    let onboarded = store.submit(&onboarding(key)).await.expect("submit");
    let claimed = store
        .claim(onboarded.id, "w1", LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut done = step(&claimed, "approved", Status::Completed, None);
    done.facts = json!({ "user_id": user_id });
    store.commit_step(&done).await.expect("finish");
    let loan = store
        .submit(&NewWorkflow::new(
            "originate-loan",
            format!("loan-{key}"),
            json!({ "borrower": { "onboarding": key }, "account": "1234567890" }),
        ))
        .await
        .expect("submit loan");
    let claimed_loan = store
        .claim(loan.id, "w1", LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut repaying = step(&claimed_loan, "repaying", Status::Waiting, Some(Utc::now()));
    repaying.facts = loan_facts;
    store.commit_step(&repaying).await.expect("repaying");
    (onboarded.id, loan.id)
}

/// Erasing the borrower of onboarding `key` is refused, naming the loan `loan-<key>` that
/// still waits.
async fn erase_refused_for_the_open_loan(store: &Store, key: &str) {
    let refused = store.erase(key).await.expect_err("a loan is open");
    let StoreError::Refused(why) = refused else {
        panic!("refused: {refused}");
    };
    assert!(
        why.contains(&format!("loan-{key}")) && why.contains("waiting"),
        "{why}"
    );
}

async fn purge_and_erase_destroy_personal_data_and_keep_the_money_record(db: TestDb) {
    let store = db.store.clone().with_keys(ring(&[("k1", 1)], "k1"));
    // A finished onboarding and a loan of the borrower still open.
    let (onboarded, loan) = onboarded_with_an_open_loan(
        &store,
        "siti-2",
        "6a41aa00bb00cc00dd00ee00",
        json!({ "onboarding_business_key": "siti-2", "total_amount": "5150000.00" }),
    )
    .await;
    let journal_before = count(&store, "SELECT count(*) FROM step_journal").await;

    erase_refused_for_the_open_loan(&store, "siti-2").await;
    assert!(
        store
            .input(&store.get(onboarded).await.unwrap().unwrap())
            .is_ok()
    );

    // The loan finishes: then the borrower is erased, onboarding and loan.
    let claimed_loan = store
        .claim(loan, "w1", LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut paid = step(&claimed_loan, "paid", Status::Completed, None);
    paid.facts = json!({ "onboarding_business_key": "siti-2", "total_amount": "5150000.00" });
    store.commit_step(&paid).await.expect("paid");
    let erasure = store.erase("siti-2").await.expect("erase");
    assert_eq!(erasure.workflows.len(), 2);
    for id in [onboarded, loan] {
        let row = store.get(id).await.unwrap().unwrap();
        assert!(matches!(store.input(&row), Err(StoreError::Erased(_))));
        assert!(row.erased_at.is_some());
        assert_eq!(row.data_key.as_deref(), Some("erased"));
    }
    let loan_row = store.get(loan).await.unwrap().unwrap();
    assert_eq!(
        loan_row.facts["total_amount"], "5150000.00",
        "the money record stays"
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM step_journal").await,
        journal_before + 1,
        "the journal is untouched (one row for the loan's last step)"
    );
    assert_no_personal_data(&stored_text(&db).await);

    // Purge by date: another finished onboarding, finished now, is purged by a later day.
    let other = store.submit(&onboarding("siti-3")).await.expect("submit");
    let claimed = store
        .claim(other.id, "w1", LEASE)
        .await
        .expect("claim")
        .expect("due");
    store
        .commit_step(&step(&claimed, "failed", Status::Failed, None))
        .await
        .expect("fail");
    assert_eq!(
        store.purge(Utc::now() - TimeDelta::days(1)).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .purge(Utc::now() + TimeDelta::seconds(1))
            .await
            .unwrap(),
        1
    );
    let row = store.get(other.id).await.unwrap().unwrap();
    assert!(matches!(store.input(&row), Err(StoreError::Erased(_))));
    assert!(row.context.is_object(), "the pages still read the workflow");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM workflow_overview WHERE personal_data = 'erased' AND erased_at IS NOT NULL"
        )
        .await,
        3,
        "the overview says erased"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM workflow_overview WHERE personal_data = 'sealed'"
        )
        .await,
        0
    );
}

/// An erasure finds the borrower's loans by the onboarding's business key or by the
/// borrower's Finfra user id (on PostgreSQL the `user_id` column, migration 0021): a loan
/// that names only the user id and is still open refuses the erasure.
async fn an_open_loan_known_by_the_borrowers_user_id_holds_the_erasure(db: TestDb) {
    let store = db.store.clone().with_keys(ring(&[("k1", 1)], "k1"));
    let user_id = "6a41aa00bb00cc00dd00ee01";
    onboarded_with_an_open_loan(&store, "siti-3", user_id, json!({ "user_id": user_id })).await;

    erase_refused_for_the_open_loan(&store, "siti-3").await;
}

async fn rotation_rewraps_and_plain_rows_are_sealed_in_batches(db: TestDb) {
    // Written before keys were configured: plain.
    let plain = db
        .store
        .submit(&onboarding("siti-4"))
        .await
        .expect("submit");
    db.store
        .record_callback(&user_created("evt-plain"))
        .await
        .expect("record");
    let old = db.store.clone().with_keys(ring(&[("old", 1)], "old"));
    let progress = old.seal_plain(1).await.expect("seal");
    assert_eq!(progress.sealed, 2, "one input, one payload per batch of 1");
    assert_eq!(progress.left, 0);
    let row = old.get(plain.id).await.unwrap().unwrap();
    assert_eq!(old.input(&row).unwrap(), onboarding("siti-4").input);
    assert_no_personal_data(&stored_text(&db).await);

    // Rotation: a new key becomes active; every data key is rewrapped under it.
    let both = db
        .store
        .clone()
        .with_keys(ring(&[("old", 1), ("new", 2)], "new"));
    assert_eq!(both.rotate_keys(100).await.expect("rotate"), 2);
    assert_eq!(both.rotate_keys(100).await.expect("rotate again"), 0);
    let new_only = db.store.clone().with_keys(ring(&[("new", 2)], "new"));
    let row = new_only.get(plain.id).await.unwrap().unwrap();
    assert!(
        row.data_key
            .as_deref()
            .is_some_and(|k| k.starts_with("new:"))
    );
    assert_eq!(new_only.input(&row).unwrap(), onboarding("siti-4").input);
    let stored = new_only
        .inbox_event(Source::Status, "evt-plain")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        new_only
            .open_payload("status", "evt-plain", &stored.payload)
            .unwrap(),
        user_created("evt-plain").payload
    );
}

async fn a_reveal_is_journaled_and_keys_that_do_not_fit_are_refused(db: TestDb) {
    // Before anything is sealed, any keys fit, and no keys too.
    db.store.check_keys().await.expect("an empty database");
    let store = db.store.clone().with_keys(ring(&[("k1", 1)], "k1"));
    let id = store
        .submit(&onboarding("siti-5"))
        .await
        .expect("submit")
        .id;
    let row = store.get(id).await.unwrap().unwrap();

    assert!(matches!(
        store.reveal(&row, "alice", "  ", "cli").await,
        Err(StoreError::Refused(_))
    ));
    assert!(
        store.reveals(id).await.unwrap().is_empty(),
        "nothing shown, nothing journaled"
    );
    let input = store
        .reveal(&row, "alice", "KYC dispute #812", "cli")
        .await
        .expect("reveal");
    assert_eq!(input, onboarding("siti-5").input);
    let reveals = store.reveals(id).await.unwrap();
    assert_eq!(reveals.len(), 1);
    assert_eq!(
        (
            reveals[0].revealed_by.as_str(),
            reveals[0].reason.as_str(),
            reveals[0].via.as_str()
        ),
        ("alice", "KYC dispute #812", "cli")
    );

    // The keys it was sealed with fit; another key under the same label, another label,
    // or none at all do not.
    store.check_keys().await.expect("the right keys");
    let wrong = db.store.clone().with_keys(ring(&[("k1", 2)], "k1"));
    assert!(matches!(
        wrong.check_keys().await,
        Err(StoreError::Privacy(_))
    ));
    let other = db.store.clone().with_keys(ring(&[("k2", 1)], "k2"));
    let Err(StoreError::Privacy(error)) = other.check_keys().await else {
        panic!("an unknown label is refused");
    };
    assert!(error.to_string().contains("k1"), "{error}");
    assert!(matches!(
        db.store.check_keys().await,
        Err(StoreError::Privacy(_))
    ));
}
