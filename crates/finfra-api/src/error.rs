//! The one error type of the client, classified for the engine.
//!
//! Every failure of every endpoint comes back as an [`Error`]. The engine does not read
//! messages: it asks [`Error::is_retryable`], [`Error::retry_after`], [`Error::is_ambiguous`]
//! and [`Error::is_conflict`], or hands [`Error::failure`] to [`crate::retry::decide`]. Each
//! classification matches every variant by name, so a new variant cannot slip through
//! unclassified.
//!
//! Nothing here prints a secret or a request body. Response bodies are kept (typed when they
//! have Finfra's error shape, raw otherwise) but only Finfra's own `message` is displayed:
//! raw bytes may hold a borrower's data, so their `Debug` shows only their length. URLs are
//! stripped from transport errors because paths carry NIKs and KYC session ids.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::retry::Failure;
use crate::validate::ValidationErrors;

/// Finfra's error body: `{"status": 400, "error": "Bad Request", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    /// The reason phrase, e.g. `Bad Request`.
    pub error: String,
    /// What went wrong; validation messages name the field path.
    pub message: String,
}

/// A response body that is not what was expected, kept as bytes.
///
/// `Debug` and `Display` show only the length: the bytes may hold personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct RawBody(pub Bytes);

impl RawBody {
    /// The bytes as received.
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawBody({} bytes)", self.0.len())
    }
}

/// The body of an error response: Finfra's error shape, or the raw bytes if it was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorBody {
    /// The body had Finfra's error shape.
    Api(ApiErrorBody),
    /// The body was something else (HTML from a proxy, empty, ...).
    Raw(RawBody),
}

impl ErrorBody {
    /// Reads a response body: typed if it has Finfra's error shape, raw otherwise.
    #[must_use]
    pub fn from_bytes(bytes: Bytes) -> Self {
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) => Self::Api(body),
            Err(_) => Self::Raw(RawBody(bytes)),
        }
    }

    /// Finfra's `message`, when the body had Finfra's error shape.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Api(body) => Some(&body.message),
            Self::Raw(_) => None,
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api(body) => write!(f, "{}: {}", body.error, body.message),
            Self::Raw(raw) => write!(f, "a {}-byte body not in Finfra's error shape", raw.0.len()),
        }
    }
}

/// Why authentication failed (the token endpoint, not a `401` on an API call).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `POST /api/auth/token/v2` answered `401`.
    #[error(
        "Finfra refused the client credentials for client id {client_id:?} (401 from the token \
         endpoint): check the client id and secret"
    )]
    BadCredentials {
        /// The client id that was refused (not a secret).
        client_id: String,
        /// Finfra's answer.
        body: ErrorBody,
    },
    /// The token endpoint failed some other way (rate limit, 5xx, timeout, undecodable
    /// answer); classified like any other request.
    #[error("the token endpoint failed")]
    Endpoint(#[source] Box<Error>),
}

