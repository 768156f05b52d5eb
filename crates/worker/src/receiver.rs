//! The callback receiver: the four paths Finfra calls on the partner (CONTRACT §7).
//!
//! Each request is checked in this order: the `finfra-auth-key` header (constant time, `401`
//! when missing or wrong), the body size (`413` past [`MAX_BODY_BYTES`]), the content type
//! (`415` unless JSON), then the body is decoded *completely* into its typed shape (`400`
//! naming the problem). Only a fully decoded event reaches the [`Inbox`], which stores it
//! durably (deduplicated on its id) and wakes the workflow waiting for it in one
//! transaction; the answer is `200` only after that commit. A storage failure answers `503`,
//! so Finfra delivers the event again: delivery is at least once, and a repeated id is a
//! no-op. Every answer on the four paths counts in `finflow_callbacks_total{source,result}`
//! (`stored`, `duplicate`, `rejected` for a 4xx, `error` for a 503).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use finfra_api::callback::{
    AUTH_KEY_HEADER, AuthKeyVerifier, DiditSessionCallback, InvoiceCallback, StatusCallback,
    VirtualAccountPayment,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use store::{CorrelationKeys, InboxEvent, Recorded, Source, Store, StoreError};

/// The largest callback body accepted. Finfra's callbacks are small JSON objects; anything
/// bigger is not one of them.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The durable inbox behind the receiver: the store, or a wrapper of it in tests.
pub trait Inbox: Send + Sync + 'static {
    /// Stores the event (a no-op for a known id) and wakes the workflow waiting for it, in
    /// one transaction.
    ///
    /// # Errors
    /// The event could not be stored; the receiver answers `503` so Finfra tries again.
    fn record(
        &self,
        event: InboxEvent,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}

impl Inbox for Store {
    async fn record(&self, event: InboxEvent) -> Result<Recorded, StoreError> {
        self.record_callback(&event).await
    }
}

struct Receiver<I> {
    inbox: I,
    verifier: AuthKeyVerifier,
}

const STATUS_PATH: &str = "/api/core/ftm/users/{callback_title}/status";
const VIRTUAL_ACCOUNT_PATH: &str = "/api/core/payment-gateway/virtual-account/status";
const INVOICE_PATH: &str = "/api/core/payment-gateway/invoices/status";
const DIDIT_PATH: &str = "/api/core/users/didit/session/callback";

/// The router serving the four callback paths.
pub fn router<I: Inbox>(inbox: I, verifier: AuthKeyVerifier) -> Router {
    let state = Arc::new(Receiver { inbox, verifier });
    Router::new()
        .route(STATUS_PATH, post(status_callback::<I>))
        .route(VIRTUAL_ACCOUNT_PATH, post(virtual_account_callback::<I>))
        .route(INVOICE_PATH, post(invoice_callback::<I>))
        .route(DIDIT_PATH, post(didit_callback::<I>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn(count_refusals))
        .with_state(state)
}

/// Counts callbacks refused before reaching the inbox (wrong key, too big, not JSON,
/// malformed) as `rejected`; [`store`] counts the others.
async fn count_refusals(path: MatchedPath, request: Request, next: Next) -> Response {
    let source = match path.as_str() {
        STATUS_PATH => Source::Status,
        VIRTUAL_ACCOUNT_PATH => Source::VirtualAccount,
        INVOICE_PATH => Source::Invoice,
        _ => Source::Didit,
    };
    let response = next.run(request).await;
    if response.status().is_client_error() {
        crate::metrics::callback(source.as_str(), "rejected");
    }
    response
}

/// A refused callback: answered in Finfra's own error shape.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Checks the `finfra-auth-key` header, in constant time.
fn check_key(verifier: &AuthKeyVerifier, headers: &HeaderMap) -> Result<(), Refusal> {
    let key = headers
        .get(AUTH_KEY_HEADER)
        .and_then(|value| value.to_str().ok());
    if verifier.verify(key) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong {AUTH_KEY_HEADER} header"),
        ))
    }
}

/// Checks the key and the content type, then decodes the whole body.
fn admit<T: DeserializeOwned>(
    verifier: &AuthKeyVerifier,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(T, Value), Refusal> {
    check_key(verifier, headers)?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "callbacks must be sent as application/json",
        ));
    }
    let raw: Value = serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    let typed = serde_json::from_value(raw.clone())
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("malformed callback: {e}")))?;
    Ok((typed, raw))
}

