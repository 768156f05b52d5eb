//! The client against a scripted server: the answers a correct Finfra (the sandbox) never
//! gives, and what exactly goes on the wire (which endpoints carry which credentials).

mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::scripted::{self, Seen};
use finfra_api::auth::Credentials;
use finfra_api::client::FileUpload;
use finfra_api::error::{AuthError, ErrorBody};
use finfra_api::model::loan::ListLoansQuery;
use finfra_api::{ClientConfig, Error, FinfraClient};

const SECRET: &str = "s3cr3t-never-shown";
const USER: &str = "6a41ff87dda4eefd0b7b0300";

fn client(server: &scripted::Scripted) -> FinfraClient {
    FinfraClient::new(ClientConfig::new(
        server.url.clone(),
        Credentials::new("partner-1", SECRET),
    ))
    .expect("client")
}

/// Answers the token endpoints, and everything else with `api`.
fn with_tokens(
    api: impl Fn(&Seen) -> String + Send + Sync + 'static,
) -> impl Fn(&Seen) -> String + Send + Sync + 'static {
    move |seen| match seen.path.as_str() {
        "/api/auth/token/v2" => scripted::token("access-1"),
        "/api/auth/refresh" => scripted::token("access-2"),
        _ => api(seen),
    }
}

fn requests_to<'a>(seen: &'a [Seen], path_prefix: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.path.starts_with(path_prefix))
        .collect()
}

#[tokio::test]
async fn each_endpoint_sends_the_credentials_the_contract_names() {
    let server = scripted::start(with_tokens(|seen| {
        if seen.path.starts_with("/healthcheck") {
            scripted::json(200, r#"{"status":"UP"}"#)
        } else {
            // Any 4xx will do: only the request matters here.
            scripted::json(
                404,
                r#"{"status":404,"error":"Not Found","message":"scripted"}"#,
            )
        }
    }))
    .await;
    let client = client(&server);

    let _ = client.get_borrower(USER).await;
    let _ = client.approve_borrower(USER).await;
    let _ = client.block_borrower(USER, None).await;
    let _ = client.afpi_credit_report("3275060111950001", "REF-1").await;
    let _ = client.health_productionness().await;
    let _ = client.health_readiness().await;

    let seen = server.seen();
    let token = &requests_to(&seen, "/api/auth/token/v2")[0];
    let basic = token
        .header("authorization")
        .expect("Basic on the token endpoint");
    assert!(basic.starts_with("Basic "), "{basic}");
    let bearer = |path: &str| {
        seen.iter()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("no request to {path}"))
            .header("authorization")
            .map(str::to_owned)
    };
    assert_eq!(
        bearer(&format!("/api/core/users/{USER}")).as_deref(),
        Some("Bearer access-1")
    );
    for no_auth in [
        format!("/api/core/users/{USER}/approve"),
        format!("/api/core/users/{USER}/block"),
        "/api/core/users/3275060111950001/REF-1/afpi/credit-report".to_owned(),
        "/healthcheck/productionness".to_owned(),
        "/healthcheck/readiness".to_owned(),
    ] {
        assert_eq!(
            bearer(&no_auth),
            None,
            "{no_auth} must carry no Authorization"
        );
    }
    // A body-less POST announces no content type (the sandbox would answer 415 to a wrong one).
    let approve = seen
        .iter()
        .find(|s| s.path.ends_with("/approve"))
        .expect("approve");
    assert_eq!(approve.header("content-type"), None);
    assert_eq!(approve.header("content-length"), Some("0"));
}

#[tokio::test]
async fn the_presigned_upload_gets_the_bytes_and_no_bearer() {
    let storage = scripted::start(|_| scripted::response(200, &[], "")).await;
    let api = scripted::start(with_tokens(|_| scripted::json(200, "{}"))).await;
    let client = client(&api);
    // Fetch a token first, so a leak would have something to leak.
    let _ = client.list_loans(&ListLoansQuery::default()).await;

    let url = format!("{}_storage/doc_123456?token=abc", storage.url);
    let file = FileUpload {
        bytes: Bytes::from_static(b"\x89PNG fake"),
        filename: "ktp.png".into(),
        content_type: "image/png".into(),
    };
    client
        .upload_to_presigned_url(&url, &file)
        .await
        .expect("upload");

    let seen = storage.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].path, "/_storage/doc_123456?token=abc");
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].header("content-type"), Some("image/png"));
    assert_eq!(seen[0].body, b"\x89PNG fake");
}