/// Every way a call to Finfra can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request failed validation before anything was sent.
    #[error("invalid request, not sent: {0}")]
    Invalid(#[source] ValidationErrors),

    /// Finfra answered with a 4xx other than 401, 409 and 429.
    #[error("Finfra rejected the request with status {status}: {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Finfra's answer.
        body: ErrorBody,
    },

    /// Finfra answered `401` again after the token was refreshed (or on an endpoint that
    /// needs no token).
    #[error("Finfra refused the access token (401) even after refreshing it: {body}")]
    Unauthorized {
        /// Finfra's answer.
        body: ErrorBody,
    },

    /// Finfra answered `409`: the resource exists or is in a state that forbids the change.
    #[error("conflict (409): {0}")]
    Conflict(ErrorBody),

    /// Finfra answered `429`.
    #[error("rate limited by Finfra (429), retry after {retry_after:?}")]
    RateLimited {
        /// The `Retry-After` hint, if one was given and is in the future.
        retry_after: Option<Duration>,
        /// Finfra's answer.
        body: ErrorBody,
    },

    /// Finfra answered with a 5xx.
    #[error("Finfra failed with status {status} on {method}: {body}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The request's method: a 5xx on a POST may come after the change was applied.
        method: Method,
        /// Finfra's answer.
        body: ErrorBody,
    },

    /// Finfra answered with a status outside 2xx, 4xx and 5xx (redirects are not followed).
    #[error("unexpected status {status} from Finfra")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The body as received.
        body: RawBody,
    },

    /// No answer within the timeout.
    #[error("{method} request to Finfra timed out ({})", sent_phrase(*sent))]
    Timeout {
        /// The request's method.
        method: Method,
        /// Whether the request may have reached Finfra (false for a connect timeout).
        sent: bool,
    },

    /// The connection failed: refused, reset, closed before the answer was complete.
    #[error("connection to Finfra failed during {method} ({})", sent_phrase(*sent))]
    Connection {
        /// The request's method.
        method: Method,
        /// Whether the request may have reached Finfra (false when connecting failed).
        sent: bool,
        /// The transport error, with the URL removed.
        #[source]
        source: reqwest::Error,
    },

    /// A success response whose body could not be decoded. The request *was* applied.
    #[error(
        "could not decode Finfra's {status} response (line {}, column {})",
        source.line(),
        source.column()
    )]
    Decode {
        /// The HTTP status (2xx).
        status: u16,
        /// What serde said. Its message may quote a value from the body.
        #[source]
        source: serde_json::Error,
        /// The body as received.
        body: RawBody,
    },

    /// A response body exceeded the size limit; it was not read to the end.
    #[error("Finfra's {status} response exceeded {limit} bytes")]
    ResponseTooLarge {
        /// The HTTP status.
        status: u16,
        /// The limit in bytes.
        limit: usize,
    },

    /// Getting an access token failed.
    #[error("authentication with Finfra failed")]
    Auth(#[source] AuthError),

    /// A URL could not be built (bad base URL, unusable presigned URL). The URL itself is not
    /// shown: a presigned URL carries a token.
    #[error("invalid URL for {what}: {reason}")]
    InvalidUrl {
        /// Which URL.
        what: &'static str,
        /// Why it is unusable.
        reason: String,
    },

    /// A request body could not be serialized (a bug in a model type).
    #[error("could not encode the request body")]
    Encode(#[source] serde_json::Error),

    /// The HTTP client or a request could not be built (TLS backend, bad header value).
    #[error("could not build the HTTP client or request")]
    Build(#[source] reqwest::Error),
}

fn sent_phrase(sent: bool) -> &'static str {
    if sent {
        "the request may have been received"
    } else {
        "nothing was sent"
    }
}

/// The failure class of a 4xx: such a request was refused, not applied, so it is safe to
/// repeat whatever its method (idempotence only matters for 5xx and lost answers).
fn refused(status: u16) -> Failure {
    Failure::Status {
        status,
        idempotent: true,
    }
}

/// Whether a request with this method can be repeated without changing the outcome.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

impl Error {
    /// Whether another attempt may succeed. For an ambiguous error ([`Self::is_ambiguous`])
    /// the engine must still reconcile before sending again.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            // The same body fails the same checks.
            Self::Invalid(_) => false,
            // 408 is the server's timeout; any other 4xx says the request itself is wrong.
            Self::Rejected { status, .. } => *status == 408,
            // A fresh token was refused: credentials or permissions, not luck.
            Self::Unauthorized { .. } => false,
            // The state that caused the conflict does not change by waiting.
            Self::Conflict(_) => false,
            // The limit refills.
            Self::RateLimited { .. } => true,
            // 501 will never be implemented by waiting; other 5xx are transient.
            Self::Server { status, .. } => *status != 501,
            // Redirects and 1xx are not something a retry fixes.
            Self::UnexpectedStatus { .. } => false,
            // Networks and servers recover.
            Self::Timeout { .. } => true,
            // Networks and servers recover.
            Self::Connection { .. } => true,
            // The request was applied; sending it again could apply it twice.
            Self::Decode { .. } => false,
            // The same answer would be as large again.
            Self::ResponseTooLarge { .. } => false,
            // Bad credentials stay bad; an endpoint failure is classified like any other.
            Self::Auth(AuthError::BadCredentials { .. }) => false,
            Self::Auth(AuthError::Endpoint(inner)) => inner.is_retryable(),
            // Configuration errors do not fix themselves.
            Self::InvalidUrl { .. } => false,
            // A bug in a model type does not fix itself.
            Self::Encode(_) => false,
            // Configuration errors do not fix themselves.
            Self::Build(_) => false,
        }
    }

    /// The server's `Retry-After` hint, if it gave one.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            // Only 429 answers are read for Retry-After; the engine backs off on its own otherwise.
            Self::RateLimited { retry_after, .. } => *retry_after,
            // The token endpoint can be rate limited too.
            Self::Auth(AuthError::Endpoint(inner)) => inner.retry_after(),
            // Bad credentials carry no hint.
            Self::Auth(AuthError::BadCredentials { .. }) => None,
            // Not sent.
            Self::Invalid(_) => None,
            // No hint is read from other 4xx.
            Self::Rejected { .. } => None,
            // No hint is read from 401.
            Self::Unauthorized { .. } => None,
            // No hint is read from 409.
            Self::Conflict(_) => None,
            // No hint is read from 5xx.
            Self::Server { .. } => None,
            // No hint is read from other statuses.
            Self::UnexpectedStatus { .. } => None,
            // No answer, no header.
            Self::Timeout { .. } => None,
            // No answer, no header.
            Self::Connection { .. } => None,
            // A success has no retry hint.
            Self::Decode { .. } => None,
            // Not read for a hint.
            Self::ResponseTooLarge { .. } => None,
            // Not sent.
            Self::InvalidUrl { .. } => None,
            // Not sent.
            Self::Encode(_) => None,
            // Not sent.
            Self::Build(_) => None,
        }
    }

    /// Whether the request may have been applied although no success was seen: the engine
    /// must read Finfra's state (reconcile) before sending it again.
    ///
    /// True for a POST or PATCH that timed out or lost its connection after it was sent, and
    /// for one answered with a 5xx other than 501/503 (see [`Failure::is_ambiguous`]).
    /// A refused connection or a connect timeout is not ambiguous: nothing was sent.
    #[must_use]
    pub fn is_ambiguous(&self) -> bool {
        self.failure().is_ambiguous()
    }

    /// The HTTP status Finfra answered with, if it answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            // Not sent.
            Self::Invalid(_) => None,
            // Answered.
            Self::Rejected { status, .. } => Some(*status),
            // Answered.
            Self::Unauthorized { .. } => Some(401),
            // Answered.
            Self::Conflict(_) => Some(409),
            // Answered.
            Self::RateLimited { .. } => Some(429),
            // Answered.
            Self::Server { status, .. } => Some(*status),
            // Answered.
            Self::UnexpectedStatus { status, .. } => Some(*status),
            // No answer.
            Self::Timeout { .. } => None,
            // No answer.
            Self::Connection { .. } => None,
            // Answered with a success.
            Self::Decode { status, .. } => Some(*status),
            // Answered, too much.
            Self::ResponseTooLarge { status, .. } => Some(*status),
            // The token endpoint's refusal.
            Self::Auth(AuthError::BadCredentials { .. }) => Some(401),
            // Whatever the token endpoint answered.
            Self::Auth(AuthError::Endpoint(inner)) => inner.status(),
            // Not sent.
            Self::InvalidUrl { .. } => None,
            // Not sent.
            Self::Encode(_) => None,
            // Not sent.
            Self::Build(_) => None,
        }
    }

    /// Whether Finfra answered `409 Conflict`.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        match self {
            // The one conflict variant.
            Self::Conflict(_) => true,
            // 409 always maps to Conflict, never here.
            Self::Rejected { .. } => false,
            // Not a conflict.
            Self::Invalid(_) => false,
            // Not a conflict.
            Self::Unauthorized { .. } => false,
            // Not a conflict.
            Self::RateLimited { .. } => false,
            // Not a conflict.
            Self::Server { .. } => false,
            // Not a conflict.
            Self::UnexpectedStatus { .. } => false,
            // No answer.
            Self::Timeout { .. } => false,
            // No answer.
            Self::Connection { .. } => false,
            // A success.
            Self::Decode { .. } => false,
            // Not a conflict.
            Self::ResponseTooLarge { .. } => false,
            // The token endpoint does not conflict.
            Self::Auth(_) => false,
            // Not sent.
            Self::InvalidUrl { .. } => false,
            // Not sent.
            Self::Encode(_) => false,
            // Not sent.
            Self::Build(_) => false,
        }
    }

    /// Finfra's error body, when it answered with one in its error shape.
    #[must_use]
    pub fn api_body(&self) -> Option<&ApiErrorBody> {
        let body = match self {
            Self::Rejected { body, .. }
            | Self::Unauthorized { body }
            | Self::Conflict(body)
            | Self::RateLimited { body, .. }
            | Self::Server { body, .. }
            | Self::Auth(AuthError::BadCredentials { body, .. }) => body,
            Self::Auth(AuthError::Endpoint(inner)) => return inner.api_body(),
            Self::Invalid(_)
            | Self::UnexpectedStatus { .. }
            | Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Decode { .. }
            | Self::ResponseTooLarge { .. }
            | Self::InvalidUrl { .. }
            | Self::Encode(_)
            | Self::Build(_) => return None,
        };
        match body {
            ErrorBody::Api(api) => Some(api),
            ErrorBody::Raw(_) => None,
        }
    }

    /// The class of this failure, as [`crate::retry::decide`] takes it.
    #[must_use]
    pub fn failure(&self) -> Failure {
        match self {
            // Finfra answered: the status decides.
            Self::Rejected { status, .. } => refused(*status),
            // Finfra answered 401.
            Self::Unauthorized { .. } => refused(401),
            // Finfra answered 409.
            Self::Conflict(_) => refused(409),
            // Finfra answered 429.
            Self::RateLimited { .. } => refused(429),
            // A 5xx on a non-idempotent method may come after the change was applied.
            Self::Server { status, method, .. } => Failure::Status {
                status: *status,
                idempotent: is_idempotent(method),
            },
            // No answer: ambiguous if sent with a non-idempotent method.
            Self::Timeout { method, sent } | Self::Connection { method, sent, .. } => {
                Failure::NoAnswer {
                    sent: *sent,
                    idempotent: is_idempotent(method),
                }
            }
            // The token endpoint is safe to call again: a token request changes nothing.
            Self::Auth(AuthError::Endpoint(inner)) => match inner.failure() {
                Failure::Status { status, .. } => Failure::Status {
                    status,
                    idempotent: true,
                },
                Failure::NoAnswer { sent, .. } => Failure::NoAnswer {
                    sent,
                    idempotent: true,
                },
                Failure::Permanent => Failure::Permanent,
            },
            // Bad credentials stay bad.
            Self::Auth(AuthError::BadCredentials { .. }) => Failure::Permanent,
            // Not sent, and would fail again.
            Self::Invalid(_) => Failure::Permanent,
            // Not a status a retry fixes.
            Self::UnexpectedStatus { .. } => Failure::Permanent,
            // Applied, but unreadable: resending could apply it twice.
            Self::Decode { .. } => Failure::Permanent,
            // The same answer would be as large again.
            Self::ResponseTooLarge { .. } => Failure::Permanent,
            // Configuration.
            Self::InvalidUrl { .. } => Failure::Permanent,
            // A bug.
            Self::Encode(_) => Failure::Permanent,
            // Configuration.
            Self::Build(_) => Failure::Permanent,
        }
    }

    /// Maps a transport error of a request sent with `method`.
    ///
    /// `is_connect` means nothing left the process (refused, DNS, TLS, connect timeout);
    /// any other request or body error happened after the request started going out.
    pub(crate) fn from_transport(method: &Method, error: reqwest::Error) -> Self {
        let error = error.without_url();
        if error.is_builder() {
            return Self::Build(error);
        }
        let sent = !error.is_connect();
        if error.is_timeout() {
            Self::Timeout {
                method: method.clone(),
                sent,
            }
        } else {
            Self::Connection {
                method: method.clone(),
                sent,
                source: error,
            }
        }
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Self::Invalid(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_body(status: u16, message: &str) -> ErrorBody {
        ErrorBody::Api(ApiErrorBody {
            status,
            error: "Reason".to_owned(),
            message: message.to_owned(),
        })
    }

    fn server(status: u16, method: Method) -> Error {
        Error::Server {
            status,
            method,
            body: api_body(status, "boom"),
        }
    }

    /// A real transport error: a connection to a port nobody listens on.
    async fn refused() -> reqwest::Error {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        reqwest::Client::new()
            .post(format!(
                "http://{addr}/api/core/users/3275062009921981/credit-history"
            ))
            .send()
            .await
            .unwrap_err()
    }

    #[test]
    fn error_body_is_typed_when_it_has_finfras_shape() {
        let typed = ErrorBody::from_bytes(Bytes::from_static(
            br#"{"status":400,"error":"Bad Request","message":"unique_id must be 6 to 64 characters"}"#,
        ));
        assert_eq!(
            typed.message(),
            Some("unique_id must be 6 to 64 characters")
        );
        let raw = ErrorBody::from_bytes(Bytes::from_static(b"<html>bad gateway</html>"));
        assert_eq!(raw.message(), None);
        assert!(matches!(&raw, ErrorBody::Raw(r) if r.as_bytes().len() == 24));
    }

    #[test]
    fn raw_bodies_never_show_their_content() {
        let raw = RawBody(Bytes::from_static(b"{\"nik\":\"3275062009921981\"}"));
        let decode = Error::Decode {
            status: 200,
            source: serde_json::from_slice::<u8>(b"\"x\"").unwrap_err(),
            body: raw.clone(),
        };
        for shown in [
            format!("{raw:?}"),
            format!("{decode}"),
            format!("{decode:?}"),
        ] {
            assert!(!shown.contains("3275062009921981"), "{shown}");
        }
    }

    #[test]
    fn rate_limits_are_retryable_with_their_hint() {
        let error = Error::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
            body: api_body(429, "slow down"),
        };
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert!(!error.is_ambiguous());
        assert_eq!(error.status(), Some(429));
    }

    #[test]
    fn client_errors_are_final_except_408() {
        let rejected = Error::Rejected {
            status: 400,
            body: api_body(400, "Borrower is not approved"),
        };
        assert!(!rejected.is_retryable());
        assert!(!rejected.is_ambiguous());
        assert_eq!(
            rejected.api_body().map(|b| b.message.as_str()),
            Some("Borrower is not approved")
        );
        assert!(
            Error::Rejected {
                status: 408,
                body: api_body(408, "t")
            }
            .is_retryable()
        );
        let conflict = Error::Conflict(api_body(409, "exists"));
        assert!(conflict.is_conflict() && !conflict.is_retryable() && !conflict.is_ambiguous());
        assert_eq!(conflict.status(), Some(409));
        let unauthorized = Error::Unauthorized {
            body: api_body(401, "expired"),
        };
        assert!(!unauthorized.is_retryable());
        assert_eq!(unauthorized.status(), Some(401));
    }

    #[test]
    fn server_errors_are_retryable_and_ambiguous_only_on_non_idempotent_methods() {
        assert!(server(500, Method::GET).is_retryable());
        assert!(!server(500, Method::GET).is_ambiguous());
        assert!(server(500, Method::POST).is_ambiguous());
        assert!(server(504, Method::PATCH).is_ambiguous());
        assert!(!server(503, Method::POST).is_ambiguous());
        assert!(!server(501, Method::POST).is_retryable());
        assert_eq!(server(502, Method::GET).status(), Some(502));
    }

    #[test]
    fn timeouts_are_ambiguous_only_when_sent_on_a_non_idempotent_method() {
        let timeout = |method, sent| Error::Timeout { method, sent };
        assert!(timeout(Method::POST, true).is_ambiguous());
        assert!(timeout(Method::PATCH, true).is_ambiguous());
        assert!(!timeout(Method::POST, false).is_ambiguous());
        assert!(!timeout(Method::GET, true).is_ambiguous());
        assert!(!timeout(Method::PUT, true).is_ambiguous());
        assert!(timeout(Method::POST, true).is_retryable());
        assert_eq!(timeout(Method::POST, true).status(), None);
    }

    #[tokio::test]
    async fn a_refused_connection_was_not_sent_and_shows_no_url() {
        let error = Error::from_transport(&Method::POST, refused().await);
        assert!(
            matches!(error, Error::Connection { sent: false, .. }),
            "{error:?}"
        );
        assert!(!error.is_ambiguous());
        assert!(error.is_retryable());
        let mut chain = format!("{error} {error:?}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        assert!(!chain.contains("3275062009921981"), "{chain}");
    }

    #[test]
    fn auth_errors_classify_through_the_endpoint_failure() {
        let bad = Error::Auth(AuthError::BadCredentials {
            client_id: "partner-1".to_owned(),
            body: api_body(401, "bad"),
        });
        assert!(!bad.is_retryable());
        assert_eq!(bad.failure(), Failure::Permanent);
        assert!(bad.to_string().contains("authentication"));
        let limited = Error::Auth(AuthError::Endpoint(Box::new(Error::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            body: api_body(429, "slow"),
        })));
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(limited.status(), Some(429));
        // A token request changes nothing: never ambiguous, even as a POST.
        let timed_out = Error::Auth(AuthError::Endpoint(Box::new(Error::Timeout {
            method: Method::POST,
            sent: true,
        })));
        assert!(!timed_out.is_ambiguous());
        assert!(timed_out.is_retryable());
    }

    #[test]
    fn decode_errors_are_final_and_not_ambiguous() {
        let error = Error::Decode {
            status: 200,
            source: serde_json::from_slice::<u8>(b"{").unwrap_err(),
            body: RawBody(Bytes::from_static(b"{")),
        };
        assert!(!error.is_retryable());
        assert!(!error.is_ambiguous());
        assert_eq!(error.status(), Some(200));
    }
}
