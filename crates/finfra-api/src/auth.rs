//! Credentials and the access-token cache.
//!
//! Finfra issues a short-lived access token for Basic credentials (`POST
//! /api/auth/token/v2`) and renews it with a refresh token (`POST /api/auth/refresh`, headers
//! `x-access-token` and `x-refresh-token`). One token cache serves every request of a
//! client and its clones:
//!
//! - a token is renewed a margin before it expires, measured on tokio's clock from when the
//!   token request was sent (so a slow answer errs on the early side);
//! - one renewal is in flight at a time: callers queue on an async mutex and re-check the
//!   cache once they hold it, so twenty requests that find the token stale cause one refresh;
//! - a refresh that Finfra refuses (expired or unknown refresh token) falls back to Basic
//!   credentials; a refresh that fails transiently (429, 5xx, timeout) is reported instead,
//!   so a rate-limited client does not double its requests;
//! - while the old token has not actually expired, a failed renewal is not fatal: the old
//!   token is used, and renewal is tried again after a short cooldown rather than by every
//!   waiting request in turn;
//! - after a `401` the caller hands back the token that failed: if another task has already
//!   replaced it, that newer token is used without another refresh;
//! - each token request has its own timeout, independent of the API call waiting for it.
//!
//! Secrets (client secret, access and refresh tokens) are [`SecretString`]s, are marked
//! sensitive in headers, and never reach `Debug`, a log line or an error.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::client::transport;
use crate::error::{AuthError, Error, RawBody};

/// Path of the Basic token endpoint.
pub(crate) const TOKEN_PATH: &str = "/api/auth/token/v2";
/// Path of the refresh endpoint.
pub(crate) const REFRESH_PATH: &str = "/api/auth/refresh";

/// A partner's API credentials.
#[derive(Clone)]
pub struct Credentials {
    /// The client id (not a secret: it appears in error messages).
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
}

impl Credentials {
    /// Credentials from a client id and secret.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<SecretString>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

/// What [`crate::FinfraClient::authenticate`] reports about a fresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token type Finfra announced (`Bearer`).
    pub token_type: String,
    /// How long the access token is valid, as Finfra announced.
    pub expires_in: Duration,
}

/// An access token with its refresh token and renewal time.
pub(crate) struct AccessToken {
    access: SecretString,
    refresh: SecretString,
    info: TokenInfo,
    /// When to renew: expiry minus the margin.
    renew_at: Instant,
    /// When Finfra stops accepting it.
    expires_at: Instant,
}

impl AccessToken {
    /// The value for `Authorization: Bearer ...`.
    pub(crate) fn bearer(&self) -> &str {
        self.access.expose_secret()
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now < self.renew_at
    }

    fn is_valid(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("info", &self.info)
            .field("renew_at", &self.renew_at)
            .finish_non_exhaustive()
    }
}

/// The token endpoints' answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    refresh_token: SecretString,
    #[serde(default = "default_token_type")]
    token_type: String,
    expires_in: u64,
}

fn default_token_type() -> String {
    "Bearer".to_owned()
}

/// The shared token cache of one client (and its clones).
pub(crate) struct TokenCache {
    credentials: Credentials,
    token_url: Url,
    refresh_url: Url,
    margin: Duration,
    attempt_timeout: Duration,
    /// The current token. A std mutex: held only to clone or swap an `Arc`, never across
    /// an await.
    current: Mutex<Option<Arc<AccessToken>>>,
    /// Held for the whole of a renewal, so only one is in flight. Guards when the last
    /// renewal failed.
    renewal: tokio::sync::Mutex<Option<Instant>>,
}

