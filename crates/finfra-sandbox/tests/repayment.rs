//! The simulated borrower who repays (`Timing::auto_repay`): once a loan is `DISBURSED` and
//! has a virtual account, one installment is paid per interval through the same path as the
//! control call, until the loan is `PAID`. And the `+paynow` borrower, who pays the whole
//! loan the moment the account is issued.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Api, Receiver, eventually, start};
use finfra_sandbox::{CallbackDelivery, RunningSandbox, SandboxConfig, Timing};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const EVERY: Duration = Duration::from_millis(100);
const VA_PATH: &str = "/api/core/payment-gateway/virtual-account/status";

/// Zero delays but auto-repay every [`EVERY`]; callbacks to `receiver`, half of them
/// duplicated (seeded, so the same ones every run) and reordered by up to 30 ms.
fn config(receiver: &Receiver) -> SandboxConfig {
    SandboxConfig {
        callback: Some(receiver.target()),
        delivery: CallbackDelivery {
            seed: 7,
            duplicate_rate: 0.5,
            max_reorder_delay: Duration::from_millis(30),
            retry_base: Duration::from_millis(5),
            ..CallbackDelivery::default()
        },
        timing: Timing {
            auto_repay: Some(EVERY),
            ..Timing::zero()
        },
        ..SandboxConfig::for_tests()
    }
}

fn dec(v: &Value) -> Decimal {
    v.as_str().expect("money is a string").parse().unwrap()
}

fn account() -> Value {
    json!({"holder_name": "Budi", "number": "1234567890", "swift_code": "BNINIDJA"})
}

