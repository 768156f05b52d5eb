//! Outbound webhooks against a receiver that is down for a while: real workflows (an
//! onboarding and two loans driven to `paid` through the sandbox) write their lifecycle
//! events, two deliverers (a fleet of two processes: the worker's own, started by the
//! runtime as `finflow run` starts it, and one more on the same database) push them
//! to a local receiver that answers 500 for its first seconds and 200 after. Every event
//! must arrive, accepted exactly once (no delivery sent by both deliverers), in order per
//! workflow (no later event of a workflow before its earlier one was accepted), each with a
//! valid signature, and the retries must be visible in `webhook_deliveries`. On both
//! backends.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{Days, Utc};
use finfra_sandbox::SandboxConfig;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{Value, json};
use store::testing::TestDb;
use store::{DeliveryStatus, NewWorkflow, Store, Workflow};
use uuid::Uuid;
use worker::inprocess::{EngineOptions, InProcess};
use worker::webhooks::{Deliverer, SIGNATURE_HEADER, Webhook, verify};
use workflow::Registry;

store::test_both_backends!(every_event_reaches_a_receiver_that_was_down_in_order_and_signed);

const SECRET: &str = "whsec_test_secret";
/// How long the receiver answers 500 after its first request.
const DOWN_FOR: Duration = Duration::from_secs(2);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery_id: String,
    event_id: i64,
    workflow_id: Option<String>,
    signature_valid: bool,
    accepted: bool,
}

#[derive(Default)]
struct Receiver {
    first: Option<Instant>,
    log: Vec<Received>,
}

