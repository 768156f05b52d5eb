//! Requests sent again (CONTRACT §3, §5): a client that lost an answer sends the same
//! request a second time, and what Finfra answers then is what the client reconciles on.
//! Each repeat the contract defines is checked here against its exact answer, at every loan
//! status it can meet:
//!
//! | request | contract |
//! |---|---|
//! | create borrower, same KTP NIK | `409` (also while the first is still being processed) |
//! | approve borrower | a no-op `200` once `APPROVED_BY_PARTNER` or `APPROVED` |
//! | block borrower | `200`, `BLOCKED` (no second `user_blocked`: nothing changed) |
//! | create loan, same `unique_id` | `409` |
//! | signing/initiate | same session while `SIGNING`; `409` once `SIGNED` or later, or `REJECTED` |
//! | disbursement | `400 "Loan agreement is not signed"` before `SIGNED`; `409` when `DISBURSING`, `DISBURSED`, `PAID`, `REJECTED` |
//! | reject | `409` from `DISBURSING` on (and, the contract being silent, on `REJECTED`) |
//! | virtual account | the same account (whatever `bank_code`) while `DISBURSED`; `400` naming the status otherwise, `PAID` included |

mod common;

use std::time::Duration;

use common::{Api, eventually, eventually_some, personal, single_loan_body, start};
use finfra_sandbox::{RunningSandbox, SandboxConfig, Timing};
use serde_json::{Value, json};

const NIK: &str = "3275062009921981";
const VA: &str = "/api/core/virtual-account/request";

/// What one request answers: the status, and the message when it matters.
type Answer = (u16, Option<String>);

fn same_session() -> Answer {
    (200, None)
}

fn not_signed() -> Answer {
    (400, Some("Loan agreement is not signed".to_owned()))
}

fn conflict() -> Answer {
    (409, None)
}

/// The `400` a virtual-account request gets on a loan in `status`.
fn not_disbursed(status: &str) -> Answer {
    (400, Some(format!("Loan is {status}, not DISBURSED")))
}

/// Sends signing/initiate, disbursement, reject and a virtual-account request (whichever
/// are given) for `unique_id` and checks each answer; the loan's status must not change.
struct Repeats<'a> {
    api: &'a Api,
    unique_id: &'a str,
}

impl Repeats<'_> {
    async fn status(&self) -> String {
        let (_, loan) = self
            .api
            .get(&format!("/api/core/loans/details/{}", self.unique_id))
            .await;
        loan["status"].as_str().unwrap().to_owned()
    }

    async fn check(&self, status: &str, requests: &[(&str, Answer)]) {
        assert_eq!(self.status().await, status);
        for (request, (code, message)) in requests {
            let id = self.unique_id;
            let (got, body) = match *request {
                "initiate" => {
                    self.api
                        .post("/api/core/loans/signing/initiate", json!({"unique_id": id}))
                        .await
                }
                "disburse" => {
                    self.api
                        .post_empty(&format!("/api/core/loans/{id}/disbursement"))
                        .await
                }
                "reject" => {
                    self.api
                        .post(
                            &format!("/api/core/loans/{id}/reject"),
                            json!({"reason": "again"}),
                        )
                        .await
                }
                "virtual account" => {
                    self.api
                        .post(VA, json!({"loan_unique_id": id, "bank_code": "BRI"}))
                        .await
                }
                other => panic!("no request {other}"),
            };
            assert_eq!(got, *code, "{request} on a {status} loan: {body}");
            if let Some(message) = message {
                assert_eq!(
                    body["message"].as_str(),
                    Some(message.as_str()),
                    "{request} on a {status} loan"
                );
            }
            if *code != 200 {
                assert_eq!(body["status"], *code, "the error body: {body}");
            }
        }
        assert_eq!(
            self.status().await,
            status,
            "repeats change nothing on a {status} loan"
        );
    }
}

async fn setup() -> (RunningSandbox, Api, String) {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let user = api
        .approved_borrower(&sandbox, NIK, "budi@example.com")
        .await;
    (sandbox, api, user)
}

