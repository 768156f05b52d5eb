//! Loan lifecycle (CONTRACT §5): the status machine, its 400s and 409s, amounts and
//! schedules, repayment, the list.

mod common;

use common::{Api, eventually_some, single_loan_body, start};
use finfra_sandbox::{SandboxConfig, SandboxError};
use rust_decimal::Decimal;
use serde_json::{Value, json};

async fn setup() -> (finfra_sandbox::RunningSandbox, Api, String) {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    (sandbox, api, user)
}

fn dec(v: &Value) -> Decimal {
    v.as_str().expect("money is a string").parse().unwrap()
}

#[tokio::test]
async fn loans_need_an_approved_borrower() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .verified_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    let (status, body) = api
        .post(
            &format!("/api/core/loans/{user}"),
            single_loan_body("loan-0001", "1234567890"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Borrower is not approved");
    let (status, _) = api
        .post(
            "/api/core/loans/6a41ff87dda4eefd0b7b0300",
            single_loan_body("loan-0001", "1234567890"),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_single_payment_lifecycle_with_its_conflicts() {
    let (sandbox, api, user) = setup().await;
    let loan = api.single_loan(&user, "loan-0001", "1234567890").await;
    assert_eq!(loan["status"], "PENDING");
    assert_eq!(loan["type"], "SINGLE_PAYMENT");
    assert_eq!(loan["total_amount"], "5260000.00");
    assert_eq!(loan["currency"], "IDR");
    assert_eq!(loan["schedule"][0]["total"], "5260000.00");
    assert_eq!(loan["schedule"][0]["due_date"], "2026-12-31");
    assert_eq!(loan["virtual_account"], Value::Null);
    // Same unique_id again: 409.
    let (status, _) = api
        .post(
            &format!("/api/core/loans/{user}"),
            single_loan_body("loan-0001", "1234567890"),
        )
        .await;
    assert_eq!(status, 409);

    let disburse = "/api/core/loans/loan-0001/disbursement";
    let (status, body) = api.post_empty(disburse).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Loan agreement is not signed");

    // A flat body may come form-encoded, read like its JSON twin.
    let (status, s1) = api
        .send(
            api.http
                .post(api.url("/api/core/loans/signing/initiate"))
                .bearer_auth(&api.token)
                .form(&[("unique_id", "loan-0001")]),
        )
        .await;
    assert_eq!(status, 200, "{s1}");
    assert_eq!(s1["status"], "SIGNING");
    assert!(
        s1["signing_url"]
            .as_str()
            .unwrap()
            .ends_with("/_sandbox/loans/loan-0001/sign")
    );
    let (_, s2) = api
        .post(
            "/api/core/loans/signing/initiate",
            json!({"unique_id": "loan-0001"}),
        )
        .await;
    assert_eq!(s1, s2, "asking again returns the same session");
    assert_eq!(api.post_empty(disburse).await.0, 400, "still unsigned");

    // The borrower signs; asking for signing again is now 409.
    sandbox.sign_loan("loan-0001").unwrap();
    assert!(matches!(
        sandbox.sign_loan("loan-0001"),
        Err(SandboxError::Conflict(_))
    ));
    assert_eq!(
        api.post(
            "/api/core/loans/signing/initiate",
            json!({"unique_id": "loan-0001"})
        )
        .await
        .0,
        409
    );

    let (status, d) = api.post_empty(disburse).await;
    assert_eq!(status, 200);
    assert_eq!(d["status"], "DISBURSING");
    assert!(d["reference"].as_str().is_some());
    let (status, _) = api.post_empty(disburse).await;
    assert_eq!(status, 409);
    let ledger = sandbox.ledger();
    assert_eq!(ledger.disbursements_accepted["loan-0001"], 1);
    assert_eq!(ledger.disbursement_conflicts["loan-0001"], 1);
    assert_eq!(
        ledger.responses("POST /api/core/loans/{loanUniqueId}/disbursement", 409),
        1
    );

    let (status, _) = api
        .post(
            "/api/core/loans/loan-0001/reject",
            json!({"reason": "late"}),
        )
        .await;
    assert_eq!(status, 409, "no rejecting once disbursement started");
    let va_body = json!({"loan_unique_id": "loan-0001", "bank_code": "BCA"});
    let (status, _) = api
        .post("/api/core/virtual-account/request", va_body.clone())
        .await;
    assert_eq!(status, 400, "no virtual account before DISBURSED");

    sandbox.complete_disbursement("loan-0001").unwrap();
    let (_, loan) = api.get("/api/core/loans/details/loan-0001").await;
    assert_eq!(loan["status"], "DISBURSED");
    assert_eq!(loan["disbursement"]["status"], "DISBURSED");
    assert_eq!(loan["signing"]["status"], "SIGNED");

    let (status, va) = api.post("/api/core/virtual-account/request", va_body).await;
    assert_eq!(status, 200);
    assert_eq!(va["expected_amount"], "5260000.00");
    let (_, again) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": "loan-0001", "bank_code": "BNI"}),
        )
        .await;
    assert_eq!(va, again, "asking again returns the same account");
    let external = va["external_id"].as_str().unwrap();

    // Partial payment, then the rest.
    sandbox
        .pay_virtual_account(external, "1000000".parse().unwrap())
        .unwrap();
    let (_, loan) = api.get("/api/core/loans/details/loan-0001").await;
    assert_eq!(loan["schedule"][0]["status"], "PARTIAL");
    assert_eq!(loan["schedule"][0]["paid_amount"], "1000000.00");
    assert!(matches!(
        sandbox.pay_virtual_account(external, "9999999".parse().unwrap()),
        Err(SandboxError::Invalid(_))
    ));
    sandbox
        .pay_virtual_account(external, "4260000.00".parse().unwrap())
        .unwrap();
    let (_, loan) = api.get("/api/core/loans/details/loan-0001").await;
    assert_eq!(loan["status"], "PAID");
    assert_eq!(loan["schedule"][0]["status"], "PAID");
    assert_eq!(sandbox.ledger().payments_applied["loan-0001"], 2);
    assert_eq!(api.post_empty(disburse).await.0, 409);
}

#[tokio::test]
async fn rejected_loans_cannot_be_signed() {
    let (sandbox, api, user) = setup().await;
    api.single_loan(&user, "loan-0002", "1234567890").await;
    let (status, loan) = api
        .send(
            api.http
                .post(api.url("/api/core/loans/loan-0002/reject"))
                .bearer_auth(&api.token)
                .form(&[("reason", "changed mind")]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(loan["status"], "REJECTED");
    let (status, _) = api
        .post(
            "/api/core/loans/signing/initiate",
            json!({"unique_id": "loan-0002"}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(matches!(
        sandbox.sign_loan("loan-0002"),
        Err(SandboxError::Conflict(_))
    ));
    assert_eq!(
        api.post_empty("/api/core/loans/loan-0002/disbursement")
            .await
            .0,
        409
    );
    assert_eq!(
        api.post(
            "/api/core/loans/loan-0002/reject",
            json!({"reason": "again"})
        )
        .await
        .0,
        409
    );
    let (status, _) = api
        .post("/api/core/loans/loan-0002/reject", json!({}))
        .await;
    assert_eq!(status, 400, "reason is required");
}

#[tokio::test]
async fn a_bank_refusal_allows_a_second_disbursement() {
    let (sandbox, api, user) = setup().await;
    api.single_loan(&user, "loan-0999", "9991234567").await;
    api.post(
        "/api/core/loans/signing/initiate",
        json!({"unique_id": "loan-0999"}),
    )
    .await;
    sandbox.sign_loan("loan-0999").unwrap();
    assert_eq!(
        api.post_empty("/api/core/loans/loan-0999/disbursement")
            .await
            .0,
        200
    );
    let failed = eventually_some(|| async {
        sandbox
            .callbacks()
            .into_iter()
            .find(|c| c.title == "loan_disbursement_failed")
    })
    .await;
    assert!(failed.body["data"]["reason"].is_string());
    let (_, loan) = api.get("/api/core/loans/details/loan-0999").await;
    assert_eq!(loan["status"], "DISBURSEMENT_FAILED");
    assert_eq!(loan["disbursement"]["status"], "FAILED");
    assert_eq!(
        api.post_empty("/api/core/loans/loan-0999/disbursement")
            .await
            .0,
        200
    );
    assert_eq!(sandbox.ledger().disbursements_accepted["loan-0999"], 2);
}

#[tokio::test]
async fn bnpl_monthly_schedule_from_january_31() {
    let (_sandbox, api, user) = setup().await;
    let (status, loan) = api
        .post(
            &format!("/api/core/loans/{user}/bnpl"),
            json!({
                "unique_id": "bnpl-0001",
                "principal_amount": "1000000.00",
                "tenor": 3,
                "frequency": "MONTHLY",
                "interest_rate": "0.0175",
                "first_due_date": "2025-01-31",
                "merchant_name": "Toko Budi",
                "disbursement_account": {"holder_name": "Budi", "number": "1234567890", "swift_code": "BNINIDJA"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{loan}");
    assert_eq!(loan["type"], "BNPL");
    assert_eq!(loan["interest_amount"], "52500.00");
    assert_eq!(loan["fee_amount"], "0.00");
    assert_eq!(loan["total_amount"], "1052500.00");
    let schedule = loan["schedule"].as_array().unwrap();
    let dates: Vec<_> = schedule
        .iter()
        .map(|i| i["due_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2025-01-31", "2025-02-28", "2025-03-31"]);
    let principals: Vec<_> = schedule
        .iter()
        .map(|i| i["principal"].as_str().unwrap())
        .collect();
    assert_eq!(principals, ["333333.33", "333333.33", "333333.34"]);
    assert!(
        schedule
            .iter()
            .all(|i| i["interest"] == "17500.00" && i["status"] == "UNPAID")
    );
    let sum: Decimal = schedule.iter().map(|i| dec(&i["total"])).sum();
    assert_eq!(sum, dec(&loan["total_amount"]));
}

#[tokio::test]
async fn bnpl_weekly_schedule_puts_remainders_last() {
    let (sandbox, api, user) = setup().await;
    let (status, loan) = api
        .post(
            &format!("/api/core/loans/{user}/bnpl"),
            json!({
                "unique_id": "bnpl-0002",
                "principal_amount": "100001",
                "tenor": 7,
                "frequency": "WEEKLY",
                "interest_rate": "0.0333",
                "first_due_date": "2025-03-01",
                "disbursement_account": {"holder_name": "Budi", "number": "1234567890", "swift_code": "BNINIDJA"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{loan}");
    assert_eq!(loan["interest_amount"], "23310.23");
    let s = loan["schedule"].as_array().unwrap();
    assert_eq!(s.len(), 7);
    assert_eq!(
        (s[0]["principal"].as_str(), s[0]["interest"].as_str()),
        (Some("14285.85"), Some("3330.03"))
    );
    assert_eq!(
        (s[6]["principal"].as_str(), s[6]["interest"].as_str()),
        (Some("14285.90"), Some("3330.05"))
    );
    assert_eq!(s[1]["due_date"], "2025-03-08");
    assert_eq!(s[6]["due_date"], "2025-04-12");
    let sum: Decimal = s.iter().map(|i| dec(&i["total"])).sum();
    assert_eq!(sum, dec(&loan["total_amount"]));
    assert_eq!(loan["total_amount"], "123311.23");

    // Repay it across installments: one payment covering 1.5 installments.
    api.post(
        "/api/core/loans/signing/initiate",
        json!({"unique_id": "bnpl-0002"}),
    )
    .await;
    sandbox.sign_loan("bnpl-0002").unwrap();
    api.post_empty("/api/core/loans/bnpl-0002/disbursement")
        .await;
    sandbox.complete_disbursement("bnpl-0002").unwrap();
    let (_, va) = api
        .post(
            "/api/core/virtual-account/request",
            json!({"loan_unique_id": "bnpl-0002", "bank_code": "MANDIRI"}),
        )
        .await;
    let external = va["external_id"].as_str().unwrap();
    sandbox
        .pay_virtual_account(external, "25000.00".parse().unwrap())
        .unwrap();
    let (_, loan) = api.get("/api/core/loans/details/bnpl-0002").await;
    let statuses: Vec<_> = loan["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses[..3], ["PAID", "PARTIAL", "UNPAID"]);
    sandbox
        .pay_virtual_account(external, "98311.23".parse().unwrap())
        .unwrap();
    let paid = eventually_some(|| async {
        sandbox
            .callbacks()
            .into_iter()
            .find(|c| c.title == "bnpl_paid")
    })
    .await;
    assert_eq!(paid.body["status"], "PAID");
    assert_eq!(paid.body["loan_unique_id"], "bnpl-0002");
}

#[tokio::test]
async fn bnpl_inputs_are_checked() {
    let (_sandbox, api, user) = setup().await;
    let (status, body) = api
        .post(
            &format!("/api/core/loans/{user}/bnpl"),
            json!({
                "unique_id": "bnpl-0003",
                "principal_amount": "1000000.00",
                "tenor": 37,
                "frequency": "DAILY",
                "interest_rate": 0.0175,
                "first_due_date": "2025-02-30",
                "disbursement_account": {"holder_name": "Budi", "number": "1234567890", "swift_code": "BNINIDJA"}
            }),
        )
        .await;
    assert_eq!(status, 400);
    let m = body["message"].as_str().unwrap();
    for part in [
        "tenor must be an integer from 1 to 36",
        "frequency must be one of WEEKLY, BIWEEKLY, MONTHLY",
        "interest_rate must be a decimal string",
        "first_due_date must be a date in YYYY-MM-DD format",
    ] {
        assert!(m.contains(part), "{part} missing from {m}");
    }
}

#[tokio::test]
async fn list_loans_paginates_and_filters() {
    let (_sandbox, api, user) = setup().await;
    for i in 0..12 {
        let mut body = single_loan_body(&format!("loan-list-{i:02}"), "1234567890");
        body["principal_amount"] = json!(format!("{}.00", 1_000_000 + i * 100_000));
        let (status, b) = api.post(&format!("/api/core/loans/{user}"), body).await;
        assert_eq!(status, 200, "{b}");
    }
    let (status, page) = api.get("/api/core/loans").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["page_number"].as_u64(),
            page["page_size"].as_u64(),
            page["total_items"].as_u64()
        ),
        (Some(1), Some(10), Some(12))
    );
    assert_eq!(page["data"].as_array().unwrap().len(), 10);
    let (_, page2) = api.get("/api/core/loans?pageNumber=2&pageSize=10").await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 2);
    assert_eq!(page2["data"][0]["unique_id"], "loan-list-10");

    let (_, ranged) = api
        .get(&format!(
            "/api/core/loans?userId={user}&startRangeAmount=1500000&endRangeAmount=1700000.00"
        ))
        .await;
    let ids: Vec<_> = ranged["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["unique_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["loan-list-05", "loan-list-06", "loan-list-07"]);
    let (_, one) = api.get("/api/core/loans?uniqueId=loan-list-03").await;
    assert_eq!(one["total_items"], 1);
    let (_, none) = api
        .get("/api/core/loans?userId=6a41ff87dda4eefd0b7b0300")
        .await;
    assert_eq!(none["total_items"], 0);
    let (_, dated) = api
        .get("/api/core/loans?startDate=2000-01-01&endDate=2000-12-31")
        .await;
    assert_eq!(dated["total_items"], 0);
    assert_eq!(api.get("/api/core/loans?pageSize=101").await.0, 400);
    assert_eq!(api.get("/api/core/loans?pageNumber=0").await.0, 400);
    assert_eq!(api.get("/api/core/loans?sort=asc").await.0, 400);
}