async fn receive(
    State(receiver): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature_valid = verify(
        &SecretString::from(SECRET),
        &header(SIGNATURE_HEADER),
        &body,
        Duration::from_secs(300),
        Utc::now(),
    );
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut receiver = receiver.lock().expect("lock");
    let first = *receiver.first.get_or_insert_with(Instant::now);
    let accepted = first.elapsed() >= DOWN_FOR;
    receiver.log.push(Received {
        delivery_id: header("finflow-delivery-id"),
        event_id: event["id"].as_i64().unwrap_or(-1),
        workflow_id: event["workflow_id"].as_str().map(str::to_owned),
        signature_valid,
        accepted,
    });
    if accepted {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

fn loan() -> Value {
    let due = (Utc::now().date_naive() + Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    json!({
        "definition": "personal-single-payment",
        "borrower": { "onboarding": "hook-borrower" },
        "loan": {
            "type": "SINGLE_PAYMENT", "principal_amount": "5000000.00",
            "interest_amount": "250000.00", "due_date": due, "purpose": "Renovation"
        },
        "disbursement_account": {
            "holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"
        }
    })
}

async fn until_state(store: &Store, id: Uuid, state: &str) -> Workflow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = store.get(id).await.expect("get").expect("exists");
        if w.state == state {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "{} stuck in {}/{} ({:?}), expected {state}",
            w.business_key,
            w.state,
            w.status,
            w.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_event_reaches_a_receiver_that_was_down_in_order_and_signed(db: TestDb) {
    let store = &db.store;
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(receiver.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let webhook = Webhook {
        name: "lender".into(),
        url: url.parse().expect("url"),
        secret: SecretString::from(SECRET),
        events: Vec::new(),
        retry_for: Duration::from_secs(300),
        retry_initial: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    };
    let world = InProcess::start(
        store.clone(),
        Registry::load_dir(&repo().join("workflows")).expect("definitions"),
        SandboxConfig::for_tests(),
        &EngineOptions {
            concurrency: 8,
            lease: Duration::from_secs(5),
            webhooks: vec![webhook.clone()],
        },
    )
    .await
    .expect("sandbox, receiver and worker");
    let sandbox = world.sandbox();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-personal.json"))
            .expect("sample input"),
    )
    .expect("json");
    let submit = |kind: &'static str, key: &'static str, input: Value| async move {
        store
            .submit(&NewWorkflow::new(kind, key, input))
            .await
            .expect("submit")
            .id
    };
    submit("onboard-borrower", "hook-borrower", input).await;
    let loans = [
        submit("originate-loan", "hook-loan-1", loan()).await,
        submit("originate-loan", "hook-loan-2", loan()).await,
    ];
    for id in loans {
        let w = until_state(store, id, "await_signed").await;
        let unique_id = w.facts["loan_unique_id"]
            .as_str()
            .expect("a loan")
            .to_owned();
        sandbox.sign_loan(&unique_id).expect("signed");
        until_state(store, id, "await_disbursement").await;
        sandbox
            .complete_disbursement(&unique_id)
            .expect("disbursed");
        let w = until_state(store, id, "repaying").await;
        let account = w.facts["virtual_account_external_id"]
            .as_str()
            .expect("a virtual account")
            .to_owned();
        sandbox
            .pay_virtual_account(&account, Decimal::new(5_250_000, 0))
            .expect("paid");
        until_state(store, id, "paid").await;
    }

    // The worker's own deliverer (started by the runtime) has been at work alone so far;
    // now a second process of the fleet joins it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.lock().expect("lock").log.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the worker's runtime delivers nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The second process of the fleet: only its deliverer.
    let deliverers: Vec<_> = (1..2)
        .map(|i| {
            let deliverer = Deliverer::new(store.clone(), vec![webhook.clone()], format!("d{i}"))
                .expect("deliverer");
            tokio::spawn(deliverer.run(stopped.clone()))
        })
        .collect();

    // Every event of the feed delivered (the receiver was down for its first seconds).
    let events = store.events_after(0, 500).await.expect("feed");
    let per_loan = [
        "loan.created",
        "loan.signed",
        "loan.disbursed",
        "loan.payment_applied",
        "loan.paid",
    ];
    for id in loans {
        let types: Vec<String> = store
            .workflow_events(id)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(types, per_loan, "the loan's feed");
    }
    assert_eq!(events.len(), 1 + 2 * per_loan.len(), "{events:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let deliveries = store.deliveries(false, 100).await.expect("deliveries");
        if deliveries.len() == events.len()
            && deliveries
                .iter()
                .all(|d| d.status == DeliveryStatus::Delivered)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered: {deliveries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    for deliverer in deliverers {
        deliverer.await.expect("deliverer");
    }
    world.stop().await.expect("stop");
    server.abort();

    let log = receiver.lock().expect("lock").log.clone();
    assert!(
        log.iter().all(|r| r.signature_valid),
        "a bad signature: {log:#?}"
    );
    assert!(
        log.iter().any(|r| !r.accepted),
        "the receiver was never down"
    );
    for event in &events {
        let accepted = log
            .iter()
            .filter(|r| r.event_id == event.id && r.accepted)
            .count();
        assert_eq!(
            accepted, 1,
            "event {} ({}) accepted {accepted} times: sent once by one deliverer",
            event.id, event.event_type
        );
    }
    // In order per workflow: no request for a workflow's event before each of its earlier
    // events was accepted.
    for (i, request) in log.iter().enumerate() {
        let earlier = events.iter().filter(|e| {
            e.id < request.event_id && e.workflow_id.map(|id| id.to_string()) == request.workflow_id
        });
        for e in earlier {
            assert!(
                log[..i].iter().any(|r| r.event_id == e.id && r.accepted),
                "event {} was sent before event {} of the same workflow was accepted",
                request.event_id,
                e.id
            );
        }
    }
    // The retries are visible to operators.
    let deliveries = store.deliveries(false, 100).await.expect("deliveries");
    let retried: Vec<_> = deliveries.iter().filter(|d| d.attempts > 1).collect();
    assert!(
        !retried.is_empty(),
        "no delivery was retried: {deliveries:#?}"
    );
    for d in &deliveries {
        let requests = log.iter().filter(|r| r.delivery_id == d.id).count();
        assert_eq!(
            usize::try_from(d.attempts).expect("small"),
            requests,
            "{}: attempts recorded vs requests received",
            d.id
        );
        assert_eq!(d.last_status, Some(200));
        if d.attempts > 1 {
            assert_eq!(d.last_error.as_deref(), Some("receiver answered 500"));
        }
    }
    assert!(
        store
            .deliveries(true, 100)
            .await
            .expect("failed")
            .is_empty()
    );
}
