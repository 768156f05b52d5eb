//! Authentication against the sandbox: one token for everyone, one refresh at a time,
//! recovery from revoked tokens and expired refresh tokens.

mod common;

use std::time::Duration;

use finfra_api::auth::Credentials;
use finfra_api::error::AuthError;
use finfra_api::model::loan::ListLoansQuery;
use finfra_api::{ClientConfig, Error, FinfraClient};
use finfra_sandbox::SandboxConfig;

const LIST: &str = "GET /api/core/loans";

async fn list(client: &FinfraClient) -> Result<(), Error> {
    client
        .list_loans(&ListLoansQuery::default())
        .await
        .map(drop)
}

/// Runs `n` list calls at once on clones of `client`; each must succeed.
async fn concurrently(client: &FinfraClient, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { list(&client).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("request");
    }
}

#[tokio::test]
async fn concurrent_requests_share_one_token_and_one_refresh() {
    let sandbox = common::sandbox_with(SandboxConfig {
        token_ttl: Duration::from_secs(2),
        ..SandboxConfig::for_tests()
    })
    .await;
    let client = FinfraClient::new(ClientConfig {
        token_refresh_margin: Duration::from_secs(1),
        ..common::config(&sandbox)
    })
    .expect("client");

    concurrently(&client, 20).await;
    let ledger = sandbox.ledger();
    assert_eq!(ledger.token_requests, 1, "twenty first requests, one token");
    assert_eq!(ledger.refresh_requests, 0);

    // Inside the margin (renew at 1 s), before expiry (2 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    concurrently(&client, 20).await;

    let ledger = sandbox.ledger();
    assert_eq!(
        ledger.refresh_requests, 1,
        "one refresh for twenty stale requests"
    );
    assert_eq!(ledger.token_requests, 1, "no fallback to Basic");
    assert_eq!(
        ledger.requests_by_status[LIST].get("401"),
        None,
        "no request went out with a stale token"
    );
    assert_eq!(ledger.requests[LIST], 40);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_and_the_request_repeated_once() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    list(&client).await.expect("first request");

    sandbox.revoke_tokens();
    list(&client)
        .await
        .expect("the request succeeds after a refresh");

    let ledger = sandbox.ledger();
    assert_eq!(ledger.refresh_requests, 1);
    assert_eq!(ledger.token_requests, 1);
    assert_eq!(ledger.requests_by_status[LIST]["401"], 1);
    assert_eq!(ledger.requests_by_status[LIST]["200"], 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn concurrent_401s_with_the_same_token_cause_one_refresh() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    list(&client).await.expect("first request");

    sandbox.revoke_tokens();
    concurrently(&client, 10).await;

    let ledger = sandbox.ledger();
    assert_eq!(
        ledger.refresh_requests, 1,
        "tasks that failed with the old token reuse the new one"
    );
    assert_eq!(ledger.token_requests, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_expired_refresh_token_falls_back_to_basic_credentials() {
    let sandbox = common::sandbox_with(SandboxConfig {
        refresh_ttl: Duration::from_secs(1),
        ..SandboxConfig::for_tests()
    })
    .await;
    let client = common::client(&sandbox);
    list(&client).await.expect("first request");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    sandbox.revoke_tokens();
    list(&client)
        .await
        .expect("the request succeeds after re-authenticating");

    let ledger = sandbox.ledger();
    assert_eq!(ledger.refresh_requests, 1, "the refresh was tried first");
    assert_eq!(ledger.token_requests, 2, "then Basic credentials");
    assert_eq!(ledger.requests_by_status[LIST]["200"], 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn authenticate_checks_the_credentials_explicitly() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);

    let info = client.authenticate().await.expect("good credentials");
    assert_eq!(info.expires_in, Duration::from_secs(3600));
    assert_eq!(info.token_type, "Bearer");
    list(&client).await.expect("the cached token is used");
    assert_eq!(sandbox.ledger().token_requests, 1);

    let wrong = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), "not-the-secret"),
    ))
    .expect("client");
    let error = wrong.authenticate().await.unwrap_err();
    assert!(
        matches!(error, Error::Auth(AuthError::BadCredentials { .. })),
        "{error:?}"
    );
    assert!(!error.to_string().contains("not-the-secret"));
    // An API call with bad credentials fails the same way and never reaches the endpoint.
    let error = list(&wrong).await.unwrap_err();
    assert!(
        matches!(error, Error::Auth(AuthError::BadCredentials { .. })),
        "{error:?}"
    );
    assert_eq!(sandbox.ledger().requests[LIST], 1);
    sandbox.shutdown().await;
}
