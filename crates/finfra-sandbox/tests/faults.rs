//! Rate limiting with its Retry-After memory, and injected faults, ambiguous ones included.

mod common;

use std::time::Duration;

use common::{Api, http, start};
use finfra_sandbox::{EndpointFaults, Faults, RateLimit, SandboxConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_the_ledger_counts_impatience() {
    let sandbox = start(SandboxConfig {
        rate_limit: Some(RateLimit {
            per_second: 0.5,
            burst: 3,
        }),
        ..SandboxConfig::for_tests()
    })
    .await;
    let api = Api::login(&sandbox).await; // 1 token of 3
    assert_eq!(api.get("/api/core/loans").await.0, 200);
    assert_eq!(api.get("/api/core/loans").await.0, 200);
    let r = api
        .http
        .get(api.url("/api/core/loans"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 2, "one token back at 0.5/s takes 2 s");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 429);
    assert_eq!(body["error"], "Too Many Requests");

    // Sent inside the window: counted against the client.
    assert_eq!(api.get("/api/core/loans").await.0, 429);
    let ledger = sandbox.ledger();
    assert_eq!(ledger.requests_inside_retry_after["test-client"], 1);
    assert_eq!(ledger.total_requests_inside_retry_after(), 1);
    assert_eq!(ledger.rate_limited["test-client"], 2);
    assert_eq!(ledger.responses("GET /api/core/loans", 429), 2);

    // Endpoints without auth count per source address.
    for _ in 0..3 {
        http()
            .get(sandbox.base_url().join("healthcheck/liveness").unwrap())
            .send()
            .await
            .unwrap();
    }
    let r = http()
        .get(sandbox.base_url().join("healthcheck/liveness").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(sandbox.ledger().rate_limited["ip:127.0.0.1"], 1);
}

#[tokio::test]
async fn an_ambiguous_failure_applies_the_change_and_drops_the_connection() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    api.single_loan(&user, "loan-0001", "1234567890").await;
    api.post(
        "/api/core/loans/signing/initiate",
        json!({"unique_id": "loan-0001"}),
    )
    .await;
    sandbox.sign_loan("loan-0001").unwrap();

    sandbox.set_faults(Faults {
        ambiguous_rate: 1.0,
        ..Faults::default()
    });
    let sent = http()
        .post(api.url("/api/core/loans/loan-0001/disbursement"))
        .bearer_auth(&api.token)
        .send()
        .await;
    let err = sent.expect_err("the connection is dropped without an answer");
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    sandbox.set_faults(Faults::none());

    // ... yet the disbursement happened, exactly once.
    let (_, loan) = api.get("/api/core/loans/details/loan-0001").await;
    assert_eq!(loan["status"], "DISBURSING");
    let ledger = sandbox.ledger();
    assert_eq!(ledger.disbursements_accepted["loan-0001"], 1);
    assert_eq!(ledger.faults_injected["ambiguous"], 1);
    // A careless retry is refused and counted.
    assert_eq!(
        api.post_empty("/api/core/loans/loan-0001/disbursement")
            .await
            .0,
        409
    );
    assert_eq!(sandbox.ledger().disbursement_conflicts["loan-0001"], 1);
}

#[tokio::test]
async fn an_ambiguous_timeout_applies_the_change_and_answers_too_late() {
    let sandbox = start(SandboxConfig {
        faults: Faults {
            ambiguous_timeout_rate: 1.0,
            ambiguous_hold: Duration::from_secs(2),
            ..Faults::default()
        },
        ..SandboxConfig::for_tests()
    })
    .await;
    let api = Api::login(&sandbox).await; // auth endpoints are spared by default
    let sent = http()
        .post(api.url("/api/core/users"))
        .bearer_auth(&api.token)
        .timeout(Duration::from_millis(300))
        .json(&common::personal("3275062009921981", "budi@example.com"))
        .send()
        .await;
    assert!(sent.expect_err("times out").is_timeout());
    assert_eq!(
        sandbox.ledger().borrowers_created_per_nik["3275062009921981"],
        1
    );
}

#[tokio::test]
async fn injected_500s_and_429s_do_not_apply_the_operation() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    sandbox.set_faults(Faults {
        error_500_rate: 1.0,
        ..Faults::default()
    });
    let (status, body) = api
        .post(
            "/api/core/users",
            common::personal("3275062009921981", "budi@example.com"),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "Internal Server Error");

    sandbox.set_faults(Faults {
        error_429_without_retry_after_rate: 1.0,
        ..Faults::default()
    });
    let r = api
        .http
        .post(api.url("/api/core/users"))
        .bearer_auth(&api.token)
        .json(&common::personal("3275062009921981", "budi@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());

    // Through the control API this time.
    let r = http()
        .put(sandbox.base_url().join("_sandbox/faults").unwrap())
        .json(&json!({"seed": 7, "error_429_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api
        .http
        .get(api.url("/api/core/loans"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // The token endpoint is spared unless `include_auth`...
    assert_eq!(Api::login(&sandbox).await.token.split('.').count(), 3);
    assert_eq!(api.get("/api/core/loans").await.0, 429);

    let ledger = sandbox.ledger();
    assert!(
        ledger.borrowers_created_per_nik.is_empty(),
        "nothing was applied"
    );
    assert_eq!(ledger.faults_injected["500"], 1);
    assert_eq!(ledger.faults_injected["429_without_retry_after"], 1);
    assert_eq!(ledger.faults_injected["429"], 2);
    // ... but both that login and the GET came inside the injected Retry-After window.
    assert_eq!(ledger.requests_inside_retry_after["test-client"], 2);
}

#[tokio::test]
async fn the_ledger_is_served_over_http() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    api.get("/api/core/loans").await;
    let ledger: finfra_sandbox::Ledger = http()
        .get(sandbox.base_url().join("_sandbox/ledger").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ledger, sandbox.ledger());
    assert_eq!(ledger.requests["GET /api/core/loans"], 1);
    assert_eq!(
        ledger.requests_by_status["POST /api/auth/token/v2"]["200"],
        1
    );
    assert!(!ledger.requests.keys().any(|k| k.contains("_sandbox")));
}

const VA: &str = "POST /api/core/virtual-account/request";

/// Only the virtual-account request drops its answers: everything else goes through.
fn ambiguous_virtual_accounts() -> Faults {
    Faults::default().with_endpoint(
        VA,
        EndpointFaults {
            ambiguous_rate: Some(1.0),
            ..EndpointFaults::default()
        },
    )
}

/// The race behind a loan stuck although repaid: the account is issued, the answer is lost,
/// the borrower pays everything at once (`+paynow`), and the request sent again meets a
/// `PAID` loan: `400`. A borrower who has not paid yet gets the same account instead.
#[tokio::test]
async fn a_lost_virtual_account_answer_and_a_borrower_who_pays_at_once() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let payer = api
        .approved_borrower(&sandbox, "3275062009921981", "budi+paynow@example.com")
        .await;
    let slow = api
        .approved_borrower(&sandbox, "3275062009921999", "sari@example.com")
        .await;
    api.disbursed_loan(&sandbox, &payer, "loan-0001").await;
    api.disbursed_loan(&sandbox, &slow, "loan-0002").await;
    sandbox.set_faults(ambiguous_virtual_accounts());

    for id in ["loan-0001", "loan-0002"] {
        let sent = http()
            .post(api.url("/api/core/virtual-account/request"))
            .bearer_auth(&api.token)
            .json(&json!({"loan_unique_id": id, "bank_code": "BNI"}))
            .send()
            .await;
        let err = sent.expect_err("the answer is lost");
        assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    }
    // Other endpoints keep the general rates (none here): reading works.
    let (status, paid) = api.get("/api/core/loans/details/loan-0001").await;
    assert_eq!(status, 200);
    assert_eq!(paid["status"], "PAID", "paid before the answer was lost");
    assert!(paid["virtual_account"].is_object());
    let (_, unpaid) = api.get("/api/core/loans/details/loan-0002").await;
    assert_eq!(unpaid["status"], "DISBURSED");

    sandbox.set_faults(Faults::none());
    let va = |id: &str| {
        api.post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": id, "bank_code": "BCA"}),
        )
    };
    let (status, body) = va("loan-0001").await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Loan is PAID, not DISBURSED");
    let (status, body) = va("loan-0002").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["external_id"],
        unpaid["virtual_account"]["external_id"]
    );
    assert_eq!(body["bank_code"], "BNI", "the account issued first");

    let ledger = sandbox.ledger();
    assert_eq!(ledger.faults_injected["ambiguous"], 2);
    assert_eq!(ledger.virtual_account_requests_after_paid["loan-0001"], 1);
    assert!(
        !ledger
            .virtual_account_requests_after_paid
            .contains_key("loan-0002")
    );
    assert_eq!(ledger.payments_applied["loan-0001"], 1);
    assert!(!ledger.payments_applied.contains_key("loan-0002"));
}

#[tokio::test]
async fn endpoint_faults_through_the_control_api_are_checked() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let url = sandbox.base_url().join("_sandbox/faults").unwrap();
    let put = |body: Value| http().put(url.clone()).json(&body).send();
    for bad in [
        json!({"endpoints": {"/api/core/virtual-account/request": {"ambiguous_rate": 0.3}}}),
        json!({"endpoints": {"POST /_sandbox/loans": {"ambiguous_rate": 0.3}}}),
        json!({"endpoints": {"POST /api/core/virtual-account/request": {"ambiguous_rate": 1.5}}}),
        json!({"endpoints": {"POST /api/core/virtual-account/request": {"ambigous_rate": 0.3}}}),
        json!({"ambiguous_rate": -0.1}),
    ] {
        let r = put(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        sandbox.faults(),
        Faults::none(),
        "nothing refused was applied"
    );

    let good = json!({"seed": 5, "endpoints": {VA: {"ambiguous_rate": 0.3}}});
    let r = put(good).await.unwrap();
    assert_eq!(r.status(), 200);
    let expected = Faults {
        seed: 5,
        ..Faults::default()
    }
    .with_endpoint(
        VA,
        EndpointFaults {
            ambiguous_rate: Some(0.3),
            ..EndpointFaults::default()
        },
    );
    assert_eq!(sandbox.faults(), expected);
    let shown: Faults = http()
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown, expected, "GET shows what PUT set");
}
