//! The two-step document flow (CONTRACT §6).

mod common;

use std::time::Duration;

use common::{Api, http, start};
use finfra_sandbox::SandboxConfig;
use reqwest::multipart::Form;
use serde_json::{Value, json};

async fn create(api: &Api, kind: &str) -> Value {
    let r = http()
        .post(api.url("/api/documents"))
        .multipart(
            Form::new()
                .text("type", kind.to_owned())
                .text("description", "front side"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn create_then_upload_then_read() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let doc = create(&api, "KTP").await;
    let id = doc["id"].as_str().unwrap();
    assert!(id.len() >= 6);
    assert_eq!(doc["type"], "KTP");
    let url = doc["presigned_url"].as_str().unwrap();
    assert!(url.starts_with(sandbox.base_url().as_str()));
    assert!(doc["expires_at"].is_string());

    let (status, meta) = api.get(&format!("/api/documents/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(meta["status"], "PENDING_UPLOAD");
    assert_eq!(meta["description"], "front side");
    assert_eq!(api.get(&format!("/api/documents/{id}/file")).await.0, 404);

    let r = http()
        .put(url)
        .header("content-type", "image/jpeg")
        .body(vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, meta) = api.get(&format!("/api/documents/{id}")).await;
    assert_eq!(meta["status"], "UPLOADED");
    assert_eq!(meta["content_type"], "image/jpeg");
    assert_eq!(meta["size"], 7);
    let file = api
        .http
        .get(api.url(&format!("/api/documents/{id}/file")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        file.bytes().await.unwrap().as_ref(),
        [0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]
    );

    let (status, patched) = api
        .patch(
            "/api/documents",
            json!([{"id": id, "type": "SELFIE", "description": "redo"}]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched[0]["type"], "SELFIE");
    assert_eq!(patched[0]["description"], "redo");
    let (status, _) = api
        .patch(
            "/api/documents",
            json!([{"id": "doc_missing", "type": "SELFIE"}]),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_expired_or_forged_upload_url_is_403() {
    let sandbox = start(SandboxConfig {
        presign_ttl: Duration::from_millis(200),
        ..SandboxConfig::for_tests()
    })
    .await;
    let api = Api::login(&sandbox).await;
    let doc = create(&api, "SELFIE").await;
    let url = doc["presigned_url"].as_str().unwrap();
    let forged = format!("{}x", url);
    assert_eq!(
        http().put(&forged).body("x").send().await.unwrap().status(),
        403
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        http().put(url).body("x").send().await.unwrap().status(),
        403
    );
    let (_, meta) = api
        .get(&format!("/api/documents/{}", doc["id"].as_str().unwrap()))
        .await;
    assert_eq!(meta["status"], "PENDING_UPLOAD");
}

#[tokio::test]
async fn create_is_multipart_only_and_checks_the_type() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let r = http()
        .post(api.url("/api/documents"))
        .json(&json!({"type": "KTP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = http()
        .post(api.url("/api/documents"))
        .multipart(Form::new().text("type", "PASSPORT"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("type must be one of KTP")
    );
    assert_eq!(
        api.get("/api/documents/abc").await.0,
        400,
        "ids have at least 6 characters"
    );
}