#[tokio::test]
async fn a_second_401_is_unauthorized_after_exactly_one_refresh() {
    let server = scripted::start(with_tokens(|_| {
        scripted::json(
            401,
            r#"{"status":401,"error":"Unauthorized","message":"Access token revoked"}"#,
        )
    }))
    .await;
    let client = client(&server);

    let error = client.get_borrower(USER).await.unwrap_err();

    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    assert_eq!(
        error.api_body().map(|b| b.message.as_str()),
        Some("Access token revoked")
    );
    let seen = server.seen();
    let api: Vec<_> = requests_to(&seen, "/api/core/")
        .iter()
        .map(|s| s.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        api,
        [
            Some("Bearer access-1".to_owned()),
            Some("Bearer access-2".to_owned())
        ]
    );
    let refresh = requests_to(&seen, "/api/auth/refresh");
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].header("x-access-token"), Some("access-1"));
    assert_eq!(refresh[0].header("x-refresh-token"), Some("r-access-1"));
    assert!(!format!("{error} {error:?}").contains("access-"));
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_valid_token_and_does_not_fall_back_to_basic() {
    let server = scripted::start(|seen| match seen.path.as_str() {
        "/api/auth/token/v2" => scripted::token_with_ttl("access-1", 2),
        "/api/auth/refresh" => scripted::response(429, &[("retry-after", "5")], ""),
        _ => scripted::json(
            200,
            r#"{"data":[],"page_number":1,"page_size":10,"total_items":0}"#,
        ),
    })
    .await;
    let client = FinfraClient::new(ClientConfig {
        token_refresh_margin: Duration::from_secs(1),
        ..ClientConfig::new(server.url.clone(), Credentials::new("partner-1", SECRET))
    })
    .expect("client");
    client
        .list_loans(&ListLoansQuery::default())
        .await
        .expect("first");

    // Inside the margin, before expiry: the refresh is rate limited.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_loans(&ListLoansQuery::default()).await })
        })
        .collect();
    for call in calls {
        call.await
            .expect("task")
            .expect("served with the still-valid token");
    }

    let seen = server.seen();
    assert_eq!(
        requests_to(&seen, "/api/auth/refresh").len(),
        1,
        "one attempt, then a cooldown"
    );
    assert_eq!(
        requests_to(&seen, "/api/auth/token/v2").len(),
        1,
        "a 429 is no reason to use Basic"
    );
    assert!(
        requests_to(&seen, "/api/core/loans")
            .iter()
            .all(|s| s.header("authorization") == Some("Bearer access-1"))
    );
}

#[tokio::test]
async fn statuses_map_to_their_variants() {
    let server = scripted::start(with_tokens(|seen| match seen.path.as_str() {
        p if p.ends_with("-415") => scripted::json(
            415,
            r#"{"status":415,"error":"Unsupported Media Type","message":"Content-Type must be application/json"}"#,
        ),
        p if p.ends_with("-502") => scripted::response(502, &[("content-type", "text/html")], "<html>bad gateway</html>"),
        p if p.ends_with("-302") => scripted::response(302, &[("location", "http://elsewhere.invalid/")], ""),
        p if p.ends_with("-date") => {
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
            scripted::response(429, &[("retry-after", &at)], "")
        }
        p if p.ends_with("-junk") => scripted::json(200, r#"{"unique_id": 7, "nik": "3275060111950001"}"#),
        _ => scripted::json(404, "{}"),
    }))
    .await;
    let client = client(&server);
    // Loan details takes any unique id, so the id picks the scripted answer.
    let get = |id: &'static str| {
        let client = client.clone();
        async move { client.get_loan(&format!("loan-{id}")).await.unwrap_err() }
    };

    let unsupported = get("415").await;
    assert!(
        matches!(
            &unsupported,
            Error::Rejected {
                status: 415,
                body: ErrorBody::Api(_)
            }
        ),
        "{unsupported:?}"
    );
    assert!(!unsupported.is_retryable());
    assert!(
        unsupported
            .to_string()
            .contains("Content-Type must be application/json")
    );

    let gateway = get("502").await;
    assert!(
        matches!(
            &gateway,
            Error::Server {
                status: 502,
                body: ErrorBody::Raw(_),
                ..
            }
        ),
        "{gateway:?}"
    );
    assert!(
        gateway.is_retryable() && !gateway.is_ambiguous(),
        "a GET is never ambiguous"
    );

    let redirect = get("302").await;
    assert!(
        matches!(redirect, Error::UnexpectedStatus { status: 302, .. }),
        "{redirect:?}"
    );

    let junk = get("junk").await;
    let Error::Decode {
        status: 200, body, ..
    } = &junk
    else {
        panic!("expected a decode error, got {junk:?}");
    };
    assert!(body.as_bytes().starts_with(b"{\"unique_id\": 7"));
    assert!(!junk.is_retryable() && !junk.is_ambiguous());
    assert!(
        !format!("{junk} {junk:?}").contains("3275060111950001"),
        "no body content in messages"
    );

    // Last: after a 429 the client holds every request until the window ends.
    let limited = get("date").await;
    let hint = limited
        .retry_after()
        .expect("an HTTP-date Retry-After is read");
    assert!(
        (Duration::from_secs(28)..=Duration::from_secs(30)).contains(&hint),
        "{hint:?}"
    );
}

#[tokio::test]
async fn bad_credentials_name_the_client_but_never_the_secret() {
    let server = scripted::start(|_| {
        scripted::json(
            401,
            r#"{"status":401,"error":"Unauthorized","message":"Invalid client credentials"}"#,
        )
    })
    .await;
    let client = client(&server);

    let error = client.authenticate().await.unwrap_err();

    assert!(
        matches!(error, Error::Auth(AuthError::BadCredentials { .. })),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    let mut shown = format!("{error} {error:?} {client:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        shown.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(shown.contains("partner-1"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_kept() {
    let server = scripted::start(with_tokens(|_| scripted::json(200, r#"{"status":"UP"}"#))).await;
    let mut base = server.url.clone();
    base.set_path("/finfra");
    let client = FinfraClient::new(ClientConfig::new(
        base,
        Credentials::new("partner-1", SECRET),
    ))
    .expect("client");

    client.health_readiness().await.expect("health");

    assert_eq!(server.seen()[0].path, "/finfra/healthcheck/readiness");
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_not_ambiguous() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url =
        url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    drop(listener);
    let client = FinfraClient::new(ClientConfig::new(
        url,
        Credentials::new("partner-1", SECRET),
    ))
    .expect("client");

    let error = client.approve_borrower(USER).await.unwrap_err();

    assert!(
        matches!(error, Error::Connection { sent: false, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(!error.is_ambiguous(), "nothing was sent");
}