/// Hands a decoded event to the inbox and answers.
async fn store<I: Inbox>(receiver: &Receiver<I>, event: InboxEvent) -> Response {
    let (source, title) = (event.source, event.title.clone());
    match receiver.inbox.record(event).await {
        Ok(recorded) => {
            let result = if recorded.duplicate {
                "duplicate"
            } else {
                "stored"
            };
            crate::metrics::callback(source.as_str(), result);
            tracing::info!(
                callback.source = source.as_str(),
                callback.title = %title,
                callback.duplicate = recorded.duplicate,
                "callback stored"
            );
            (
                StatusCode::OK,
                axum::Json(json!({ "status": "received", "duplicate": recorded.duplicate })),
            )
                .into_response()
        }
        Err(e) => {
            crate::metrics::callback(source.as_str(), "error");
            tracing::error!(
                callback.source = source.as_str(),
                callback.title = %title,
                error.message = %e,
                "callback not stored"
            );
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the callback could not be stored; deliver it again",
            )
            .into_response()
        }
    }
}

fn non_empty(value: &str, field: &str) -> Result<(), Refusal> {
    if value.trim().is_empty() {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("{field} must not be empty"),
        ))
    } else {
        Ok(())
    }
}

async fn status_callback<I: Inbox>(
    State(receiver): State<Arc<Receiver<I>>>,
    Path(path_title): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let (event, payload): (StatusCallback, Value) = admit(&receiver.verifier, &headers, &body)?;
    non_empty(&event.event_id, "event_id")?;
    let title = event.callback_title.to_string();
    if title != path_title {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("callback_title {title:?} does not match the path's {path_title:?}"),
        ));
    }
    let event = InboxEvent {
        source: Source::Status,
        event_id: event.event_id,
        title,
        keys: CorrelationKeys {
            user_id: event.user_id,
            identity_number: event.identity_number,
            kyc_id: event.kyc_id,
            loan_unique_id: event.loan_unique_id,
            external_id: None,
        },
        payload,
    };
    Ok(store(&receiver, event).await)
}

async fn virtual_account_callback<I: Inbox>(
    State(receiver): State<Arc<Receiver<I>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let (payment, payload): (VirtualAccountPayment, Value) =
        admit(&receiver.verifier, &headers, &body)?;
    for (value, field) in [(&payment.id, "id"), (&payment.external_id, "external_id")] {
        non_empty(value, field)?;
    }
    let event = InboxEvent {
        source: Source::VirtualAccount,
        // The payment id is unique per payment: a repeated delivery is the same payment.
        event_id: payment.id,
        title: "payment".to_owned(),
        keys: CorrelationKeys {
            external_id: Some(payment.external_id),
            ..CorrelationKeys::default()
        },
        payload,
    };
    Ok(store(&receiver, event).await)
}

async fn invoice_callback<I: Inbox>(
    State(receiver): State<Arc<Receiver<I>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let (invoice, payload): (InvoiceCallback, Value) = admit(&receiver.verifier, &headers, &body)?;
    for (value, field) in [(&invoice.id, "id"), (&invoice.external_id, "external_id")] {
        non_empty(value, field)?;
    }
    let status = invoice.status.to_string().to_ascii_lowercase();
    let event = InboxEvent {
        source: Source::Invoice,
        // One invoice may first expire and later be paid: each outcome is its own event.
        event_id: format!("{}:{status}", invoice.id),
        title: format!("invoice_{status}"),
        keys: CorrelationKeys {
            external_id: Some(invoice.external_id),
            ..CorrelationKeys::default()
        },
        payload,
    };
    Ok(store(&receiver, event).await)
}

async fn didit_callback<I: Inbox>(
    State(receiver): State<Arc<Receiver<I>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    check_key(&receiver.verifier, &headers)?;
    let session = DiditSessionCallback::from_query(query.as_deref().unwrap_or(""));
    let Some(session_id) = session.verification_session_id.clone() else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "query parameter verificationSessionId is required",
        ));
    };
    // The body is described nowhere; keep it when it is JSON, refuse anything else.
    let body_json = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(e) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("body is not valid JSON: {e}"),
                ));
            }
        }
    };
    let status = session.status.clone().unwrap_or_else(|| "0".to_owned());
    let event = InboxEvent {
        source: Source::Didit,
        event_id: format!("{session_id}:{status}"),
        title: "didit_session".to_owned(),
        keys: CorrelationKeys::default(),
        payload: json!({
            "verificationSessionId": session_id,
            "status": status,
            "body": body_json,
        }),
    };
    Ok(store(&receiver, event).await)
}