/// After a failed renewal, requests keep using a still-valid token this long before the
/// next renewal attempt.
const RENEWAL_COOLDOWN: Duration = Duration::from_secs(1);

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("client_id", &self.credentials.client_id)
            .field("margin", &self.margin)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(
        credentials: Credentials,
        token_url: Url,
        refresh_url: Url,
        margin: Duration,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            credentials,
            token_url,
            refresh_url,
            margin,
            attempt_timeout,
            current: Mutex::new(None),
            renewal: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<AccessToken>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fresh(&self) -> Option<Arc<AccessToken>> {
        self.cached().filter(|t| t.is_fresh(Instant::now()))
    }

    fn store(&self, token: AccessToken) -> Arc<AccessToken> {
        let token = Arc::new(token);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&token));
        token
    }

    /// A token that is not due for renewal, renewing it first if needed.
    ///
    /// # Errors
    /// [`Error::Auth`] when neither refresh nor Basic credentials give a token.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Arc<AccessToken>, Error> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let mut last_failure = self.renewal.lock().await;
        // Whoever held the lock before us may have renewed it already.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let previous = self.cached();
        let now = Instant::now();
        let still_valid = previous.clone().filter(|t| t.is_valid(now));
        if let Some(token) = &still_valid
            && last_failure.is_some_and(|at| now < at + RENEWAL_COOLDOWN)
        {
            return Ok(Arc::clone(token));
        }
        match self.renew(http, previous.as_deref()).await {
            Ok(token) => {
                *last_failure = None;
                Ok(token)
            }
            Err(error) => {
                *last_failure = Some(now);
                match still_valid {
                    Some(token) => {
                        tracing::debug!(
                            error.message = %error,
                            "token renewal failed; using the current token until it expires"
                        );
                        Ok(token)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// A replacement for `failed`, which Finfra answered with `401`.
    ///
    /// If the cache already holds another token (renewed by a concurrent task after `failed`
    /// was handed out), that one is returned without a new renewal.
    ///
    /// # Errors
    /// [`Error::Auth`] when neither refresh nor Basic credentials give a token.
    pub(crate) async fn replace(
        &self,
        http: &reqwest::Client,
        failed: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, Error> {
        let mut last_failure = self.renewal.lock().await;
        if let Some(current) = self.cached()
            && !Arc::ptr_eq(&current, failed)
            && current.is_fresh(Instant::now())
        {
            return Ok(current);
        }
        let renewed = self.renew(http, Some(failed)).await;
        *last_failure = renewed.is_err().then(Instant::now);
        renewed
    }

    /// Exchanges the Basic credentials for a new token now, whatever the cache holds.
    ///
    /// # Errors
    /// [`Error::Auth`] with [`AuthError::BadCredentials`] when Finfra refuses them.
    pub(crate) async fn authenticate(&self, http: &reqwest::Client) -> Result<TokenInfo, Error> {
        let _renewal = self.renewal.lock().await;
        let token = self.store(self.basic(http).await?);
        Ok(token.info.clone())
    }

    /// Refreshes `previous` if there is one, falling back to Basic credentials.
    async fn renew(
        &self,
        http: &reqwest::Client,
        previous: Option<&AccessToken>,
    ) -> Result<Arc<AccessToken>, Error> {
        if let Some(previous) = previous {
            match self.refresh(http, previous).await {
                Ok(token) => return Ok(self.store(token)),
                // Finfra refused the refresh (expired or unknown refresh token): Basic still works.
                Err(error) if is_refusal(&error) => tracing::debug!(
                    error.message = %error,
                    "token refresh refused; authenticating with client credentials"
                ),
                // Rate limited, failing or unreachable: Basic would meet the same fate.
                Err(error) => return Err(Error::Auth(AuthError::Endpoint(Box::new(error)))),
            }
        }
        Ok(self.store(self.basic(http).await?))
    }

    async fn basic(&self, http: &reqwest::Client) -> Result<AccessToken, Error> {
        let request = http
            .post(self.token_url.clone())
            .basic_auth(
                &self.credentials.client_id,
                Some(self.credentials.client_secret.expose_secret()),
            )
            .header(reqwest::header::CONTENT_LENGTH, 0);
        match self.exchange(request, TOKEN_PATH).await {
            Err(Error::Unauthorized { body }) => Err(Error::Auth(AuthError::BadCredentials {
                client_id: self.credentials.client_id.clone(),
                body,
            })),
            Err(error) => Err(Error::Auth(AuthError::Endpoint(Box::new(error)))),
            Ok(token) => Ok(token),
        }
    }

    async fn refresh(
        &self,
        http: &reqwest::Client,
        previous: &AccessToken,
    ) -> Result<AccessToken, Error> {
        let request = http
            .post(self.refresh_url.clone())
            .header(
                HeaderName::from_static("x-access-token"),
                sensitive(&previous.access)?,
            )
            .header(
                HeaderName::from_static("x-refresh-token"),
                sensitive(&previous.refresh)?,
            )
            .header(reqwest::header::CONTENT_LENGTH, 0);
        self.exchange(request, REFRESH_PATH).await
    }

    /// Sends a token request with its own timeout and reads the token.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        template: &'static str,
    ) -> Result<AccessToken, Error> {
        let sent_at = Instant::now();
        let request = request.timeout(self.attempt_timeout);
        let response = transport::exchange(request, &Method::POST, template).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = transport::read_body(response, &Method::POST).await?;
        if !status.is_success() {
            return Err(transport::status_error(
                status,
                &headers,
                &Method::POST,
                body,
            ));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|source| Error::Decode {
                status: status.as_u16(),
                source,
                // The body would hold the tokens: drop it.
                body: RawBody(bytes::Bytes::new()),
            })?;
        // Refuse a token that could not be sent back, here rather than on every request.
        sensitive(&parsed.access_token)?;
        sensitive(&parsed.refresh_token)?;
        Ok(self.token_from(parsed, sent_at))
    }

    fn token_from(&self, parsed: TokenResponse, sent_at: Instant) -> AccessToken {
        let lifetime = Duration::from_secs(parsed.expires_in);
        // A margin as long as the token's life would renew on every request: cap it at half.
        let margin = self.margin.min(lifetime / 2);
        AccessToken {
            access: parsed.access_token,
            refresh: parsed.refresh_token,
            info: TokenInfo {
                token_type: parsed.token_type,
                expires_in: lifetime,
            },
            renew_at: sent_at + (lifetime - margin),
            expires_at: sent_at + lifetime,
        }
    }
}

/// Whether Finfra answered and refused: a 4xx other than 408 and 429.
fn is_refusal(error: &Error) -> bool {
    error
        .status()
        .is_some_and(|s| (400..500).contains(&s) && !matches!(s, 408 | 429))
}

/// A header value marked sensitive, so `Debug` of the request never shows it.
///
/// # Errors
/// [`Error::Decode`] when the token has bytes a header cannot carry; checked when the token
/// is received, so that is where the error surfaces.
fn sensitive(secret: &SecretString) -> Result<HeaderValue, Error> {
    let mut header = HeaderValue::from_str(secret.expose_secret()).map_err(|_| Error::Decode {
        status: 200,
        source: serde::de::Error::custom("a token is not a valid HTTP header value"),
        body: RawBody(bytes::Bytes::new()),
    })?;
    header.set_sensitive(true);
    Ok(header)
}
