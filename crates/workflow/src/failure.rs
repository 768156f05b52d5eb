//! [`CallFailure`]: what the executor tells a workflow about a failed Finfra call.
//!
//! A `finfra_api::Error` holds sockets' errors, raw bodies and serde errors: it cannot be
//! persisted, and replaying a decision must not depend on anything that was not. The executor
//! converts it with `CallFailure::from(&error)` into this serializable classification, which
//! is everything a decision may look at: the status, Finfra's `Retry-After`, the retry class
//! (`finfra_api::retry::Failure`, so `finfra_api::retry::decide` takes it back) and Finfra's
//! message with personal data masked.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use finfra_api::Error;
use finfra_api::error::AuthError;
use finfra_api::retry::Failure;

use crate::serde_util::opt_millis;

/// Which way a call failed; the variants follow `finfra_api::Error`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Our own validation refused the body; nothing was sent.
    Invalid,
    /// A 4xx other than 401, 409 and 429.
    Rejected,
    /// A 401 after refreshing the token.
    Unauthorized,
    /// A 409.
    Conflict,
    /// A 429.
    RateLimited,
    /// A 5xx.
    Server,
    /// A status outside 2xx, 4xx and 5xx.
    UnexpectedStatus,
    /// No answer in time.
    Timeout,
    /// The connection failed.
    Connection,
    /// A 2xx whose body could not be read: the request *was* applied.
    Decode,
    /// An answer over the size limit.
    ResponseTooLarge,
    /// Getting a token failed.
    Auth,
    /// Configuration or a bug: bad URL, unencodable body, unbuildable client.
    Config,
}

/// [`finfra_api::retry::Failure`], serializable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum FailureClass {
    /// Finfra answered with this status.
    Status {
        /// The HTTP status.
        status: u16,
        /// Whether the method was idempotent.
        idempotent: bool,
    },
    /// No answer.
    NoAnswer {
        /// Whether the request may have reached Finfra.
        sent: bool,
        /// Whether the method was idempotent.
        idempotent: bool,
    },
    /// Cannot succeed as it is.
    Permanent,
}

impl From<Failure> for FailureClass {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Status { status, idempotent } => Self::Status { status, idempotent },
            Failure::NoAnswer { sent, idempotent } => Self::NoAnswer { sent, idempotent },
            Failure::Permanent => Self::Permanent,
        }
    }
}

impl From<FailureClass> for Failure {
    fn from(class: FailureClass) -> Self {
        match class {
            FailureClass::Status { status, idempotent } => Self::Status { status, idempotent },
            FailureClass::NoAnswer { sent, idempotent } => Self::NoAnswer { sent, idempotent },
            FailureClass::Permanent => Self::Permanent,
        }
    }
}

impl FailureClass {
    /// The same failure as if the request were idempotent: for requests that are safe to
    /// send again whatever their HTTP method (see `crate::request::Effect`).
    #[must_use]
    pub fn as_idempotent(self) -> Self {
        match self {
            Self::Status { status, .. } => Self::Status {
                status,
                idempotent: true,
            },
            Self::NoAnswer { sent, .. } => Self::NoAnswer {
                sent,
                idempotent: true,
            },
            Self::Permanent => Self::Permanent,
        }
    }
}

/// A failed Finfra call, classified (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFailure {
    /// Which way it failed.
    pub kind: FailureKind,
    /// The HTTP status, when Finfra answered.
    pub status: Option<u16>,
    /// Finfra's `Retry-After`, when it gave one (in the future).
    #[serde(default, with = "opt_millis", rename = "retry_after_ms")]
    pub retry_after: Option<Duration>,
    /// Whether another attempt may succeed (`finfra_api::Error::is_retryable`).
    pub retryable: bool,
    /// Whether the request may have been applied (`finfra_api::Error::is_ambiguous`).
    pub ambiguous: bool,
    /// Whether Finfra answered `409`.
    pub conflict: bool,
    /// The class `finfra_api::retry::decide` takes.
    pub class: FailureClass,
    /// What happened, for people: Finfra's own message when it sent one, with NIKs, phone
    /// numbers, e-mail addresses and KYC tokens masked.
    pub message: String,
}

impl From<&Error> for CallFailure {
    fn from(error: &Error) -> Self {
        let message = error
            .api_body()
            .map_or_else(|| error.to_string(), |body| body.message.clone());
        Self {
            kind: kind_of(error),
            status: error.status(),
            retry_after: error.retry_after(),
            retryable: error.is_retryable(),
            ambiguous: error.is_ambiguous(),
            conflict: error.is_conflict(),
            class: error.failure().into(),
            message: redact(&message),
        }
    }
}

