//! Sending one request: the `finfra.request` span, authentication, the single repeat after a
//! `401`, bounded body reading, and mapping statuses to [`Error`].
//!
//! The client does not retry (the engine persists retries); the one exception is a `401`
//! on a Bearer endpoint, which renews the token and repeats the request once.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{Instrument, Span, field};
use url::Url;

use super::Inner;
use crate::auth::AccessToken;
use crate::error::{Error, ErrorBody, RawBody};
use crate::retry::parse_retry_after;
use crate::validate::Validate;

/// Largest response body read into memory (JSON answers, error bodies). A document file is
/// streamed instead and has no such limit.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthScheme {
    /// No `Authorization` header (CONTRACT §2: approve, block, create document, AFPI
    /// report, healthchecks).
    None,
    /// `Authorization: Bearer <access token>` from the token cache.
    Bearer,
}

/// A file sent as a multipart part or uploaded to a presigned URL.
#[derive(Clone, PartialEq, Eq)]
pub struct FileUpload {
    /// The file's content.
    pub bytes: Bytes,
    /// The file name announced in the multipart part.
    pub filename: String,
    /// The MIME type, e.g. `image/jpeg`.
    pub content_type: String,
}

impl std::fmt::Debug for FileUpload {
    // A KTP scan is personal data: show its size, not its bytes or name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUpload")
            .field("len", &self.bytes.len())
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A request body.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A JSON document, already validated and serialized.
    Json(Bytes),
    /// `multipart/form-data`: text fields and an optional file part. Kept as parts because a
    /// reqwest form cannot be cloned and is rebuilt for each send.
    Multipart {
        fields: Vec<(&'static str, String)>,
        file: Option<(&'static str, FileUpload)>,
    },
    /// Raw bytes with their content type (the presigned upload).
    Raw(FileUpload),
}

/// One request to Finfra, ready to send (and to send again after a `401`).
pub(crate) struct Call {
    pub(crate) method: Method,
    /// The path template for the span, e.g. `/api/core/users/{userId}`: never a concrete id.
    pub(crate) template: &'static str,
    pub(crate) url: Url,
    pub(crate) auth: AuthScheme,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
}

impl Call {
    pub(crate) fn new(method: Method, template: &'static str, url: Url, auth: AuthScheme) -> Self {
        Self {
            method,
            template,
            url,
            auth,
            headers: HeaderMap::new(),
            body: Body::Empty,
        }
    }

    /// Validates `body` and sets it as the JSON body.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `body` fails validation; nothing is sent then.
    pub(crate) fn json<T: Serialize + Validate + ?Sized>(
        mut self,
        body: &T,
    ) -> Result<Self, Error> {
        body.validate()?;
        self.body = Body::Json(serde_json::to_vec(body).map_err(Error::Encode)?.into());
        Ok(self)
    }

    /// Adds a header, marked sensitive so it never shows in a `Debug` of the request.
    pub(crate) fn header(mut self, name: &'static str, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), value);
        self
    }

    fn build(
        &self,
        http: &reqwest::Client,
        token: Option<&AccessToken>,
    ) -> Result<RequestBuilder, Error> {
        let mut request = http
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token.bearer());
        }
        Ok(match &self.body {
            Body::Empty if matches!(self.method, Method::POST | Method::PUT | Method::PATCH) => {
                // Strict servers want a length on a body-less POST; no Content-Type, since
                // there is no body to type.
                request.header(CONTENT_LENGTH, 0)
            }
            Body::Empty => request,
            Body::Json(bytes) => request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Multipart { fields, file } => {
                let mut form = reqwest::multipart::Form::new();
                for (name, value) in fields {
                    form = form.text(*name, value.clone());
                }
                if let Some((name, upload)) = file {
                    let part = reqwest::multipart::Part::stream_with_length(
                        upload.bytes.clone(),
                        upload.bytes.len() as u64,
                    )
                    .file_name(upload.filename.clone())
                    .mime_str(&upload.content_type)
                    .map_err(Error::Build)?;
                    form = form.part(*name, part);
                }
                request.multipart(form)
            }
            Body::Raw(upload) => request
                .header(CONTENT_TYPE, upload.content_type.as_str())
                .body(upload.bytes.clone()),
        })
    }
}

impl Inner {
    /// Sends `call` and returns the 2xx response with its body unread.
    ///
    /// # Errors
    /// Any [`Error`]: a non-2xx answer is read and classified.
    pub(crate) async fn send(&self, call: &Call) -> Result<Response, Error> {
        // Nothing leaves inside a window, not even the token request a Bearer call may
        // need first (Finfra counts it against the same client).
        self.held(call)?;
        let response = match call.auth {
            AuthScheme::None => self.send_once(call, None).await?,
            AuthScheme::Bearer => {
                let token = self.tokens.token(&self.http).await?;
                let response = self.send_once(call, Some(&token)).await?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    // Read the refusal so the connection can be reused; its content is not needed.
                    let _ = read_body(response, &call.method).await;
                    tracing::debug!(
                        path = call.template,
                        "401: renewing the token and repeating once"
                    );
                    self.held(call)?;
                    let token = self.tokens.replace(&self.http, &token).await?;
                    self.send_once(call, Some(&token)).await?
                } else {
                    response
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = read_body(response, &call.method).await?;
        Err(status_error(status, &headers, &call.method, body))
    }

    /// Sends `call` and decodes the JSON answer.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Decode`] when the answer is not a `T`.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, Error> {
        let response = self.send(call).await?;
        let status = response.status();
        let body = read_body(response, &call.method).await?;
        decode(status, body)
    }

    /// Sends one request, unless Finfra asked this client to wait: a `429` with
    /// `Retry-After` pauses every request of the client (all its clones and tasks) until
    /// the window ends. Checked here, the last step before the request leaves, and set here,
    /// the first place the answer is seen, so that requests of other tasks cannot slip into
    /// the window while the caller is still handling the `429`.
    async fn send_once(&self, call: &Call, token: Option<&AccessToken>) -> Result<Response, Error> {
        let request = call.build(&self.http, token)?;
        self.held(call)?;
        let response = exchange(request, &call.method, call.template).await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS
            && let Some(wait) = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| parse_retry_after(value, SystemTime::now()))
        {
            self.pause(wait);
        }
        Ok(response)
    }

