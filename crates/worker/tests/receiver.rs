//! The callback receiver against real deliveries from `finfra-sandbox`, and every refusal:
//! wrong key, wrong content type, malformed or oversized body, a storage failure that makes
//! Finfra deliver again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use finfra_api::auth::Credentials;
use finfra_api::callback::AuthKeyVerifier;
use finfra_api::model::borrower::CreateBorrower;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{CallbackTarget, Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::json;
use store::{InboxEvent, Recorded, Source, Store, StoreError};
use worker::receiver::Inbox;

const KEY: &str = "callback-key-for-tests";

/// The real store (SQLite in a temporary file), with a switch that makes the next
/// `fail_next` records fail as a database outage would.
#[derive(Clone)]
struct FlakyStore {
    store: Store,
    fail_next: Arc<AtomicU32>,
}

impl FlakyStore {
    async fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("finflow-receiver-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open store");
        store.migrate().await.expect("migrate");
        Self {
            store,
            fail_next: Arc::new(AtomicU32::new(0)),
        }
    }

    /// `(source, event_id, title)` of every stored event, in arrival order.
    async fn events(&self) -> Vec<(String, String, String)> {
        let pool = self.store.sqlite_pool().expect("sqlite");
        sqlx::query_as("SELECT source, event_id, title FROM callback_inbox ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("read inbox")
    }

    async fn titles(&self) -> Vec<String> {
        self.events().await.into_iter().map(|(_, _, t)| t).collect()
    }
}

impl Inbox for FlakyStore {
    async fn record(&self, event: InboxEvent) -> Result<Recorded, StoreError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Refused("simulated database outage".into()));
        }
        self.store.record(event).await
    }
}

