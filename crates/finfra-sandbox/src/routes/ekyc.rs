//! e-KYC and credit endpoints (CONTRACT §4).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::Utc;
use serde_json::{Value, json};

use super::header;
use crate::app::App;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::validate::loan::user_id;
use crate::validate::{Checker, Rule, empty};

const DATA_SOURCES: &[&str] = &["izidata", "VERIHUBS", "ASLIRI", "VIDA"];
const CREDIT_SOURCES: &[&str] = &["afpi", "clik"];

fn check_nik(nik: &str) -> ApiResult<()> {
    match Rule::Digits(16).check(nik) {
        None => Ok(()),
        Some(what) => Err(ApiError::bad_request(format!(
            "Validation failed: identityNumber {what}"
        ))),
    }
}

/// `POST /api/core/users/ocr`: body `{"document_type":"KTP","file"}`.
pub(super) async fn ocr(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let source = header(&headers, "data-source");
    if let Some(s) = source.filter(|s| !DATA_SOURCES.contains(s)) {
        return Err(ApiError::bad_request(format!(
            "Validation failed: data-source header must be one of {} (got {s})",
            DATA_SOURCES.join(", ")
        )));
    }
    let mut c = Checker::new(body.form);
    let file = c.root(&body.value).and_then(|o| {
        c.unknown_fields(o, "", &["document_type", "file"]);
        c.string(o, "", "document_type", true, Rule::OneOf(&["KTP"]));
        c.text(o, "", "file").map(str::to_owned)
    });
    c.finish()?;
    let file = file.ok_or_else(|| ApiError::bad_request("Validation failed: file is required"))?;
    app.act(|s| s.ocr(header(&headers, "kyc-id"), source, &file, Utc::now()))
        .map(Json)
}

/// `POST /api/core/users/biometric`: body `{"selfie"}`.
pub(super) async fn biometric(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let mut c = Checker::new(body.form);
    let selfie = c.root(&body.value).and_then(|o| {
        c.unknown_fields(o, "", &["selfie"]);
        c.text(o, "", "selfie").map(str::to_owned)
    });
    c.finish()?;
    let selfie =
        selfie.ok_or_else(|| ApiError::bad_request("Validation failed: selfie is required"))?;
    app.act(|s| s.biometric(header(&headers, "kyc-id"), &selfie, Utc::now()))
        .map(Json)
}

pub(super) async fn submit_kyc(
    State(app): State<Arc<App>>,
    Path(kyc_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    empty(&body.value)?;
    app.act(|s| s.submit_kyc(&kyc_id)).map(Json)
}

pub(super) async fn kyc_submission(
    State(app): State<Arc<App>>,
    Path(kyc_id): Path<String>,
) -> ApiResult<Json<Value>> {
    app.with_state(|s| s.kyc_submission(&kyc_id)).map(Json)
}

/// `credit-source`: `afpi`, `clik` or both comma-separated; absent means both.
fn credit_sources(headers: &HeaderMap) -> ApiResult<Vec<&'static str>> {
    let Some(raw) = header(headers, "credit-source") else {
        return Ok(CREDIT_SOURCES.to_vec());
    };
    let mut sources = Vec::new();
    for part in raw.split(',').map(str::trim) {
        match CREDIT_SOURCES.iter().find(|s| **s == part) {
            Some(s) if !sources.contains(s) => sources.push(*s),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Validation failed: credit-source header must be afpi, clik or afpi,clik (got {raw})"
                )));
            }
        }
    }
    Ok(sources)
}

/// `POST /api/core/users/score-report`: body `{"user_id"}`.
pub(super) async fn score_report(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let sources = credit_sources(&headers)?;
    let user = user_id(&body.value, body.form)?;
    app.act(|s| s.score_report(&user, &sources, Utc::now()))
        .map(Json)
}

pub(super) async fn credit_history(
    State(app): State<Arc<App>>,
    Path(nik): Path<String>,
) -> ApiResult<Json<Value>> {
    check_nik(&nik)?;
    let records = app.with_state(|s| s.credit_records(&nik));
    Ok(Json(json!({"identity_number": nik, "records": records})))
}

pub(super) async fn afpi_report(
    State(app): State<Arc<App>>,
    Path((nik, reffid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    check_nik(&nik)?;
    let records = app.with_state(|s| s.credit_records(&nik));
    Ok(Json(
        json!({"identity_number": nik, "reffid": reffid, "records": records}),
    ))
}

/// `POST /api/core/users/clik/credit-report`: body `{"user_id"}`.
pub(super) async fn clik_report(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Value>> {
    let user = user_id(&body.value, body.form)?;
    app.with_state(|s| s.clik_report(&user)).map(Json)
}

pub(super) async fn rdf_verify(
    State(app): State<Arc<App>>,
    Path(user): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    empty(&body.value)?;
    app.act(|s| s.rdf_verify(&user)).map(Json)
}

/// `GET /api/core/users/{userId}/status/{callbackTitle}`: the provider is an upper-case name
/// (`VERIHUBS`, `ASLIRI`, ...); the contract leaves the list open.
pub(super) async fn hub_check(
    State(app): State<Arc<App>>,
    Path((user, provider)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if let Some(what) = Rule::Code.check(&provider) {
        return Err(ApiError::bad_request(format!(
            "Validation failed: callbackTitle {what}, e.g. VERIHUBS"
        )));
    }
    app.act(|s| s.hub_check(&user, &provider, Utc::now()))
        .map(Json)
}
