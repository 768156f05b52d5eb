//! The sandbox is strict: it refuses what the reference and CONTRACT §1 refuse, and names the
//! field.

mod common;

use common::{Api, entity, personal, single_loan_body, start};
use finfra_sandbox::SandboxConfig;
use serde_json::{Value, json};

const NIK: &str = "3275062009921981";

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

async fn api() -> (finfra_sandbox::RunningSandbox, Api) {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    (sandbox, api)
}

#[tokio::test]
async fn missing_required_fields_are_all_named() {
    let (_s, api) = api().await;
    let (status, body) = api
        .post(
            "/api/core/users",
            json!({"type": "PERSONAL", "authorised_signatory": {"first_name": "Budi"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], 400);
    assert_eq!(body["error"], "Bad Request");
    let m = message(&body);
    assert!(m.starts_with("Validation failed: "), "{m}");
    for field in [
        "authorised_signatory.last_name is required",
        "authorised_signatory.email is required",
        "authorised_signatory.address is required",
        "authorised_signatory.documents is required",
        "authorised_signatory.work_address is required",
    ] {
        assert!(m.contains(field), "{field} missing from: {m}");
    }
    let (status, body) = api.post("/api/core/users", json!({})).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("type is required"));
}

#[tokio::test]
async fn business_needs_an_entity_with_managements() {
    let (_s, api) = api().await;
    let mut body = personal(NIK, "budi@example.com");
    body["type"] = json!("BUSINESS");
    let (status, err) = api.post("/api/core/users", body.clone()).await;
    assert_eq!(status, 400);
    assert!(message(&err).contains("entity is required when type is BUSINESS"));

    let mut e = entity();
    e["managements"] = json!([]);
    body["entity"] = e;
    let (status, err) = api.post("/api/core/users", body.clone()).await;
    assert_eq!(status, 400);
    assert!(message(&err).contains("entity.managements must not be empty"));

    body["entity"] = entity();
    body["entity"]["managements"][0]["identity_number"] = json!("123");
    let (status, err) = api.post("/api/core/users", body.clone()).await;
    assert_eq!(status, 400);
    assert!(message(&err).contains("entity.managements[0].identity_number must be 16 digits"));

    body["entity"] = entity();
    assert_eq!(api.post("/api/core/users", body).await.0, 200);
}

#[tokio::test]
async fn nik_must_be_16_digits() {
    let (_s, api) = api().await;
    for bad in ["327506200992198", "32750620099219812", "327506200992198X"] {
        let (status, body) = api
            .post("/api/core/users", personal(bad, "budi@example.com"))
            .await;
        assert_eq!(status, 400);
        assert!(
            message(&body).contains("authorised_signatory.documents.ktp.number must be 16 digits"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn prenuptial_agreement_as_a_json_boolean_is_refused() {
    let (_s, api) = api().await;
    let mut body = personal(NIK, "budi@example.com");
    body["authorised_signatory"]["prenuptial_agreement"] = json!(true);
    let (status, err) = api.post("/api/core/users", body).await;
    assert_eq!(status, 400);
    assert!(message(&err).contains("authorised_signatory.prenuptial_agreement must be the string"));
}

#[tokio::test]
async fn unknown_fields_wrong_types_and_null_optionals() {
    let (_s, api) = api().await;
    let mut body = personal(NIK, "budi@example.com");
    body["authorised_signatory"]["nick_name"] = json!("Bud");
    body["authorised_signatory"]["number_of_dependents"] = json!("3");
    body["authorised_signatory"]["address"]["postal_code"] = json!(40135);
    let (status, err) = api.post("/api/core/users", body).await;
    assert_eq!(status, 400);
    let m = message(&err);
    assert!(
        m.contains("authorised_signatory.nick_name is not a known field"),
        "{m}"
    );
    assert!(
        m.contains("authorised_signatory.number_of_dependents must be an integer"),
        "{m}"
    );
    assert!(
        m.contains("authorised_signatory.address.postal_code must be a string, got a number"),
        "{m}"
    );

    // `null` optional = absent; `""` optional must still be valid.
    let mut body = personal(NIK, "budi@example.com");
    body["authorised_signatory"]["spouse_identification_number"] = json!("");
    let (status, err) = api.post("/api/core/users", body.clone()).await;
    assert_eq!(status, 400);
    assert!(message(&err).contains("spouse_identification_number must be 16 digits"));
    body["authorised_signatory"]["spouse_identification_number"] = Value::Null;
    assert_eq!(api.post("/api/core/users", body).await.0, 200);
}

#[tokio::test]
async fn money_as_a_json_number_is_refused() {
    let (_s, api) = api().await;
    let mut body = single_loan_body("loan-money-1", "1234567890");
    body["principal_amount"] = json!(5_000_000);
    let (status, err) = api
        .post("/api/core/loans/6a41ff87dda4eefd0b7b0300", body)
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&err).contains(
            "principal_amount must be a decimal string, e.g. \"5000000.00\", not a JSON number"
        ),
        "{err}"
    );
    let mut body = single_loan_body("loan-money-1", "1234567890");
    body["interest_amount"] = json!("250000.001");
    body["principal_amount"] = json!("50000.00");
    let (status, err) = api
        .post("/api/core/loans/6a41ff87dda4eefd0b7b0300", body)
        .await;
    assert_eq!(status, 400);
    let m = message(&err);
    assert!(
        m.contains("interest_amount must be a decimal string with at most 2 decimals"),
        "{m}"
    );
    assert!(
        m.contains("principal_amount must be between 100000 and 2000000000"),
        "{m}"
    );
}

#[tokio::test]
async fn other_content_types_are_415() {
    let (_s, api) = api().await;
    let text = api
        .send(
            api.http
                .post(api.url("/api/core/users"))
                .bearer_auth(&api.token)
                .header("content-type", "text/plain")
                .body(personal(NIK, "budi@example.com").to_string()),
        )
        .await;
    assert_eq!(text.0, 415);
    assert_eq!(text.1["error"], "Unsupported Media Type");
    // Multipart is only for POST /api/documents.
    let form = reqwest::multipart::Form::new().text("unique_id", "loan-0001");
    let multipart = api
        .send(
            api.http
                .post(api.url("/api/core/loans/signing/initiate"))
                .bearer_auth(&api.token)
                .multipart(form),
        )
        .await;
    assert_eq!(multipart.0, 415);
}

#[tokio::test]
async fn form_encoded_flat_bodies_are_read_like_json() {
    let (_s, api) = api().await;
    let (status, body) = api
        .send(
            api.http
                .post(api.url("/api/core/loans/signing/initiate"))
                .bearer_auth(&api.token)
                .form(&[("unique_id", "loan-unknown")]),
        )
        .await;
    // Parsed and validated: the loan does not exist.
    assert_eq!(status, 404, "{body}");
    let (status, body) = api
        .send(
            api.http
                .post(api.url("/api/core/loans/signing/initiate"))
                .bearer_auth(&api.token)
                .form(&[("unique_id", "loan-unknown"), ("extra", "1")]),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("extra is not a known field"));
}

#[tokio::test]
async fn unknown_objects_are_404() {
    let (sandbox, api) = api().await;
    let (status, body) = api.get("/api/core/users/6a41ff87dda4eefd0b7b0300").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    assert_eq!(body["error"], "Not Found");
    assert_eq!(api.get("/api/core/loans/details/loan-nope").await.0, 404);
    assert_eq!(api.get("/api/documents/doc_nope00").await.0, 404);
    assert_eq!(api.get("/api/core/kyc/eyJ.x.y/submission").await.0, 404);
    let (status, body) = api.get("/api/core/nothing/here").await;
    assert_eq!((status.as_u16(), &body["status"]), (404, &json!(404)));
    let (status, body) = api
        .send(
            api.http
                .delete(api.url("/api/core/loans"))
                .bearer_auth(&api.token),
        )
        .await;
    assert_eq!((status.as_u16(), &body["status"]), (405, &json!(405)));
    let ledger = sandbox.ledger();
    assert_eq!(ledger.requests["GET (unmatched)"], 1);
    assert_eq!(ledger.responses("GET /api/core/users/{userId}", 404), 1);
}

#[tokio::test]
async fn ekyc_and_credit_inputs_are_checked() {
    let (_s, api) = api().await;
    let (status, body) = api
        .post(
            "/api/core/users/ocr",
            json!({"document_type": "PASSPORT", "file": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("document_type must be one of KTP"));
    let (status, _) = api
        .send(
            api.http
                .post(api.url("/api/core/users/score-report"))
                .bearer_auth(&api.token)
                .header("credit-source", "pefindo")
                .json(&json!({"user_id": "6a41ff87dda4eefd0b7b0300"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(api.get("/api/core/users/12345/credit-history").await.0, 400);
    let (status, body) = api.get("/api/core/loans?pageSize=101").await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("pageSize must be at most 100"));
}