async fn serve(inbox: FlakyStore) -> url::Url {
    let verifier = AuthKeyVerifier::new(&SecretString::from(KEY)).expect("verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = worker::receiver::router(inbox, verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&format!("http://{addr}/")).expect("url")
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn borrower() -> CreateBorrower {
    let example = include_str!("../../finfra-api/tests/fixtures/create_borrower_example.json");
    serde_json::from_str(example).expect("the reference's example decodes")
}

#[tokio::test]
async fn sandbox_callbacks_are_received_deduplicated_and_retried_after_a_storage_failure() {
    let inbox = FlakyStore::new().await;
    // The first delivery fails to store: the receiver answers 503 and the sandbox retries.
    inbox.fail_next.store(1, Ordering::SeqCst);
    let receiver_url = serve(inbox.clone()).await;
    let mut config = SandboxConfig::for_tests();
    config.callback = Some(CallbackTarget {
        base_url: receiver_url,
        auth_key: KEY.to_owned(),
    });
    config.delivery.duplicate_rate = 1.0;
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");

    let body = borrower();
    let nik = body.authorised_signatory.documents.ktp.number.clone();
    client.create_borrower(&body, None).await.expect("create");
    eventually("user_created and user_verified", || async {
        let titles = inbox.titles().await;
        titles.iter().any(|t| t == "user_created") && titles.iter().any(|t| t == "user_verified")
    })
    .await;
    let user_id = sandbox.borrower_id_by_nik(&nik).expect("borrower exists");
    client.approve_borrower(&user_id).await.expect("approve");
    eventually("user_approved", || async {
        inbox.titles().await.iter().any(|t| t == "user_approved")
    })
    .await;
    // Every callback was sent twice (duplicate rate 1.0): wait until the sandbox has
    // delivered them all, then check each was stored once.
    eventually("every duplicate delivered", || async {
        let ledger = sandbox.ledger();
        ledger.callbacks_delivered >= 2 * ledger.callbacks_emitted.values().sum::<u64>()
    })
    .await;

    let events = inbox.events().await;
    let (_, created_id, _) = events
        .iter()
        .find(|(_, _, title)| title == "user_created")
        .expect("user_created");
    let created = inbox
        .store
        .inbox_event(Source::Status, created_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(created.keys.identity_number.as_deref(), Some(nik.as_str()));
    assert_eq!(created.keys.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(created.payload["callback_title"], "user_created");
    // Each event is stored once although each was delivered at least twice.
    let mut ids: Vec<_> = events.iter().map(|(_, id, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(
        inbox.fail_next.load(Ordering::SeqCst),
        0,
        "one delivery met the storage failure and was answered 503"
    );
    let ledger = sandbox.ledger();
    assert!(
        ledger.callback_attempts > ledger.callbacks_delivered,
        "the refused delivery was attempted again: {ledger:?}"
    );
    assert_eq!(
        ledger.callbacks_failed, 0,
        "every callback landed in the end: {ledger:?}"
    );
}

#[tokio::test]
async fn refusals_name_the_problem_and_store_nothing() {
    let inbox = FlakyStore::new().await;
    let base = serve(inbox.clone()).await;
    let http = reqwest::Client::new();
    let status_url = base
        .join("api/core/ftm/users/user_created/status")
        .expect("url");
    let good = json!({
        "event_id": "evt-1",
        "callback_title": "user_created",
        "occurred_at": "2026-11-24T05:00:00Z",
        "user_id": "6a41ff87dda4eefd0b7b0300",
        "identity_number": "3275062009921981",
        "status": "PENDING",
        "data": {}
    });
    let send =
        |url: url::Url, key: Option<&'static str>, content_type: &'static str, body: Vec<u8>| {
            let mut request = http
                .post(url)
                .header("content-type", content_type)
                .body(body);
            if let Some(key) = key {
                request = request.header("finfra-auth-key", key);
            }
            request.send()
        };
    let json_bytes = |value: &serde_json::Value| serde_json::to_vec(value).expect("json");

    let missing = send(
        status_url.clone(),
        None,
        "application/json",
        json_bytes(&good),
    )
    .await
    .expect("send");
    assert_eq!(missing.status(), 401);
    let wrong = send(
        status_url.clone(),
        Some("not-the-key"),
        "application/json",
        json_bytes(&good),
    )
    .await
    .expect("send");
    assert_eq!(wrong.status(), 401);
    let text = send(
        status_url.clone(),
        Some(KEY),
        "text/plain",
        json_bytes(&good),
    )
    .await
    .expect("send");
    assert_eq!(text.status(), 415);

    let mut no_id = good.clone();
    no_id.as_object_mut().expect("object").remove("event_id");
    let malformed = send(
        status_url.clone(),
        Some(KEY),
        "application/json",
        json_bytes(&no_id),
    )
    .await
    .expect("send");
    assert_eq!(malformed.status(), 400);
    let message = malformed.text().await.expect("body");
    assert!(message.contains("event_id"), "{message}");

    let truncated = send(
        status_url.clone(),
        Some(KEY),
        "application/json",
        b"{\"event_id\": \"evt-2\", \"callback_title\"".to_vec(),
    )
    .await
    .expect("send");
    assert_eq!(truncated.status(), 400);

    let mismatched_url = base
        .join("api/core/ftm/users/user_verified/status")
        .expect("url");
    let mismatched = send(
        mismatched_url,
        Some(KEY),
        "application/json",
        json_bytes(&good),
    )
    .await
    .expect("send");
    assert_eq!(mismatched.status(), 400);

    let mut huge = good.clone();
    huge["data"] = json!({ "padding": "x".repeat(100 * 1024) });
    let too_big = send(
        status_url.clone(),
        Some(KEY),
        "application/json",
        json_bytes(&huge),
    )
    .await
    .expect("send");
    assert_eq!(too_big.status(), 413);

    let money_as_text = send(
        base.join("api/core/payment-gateway/virtual-account/status")
            .expect("url"),
        Some(KEY),
        "application/json",
        json_bytes(&json!({
            "id": "pay-1", "external_id": "va-1", "payment_id": "p-1",
            "account_number": "8808123", "bank_code": "BCA",
            "amount": "not money", "transaction_timestamp": "2026-11-24T05:00:00Z"
        })),
    )
    .await
    .expect("send");
    assert_eq!(money_as_text.status(), 400);

    let didit_without_session = send(
        base.join("api/core/users/didit/session/callback?status=1")
            .expect("url"),
        Some(KEY),
        "application/json",
        Vec::new(),
    )
    .await
    .expect("send");
    assert_eq!(didit_without_session.status(), 400);

    assert!(inbox.titles().await.is_empty(), "nothing was stored");

    // And the good ones are stored, each source with its own dedupe key.
    let ok = send(
        status_url.clone(),
        Some(KEY),
        "application/json",
        json_bytes(&good),
    )
    .await
    .expect("send");
    assert_eq!(ok.status(), 200);
    let again = send(status_url, Some(KEY), "application/json", json_bytes(&good))
        .await
        .expect("send");
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["duplicate"], true);
    let invoice = send(
        base.join("api/core/payment-gateway/invoices/status")
            .expect("url"),
        Some(KEY),
        "application/json",
        json_bytes(&json!({
            "id": "inv-1", "external_id": "ext-9", "status": "PAID",
            "amount": "150000.00", "paid_amount": "150000.00", "paid_at": "2026-11-24T05:00:00Z"
        })),
    )
    .await
    .expect("send");
    assert_eq!(invoice.status(), 200);
    let didit = send(
        base.join("api/core/users/didit/session/callback?verificationSessionId=sess-1&status=1")
            .expect("url"),
        Some(KEY),
        "application/json",
        Vec::new(),
    )
    .await
    .expect("send");
    assert_eq!(didit.status(), 200);
    let events = inbox.events().await;
    let summary: Vec<_> = events
        .iter()
        .map(|(source, id, title)| (source.as_str(), id.as_str(), title.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("status", "evt-1", "user_created"),
            ("invoice", "inv-1:paid", "invoice_paid"),
            ("didit", "sess-1:1", "didit_session"),
        ]
    );
    let invoice = inbox
        .store
        .inbox_event(Source::Invoice, "inv-1:paid")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(invoice.keys.external_id.as_deref(), Some("ext-9"));
}
