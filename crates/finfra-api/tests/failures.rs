//! Failures against the sandbox, and how the client classifies them for the engine: rate
//! limits, conflicts, rejections naming the field, ambiguous outcomes, and validation that
//! keeps a bad request off the network.

mod common;

use std::time::Duration;

use finfra_api::model::loan::{ListLoansQuery, LoanStatus};
use finfra_api::retry::{self, Jitter, RetryDecision, RetryPolicy};
use finfra_api::{ClientConfig, Error, FinfraClient};
use finfra_sandbox::Faults;

fn decide(error: &Error) -> RetryDecision {
    retry::decide(
        error.failure(),
        error.retry_after(),
        1,
        &RetryPolicy::default(),
        Jitter::NONE,
    )
}

#[tokio::test]
async fn rate_limits_carry_the_servers_delay_or_none() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    client.authenticate().await.expect("token");

    sandbox.set_faults(Faults {
        error_429_rate: 1.0,
        ..Faults::none()
    });
    let error = client
        .list_loans(&ListLoansQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    let hint = error.retry_after().expect("the sandbox sends Retry-After");
    assert!(
        [Duration::from_secs(1), Duration::from_secs(2)].contains(&hint),
        "{hint:?}"
    );
    assert!(error.is_retryable() && !error.is_ambiguous());
    assert_eq!(decide(&error), RetryDecision::RetryAt(hint));

    sandbox.set_faults(Faults {
        error_429_without_retry_after_rate: 1.0,
        ..Faults::none()
    });
    // A new client: this one holds its requests until the window above ends.
    let client = common::client(&sandbox);
    let error = client
        .list_loans(&ListLoansQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(matches!(decide(&error), RetryDecision::RetryAt(d) if d > Duration::ZERO));
    // The client itself never retried: one request per call.
    assert_eq!(sandbox.ledger().requests["GET /api/core/loans"], 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn nothing_is_sent_inside_a_retry_after_window() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    client.authenticate().await.expect("token");
    sandbox.set_faults(Faults {
        error_429_rate: 1.0,
        ..Faults::none()
    });
    let first = client
        .list_loans(&ListLoansQuery::default())
        .await
        .unwrap_err();
    let window = first.retry_after().expect("Retry-After");
    sandbox.set_faults(Faults::none());

    // Every clone, in every task, holds back until the window ends: refused before sending,
    // classified as the 429 it avoids, with what is left of the window.
    let clone = client.clone();
    let held = tokio::spawn(async move { clone.list_loans(&ListLoansQuery::default()).await })
        .await
        .expect("task")
        .unwrap_err();
    assert!(matches!(held, Error::RateLimited { .. }), "{held:?}");
    let left = held.retry_after().expect("what is left of the window");
    assert!(
        left > Duration::ZERO && left <= window,
        "{left:?} of {window:?}"
    );
    assert!(held.is_retryable() && !held.is_ambiguous());
    let ledger = sandbox.ledger();
    assert_eq!(
        ledger.requests["GET /api/core/loans"], 1,
        "only the first was sent"
    );
    assert_eq!(ledger.total_requests_inside_retry_after(), 0);

    // After the window, requests flow again.
    tokio::time::sleep(left + Duration::from_millis(50)).await;
    client
        .list_loans(&ListLoansQuery::default())
        .await
        .expect("sent after the window");
    assert_eq!(sandbox.ledger().total_requests_inside_retry_after(), 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_held_client_does_not_even_ask_for_a_token() {
    let sandbox = common::sandbox().await;
    // A fresh process of a fleet that already knows of a window: no token yet.
    let client = common::client(&sandbox);
    client.hold_for(Duration::from_secs(2));
    let held = client
        .list_loans(&ListLoansQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(held, Error::RateLimited { .. }), "{held:?}");
    let ledger = sandbox.ledger();
    assert_eq!(ledger.token_requests, 0, "the token request waits too");
    assert!(!ledger.requests.contains_key("GET /api/core/loans"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_500_is_retryable_and_ambiguous_only_for_a_post() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    client.authenticate().await.expect("token");
    sandbox.set_faults(Faults {
        error_500_rate: 1.0,
        ..Faults::none()
    });

    let get = client.get_loan("loan-000001").await.unwrap_err();
    assert!(matches!(get, Error::Server { status: 500, .. }), "{get:?}");
    assert!(get.is_retryable() && !get.is_ambiguous());

    let post = client
        .create_single_payment_loan(
            "6a41ff87dda4eefd0b7b0300",
            &common::single_loan("loan-000001"),
        )
        .await
        .unwrap_err();
    assert!(
        post.is_ambiguous(),
        "a 500 after a POST may hide an applied change"
    );
    assert_eq!(decide(&post), RetryDecision::Reconcile);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_same_nik_twice_is_a_conflict() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let nik = common::nik(1);
    let body = common::borrower(&nik, "budi@example.com");
    client
        .create_borrower(&body, None)
        .await
        .expect("first creation");
    common::borrower_id(&sandbox, &nik).await;

    let error = client.create_borrower(&body, None).await.unwrap_err();

    assert!(error.is_conflict(), "{error:?}");
    assert_eq!(error.status(), Some(409));
    assert!(!error.is_retryable() && !error.is_ambiguous());
    assert_eq!(decide(&error), RetryDecision::GiveUp);
    assert_eq!(sandbox.ledger().borrower_conflicts_per_nik[&nik], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn disbursing_twice_is_a_conflict_and_money_leaves_once() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let user = common::approved_borrower(&sandbox, &client, 2).await;
    common::signed_loan(&sandbox, &client, &user, "loan-twice-1").await;

    let accepted = client
        .disburse_loan("loan-twice-1")
        .await
        .expect("first disbursement");
    assert_eq!(accepted.status, LoanStatus::Disbursing);
    let error = client.disburse_loan("loan-twice-1").await.unwrap_err();

    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    let ledger = sandbox.ledger();
    assert_eq!(ledger.disbursements_accepted["loan-twice-1"], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_loan_for_an_unapproved_borrower_is_rejected_with_finfras_message() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let nik = common::nik(3);
    client
        .create_borrower(&common::borrower(&nik, "budi@example.com"), None)
        .await
        .expect("create");
    let user = common::borrower_id(&sandbox, &nik).await;

    let error = client
        .create_single_payment_loan(&user, &common::single_loan("loan-early-1"))
        .await
        .unwrap_err();

    assert!(
        matches!(error, Error::Rejected { status: 400, .. }),
        "{error:?}"
    );
    let message = &error.api_body().expect("Finfra's error body").message;
    assert!(message.contains("Borrower is not approved"), "{message}");
    assert!(!error.is_retryable());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_after_a_post_is_ambiguous_and_the_loan_exists() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let user = common::approved_borrower(&sandbox, &client, 4).await;
    sandbox.set_faults(Faults {
        ambiguous_rate: 1.0,
        ..Faults::none()
    });

    let error = client
        .create_single_payment_loan(&user, &common::single_loan("loan-ambig-1"))
        .await
        .unwrap_err();

    assert!(
        matches!(error, Error::Connection { sent: true, .. }),
        "{error:?}"
    );
    assert!(error.is_ambiguous());
    assert_eq!(decide(&error), RetryDecision::Reconcile);
    sandbox.set_faults(Faults::none());
    let loan = client
        .get_loan("loan-ambig-1")
        .await
        .expect("reconcile by reading");
    assert_eq!(loan.status, LoanStatus::Pending, "the creation was applied");
    assert_eq!(sandbox.ledger().loans_created["loan-ambig-1"], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_timeout_after_a_post_is_ambiguous_and_a_get_timeout_is_not() {
    let sandbox = common::sandbox().await;
    let client = FinfraClient::new(ClientConfig {
        timeout: Duration::from_millis(300),
        ..common::config(&sandbox)
    })
    .expect("client");
    let user = common::approved_borrower(&sandbox, &client, 5).await;
    common::signed_loan(&sandbox, &client, &user, "loan-slow-1").await;
    sandbox.set_faults(Faults {
        ambiguous_timeout_rate: 1.0,
        ambiguous_hold: Duration::from_secs(2),
        ..Faults::none()
    });

    let error = client.disburse_loan("loan-slow-1").await.unwrap_err();
    assert!(
        matches!(error, Error::Timeout { sent: true, .. }),
        "{error:?}"
    );
    assert!(error.is_ambiguous());
    let read = client.get_loan("loan-slow-1").await.unwrap_err();
    assert!(
        matches!(read, Error::Timeout { sent: true, .. }),
        "{read:?}"
    );
    assert!(!read.is_ambiguous(), "a GET changes nothing");

    sandbox.set_faults(Faults::none());
    let loan = client.get_loan("loan-slow-1").await.expect("reconcile");
    assert_eq!(
        loan.status,
        LoanStatus::Disbursing,
        "the disbursement was applied: never send it again"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_never_reach_the_network() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    client.authenticate().await.expect("token");
    let before = sandbox.ledger().requests;

    let mut bad_loan = common::single_loan("bad id!");
    bad_loan.principal_amount = rust_decimal::Decimal::from(5);
    let error = client
        .create_single_payment_loan("6a41ff87dda4eefd0b7b0300", &bad_loan)
        .await
        .unwrap_err();
    let Error::Invalid(errors) = &error else {
        panic!("expected a validation error, got {error:?}");
    };
    assert!(
        errors.has("unique_id") && errors.has("principal_amount"),
        "{errors}"
    );
    assert!(!error.is_retryable());

    let mut bad_borrower = common::borrower("123", "not-an-email");
    bad_borrower.authorised_signatory.first_name = String::new();
    assert!(matches!(
        client.create_borrower(&bad_borrower, None).await,
        Err(Error::Invalid(_))
    ));
    // Path parameters are checked too.
    assert!(matches!(
        client.get_borrower("").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.get_borrower("../loans").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.get_loan("abc").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.disburse_loan("loan/../x").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.get_document("doc1").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.credit_history("12345").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.get_kyc_submission("").await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client
            .list_loans(&ListLoansQuery {
                page_size: Some(101),
                ..ListLoansQuery::default()
            })
            .await,
        Err(Error::Invalid(_))
    ));

    assert_eq!(sandbox.ledger().requests, before, "nothing was sent");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn readiness_down_is_a_server_error() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    assert_eq!(client.health_readiness().await.expect("ready").status, "UP");

    sandbox.set_ready(false);
    let error = client.health_readiness().await.unwrap_err();

    assert!(
        matches!(error, Error::Server { status: 503, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable() && !error.is_ambiguous());
    assert_eq!(
        client.health_productionness().await.expect("alive").status,
        "UP"
    );
    sandbox.shutdown().await;
}