    /// A `429` of our own, never sent, while a `Retry-After` window lasts.
    fn held(&self, call: &Call) -> Result<(), Error> {
        let Some(remaining) = self.pause_remaining() else {
            return Ok(());
        };
        tracing::debug!(
            path = call.template,
            "not sent: inside Finfra's Retry-After window"
        );
        Err(held_error(remaining))
    }

    /// How much of the current `Retry-After` window is left, if any.
    fn pause_remaining(&self) -> Option<std::time::Duration> {
        super::hold::remaining(&self.paused_until)
    }

    /// Extends the pause to `wait` from now (a later window wins).
    pub(crate) fn pause(&self, wait: std::time::Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *paused = Some(paused.map_or(until, |current| current.max(until)));
    }
}

/// A `429` of our own for a request not sent because a `Retry-After` window lasts.
fn held_error(remaining: std::time::Duration) -> Error {
    Error::RateLimited {
        retry_after: Some(remaining),
        body: ErrorBody::Api(crate::error::ApiErrorBody {
            status: 429,
            error: "Too Many Requests".to_owned(),
            message: "not sent: Finfra asked this client to wait (Retry-After)".to_owned(),
        }),
    }
}

/// Sends one HTTP request inside a `finfra.request` span that records the status and the
/// latency to the response headers. Fields carry the path template only: no ids, no bodies.
///
/// # Errors
/// [`Error::Timeout`], [`Error::Connection`] or [`Error::Build`] when no response came.
pub(crate) async fn exchange(
    request: RequestBuilder,
    method: &Method,
    template: &'static str,
) -> Result<Response, Error> {
    let span = tracing::info_span!(
        "finfra.request",
        method = %method,
        path = template,
        status = field::Empty,
        latency_ms = field::Empty,
    );
    async move {
        let started = Instant::now();
        let result = request.send().await;
        // Refused by the connector inside a Retry-After window (`hold`): not sent.
        if let Err(error) = &result
            && let Some(held) = super::hold::held_in(error)
        {
            tracing::debug!(
                path = template,
                "not sent: inside Finfra's Retry-After window"
            );
            return Err(held_error(held.remaining));
        }
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let span = Span::current();
        span.record("latency_ms", latency_ms);
        match result {
            Ok(response) => {
                span.record("status", response.status().as_u16());
                tracing::debug!(
                    status = response.status().as_u16(),
                    latency_ms,
                    "finfra response"
                );
                Ok(response)
            }
            Err(error) => {
                let error = Error::from_transport(method, error);
                tracing::debug!(error.message = %error, latency_ms, "finfra request failed");
                Err(error)
            }
        }
    }
    .instrument(span)
    .await
}

/// Reads a response body, up to [`MAX_BODY_BYTES`].
///
/// # Errors
/// [`Error::Timeout`] or [`Error::Connection`] (sent) when the body breaks off;
/// [`Error::ResponseTooLarge`] past the limit.
pub(crate) async fn read_body(mut response: Response, method: &Method) -> Result<Bytes, Error> {
    let status = response.status().as_u16();
    let too_large = || Error::ResponseTooLarge {
        status,
        limit: MAX_BODY_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::from_transport(method, e))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Decodes a success body.
///
/// # Errors
/// [`Error::Decode`], keeping the raw bytes.
pub(crate) fn decode<T: DeserializeOwned>(status: StatusCode, body: Bytes) -> Result<T, Error> {
    serde_json::from_slice(&body).map_err(|source| Error::Decode {
        status: status.as_u16(),
        source,
        body: RawBody(body),
    })
}

/// Classifies a non-2xx answer.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    method: &Method,
    body: Bytes,
) -> Error {
    let code = status.as_u16();
    match code {
        401 => Error::Unauthorized {
            body: ErrorBody::from_bytes(body),
        },
        409 => Error::Conflict(ErrorBody::from_bytes(body)),
        429 => Error::RateLimited {
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|value| parse_retry_after(value, SystemTime::now())),
            body: ErrorBody::from_bytes(body),
        },
        400..=499 => Error::Rejected {
            status: code,
            body: ErrorBody::from_bytes(body),
        },
        500..=599 => Error::Server {
            status: code,
            method: method.clone(),
            body: ErrorBody::from_bytes(body),
        },
        _ => Error::UnexpectedStatus {
            status: code,
            body: RawBody(body),
        },
    }
}