#[tokio::test]
async fn a_borrower_created_again_is_409_with_the_contracts_message() {
    // The first request is still being processed when the second arrives, then done.
    let sandbox = start(SandboxConfig {
        timing: Timing {
            borrower_created: Duration::from_millis(300),
            ..Timing::zero()
        },
        ..SandboxConfig::for_tests()
    })
    .await;
    let api = Api::login(&sandbox).await;
    api.create_personal(NIK, "budi@example.com").await;
    for when in ["while processing", "once created"] {
        if when == "once created" {
            eventually_some(|| async { sandbox.borrower_id_by_nik(NIK) }).await;
        }
        let (status, body) = api
            .post("/api/core/users", personal(NIK, "other@example.com"))
            .await;
        assert_eq!(status, 409, "{when}: {body}");
        assert_eq!(
            body,
            json!({"status": 409, "error": "Conflict",
                   "message": "Borrower with this identity number already exists"}),
            "{when}: no id in it (CONTRACT §1)"
        );
    }
    let ledger = sandbox.ledger();
    assert_eq!(ledger.borrowers_created_per_nik[NIK], 1);
    assert_eq!(ledger.borrower_conflicts_per_nik[NIK], 2);
    assert_eq!(sandbox.borrowers().len(), 1);
}

#[tokio::test]
async fn approving_or_blocking_again_changes_nothing() {
    let (sandbox, api, user) = setup().await;
    let approve = format!("/api/core/users/{user}/approve");
    let (status, b) = api.post_empty(&approve).await;
    assert_eq!(status, 200, "approving an APPROVED borrower: {b}");
    assert_eq!(b["status"], "APPROVED");
    let titles = |sandbox: &RunningSandbox| -> Vec<String> {
        sandbox.callbacks().into_iter().map(|c| c.title).collect()
    };
    assert_eq!(
        titles(&sandbox),
        ["user_created", "user_verified", "user_approved"]
    );

    let block = format!("/api/core/users/{user}/block");
    for _ in 0..2 {
        let (status, b) = api.post(&block, json!({"reason": "fraud"})).await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["status"], "BLOCKED");
    }
    eventually(|| async { titles(&sandbox).len() == 4 }).await;
    assert_eq!(
        titles(&sandbox)
            .iter()
            .filter(|t| *t == "user_blocked")
            .count(),
        1,
        "one status change, one callback"
    );
}

