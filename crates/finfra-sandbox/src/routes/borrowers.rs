//! Borrower endpoints: create (plain and KYC path), get, patch, approve, block.

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
use crate::validate::borrower::validate_borrower;
use crate::validate::empty;
use crate::validate::loan::optional_reason;

fn accept(app: &Arc<App>, kyc_id: Option<&str>, body: &Body) -> ApiResult<Json<Value>> {
    let input = validate_borrower(&body.value, body.form)?;
    app.act(|s| s.create_borrower(&body.value, input, kyc_id, Utc::now()))?;
    Ok(Json(json!({
        "status": "success",
        "message": "Borrower creation request accepted",
    })))
}

/// `POST /api/core/users`, optionally linked to a KYC session by the `kyc-id` header.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    accept(&app, header(&headers, "kyc-id"), &body)
}

/// `POST /api/core/{kycIdPath}/users`.
pub(super) async fn create_on_kyc(
    State(app): State<Arc<App>>,
    Path(kyc_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    if header(&headers, "kyc-id").is_some_and(|h| h != kyc_id) {
        return Err(ApiError::bad_request(
            "Validation failed: the kyc-id header does not match the path's kycIdPath",
        ));
    }
    accept(&app, Some(&kyc_id), &body)
}

pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    app.with_state(|s| s.render_borrower(&user_id)).map(Json)
}

pub(super) async fn patch(
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    app.act(|s| s.patch_borrower(&user_id, &body.value, body.form))
        .map(Json)
}

pub(super) async fn approve(
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    empty(&body.value)?;
    app.act(|s| s.approve_borrower(&user_id)).map(Json)
}

pub(super) async fn block(
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let reason = optional_reason(&body.value, body.form)?;
    app.act(|s| s.block_borrower(&user_id, reason, Utc::now()))
        .map(Json)
}