fn kind_of(error: &Error) -> FailureKind {
    match error {
        Error::Invalid(_) => FailureKind::Invalid,
        Error::Rejected { .. } => FailureKind::Rejected,
        Error::Unauthorized { .. } => FailureKind::Unauthorized,
        Error::Conflict(_) => FailureKind::Conflict,
        Error::RateLimited { .. } => FailureKind::RateLimited,
        Error::Server { .. } => FailureKind::Server,
        Error::UnexpectedStatus { .. } => FailureKind::UnexpectedStatus,
        Error::Timeout { .. } => FailureKind::Timeout,
        Error::Connection { .. } => FailureKind::Connection,
        Error::Decode { .. } => FailureKind::Decode,
        Error::ResponseTooLarge { .. } => FailureKind::ResponseTooLarge,
        // A rate-limited or failing token endpoint is retried like the call it served.
        Error::Auth(AuthError::Endpoint(inner)) => match kind_of(inner) {
            FailureKind::RateLimited => FailureKind::RateLimited,
            _ => FailureKind::Auth,
        },
        Error::Auth(AuthError::BadCredentials { .. }) => FailureKind::Auth,
        Error::InvalidUrl { .. } => FailureKind::Config,
        Error::Encode(_) => FailureKind::Config,
        Error::Build(_) => FailureKind::Config,
    }
}

/// Constructors for failures that did not come from a `finfra_api::Error`: tests, and an
/// executor that must describe a failure of its own (a document file it could not read).
impl CallFailure {
    /// `429`, with or without `Retry-After`.
    #[must_use]
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        Self::answered(FailureKind::RateLimited, 429, true, "Too Many Requests")
            .with_retry_after(retry_after)
    }

    /// A 5xx to a request whose method is idempotent (`GET`, `PUT`) or not (`POST`).
    #[must_use]
    pub fn server(status: u16, idempotent: bool) -> Self {
        let mut failure = Self::answered(
            FailureKind::Server,
            status,
            idempotent,
            "Internal Server Error",
        );
        failure.retryable = status != 501;
        failure.ambiguous = Failure::from(failure.class).is_ambiguous();
        failure
    }

    /// No answer in time, after the request was (`sent`) or was not sent.
    #[must_use]
    pub fn timeout(sent: bool, idempotent: bool) -> Self {
        let class = FailureClass::NoAnswer { sent, idempotent };
        Self {
            kind: FailureKind::Timeout,
            status: None,
            retry_after: None,
            retryable: true,
            ambiguous: Failure::from(class).is_ambiguous(),
            conflict: false,
            class,
            message: "the request timed out".to_owned(),
        }
    }

    /// The connection failed (refused, reset) after the request was (`sent`) or was not
    /// sent.
    #[must_use]
    pub fn connection(sent: bool, idempotent: bool) -> Self {
        let class = FailureClass::NoAnswer { sent, idempotent };
        Self {
            kind: FailureKind::Connection,
            status: None,
            retry_after: None,
            retryable: true,
            ambiguous: Failure::from(class).is_ambiguous(),
            conflict: false,
            class,
            message: if sent {
                "the connection was reset".to_owned()
            } else {
                "the connection was refused".to_owned()
            },
        }
    }

    /// A final 4xx (not 401, 409 or 429) with Finfra's message.
    #[must_use]
    pub fn rejected(status: u16, message: &str) -> Self {
        let mut failure = Self::answered(FailureKind::Rejected, status, true, message);
        failure.retryable = status == 408;
        failure
    }

    /// `409` with Finfra's message.
    #[must_use]
    pub fn conflict(message: &str) -> Self {
        let mut failure = Self::answered(FailureKind::Conflict, 409, true, message);
        failure.retryable = false;
        failure.conflict = true;
        failure
    }

    /// A 2xx whose body could not be decoded: the request was applied.
    #[must_use]
    pub fn undecodable(status: u16) -> Self {
        Self {
            kind: FailureKind::Decode,
            status: Some(status),
            retry_after: None,
            retryable: false,
            ambiguous: false,
            conflict: false,
            class: FailureClass::Permanent,
            message: "could not decode Finfra's answer".to_owned(),
        }
    }

    /// A failure that no retry fixes (configuration, a file the executor cannot read).
    #[must_use]
    pub fn permanent(kind: FailureKind, message: &str) -> Self {
        Self {
            kind,
            status: None,
            retry_after: None,
            retryable: false,
            ambiguous: false,
            conflict: false,
            class: FailureClass::Permanent,
            message: redact(message),
        }
    }

    fn answered(kind: FailureKind, status: u16, idempotent: bool, message: &str) -> Self {
        Self {
            kind,
            status: Some(status),
            retry_after: None,
            retryable: true,
            ambiguous: false,
            conflict: false,
            class: FailureClass::Status { status, idempotent },
            message: redact(message),
        }
    }

    fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// One line for notes and the journal: `500: Internal Server Error`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => format!("{status}: {}", self.message),
            None => format!("{:?}: {}", self.kind, self.message).to_lowercase(),
        }
    }
}

