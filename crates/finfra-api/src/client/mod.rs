//! The typed async client: one method per endpoint of Finfra's reference.
//!
//! [`FinfraClient`] is cheap to clone (an `Arc`); clones share the connection pool and the
//! token cache. Every request body is validated before it is sent, every path parameter is
//! checked and percent-encoded, every request has a timeout and a `finfra.request` span, and
//! every failure is one classified [`Error`]. The endpoints are grouped by resource in the
//! submodules; this module holds the configuration and the healthchecks.

mod borrowers;
mod credit;
mod documents;
mod ekyc;
mod hold;
mod loans;
mod path;
pub(crate) mod transport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::auth::{Credentials, REFRESH_PATH, TOKEN_PATH, TokenCache, TokenInfo};
use crate::error::Error;
use transport::{AuthScheme, Call};

pub use documents::DocumentDownload;
pub use transport::FileUpload;

/// Finfra's sandbox.
pub const SANDBOX_BASE_URL: &str = "https://sandbox-partner-service.elp.finfra.io";
/// Finfra's production service.
pub const PRODUCTION_BASE_URL: &str = "https://partner-service.elp.finfra.io";

/// Which Finfra to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Environment {
    /// [`SANDBOX_BASE_URL`].
    Sandbox,
    /// [`PRODUCTION_BASE_URL`].
    Production,
    /// Any other base URL (the local sandbox, a proxy). It may carry a path prefix.
    Custom(Url),
}

impl Environment {
    /// The environment's base URL.
    ///
    /// # Errors
    /// Never for `Sandbox` and `Production`; [`Error::InvalidUrl`] is impossible but kept
    /// rather than panicking on a constant.
    pub fn base_url(&self) -> Result<Url, Error> {
        let parse = |s: &str| {
            Url::parse(s).map_err(|e| Error::InvalidUrl {
                what: "base URL",
                reason: e.to_string(),
            })
        };
        match self {
            Self::Sandbox => parse(SANDBOX_BASE_URL),
            Self::Production => parse(PRODUCTION_BASE_URL),
            Self::Custom(url) => Ok(url.clone()),
        }
    }
}

/// How to reach Finfra and how patient to be.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Finfra's base URL; a path prefix (`https://proxy/finfra/`) is kept.
    pub base_url: Url,
    /// The partner's API credentials.
    pub credentials: Credentials,
    /// Total time for one request, from connecting to the end of the body. Default 30 s.
    pub timeout: Duration,
    /// Time to establish a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Total time for one token or refresh request. Default 10 s.
    pub token_timeout: Duration,
    /// Renew the access token this long before it expires. Default 60 s; capped at half the
    /// token's lifetime.
    pub token_refresh_margin: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl ClientConfig {
    /// A configuration with default timeouts.
    #[must_use]
    pub fn new(base_url: Url, credentials: Credentials) -> Self {
        Self {
            base_url,
            credentials,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            token_timeout: Duration::from_secs(10),
            token_refresh_margin: Duration::from_secs(60),
            user_agent: concat!("finflow-finfra-api/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// A configuration for `environment` with default timeouts.
    ///
    /// # Errors
    /// See [`Environment::base_url`].
    pub fn for_environment(
        environment: &Environment,
        credentials: Credentials,
    ) -> Result<Self, Error> {
        Ok(Self::new(environment.base_url()?, credentials))
    }
}

/// The answer of a healthcheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `UP` when healthy.
    pub status: String,
}

/// A client for Finfra's partner API. Clones share connections and the token cache.
#[derive(Clone)]
pub struct FinfraClient {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base_url: Url,
    tokens: TokenCache,
    /// The end of the latest `Retry-After` window Finfra announced to this client: until
    /// then no request of any clone leaves (see `transport`).
    paused_until: hold::PausedUntil,
}

impl fmt::Debug for FinfraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token cache's Debug shows the client id and timings, never a secret.
        f.debug_struct("FinfraClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

impl FinfraClient {
    /// Builds a client. Sends nothing: the first request fetches a token.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the base URL cannot carry a path (e.g. `mailto:`) or is not
    /// HTTP(S); [`Error::Build`] when the HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let base_url = config.base_url;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl {
                what: "base URL",
                reason: format!("scheme {:?} is not http or https", base_url.scheme()),
            });
        }
        let paused_until = hold::PausedUntil::default();
        let http = reqwest::Client::builder()
            // The window is checked again once a new connection is made, before the request
            // is written on it (`hold`).
            .connector_layer(hold::HoldLayer(std::sync::Arc::clone(&paused_until)))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent)
            // A redirected POST could be replayed as a GET somewhere else; Finfra does not
            // redirect, so a 3xx is reported instead of followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::Build)?;
        let tokens = TokenCache::new(
            config.credentials,
            path::join(&base_url, &path::split(TOKEN_PATH))?,
            path::join(&base_url, &path::split(REFRESH_PATH))?,
            config.token_refresh_margin,
            config.token_timeout,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                tokens,
                paused_until,
            }),
        })
    }

    /// Holds every request of this client (all its clones) for `wait` from now, as a `429`'s
    /// `Retry-After` does: for a window learnt elsewhere, e.g. by another process of a fleet
    /// sharing Finfra's limit. Checked as the last step before a request leaves, after its
    /// token; a held request fails with [`Error::RateLimited`] without being sent.
    pub fn hold_for(&self, wait: std::time::Duration) {
        self.inner.pause(wait);
    }

    /// Exchanges the client credentials for a fresh access token now (and caches it), e.g.
    /// for a `doctor` command to check the credentials.
    ///
    /// # Errors
    /// [`Error::Auth`] with [`crate::error::AuthError::BadCredentials`] when Finfra refuses
    /// the credentials; otherwise the token endpoint's failure.
    pub async fn authenticate(&self) -> Result<TokenInfo, Error> {
        self.inner.tokens.authenticate(&self.inner.http).await
    }

    /// `GET /healthcheck/productionness` (the published path; it reads like a renamed
    /// liveness check).
    ///
    /// # Errors
    /// [`Error::Server`] when the service is down, or a transport error.
    pub async fn health_productionness(&self) -> Result<Health, Error> {
        self.health(
            "/healthcheck/productionness",
            &["healthcheck", "productionness"],
        )
        .await
    }

    /// `GET /healthcheck/readiness`: whether Finfra and its dependencies can take traffic.
    ///
    /// # Errors
    /// [`Error::Server`] (`503`) while a dependency is down, or a transport error.
    pub async fn health_readiness(&self) -> Result<Health, Error> {
        self.health("/healthcheck/readiness", &["healthcheck", "readiness"])
            .await
    }

    async fn health(&self, template: &'static str, segments: &[&str]) -> Result<Health, Error> {
        let call = Call::new(Method::GET, template, self.url(segments)?, AuthScheme::None);
        self.inner.json(&call).await
    }

    /// The URL of `segments` below the base URL, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        path::join(&self.inner.base_url, segments)
    }
}
