//! `POST /api/auth/token/v2`, the deprecated `POST /api/auth/token`, `POST /api/auth/refresh`.
//! These take no body; whatever is sent is ignored, as the reference's curl sends none.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::header;
use crate::app::App;
use crate::auth::{self, TokenPair};
use crate::error::{ApiError, ApiResult};

fn body(pair: TokenPair) -> Json<Value> {
    Json(json!({
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }))
}

fn issue_for_basic(app: &App, headers: &HeaderMap) -> ApiResult<TokenPair> {
    let (id, secret) = auth::basic(header(headers, header::AUTHORIZATION.as_str()))
        .ok_or_else(|| ApiError::unauthorized("Missing or malformed Basic credentials"))?;
    if !auth::credentials_valid(&app.config.clients, &id, &secret) {
        return Err(ApiError::unauthorized("Invalid client credentials"));
    }
    let (ttl, refresh_ttl) = (app.config.token_ttl, app.config.refresh_ttl);
    Ok(app.with_state(|s| {
        s.tokens
            .issue(&mut s.rng, &id, Utc::now(), ttl, refresh_ttl)
    }))
}

pub(super) async fn token_v2(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    issue_for_basic(&app, &headers).map(body)
}

/// v1 still works, marked deprecated (CONTRACT §2).
pub(super) async fn token_v1(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let mut response = issue_for_basic(&app, &headers).map(body).into_response();
    response
        .headers_mut()
        .insert("deprecation", HeaderValue::from_static("true"));
    response
}

pub(super) async fn refresh(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let access = header(&headers, "x-access-token")
        .ok_or_else(|| ApiError::unauthorized("Missing x-access-token header"))?;
    let refresh = header(&headers, "x-refresh-token")
        .ok_or_else(|| ApiError::unauthorized("Missing x-refresh-token header"))?;
    let (ttl, refresh_ttl) = (app.config.token_ttl, app.config.refresh_ttl);
    app.with_state(|s| {
        let now = Utc::now();
        let client = s
            .tokens
            .check_refresh(access, refresh, now)
            .map_err(|r| ApiError::unauthorized(r.message()))?;
        Ok(s.tokens.issue(&mut s.rng, &client, now, ttl, refresh_ttl))
    })
    .map(body)
}
