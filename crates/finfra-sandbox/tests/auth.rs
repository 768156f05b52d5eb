//! Authentication (CONTRACT §2) and health checks.

mod common;

use std::time::Duration;

use common::{Api, http, start};
use finfra_sandbox::{ClientCredentials, SandboxConfig};
use serde_json::{Value, json};

async fn token(
    sandbox: &finfra_sandbox::RunningSandbox,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    http()
        .post(sandbox.base_url().join("api/auth/token/v2").unwrap())
        .basic_auth(id, Some(secret))
        .send()
        .await
        .unwrap()
}

#[test]
fn the_handle_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<finfra_sandbox::RunningSandbox>();
    send_sync::<finfra_sandbox::Ledger>();
}

#[tokio::test]
async fn basic_credentials_buy_a_jwt_shaped_bearer_token() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let r = token(&sandbox, "test-client", "test-secret").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    for key in ["access_token", "refresh_token"] {
        assert_eq!(
            body[key].as_str().unwrap().split('.').count(),
            3,
            "{key} is JWT-shaped"
        );
    }
    let api = Api::login(&sandbox).await;
    assert_eq!(api.get("/api/core/loans").await.0, 200);
    assert_eq!(sandbox.ledger().token_requests, 2);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_401() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let r = token(&sandbox, "test-client", "nope").await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert_eq!(body["error"], "Unauthorized");
    let r = http()
        .post(sandbox.base_url().join("api/auth/token/v2").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn v1_token_still_works_but_says_it_is_deprecated() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let r = http()
        .post(sandbox.base_url().join("api/auth/token").unwrap())
        .basic_auth("test-client", Some("test-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["deprecation"], "true");
    let v2 = token(&sandbox, "test-client", "test-secret").await;
    assert!(v2.headers().get("deprecation").is_none());
}

#[tokio::test]
async fn basic_on_a_bearer_endpoint_and_no_token_are_401() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let url = sandbox.base_url().join("api/core/loans").unwrap();
    let r = http()
        .get(url.clone())
        .basic_auth("test-client", Some("test-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(http().get(url).send().await.unwrap().status(), 401);
    let api = Api {
        token: "eyJ.garbage.token".into(),
        ..Api::login(&sandbox).await
    };
    assert_eq!(api.get("/api/core/loans").await.0, 401);
}

#[tokio::test]
async fn an_expired_token_is_401_and_refresh_with_it_works_repeatedly() {
    let sandbox = start(SandboxConfig {
        token_ttl: Duration::ZERO,
        ..SandboxConfig::for_tests()
    })
    .await;
    let body: Value = token(&sandbox, "test-client", "test-secret")
        .await
        .json()
        .await
        .unwrap();
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let api = Api {
        token: access.to_owned(),
        ..Api::login(&sandbox).await
    };
    let (status, err) = api.get("/api/core/loans").await;
    assert_eq!(status, 401);
    assert_eq!(err["message"], "Access token expired");
    // Refresh tokens are reusable; the (expired) access token must be ours.
    for _ in 0..2 {
        let r = http()
            .post(sandbox.base_url().join("api/auth/refresh").unwrap())
            .header("x-access-token", access)
            .header("x-refresh-token", refresh)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let fresh: Value = r.json().await.unwrap();
        assert_eq!(fresh["token_type"], "Bearer");
        assert_ne!(fresh["access_token"], access);
    }
    let r = http()
        .post(sandbox.base_url().join("api/auth/refresh").unwrap())
        .header("x-access-token", access)
        .header("x-refresh-token", "not-a-refresh-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(sandbox.ledger().refresh_requests, 3);
    assert_eq!(sandbox.ledger().requests_to("POST /api/auth/refresh"), 3);
}

#[tokio::test]
async fn refresh_needs_an_access_token_of_the_same_client() {
    let mut config = SandboxConfig::for_tests();
    config
        .clients
        .push(ClientCredentials::new("other", "other-secret"));
    let sandbox = start(config).await;
    let mine: Value = token(&sandbox, "test-client", "test-secret")
        .await
        .json()
        .await
        .unwrap();
    let theirs: Value = token(&sandbox, "other", "other-secret")
        .await
        .json()
        .await
        .unwrap();
    let r = http()
        .post(sandbox.base_url().join("api/auth/refresh").unwrap())
        .header("x-access-token", theirs["access_token"].as_str().unwrap())
        .header("x-refresh-token", mine["refresh_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn revoked_tokens_are_401_until_refreshed() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let body: Value = token(&sandbox, "test-client", "test-secret")
        .await
        .json()
        .await
        .unwrap();
    let api = Api {
        token: body["access_token"].as_str().unwrap().to_owned(),
        ..Api::login(&sandbox).await
    };
    assert_eq!(api.get("/api/core/loans").await.0, 200);
    let control = http()
        .post(sandbox.base_url().join("_sandbox/tokens/revoke").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(control.status(), 200);
    assert_eq!(api.get("/api/core/loans").await.0, 401);
    let r = http()
        .post(sandbox.base_url().join("api/auth/refresh").unwrap())
        .header("x-access-token", &api.token)
        .header("x-refresh-token", body["refresh_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn endpoints_without_auth_accept_a_bearer_anyway() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let base = sandbox.base_url();
    // No auth at all: 404 for the unknown borrower, not 401.
    let r = http()
        .post(
            base.join("api/core/users/6a41ff87dda4eefd0b7b0300/approve")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A Bearer, even a stale one, is accepted.
    let r = http()
        .post(
            base.join("api/core/users/6a41ff87dda4eefd0b7b0300/block")
                .unwrap(),
        )
        .bearer_auth("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http()
        .get(
            base.join("api/core/users/3275062009921981/ref-1/afpi/credit-report")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["identity_number"], "3275062009921981");
    assert_eq!(report["reffid"], "ref-1");
}

#[tokio::test]
async fn healthchecks_and_readiness() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let get = |path: &'static str| {
        let url = sandbox.base_url().join(path).unwrap();
        async move { http().get(url).send().await.unwrap() }
    };
    for path in [
        "healthcheck/productionness",
        "healthcheck/liveness",
        "healthcheck/readiness",
    ] {
        let r = get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "UP"}));
    }
    sandbox.set_ready(false);
    let r = get("healthcheck/readiness").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 503);
    assert_eq!(body["error"], "Service Unavailable");
    assert!(body["message"].is_string());
    assert_eq!(get("healthcheck/productionness").await.status(), 200);
    sandbox.set_ready(true);
    assert_eq!(get("healthcheck/readiness").await.status(), 200);
}