#[tokio::test]
async fn every_loan_request_sent_again_answers_what_the_contract_says() {
    let (sandbox, api, user) = setup().await;
    let id = "loan-0001";
    let loan = api.single_loan(&user, id, "1234567890").await;
    let r = Repeats {
        api: &api,
        unique_id: id,
    };

    r.check(
        "PENDING",
        &[
            ("disburse", not_signed()),
            ("virtual account", not_disbursed("PENDING")),
        ],
    )
    .await;

    let initiate = json!({"unique_id": id});
    let (_, session) = api
        .post("/api/core/loans/signing/initiate", initiate.clone())
        .await;
    r.check(
        "SIGNING",
        &[
            ("initiate", same_session()),
            ("disburse", not_signed()),
            ("virtual account", not_disbursed("SIGNING")),
        ],
    )
    .await;
    let (_, again) = api.post("/api/core/loans/signing/initiate", initiate).await;
    assert_eq!(session, again, "the same session, expiry included");

    sandbox.sign_loan(id).unwrap();
    r.check(
        "SIGNED",
        &[
            ("initiate", conflict()),
            ("virtual account", not_disbursed("SIGNED")),
        ],
    )
    .await;

    let disburse = format!("/api/core/loans/{id}/disbursement");
    assert_eq!(api.post_empty(&disburse).await.0, 200);
    r.check(
        "DISBURSING",
        &[
            ("initiate", conflict()),
            ("disburse", conflict()),
            ("reject", conflict()),
            ("virtual account", not_disbursed("DISBURSING")),
        ],
    )
    .await;

    sandbox.complete_disbursement(id).unwrap();
    r.check(
        "DISBURSED",
        &[
            ("initiate", conflict()),
            ("disburse", conflict()),
            ("reject", conflict()),
        ],
    )
    .await;
    let (status, va) = api
        .post(VA, json!({"loan_unique_id": id, "bank_code": "BCA"}))
        .await;
    assert_eq!(status, 200, "{va}");
    for bank in ["BCA", "MANDIRI"] {
        let (status, again) = api
            .post(VA, json!({"loan_unique_id": id, "bank_code": bank}))
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, va, "the same account whatever the bank_code");
    }
    assert_eq!(r.status().await, "DISBURSED");

    let external = va["external_id"].as_str().unwrap();
    let total = loan["total_amount"].as_str().unwrap().parse().unwrap();
    sandbox.pay_virtual_account(external, total).unwrap();
    r.check(
        "PAID",
        &[
            ("initiate", conflict()),
            ("disburse", conflict()),
            ("reject", conflict()),
            ("virtual account", not_disbursed("PAID")),
            ("virtual account", not_disbursed("PAID")),
        ],
    )
    .await;
    let (status, _) = api
        .post(
            &format!("/api/core/loans/{user}"),
            single_loan_body(id, "1234567890"),
        )
        .await;
    assert_eq!(status, 409, "creating a paid loan again");

    let ledger = sandbox.ledger();
    assert_eq!(ledger.loans_created[id], 1);
    assert_eq!(ledger.disbursements_accepted[id], 1);
    assert_eq!(
        ledger.disbursement_conflicts[id], 3,
        "DISBURSING, DISBURSED, PAID"
    );
    assert_eq!(ledger.payments_applied[id], 1);
    assert_eq!(
        ledger.virtual_account_requests_after_paid[id], 2,
        "counted per loan"
    );
    assert_eq!(
        ledger.responses("POST /api/core/virtual-account/request", 400),
        6
    );
}

#[tokio::test]
async fn refused_and_rejected_loans_answer_repeats_too() {
    let (sandbox, api, user) = setup().await;
    // A bank that refuses: DISBURSEMENT_FAILED, where only a new disbursement is allowed.
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
    let failed = Repeats {
        api: &api,
        unique_id: "loan-0999",
    };
    eventually(|| async { failed.status().await == "DISBURSEMENT_FAILED" }).await;
    failed
        .check(
            "DISBURSEMENT_FAILED",
            &[
                ("initiate", conflict()),
                ("reject", conflict()),
                ("virtual account", not_disbursed("DISBURSEMENT_FAILED")),
            ],
        )
        .await;

    api.single_loan(&user, "loan-0002", "1234567890").await;
    let (status, _) = api
        .post(
            "/api/core/loans/loan-0002/reject",
            json!({"reason": "changed mind"}),
        )
        .await;
    assert_eq!(status, 200);
    Repeats {
        api: &api,
        unique_id: "loan-0002",
    }
    .check(
        "REJECTED",
        &[
            ("initiate", conflict()),
            ("disburse", conflict()),
            ("reject", conflict()),
            ("virtual account", not_disbursed("REJECTED")),
        ],
    )
    .await;
    assert!(
        sandbox
            .ledger()
            .virtual_account_requests_after_paid
            .is_empty(),
        "only PAID loans count there"
    );
}

/// The unknown-loan answers are not repeats, but a client reconciling on them must tell a
/// `404` from the `400` above.
#[tokio::test]
async fn an_unknown_loan_is_404_everywhere() {
    let (_sandbox, api, _user) = setup().await;
    let r: Value = api
        .post(
            VA,
            json!({"loan_unique_id": "loan-nope", "bank_code": "BCA"}),
        )
        .await
        .1;
    assert_eq!(r["status"], 404, "{r}");
    assert_eq!(
        api.post_empty("/api/core/loans/loan-nope/disbursement")
            .await
            .0,
        404
    );
}