/// Signs and disburses `unique_id` with the control API.
async fn disburse(api: &Api, sandbox: &RunningSandbox, unique_id: &str) {
    let (s, b) = api
        .post(
            "/api/core/loans/signing/initiate",
            json!({"unique_id": unique_id}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    sandbox.sign_loan(unique_id).expect("sign");
    let (s, b) = api
        .post_empty(&format!("/api/core/loans/{unique_id}/disbursement"))
        .await;
    assert_eq!(s, 200, "{b}");
}

/// Requests the loan's virtual account; its `external_id`.
async fn virtual_account(api: &Api, unique_id: &str) -> String {
    let (s, va) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": unique_id, "bank_code": "BCA"}),
        )
        .await;
    assert_eq!(s, 200, "{va}");
    va["external_id"].as_str().unwrap().to_owned()
}

async fn wait_paid(api: &Api, unique_id: &str) -> Value {
    let path = format!("/api/core/loans/details/{unique_id}");
    eventually(|| async { api.get(&path).await.1["status"] == "PAID" }).await;
    api.get(&path).await.1
}

/// Every delivery landed: the receiver got each emitted event once, plus its duplicate.
async fn all_delivered(sandbox: &RunningSandbox, receiver: &Receiver) {
    eventually(|| async {
        let ledger = sandbox.ledger();
        let emitted: u64 = ledger.callbacks_emitted.values().sum();
        ledger.callbacks_delivered == emitted + ledger.callbacks_duplicated
            && receiver.received().len() as u64 == ledger.callbacks_delivered
    })
    .await;
}

/// What the loan's virtual-account webhooks say, in emission order: amounts, and the
/// deliveries the receiver got per payment id.
fn va_payments(
    sandbox: &RunningSandbox,
    receiver: &Receiver,
    external_id: &str,
) -> (Vec<Decimal>, BTreeMap<String, usize>) {
    let emitted: Vec<Value> = sandbox
        .callbacks()
        .into_iter()
        .filter(|c| c.title == "virtual_account_payment" && c.body["external_id"] == external_id)
        .map(|c| c.body)
        .collect();
    let amounts = emitted.iter().map(|b| dec(&b["amount"])).collect();
    let mut deliveries = BTreeMap::new();
    for r in receiver.received() {
        if r.path == VA_PATH && r.body["external_id"] == external_id {
            *deliveries
                .entry(r.body["id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    for body in &emitted {
        deliveries
            .entry(body["id"].as_str().unwrap().to_owned())
            .or_insert(0);
    }
    (amounts, deliveries)
}

#[tokio::test]
async fn a_bnpl_loan_is_repaid_installment_by_installment() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(config(&receiver)).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    let (s, loan) = api
        .post(
            &format!("/api/core/loans/{user}/bnpl"),
            json!({
                "unique_id": "bnpl-0001", "principal_amount": "1000000.00", "tenor": 3,
                "frequency": "MONTHLY", "interest_rate": "0.0175", "first_due_date": "2099-01-31",
                "disbursement_account": account()
            }),
        )
        .await;
    assert_eq!(s, 200, "{loan}");
    let installments: Vec<Decimal> = loan["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| dec(&i["total"]))
        .collect();
    assert_eq!(installments.len(), 3);
    disburse(&api, &sandbox, "bnpl-0001").await;

    // DISBURSING: no account yet, and nothing is paid while the bank has not paid out.
    let (s, _) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": "bnpl-0001", "bank_code": "BCA"}),
        )
        .await;
    assert_eq!(s, 400);
    tokio::time::sleep(EVERY * 2).await;
    assert!(sandbox.ledger().payments_applied.is_empty());

    sandbox.complete_disbursement("bnpl-0001").unwrap();
    let issued = Instant::now();
    let external_id = virtual_account(&api, "bnpl-0001").await;
    let loan = wait_paid(&api, "bnpl-0001").await;
    assert!(
        issued.elapsed() >= EVERY * 3,
        "one payment per interval, the first one interval after the account: {:?}",
        issued.elapsed()
    );

    // Each installment paid in full, in order, by one payment each.
    let schedule = loan["schedule"].as_array().unwrap();
    assert!(schedule.iter().all(|i| i["status"] == "PAID"));
    assert!(schedule.iter().all(|i| i["paid_amount"] == i["total"]));
    all_delivered(&sandbox, &receiver).await;
    let ledger = sandbox.ledger();
    assert_eq!(ledger.payments_applied["bnpl-0001"], 3);
    let (amounts, deliveries) = va_payments(&sandbox, &receiver, &external_id);
    assert_eq!(amounts, installments);
    assert_eq!(
        amounts.iter().sum::<Decimal>(),
        dec(&loan["total_amount"]),
        "the payments add up to the loan"
    );

    // One webhook per payment, each delivered once or (duplicated) twice; then `bnpl_paid`.
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert!(
        deliveries.values().all(|&n| n == 1 || n == 2),
        "{deliveries:?}"
    );
    assert!(
        ledger.callbacks_duplicated > 0,
        "the seed duplicates some callbacks"
    );
    let titles: Vec<String> = sandbox.callbacks().into_iter().map(|c| c.title).collect();
    let paid_at = titles.iter().position(|t| t == "bnpl_paid");
    let last_payment = titles.iter().rposition(|t| t == "virtual_account_payment");
    assert_eq!(titles.iter().filter(|t| *t == "bnpl_paid").count(), 1);
    assert!(paid_at > last_payment, "{titles:?}");
    assert_eq!(ledger.callbacks_emitted["virtual_account_payment"], 3);

    // Nothing more is paid once the loan is PAID.
    tokio::time::sleep(EVERY * 2).await;
    assert_eq!(sandbox.ledger().payments_applied["bnpl-0001"], 3);
}

#[tokio::test]
async fn a_single_payment_loan_is_repaid_in_one_payment() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(config(&receiver)).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    let loan = api.single_loan(&user, "loan-0001", "1234567890").await;
    disburse(&api, &sandbox, "loan-0001").await;
    sandbox.complete_disbursement("loan-0001").unwrap();
    let external_id = virtual_account(&api, "loan-0001").await;
    let paid = wait_paid(&api, "loan-0001").await;

    assert_eq!(paid["schedule"][0]["status"], "PAID");
    assert_eq!(sandbox.ledger().payments_applied["loan-0001"], 1);
    all_delivered(&sandbox, &receiver).await;
    let (amounts, deliveries) = va_payments(&sandbox, &receiver, &external_id);
    assert_eq!(amounts, [dec(&loan["total_amount"])]);
    assert_eq!(deliveries.len(), 1);
    // `loan_paid` once (delivered once, or twice when duplicated), after the payment.
    let delivered = receiver
        .titles()
        .iter()
        .filter(|t| *t == "loan_paid")
        .count();
    assert!(delivered == 1 || delivered == 2, "{delivered}");
    assert_eq!(sandbox.ledger().callbacks_emitted["loan_paid"], 1);
}

#[tokio::test]
async fn the_borrower_pays_what_is_left_after_a_manual_payment() {
    let receiver = Receiver::start(0).await;
    let mut config = config(&receiver);
    // Slow enough that the manual payment comes first.
    config.timing.auto_repay = Some(Duration::from_millis(300));
    let sandbox = start(config).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    api.single_loan(&user, "loan-0002", "1234567890").await;
    disburse(&api, &sandbox, "loan-0002").await;
    sandbox.complete_disbursement("loan-0002").unwrap();
    let external_id = virtual_account(&api, "loan-0002").await;
    sandbox
        .pay_virtual_account(&external_id, "1000000.00".parse().unwrap())
        .unwrap();
    let loan = wait_paid(&api, "loan-0002").await;
    let (amounts, _) = va_payments(&sandbox, &receiver, &external_id);
    assert_eq!(
        amounts,
        [
            "1000000.00".parse::<Decimal>().unwrap(),
            dec(&loan["total_amount"]) - Decimal::from(1_000_000)
        ]
    );
    assert_eq!(sandbox.ledger().payments_applied["loan-0002"], 2);
}

#[tokio::test]
async fn presets_and_the_control_api_show_auto_repay() {
    assert_eq!(Timing::zero().auto_repay, None);
    assert_eq!(SandboxConfig::for_tests().timing.auto_repay, None);
    assert!(
        Timing::realistic()
            .auto_repay
            .is_some_and(|d| d <= Duration::from_secs(2))
    );
    let receiver = Receiver::start(0).await;
    let sandbox = start(config(&receiver)).await;
    let api = Api::login(&sandbox).await;
    let (s, timing) = api.get("/_sandbox/timing").await;
    assert_eq!(s, 200);
    assert_eq!(timing["auto_repay_ms"], 100);
    assert_eq!(timing["auto_sign_ms"], Value::Null);
    assert_eq!(timing["kyc_review_ms"], 0);
}

/// A `+paynow` borrower pays the whole loan in one payment inside the virtual-account
/// request: the loan is `PAID`, its webhook and `bnpl_paid` emitted, before the answer is
/// back, with no auto-repay configured at all.
#[tokio::test]
async fn a_paynow_borrower_pays_everything_before_the_account_is_answered() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    assert_eq!(sandbox.config().timing.auto_repay, None);
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(
            &sandbox,
            "3275062009921981",
            "budi+hubpending+paynow@example.com",
        )
        .await;
    let (s, loan) = api
        .post(
            &format!("/api/core/loans/{user}/bnpl"),
            json!({
                "unique_id": "bnpl-0002", "principal_amount": "1000000.00", "tenor": 4,
                "frequency": "WEEKLY", "interest_rate": "0.01", "first_due_date": "2099-01-31",
                "disbursement_account": account()
            }),
        )
        .await;
    assert_eq!(s, 200, "{loan}");
    disburse(&api, &sandbox, "bnpl-0002").await;
    sandbox.complete_disbursement("bnpl-0002").unwrap();

    let (s, va) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": "bnpl-0002", "bank_code": "PERMATA"}),
        )
        .await;
    assert_eq!(s, 200, "{va}");
    assert_eq!(
        va["expected_amount"], loan["total_amount"],
        "issued for the whole loan"
    );
    // No waiting: it all happened before the answer.
    let (_, paid) = api.get("/api/core/loans/details/bnpl-0002").await;
    assert_eq!(paid["status"], "PAID");
    let schedule = paid["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 4);
    assert!(
        schedule
            .iter()
            .all(|i| i["status"] == "PAID" && i["paid_amount"] == i["total"])
    );
    let titles: Vec<String> = sandbox.callbacks().into_iter().map(|c| c.title).collect();
    let tail = &titles[titles.len() - 2..];
    assert_eq!(tail, ["virtual_account_payment", "bnpl_paid"]);
    let payment = sandbox
        .callbacks()
        .into_iter()
        .find(|c| c.title == "virtual_account_payment")
        .unwrap();
    assert_eq!(
        payment.body["amount"], loan["total_amount"],
        "one payment for everything"
    );
    assert_eq!(payment.body["external_id"], va["external_id"]);
    assert_eq!(sandbox.ledger().payments_applied["bnpl-0002"], 1);

    // The request sent again meets a paid loan.
    let (s, again) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": "bnpl-0002", "bank_code": "PERMATA"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(again["message"], "Loan is PAID, not DISBURSED");
    assert_eq!(
        sandbox.ledger().virtual_account_requests_after_paid["bnpl-0002"],
        1
    );
}
