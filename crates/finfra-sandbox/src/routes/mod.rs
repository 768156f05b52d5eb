//! The router: every endpoint of the reference, the presigned upload target, the control
//! API, behind the gateway middleware.
//!
//! Routes that share a path segment must share the parameter name in the router (`{userId}`
//! under `/api/core/users/` and `/api/core/loans/`); the ledger reports them with the
//! reference's names (see `gateway.rs`).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::{control, gateway};

mod auth;
mod borrowers;
mod documents;
mod ekyc;
mod loans;

/// A header's value; an empty one counts as absent.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

async fn up() -> Json<Value> {
    Json(json!({"status": "UP"}))
}

async fn readiness(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    if app.with_state(|s| s.ready) {
        Ok(up().await)
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service not ready: a dependency is unavailable",
        ))
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this endpoint",
    )
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let users = "/api/core/users";
    let loans = "/api/core/loans";
    Router::new()
        // Auth (CONTRACT §2).
        .route("/api/auth/token/v2", post(auth::token_v2))
        .route("/api/auth/token", post(auth::token_v1))
        .route("/api/auth/refresh", post(auth::refresh))
        // Health.
        .route("/healthcheck/productionness", get(up))
        .route("/healthcheck/liveness", get(up))
        .route("/healthcheck/readiness", get(readiness))
        // Borrowers (CONTRACT §3).
        .route(users, post(borrowers::create))
        .route(
            "/api/core/{kycIdPath}/users",
            post(borrowers::create_on_kyc),
        )
        .route(
            &format!("{users}/{{userId}}"),
            get(borrowers::get).patch(borrowers::patch),
        )
        .route(
            &format!("{users}/{{userId}}/approve"),
            post(borrowers::approve),
        )
        .route(&format!("{users}/{{userId}}/block"), post(borrowers::block))
        // e-KYC and credit (CONTRACT §4).
        .route(&format!("{users}/ocr"), post(ekyc::ocr))
        .route(&format!("{users}/biometric"), post(ekyc::biometric))
        .route(&format!("{users}/score-report"), post(ekyc::score_report))
        .route(
            &format!("{users}/clik/credit-report"),
            post(ekyc::clik_report),
        )
        .route(
            &format!("{users}/{{userId}}/credit-history"),
            get(ekyc::credit_history),
        )
        .route(
            &format!("{users}/{{userId}}/{{reffid}}/afpi/credit-report"),
            get(ekyc::afpi_report),
        )
        .route(
            &format!("{users}/{{userId}}/rdf/verify-biometric"),
            post(ekyc::rdf_verify),
        )
        .route(
            &format!("{users}/{{userId}}/status/{{callbackTitle}}"),
            get(ekyc::hub_check),
        )
        .route("/api/core/kyc/{kycIdPath}/submit", post(ekyc::submit_kyc))
        .route(
            "/api/core/kyc/{kycIdPath}/submission",
            get(ekyc::kyc_submission),
        )
        // Loans (CONTRACT §5).
        .route(loans, get(loans::list))
        .route(&format!("{loans}/{{userId}}"), post(loans::create_single))
        .route(
            &format!("{loans}/{{userId}}/bnpl"),
            post(loans::create_bnpl),
        )
        .route(
            &format!("{loans}/details/{{uniqueId}}"),
            get(loans::details),
        )
        .route(
            &format!("{loans}/signing/initiate"),
            post(loans::initiate_signing),
        )
        .route(
            &format!("{loans}/{{userId}}/disbursement"),
            post(loans::disburse),
        )
        .route(&format!("{loans}/{{userId}}/reject"), post(loans::reject))
        .route(
            "/api/core/virtual-account/request",
            post(loans::request_virtual_account),
        )
        // Documents (CONTRACT §6).
        .route(
            "/api/documents",
            post(documents::create).patch(documents::patch),
        )
        .route("/api/documents/{documentId}", get(documents::get))
        .route("/api/documents/{documentId}/file", get(documents::file))
        .route("/_storage/{documentId}", put(documents::upload))
        .merge(control::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(Arc::clone(&app), gateway::gateway))
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .with_state(app)
}