/// Masks personal data in a message: runs of 8 or more digits (NIKs, phone and account
/// numbers) keep their last 4, e-mail addresses and JWT-shaped tokens (KYC session ids)
/// are replaced. Finfra's messages name fields, but a proxy or a future version may echo
/// values, and these messages are stored and shown.
#[must_use]
pub fn redact(message: &str) -> String {
    message
        .split_inclusive(char::is_whitespace)
        .map(redact_word)
        .collect()
}

fn redact_word(word: &str) -> String {
    let trimmed = word.trim_matches(|c: char| c.is_whitespace() || "\"'(),;[]{}".contains(c));
    if trimmed.contains('@') && trimmed.contains('.') {
        return word.replace(trimmed, "<email>");
    }
    if trimmed.starts_with("eyJ") && trimmed.len() > 16 {
        return word.replace(trimmed, "<token>");
    }
    let mut out = String::with_capacity(word.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 8 {
            out.push_str(&finfra_api::model::mask(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in word.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use finfra_api::error::{ApiErrorBody, ErrorBody};

    use super::*;

    fn body(status: u16, message: &str) -> ErrorBody {
        ErrorBody::Api(ApiErrorBody {
            status,
            error: "Reason".into(),
            message: message.into(),
        })
    }

    #[test]
    fn classifies_finfra_errors() {
        let limited = CallFailure::from(&Error::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
            body: body(429, "slow down"),
        });
        assert_eq!(limited.kind, FailureKind::RateLimited);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(3)));
        assert!(limited.retryable && !limited.ambiguous);
        assert_eq!(limited.message, "slow down");

        let conflict = CallFailure::from(&Error::Conflict(body(
            409,
            "Borrower with this identity number already exists",
        )));
        assert!(conflict.conflict && !conflict.retryable);
        assert_eq!(conflict.status, Some(409));

        let server = CallFailure::from(&Error::Server {
            status: 500,
            method: reqwest_method_post(),
            body: body(500, "boom"),
        });
        assert!(server.ambiguous && server.retryable);
        assert_eq!(
            server.class,
            FailureClass::Status {
                status: 500,
                idempotent: false
            }
        );
    }

    fn reqwest_method_post() -> reqwest::Method {
        reqwest::Method::POST
    }

    #[test]
    fn constructors_agree_with_the_client_classification() {
        assert_eq!(
            CallFailure::server(500, false),
            CallFailure::from(&Error::Server {
                status: 500,
                method: reqwest_method_post(),
                body: body(500, "Internal Server Error"),
            })
        );
        assert!(CallFailure::timeout(true, false).ambiguous);
        assert!(!CallFailure::timeout(false, false).ambiguous);
        assert!(!CallFailure::server(503, false).ambiguous);
    }

    #[test]
    fn messages_are_redacted() {
        let failure = CallFailure::from(&Error::Rejected {
            status: 400,
            body: body(
                400,
                "NIK 3275062009921981 of budi@example.com (token eyJhbGciOiJIUzI1NiJ9.e30.x) refused",
            ),
        });
        assert_eq!(
            failure.message,
            "NIK ************1981 of <email> (token <token>) refused"
        );
        assert_eq!(
            redact("principal_amount must be 100000"),
            "principal_amount must be 100000"
        );
    }

    #[test]
    fn serializes_with_retry_after_in_milliseconds() {
        let json =
            serde_json::to_value(CallFailure::rate_limited(Some(Duration::from_secs(2)))).unwrap();
        assert_eq!(json["retry_after_ms"], 2000);
        let back: CallFailure = serde_json::from_value(json).unwrap();
        assert_eq!(back.retry_after, Some(Duration::from_secs(2)));
    }
}
