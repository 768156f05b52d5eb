//! Document endpoints (CONTRACT §6) and the presigned upload target `PUT /_storage/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use crate::app::App;
use crate::body::{Body, media_type};
use crate::error::{ApiError, ApiResult};
use crate::state::documents::{DOCUMENT_TYPES, DocumentPatch};
use crate::validate::{Checker, Rule, index};

fn check_id(id: &str) -> ApiResult<()> {
    if id.len() < 6 {
        return Err(ApiError::bad_request(
            "Validation failed: documentId must be at least 6 characters",
        ));
    }
    Ok(())
}

/// `POST /api/documents`: `multipart/form-data` with `type` and optional `description`. A
/// `file` part (the reference mentions one) is read and discarded: the content goes to the
/// presigned URL.
pub(super) async fn create(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    if media_type(req.headers()).as_deref() != Some("multipart/form-data") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type: POST /api/documents takes multipart/form-data",
        ));
    }
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let mut kind = None;
    let mut description = None;
    let mut problems = Vec::new();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or_default().to_owned();
        let text = field
            .bytes()
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let text = || String::from_utf8_lossy(&text).into_owned();
        match name.as_str() {
            "type" => kind = Some(text()),
            "description" => description = Some(text()),
            "file" => {}
            other => problems.push(format!("{other} is not a known field")),
        }
    }
    match kind.as_deref() {
        None | Some("") => problems.push("type is required".to_owned()),
        Some(k) => {
            if let Some(what) = Rule::OneOf(DOCUMENT_TYPES).check(k) {
                problems.push(format!("type {what}"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    let kind = kind.unwrap_or_default();
    let created = app.with_state(|s| s.create_document(&kind, description, Utc::now()));
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    check_id(&id)?;
    app.with_state(|s| s.document(&id).map(crate::state::Document::render))
        .map(Json)
}

pub(super) async fn file(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_id(&id)?;
    let bytes = app.with_state(|s| s.document_file(&id))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `PATCH /api/documents`: body `[{"id","type","description"}]`.
pub(super) async fn patch(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Value>> {
    let Value::Array(items) = &body.value else {
        return Err(ApiError::bad_request(
            "Validation failed: request body must be a JSON array of {id, type, description}",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "Validation failed: request body must not be empty",
        ));
    }
    let mut c = Checker::new(false);
    let mut patches = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = index("", i);
        let Some(o) = c.element(item, &p) else {
            continue;
        };
        c.unknown_fields(o, &p, &["id", "type", "description"]);
        let id = c.string(o, &p, "id", true, Rule::Text);
        let kind = c.string(o, &p, "type", true, Rule::OneOf(DOCUMENT_TYPES));
        let description = c.optional_text(o, &p, "description");
        if let (Some(id), Some(kind)) = (id, kind) {
            patches.push(DocumentPatch {
                id: id.to_owned(),
                kind: kind.to_owned(),
                description: description.map(str::to_owned),
            });
        }
    }
    c.finish()?;
    app.with_state(|s| s.patch_documents(patches)).map(Json)
}

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    token: Option<String>,
}

/// `PUT {base}/_storage/{id}?token=...`: the raw bytes, any content type.
pub(super) async fn upload(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    app.with_state(|s| {
        s.upload_document(&id, q.token.as_deref(), content_type, bytes, Utc::now())
    })?;
    Ok(StatusCode::OK)
}
