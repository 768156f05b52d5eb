//! Callbacks to the partner (CONTRACT §7): paths, bodies, the auth key, retries, duplicates.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Api, Receiver, eventually, start};
use finfra_sandbox::{CallbackDelivery, SandboxConfig};
use serde_json::{Value, json};

fn config(receiver: &Receiver, delivery: CallbackDelivery) -> SandboxConfig {
    SandboxConfig {
        callback: Some(receiver.target()),
        delivery,
        ..SandboxConfig::for_tests()
    }
}

fn fast() -> CallbackDelivery {
    CallbackDelivery {
        retry_base: Duration::from_millis(5),
        ..CallbackDelivery::default()
    }
}

#[tokio::test]
async fn a_full_lifecycle_sends_every_callback_with_the_key() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(config(&receiver, fast())).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    let loan = api.disbursed_loan(&sandbox, &user, "loan-0001").await;
    let (_, va) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": "loan-0001", "bank_code": "BRI"}),
        )
        .await;
    sandbox
        .pay_virtual_account(
            va["external_id"].as_str().unwrap(),
            loan["total_amount"].as_str().unwrap().parse().unwrap(),
        )
        .unwrap();

    let expected = [
        "user_created",
        "user_verified",
        "user_approved",
        "loan_created",
        "loan_signed",
        "loan_disbursed",
        "loan_paid",
    ];
    // The receiver records a call before it answers; the sandbox counts the delivery after.
    eventually(|| async {
        receiver.received().len() == expected.len() + 1 && sandbox.ledger().callbacks_delivered == 8
    })
    .await;
    let received = receiver.received();
    assert!(
        received
            .iter()
            .all(|r| r.auth_key.as_deref() == Some("partner-callback-key"))
    );
    let titles: HashSet<String> = receiver.titles().into_iter().collect();
    assert_eq!(titles, expected.iter().map(|t| (*t).to_owned()).collect());
    let ids: HashSet<&str> = received
        .iter()
        .filter_map(|r| r.body["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), expected.len(), "event ids are unique");

    let by_title = |t: &str| {
        received
            .iter()
            .find(|r| r.body["callback_title"] == t)
            .unwrap()
    };
    let disbursed = by_title("loan_disbursed");
    assert_eq!(disbursed.path, "/api/core/ftm/users/loan_disbursed/status");
    assert_eq!(disbursed.body["loan_unique_id"], "loan-0001");
    assert_eq!(disbursed.body["user_id"], user.as_str());
    assert_eq!(disbursed.body["status"], "DISBURSED");
    assert!(disbursed.body["data"]["reference"].is_string());
    assert!(
        disbursed.body.get("identity_number").is_none(),
        "only user events carry the NIK"
    );
    assert_eq!(
        by_title("user_approved").body["identity_number"],
        "3275062009921981"
    );
    assert_eq!(by_title("user_approved").body["status"], "APPROVED");

    let payment = received
        .iter()
        .find(|r| r.path == "/api/core/payment-gateway/virtual-account/status")
        .unwrap();
    assert_eq!(payment.body["external_id"], va["external_id"]);
    assert_eq!(payment.body["amount"], "5260000.00");
    assert_eq!(payment.body["account_number"], va["account_number"]);
    for key in ["id", "payment_id", "bank_code", "transaction_timestamp"] {
        assert!(payment.body[key].is_string(), "{key}");
    }
    let ledger = sandbox.ledger();
    assert_eq!(ledger.callbacks_delivered, 8);
    assert_eq!(ledger.callback_attempts, 8);
    assert_eq!(ledger.callbacks_failed, 0);
}

#[tokio::test]
async fn refused_callbacks_are_retried_until_they_land() {
    // The receiver answers 500 to its first three calls.
    let receiver = Receiver::start(3).await;
    let sandbox = start(config(&receiver, fast())).await;
    let api = Api::login(&sandbox).await;
    api.create_personal("3275062009921981", "budi@example.com")
        .await;
    eventually(|| async {
        receiver.titles().len() == 2 && sandbox.ledger().callbacks_delivered == 2
    })
    .await;
    let ledger = sandbox.ledger();
    assert_eq!(ledger.callbacks_delivered, 2);
    assert_eq!(ledger.callback_attempts, 5);
    assert_eq!(ledger.callbacks_failed, 0);
}

#[tokio::test]
async fn delivery_gives_up_after_max_attempts() {
    let receiver = Receiver::start(usize::MAX).await;
    let sandbox = start(config(
        &receiver,
        CallbackDelivery {
            max_attempts: 3,
            ..fast()
        },
    ))
    .await;
    sandbox.send_didit_callback("session-1", "Approved");
    eventually(|| async { sandbox.ledger().callbacks_failed == 1 }).await;
    assert_eq!(sandbox.ledger().callback_attempts, 3);
    assert_eq!(sandbox.ledger().callbacks_delivered, 0);
}

#[tokio::test]
async fn duplicates_repeat_the_same_event_id() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(config(
        &receiver,
        CallbackDelivery {
            duplicate_rate: 1.0,
            max_reorder_delay: Duration::from_millis(20),
            ..fast()
        },
    ))
    .await;
    let api = Api::login(&sandbox).await;
    api.create_personal("3275062009921981", "budi@example.com")
        .await;
    eventually(|| async {
        receiver.received().len() == 4 && sandbox.ledger().callbacks_delivered == 4
    })
    .await;
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.body["event_id"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 2, "two events, each delivered twice");
    let ledger = sandbox.ledger();
    assert_eq!(ledger.callbacks_duplicated, 2);
    assert_eq!(ledger.callbacks_delivered, 4);
    assert_eq!(ledger.callbacks_emitted["user_created"], 1);
}

#[tokio::test]
async fn bnpl_loans_use_bnpl_titles_and_the_other_paths_work() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(config(&receiver, fast())).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    let (status, _) = api
        .post(
            &format!("/api/core/loans/{user}/bnpl"),
            json!({
                "unique_id": "bnpl-0001", "principal_amount": "600000", "tenor": 3,
                "frequency": "BIWEEKLY", "interest_rate": "0.02", "first_due_date": "2026-01-15",
                "disbursement_account": {"holder_name": "Budi", "number": "1234567890", "swift_code": "BNINIDJA"}
            }),
        )
        .await;
    assert_eq!(status, 200);
    api.post(
        "/api/core/loans/bnpl-0001/reject",
        json!({"reason": "customer cancelled"}),
    )
    .await;
    sandbox
        .send_invoice_callback("inv-1", true, "150000".parse().unwrap())
        .unwrap();
    sandbox.send_didit_callback("session-9", "Approved");
    eventually(|| async { receiver.received().len() == 7 }).await;
    let titles = receiver.titles();
    assert!(titles.contains(&"bnpl_created".to_owned()));
    let rejected = receiver
        .received()
        .into_iter()
        .find(|r| r.body["callback_title"] == "bnpl_rejected")
        .unwrap();
    assert_eq!(rejected.body["data"]["reason"], "customer cancelled");
    let invoice = receiver
        .received()
        .into_iter()
        .find(|r| r.path == "/api/core/payment-gateway/invoices/status")
        .unwrap();
    assert_eq!(invoice.body["status"], "PAID");
    assert_eq!(invoice.body["paid_amount"], "150000.00");
    let didit = receiver
        .received()
        .into_iter()
        .find(|r| r.path.starts_with("/api/core/users/didit/session/callback"))
        .unwrap();
    assert_eq!(
        didit.path,
        "/api/core/users/didit/session/callback?verificationSessionId=session-9&status=Approved"
    );
    assert_eq!(didit.body["session_id"], Value::from("session-9"));
}
