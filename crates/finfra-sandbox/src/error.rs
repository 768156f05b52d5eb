//! Errors: [`SandboxError`] for the Rust control API, [`ApiError`] for HTTP answers in
//! Finfra's error shape `{"status","error","message"}` (CONTRACT §1).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a control operation ([`crate::RunningSandbox`] methods, `/_sandbox/*`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// No such loan, borrower, virtual account...
    #[error("{0}")]
    NotFound(String),
    /// The object is not in a state that allows the operation, e.g. signing a loan whose
    /// signing was never initiated.
    #[error("{0}")]
    Conflict(String),
    /// The input itself is wrong, e.g. a payment above the outstanding amount.
    #[error("{0}")]
    Invalid(String),
}

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            SandboxError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            SandboxError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        }
    }
}

/// An HTTP error answer in Finfra's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// `Retry-After` seconds, for 429s that carry one.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A validation failure listing every problem found, as the reference's example
    /// `"Validation failed: email is required"`.
    pub fn validation(problems: &[String]) -> Self {
        Self::bad_request(format!("Validation failed: {}", problems.join("; ")))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        let message = match retry_after {
            Some(s) => format!("Rate limit exceeded, retry after {s} s"),
            None => "Rate limit exceeded".to_owned(),
        };
        Self {
            retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
