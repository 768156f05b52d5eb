//! finflow's configuration: built-in defaults < `finflow.toml` < `FINFLOW_*` environment.
//!
//! Environment keys nest with `__`: `FINFLOW_FINFRA__CLIENT_ID` sets `finfra.client_id`.
//! Every problem (a missing credential, a malformed URL, an unknown key) is reported as one
//! line that names the key and where it came from; secrets never appear in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

/// The file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "finflow.toml";

/// The prefix of every environment variable finflow reads.
const ENV_PREFIX: &str = "FINFLOW_";

/// Keys whose values are kept as the exact string from the environment. Figment would
/// otherwise parse `0123` as the number 123, silently changing a client id or secret.
const STRING_KEYS: &[&str] = &[
    "database_url",
    "finfra.base_url",
    "finfra.client_id",
    "finfra.client_secret",
    "callbacks.auth_key",
    "callbacks.previous_auth_key",
    "metrics.listen",
    "console.listen",
    "console.session_secret",
    "console.trusted_user_header",
];

/// Where finflow keeps its state when nothing else is configured: a SQLite file in the
/// working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://finflow.db";

/// Where `finflow run` serves its operations endpoints unless configured otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store: `sqlite://FILE` (one machine) or `postgres://...` (a fleet).
    pub database_url: SecretUrl,
    /// How finflow reaches Finfra.
    pub finfra: FinfraConfig,
    /// The receiver of Finfra's callbacks.
    pub callbacks: CallbacksConfig,
    /// The worker's own limits.
    pub worker: WorkerConfig,
    /// The operations endpoints of `finflow run`: `/metrics`, `/healthz`, `/readyz`.
    pub metrics: MetricsConfig,
    /// Reconciliation runs the fleet starts on its own.
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    /// The lifecycle event feed.
    pub events: EventsConfig,
    /// Outbound webhooks (`[[webhooks]]`), validated by [`Config::webhooks`].
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The rules for people's commands (`[operators] four_eyes`).
    #[serde(default)]
    pub operators: console::operate::OperatorsConfig,
    /// `finflow console`: where it listens, its users and their roles, sessions.
    #[serde(default)]
    pub console: console::ConsoleConfig,
    /// `[privacy]`: the keys that seal personal data at rest, and how long it is kept.
    #[serde(default)]
    pub privacy: privacy::PrivacyConfig,
}

/// `[events]`: the lifecycle event feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// How long events are kept (e.g. `90d`); `finflow run` prunes older ones every minute
    /// (those a webhook still owes are kept). `off` keeps them for ever.
    pub retain: String,
}

impl EventsConfig {
    /// The retention, `None` when `off`.
    ///
    /// # Errors
    /// A value that is neither `off` nor a duration such as `90d`.
    pub fn retain(&self) -> Result<Option<Duration>, ConfigError> {
        match self.retain.trim() {
            "off" => Ok(None),
            raw => parse_duration(raw)
                .map(Some)
                .map_err(|e| ConfigError(format!("events.retain: {e}"))),
        }
    }
}

/// One `[[webhooks]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names its deliveries (`<name>-<event id>`): 1 to 64 of `a-z`, `0-9`, `_`, `-`.
    pub name: String,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// The signing secret shared with the receiver.
    pub secret: SecretString,
    /// Event types to send (e.g. `loan.disbursed`); absent or empty: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// How long a delivery is retried before it is given up (default `24h`).
    #[serde(default)]
    pub retry_for: Option<String>,
    /// The first wait after a failure, doubling up to an hour (default `10s`).
    #[serde(default)]
    pub retry_initial: Option<String>,
    /// Timeout of one request in seconds (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &"[redacted]")
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .field("retry_for", &self.retry_for)
            .field("retry_initial", &self.retry_initial)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Parses `500ms`, `45s`, `30m`, `24h` or `90d`.
///
/// # Errors
/// Anything else, named in the message.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    // The definitions' parser (one grammar for every duration finflow reads); here only the
    // messages, which say what is wrong.
    let raw = raw.trim();
    if let Some(duration) = workflow::definition::parse_duration(raw) {
        return Ok(duration);
    }
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    if raw[..split].parse::<u64>().is_err() {
        return Err(format!(
            "{raw:?} is not a duration: use a whole number and a unit, e.g. 500ms, 45s, 30m, 24h, 90d"
        ));
    }
    Err(format!(
        "{raw:?} has no known unit: use ms, s, m, h or d (e.g. 90d)"
    ))
}

impl Config {
    /// The keys that seal personal data (`[privacy]`), `None` when none are configured
    /// (then the commands that write personal data refuse to start; `finflow demo` makes
    /// throwaway keys).
    ///
    /// # Errors
    /// A `[privacy]` that is set but incomplete or wrong: which key, and why (never its
    /// value).
    pub fn keys(&self) -> Result<Option<std::sync::Arc<privacy::KeyRing>>, ConfigError> {
        let p = &self.privacy;
        if p.keys.is_empty() && p.active.is_none() && p.hash_key.is_none() {
            return Ok(None);
        }
        privacy::KeyRing::from_config(p)
            .map(|ring| Some(std::sync::Arc::new(ring)))
            .map_err(|e| ConfigError(format!("[privacy]: {e}")))
    }

    /// `[privacy] retain`: how long after it finished a workflow keeps its personal data
    /// (`finflow run` purges older ones), `None` for ever.
    ///
    /// # Errors
    /// A value that is not a duration.
    pub fn privacy_retain(&self) -> Result<Option<Duration>, ConfigError> {
        self.privacy
            .retain
            .as_deref()
            .map(|raw| parse_duration(raw).map_err(|e| ConfigError(format!("privacy.retain: {e}"))))
            .transpose()
    }

    /// The configured webhooks, validated: each names what is wrong with it.
    ///
    /// # Errors
    /// A bad or repeated name, a URL that is not `http(s)`, an empty secret, an unknown
    /// event type or a bad duration.
    pub fn webhooks(&self) -> Result<Vec<crate::webhooks::Webhook>, ConfigError> {
        use secrecy::ExposeSecret;
        let mut seen = std::collections::BTreeSet::new();
        self.webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let at = format!("webhooks[{i}]");
                let name_ok = (1..=64).contains(&w.name.len())
                    && w.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
                if !name_ok {
                    return Err(ConfigError(format!(
                        "{at}.name {:?} must be 1 to 64 of a-z, 0-9, _ and -",
                        w.name
                    )));
                }
                if !seen.insert(w.name.clone()) {
                    return Err(ConfigError(format!(
                        "{at}.name {:?} is used by another webhook",
                        w.name
                    )));
                }
                let url = Url::parse(&w.url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "{at}.url of webhook {:?} must be an http:// or https:// URL with a host",
                            w.name
                        ))
                    })?;
                if w.secret.expose_secret().is_empty() {
                    return Err(ConfigError(format!(
                        "{at}.secret of webhook {:?} is empty",
                        w.name
                    )));
                }
                for event in &w.events {
                    event.parse::<workflow::EventType>().map_err(|e| {
                        ConfigError(format!("{at}.events of webhook {:?}: {e}", w.name))
                    })?;
                }
                let duration = |key: &str, value: &Option<String>, default: Duration| {
                    value.as_deref().map_or(Ok(default), |raw| {
                        parse_duration(raw).map_err(|e| ConfigError(format!("{at}.{key}: {e}")))
                    })
                };
                Ok(crate::webhooks::Webhook {
                    name: w.name.clone(),
                    url,
                    secret: w.secret.clone(),
                    events: w.events.clone(),
                    retry_for: duration("retry_for", &w.retry_for, Duration::from_secs(86_400))?,
                    retry_initial: duration(
                        "retry_initial",
                        &w.retry_initial,
                        Duration::from_secs(10),
                    )?,
                    timeout: Duration::from_secs(w.timeout_secs.unwrap_or(10).max(1)),
                })
            })
            .collect()
    }
}

/// `[reconcile]`: the fleet starts a `reconcile-loans` run once per period.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// The period, e.g. `"1h"` or `"1d"`; absent: only `finflow reconcile` starts runs.
    pub every: Option<String>,
    /// How far back a scheduled run looks (loans created from `window` before the period
    /// began), e.g. `"30d"`; absent: every loan.
    pub window: Option<String>,
}

impl ReconcileConfig {
    /// The period, if runs are scheduled.
    ///
    /// # Errors
    /// A value that is not a duration of at least a minute.
    pub fn every(&self) -> Result<Option<Duration>, ConfigError> {
        self.every
            .as_deref()
            .map(|raw| {
                parse_duration(raw)
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(60))
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "reconcile.every {raw:?} is not a period of at least a minute (e.g. \"1h\", \"1d\")"
                        ))
                    })
            })
            .transpose()
    }

    /// How far back a scheduled run looks.
    ///
    /// # Errors
    /// A value that is not a duration (e.g. `"30d"`).
    pub fn window(&self) -> Result<Option<Duration>, ConfigError> {
        self.window
            .as_deref()
            .map(|raw| {
                parse_duration(raw).map_err(|e| ConfigError(format!("reconcile.window: {e}")))
            })
            .transpose()
    }
}

/// Where `finflow run` serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to listen on, e.g. `0.0.0.0:9464`; `off` (or empty) serves nothing.
    pub listen: String,
}

impl MetricsConfig {
    /// The address to serve on, `None` when turned off.
    ///
    /// # Errors
    /// A value that is neither `off`, empty, nor `host:port` with an IP address.
    pub fn listen(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        match self.listen.trim() {
            "" | "off" => Ok(None),
            raw => raw.parse().map(Some).map_err(|_| {
                ConfigError(format!(
                    "metrics.listen {raw:?} is not an address: use ip:port (e.g. 0.0.0.0:9464) or off"
                ))
            }),
        }
    }
}

/// A database URL, which may carry a password: shown with the password replaced.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL as configured, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, for messages.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                // Setting a password only fails on URLs that cannot have one, and this one has.
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The callback receiver served by `finflow run`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    pub listen: std::net::SocketAddr,
    /// The `finfra-auth-key` Finfra sends with every callback (from Finfra's dashboard).
    pub auth_key: Option<SecretString>,
    /// The previous key, accepted too while a rotation is under way.
    pub previous_auth_key: Option<SecretString>,
}

impl std::fmt::Debug for CallbacksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbacksConfig")
            .field("listen", &self.listen)
            .field("auth_key", &self.auth_key.as_ref().map(|_| "[redacted]"))
            .field(
                "previous_auth_key",
                &self.previous_auth_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// How much one worker process takes on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Workflows advanced at once by this process.
    pub concurrency: usize,
    /// How long a claimed workflow stays this worker's before another may take it over
    /// (a killed worker's work resumes after at most this long), in seconds.
    pub lease_secs: u64,
    /// The folder of workflow definitions (`*.toml`).
    pub workflows_dir: PathBuf,
    /// Connections in the process's database pool; 0 picks one: on PostgreSQL
    /// `concurrency` + 5 (the wake-up listener, the pause listener, the due scan and the
    /// callback receiver beside the steps), on SQLite 4 (one writer at a time in any case).
    pub database_connections: u32,
    /// How long `finflow run` waits at start for a database that cannot be reached or does
    /// not accept connections yet (down, restarting, starting up), trying again with a
    /// growing pause, in seconds; 0 gives up at the first failure. Other failures (a wrong
    /// URL, password or key, a failed migration) stop it at once.
    pub database_wait_secs: u64,
}

impl WorkerConfig {
    /// The pool size for `database_url`: the configured one, else as documented on
    /// [`Self::database_connections`]; `None` leaves the store's default.
    pub fn pool_size(&self, database_url: &str) -> Option<u32> {
        if self.database_connections > 0 {
            return Some(self.database_connections);
        }
        database_url.starts_with("postgres").then(|| {
            u32::try_from(self.concurrency)
                .unwrap_or(u32::MAX)
                .saturating_add(5)
        })
    }
}

/// How finflow reaches Finfra's partner API.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinfraConfig {
    /// `sandbox`, `production`, or any `http(s)://` URL (a local `finflow sandbox`).
    pub base_url: String,
    /// The partner's client id, from Finfra's dashboard.
    pub client_id: Option<String>,
    /// The partner's client secret, from Finfra's dashboard.
    pub client_secret: Option<SecretString>,
    /// Timeout of one request to Finfra, in seconds.
    pub timeout_secs: u64,
    /// Finfra's rate limit on this client, kept by the whole fleet.
    pub rate_limit: RateLimitConfig,
}

/// `finfra.rate_limit`: the token bucket Finfra applies to one client (CONTRACT §1: 20
/// requests per second, burst 40). Every worker of a fleet shares it through the database
/// (see `executor::governor`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second for the whole fleet; 0 turns pacing off (a `429`'s pause still
    /// holds every worker).
    pub per_second: f64,
    /// Requests Finfra accepts at once after a quiet time.
    pub burst: u32,
}

impl RateLimitConfig {
    /// The limit to pace to, `None` when turned off.
    ///
    /// # Errors
    /// A negative or non-finite rate, or a burst of 0.
    pub fn limit(&self) -> Result<Option<crate::executor::RateLimit>, ConfigError> {
        if !(self.per_second >= 0.0 && self.per_second.is_finite()) {
            return Err(ConfigError(format!(
                "finfra.rate_limit.per_second {} must be a number >= 0 (0 turns pacing off)",
                self.per_second
            )));
        }
        if self.burst == 0 {
            return Err(ConfigError(
                "finfra.rate_limit.burst must be at least 1".to_owned(),
            ));
        }
        Ok(
            (self.per_second > 0.0).then_some(crate::executor::RateLimit {
                per_second: self.per_second,
                burst: self.burst,
            }),
        )
    }
}

impl std::fmt::Debug for FinfraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinfraConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// The built-in defaults, the lowest layer.
#[derive(Serialize)]
struct Defaults {
    database_url: &'static str,
    finfra: FinfraDefaults,
    callbacks: CallbacksDefaults,
    worker: WorkerDefaults,
    metrics: MetricsDefaults,
    events: EventsDefaults,
}

#[derive(Serialize)]
struct EventsDefaults {
    retain: &'static str,
}

#[derive(Serialize)]
struct MetricsDefaults {
    listen: &'static str,
}

#[derive(Serialize)]
struct CallbacksDefaults {
    listen: &'static str,
}

#[derive(Serialize)]
struct WorkerDefaults {
    concurrency: usize,
    lease_secs: u64,
    workflows_dir: &'static str,
    database_connections: u32,
    database_wait_secs: u64,
}

#[derive(Serialize)]
struct FinfraDefaults {
    base_url: &'static str,
    timeout_secs: u64,
    rate_limit: RateLimitDefaults,
}

#[derive(Serialize)]
struct RateLimitDefaults {
    per_second: f64,
    burst: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL,
            finfra: FinfraDefaults {
                base_url: "sandbox",
                timeout_secs: 30,
                // Finfra's published limit (CONTRACT §1).
                rate_limit: RateLimitDefaults {
                    per_second: 20.0,
                    burst: 40,
                },
            },
            callbacks: CallbacksDefaults {
                listen: "127.0.0.1:8080",
            },
            worker: WorkerDefaults {
                concurrency: 16,
                lease_secs: 10,
                workflows_dir: "workflows",
                database_connections: 0,
                database_wait_secs: 60,
            },
            metrics: MetricsDefaults {
                listen: DEFAULT_METRICS_LISTEN,
            },
            events: EventsDefaults { retain: "90d" },
        }
    }
}

/// A configuration that could not be loaded; its message is one line fit for a user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads the layers: defaults, then the TOML file, then `FINFLOW_*` variables.
    ///
    /// `file` is the `--config` argument: when given it must exist; when absent,
    /// `finflow.toml` in the working directory is read if it is there.
    ///
    /// # Errors
    /// A missing explicit file, unparsable TOML, an unknown key or a value of the wrong type.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let path: PathBuf = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => path.to_path_buf(),
            None => PathBuf::from(DEFAULT_CONFIG_FILE),
        };
        Self::from_figment(
            Figment::from(Serialized::defaults(Defaults::default()))
                .merge(Toml::file(path))
                .merge(RawEnv),
        )
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        figment.extract().map_err(|error| {
            // Figment's own message names the key and the provider it came from; keep only
            // the first error so the report stays one line.
            let first = error.into_iter().next().map(|e| e.to_string());
            ConfigError(format!(
                "invalid configuration: {}",
                first.unwrap_or_else(|| "unknown error".to_owned())
            ))
        })
    }
}

impl FinfraConfig {
    /// The base URL, resolving the names `sandbox` and `production`.
    ///
    /// # Errors
    /// A value that is neither of the names nor an absolute `http`/`https` URL.
    pub fn base_url(&self) -> Result<Url, ConfigError> {
        let raw = match self.base_url.trim() {
            "sandbox" => finfra_api::client::SANDBOX_BASE_URL,
            "production" => finfra_api::client::PRODUCTION_BASE_URL,
            other => other,
        };
        let url = Url::parse(raw).map_err(|e| {
            ConfigError(format!(
                "finfra.base_url {raw:?} is not a valid URL ({e}); use `sandbox`, `production` or http(s)://host[:port]"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError(format!(
                "finfra.base_url {raw:?} must be an http:// or https:// URL with a host"
            )));
        }
        Ok(url)
    }

    /// The credentials, or a message naming what is missing and how to set it.
    ///
    /// # Errors
    /// `client_id` or `client_secret` unset or empty.
    pub fn credentials(&self) -> Result<finfra_api::auth::Credentials, ConfigError> {
        use secrecy::ExposeSecret;
        let id = self.client_id.as_deref().unwrap_or("").trim();
        if id.is_empty() {
            return Err(ConfigError(
                "finfra.client_id is not set: set FINFLOW_FINFRA__CLIENT_ID or [finfra] client_id in finflow.toml".into(),
            ));
        }
        let secret = match &self.client_secret {
            Some(secret) if !secret.expose_secret().is_empty() => secret.clone(),
            _ => {
                return Err(ConfigError(
                    "finfra.client_secret is not set: set FINFLOW_FINFRA__CLIENT_SECRET or [finfra] client_secret in finflow.toml".into(),
                ));
            }
        };
        Ok(finfra_api::auth::Credentials::new(id.to_owned(), secret))
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// `FINFLOW_*` variables, nested on `__`, with [`STRING_KEYS`] kept verbatim.
struct RawEnv;

impl RawEnv {
    fn env() -> Env {
        Env::prefixed(ENV_PREFIX).split("__")
    }
}

impl Provider for RawEnv {
    fn metadata(&self) -> Metadata {
        Self::env().metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in Self::env().iter() {
            // `FINFLOW_LOG` and `FINFLOW_LOG_FORMAT` are the log filter and format, read
            // before the configuration.
            if matches!(key.as_str(), "log" | "log_format") {
                continue;
            }
            // Keys are base64 text, never numbers or lists.
            let value = if STRING_KEYS.contains(&key.as_str()) || key.starts_with("privacy.") {
                Value::from(raw)
            } else {
                raw.parse::<Value>().unwrap_or_else(|never| match never {})
            };
            let nested = figment::util::nest(key.as_str(), value)
                .into_dict()
                .ok_or_else(|| figment::Error::from(format!("empty key in {ENV_PREFIX}*")))?;
            dict = merge(dict, nested);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Deep-merges `b` into `a` (later wins), as figment does between providers.
fn merge(mut a: Dict, b: Dict) -> Dict {
    for (key, value) in b {
        let merged = match (a.remove(&key), value) {
            (Some(Value::Dict(_, left)), Value::Dict(tag, right)) => {
                Value::Dict(tag, merge(left, right))
            }
            (_, value) => value,
        };
        a.insert(key, merged);
    }
    a
}

#[cfg(test)]
// figment's `Jail` closures return its large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load_with(jail: &mut figment::Jail, toml: Option<&str>) -> Result<Config, ConfigError> {
        if let Some(toml) = toml {
            jail.create_file(DEFAULT_CONFIG_FILE, toml)
                .expect("write toml");
        }
        Config::load(None)
    }

    #[test]
    fn privacy_keys_from_the_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            // None configured: `None` (the commands that write refuse to start without).
            let config = load_with(jail, None).expect("defaults load");
            assert!(config.keys().expect("no keys").is_none());
            assert_eq!(config.privacy_retain().expect("retain"), None);
            // From the environment (labels without '-'), with a retention.
            jail.set_env(
                "FINFLOW_PRIVACY__KEYS__K202612",
                "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            );
            jail.set_env("FINFLOW_PRIVACY__ACTIVE", "k202612");
            jail.set_env(
                "FINFLOW_PRIVACY__HASH_KEY",
                "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
            );
            jail.set_env("FINFLOW_PRIVACY__RETAIN", "5y");
            let config = load_with(jail, None).expect("keys load");
            let keys = config.keys().expect("valid keys").expect("configured");
            assert_eq!(keys.active(), "k202612");
            assert_eq!(
                config.privacy_retain().expect("retain"),
                Some(Duration::from_secs(5 * 365 * 86_400))
            );
            // A key that is not 32 bytes: named, its value never printed.
            jail.set_env("FINFLOW_PRIVACY__KEYS__K202612", "c2hvcnQ=");
            let config = load_with(jail, None).expect("loads");
            let error = config.keys().expect_err("a short key").to_string();
            assert!(
                error.contains("k202612") && error.contains("[privacy]"),
                "{error}"
            );
            assert!(!error.contains("c2hvcnQ="), "{error}");
            Ok(())
        });
    }

    #[test]
    fn defaults_point_at_finfra_sandbox() {
        figment::Jail::expect_with(|jail| {
            let config = load_with(jail, None).expect("defaults load");
            assert_eq!(
                config.finfra.base_url().expect("url").as_str(),
                "https://sandbox-partner-service.elp.finfra.io/"
            );
            assert_eq!(config.finfra.timeout(), Duration::from_secs(30));
            assert!(config.finfra.credentials().is_err());
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_and_keeps_strings_verbatim() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FINFLOW_FINFRA__CLIENT_ID", "000123");
            jail.set_env("FINFLOW_FINFRA__CLIENT_SECRET", "0042");
            jail.set_env("FINFLOW_FINFRA__TIMEOUT_SECS", "7");
            jail.set_env("FINFLOW_LOG", "debug");
            jail.set_env("FINFLOW_LOG_FORMAT", "json");
            let config = load_with(
                jail,
                Some("[finfra]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"file-id\"\n"),
            )
            .expect("load");
            let credentials = config.finfra.credentials().expect("credentials");
            assert_eq!(credentials.client_id, "000123");
            assert_eq!(credentials.client_secret.expose_secret(), "0042");
            assert_eq!(config.finfra.timeout(), Duration::from_secs(7));
            assert_eq!(
                config.finfra.base_url().expect("url").as_str(),
                "http://127.0.0.1:9/"
            );
            Ok(())
        });
    }

    #[test]
    fn problems_are_one_line_and_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FINFLOW_FINFRA__CLIENT_SECRET", "s3cret-value");
            let config =
                load_with(jail, Some("[finfra]\nbase_url = \"not a url\"\n")).expect("load");
            let error = config.finfra.base_url().expect_err("bad url").to_string();
            assert!(error.contains("finfra.base_url"), "{error}");
            assert!(!error.contains('\n'));
            let missing = config.finfra.credentials().expect_err("no id").to_string();
            assert!(missing.contains("FINFLOW_FINFRA__CLIENT_ID"), "{missing}");
            assert!(!format!("{config:?}").contains("s3cret-value"));

            let unknown = load_with(jail, Some("[finfra]\nbase_ulr = \"x\"\n"))
                .expect_err("typo is refused")
                .to_string();
            assert!(unknown.contains("base_ulr"), "{unknown}");
            assert!(!unknown.contains('\n'));
            Ok(())
        });
    }

    #[test]
    fn database_url_defaults_to_sqlite_and_hides_its_password() {
        figment::Jail::expect_with(|jail| {
            let config = load_with(jail, None).expect("defaults load");
            assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
            jail.set_env(
                "FINFLOW_DATABASE_URL",
                "postgres://finflow:hunter2@db:5432/finflow",
            );
            let config = load_with(jail, None).expect("load");
            assert_eq!(
                config.database_url.redacted(),
                "postgres://finflow:***@db:5432/finflow"
            );
            assert!(!format!("{config:?}").contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn metrics_listen_defaults_to_loopback_and_can_be_turned_off() {
        figment::Jail::expect_with(|jail| {
            let config = load_with(jail, None).expect("defaults load");
            assert_eq!(
                config.metrics.listen().expect("valid"),
                Some(DEFAULT_METRICS_LISTEN.parse().expect("addr"))
            );
            jail.set_env("FINFLOW_METRICS__LISTEN", "0.0.0.0:9100");
            let config = load_with(jail, None).expect("load");
            assert_eq!(
                config.metrics.listen().expect("valid"),
                Some("0.0.0.0:9100".parse().expect("addr"))
            );
            for off in ["off", ""] {
                jail.set_env("FINFLOW_METRICS__LISTEN", off);
                let config = load_with(jail, None).expect("load");
                assert_eq!(config.metrics.listen().expect("valid"), None, "{off:?}");
            }
            jail.set_env("FINFLOW_METRICS__LISTEN", "9464");
            let error = load_with(jail, None)
                .expect("load")
                .metrics
                .listen()
                .expect_err("a port alone is not an address")
                .to_string();
            assert!(error.contains("metrics.listen"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn reconcile_schedule_is_off_by_default_and_checked() {
        figment::Jail::expect_with(|jail| {
            let config = load_with(jail, None).expect("defaults load");
            assert_eq!(config.reconcile.every().expect("valid"), None);
            let toml = "[reconcile]\nevery = \"1h\"\nwindow = \"30d\"\n";
            let config = load_with(jail, Some(toml)).expect("load");
            assert_eq!(
                config.reconcile.every().expect("valid"),
                Some(Duration::from_secs(3600))
            );
            assert_eq!(
                config.reconcile.window().expect("valid"),
                Some(Duration::from_secs(30 * 86_400))
            );
            jail.set_env("FINFLOW_RECONCILE__EVERY", "5s");
            let error = load_with(jail, None)
                .expect("load")
                .reconcile
                .every()
                .expect_err("shorter than a minute")
                .to_string();
            assert!(error.contains("reconcile.every"), "{error}");
            jail.set_env("FINFLOW_RECONCILE__WINDOW", "a month");
            let error = load_with(jail, None)
                .expect("load")
                .reconcile
                .window()
                .expect_err("not a duration")
                .to_string();
            assert!(error.contains("reconcile.window"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_pool_fits_the_concurrency_on_postgres_unless_configured() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FINFLOW_WORKER__CONCURRENCY", "32");
            let config = load_with(jail, None).expect("load");
            assert_eq!(config.worker.pool_size("postgres://db/finflow"), Some(37));
            assert_eq!(config.worker.pool_size("sqlite://finflow.db"), None);
            jail.set_env("FINFLOW_WORKER__DATABASE_CONNECTIONS", "8");
            let config = load_with(jail, None).expect("load");
            assert_eq!(config.worker.pool_size("postgres://db/finflow"), Some(8));
            assert_eq!(config.worker.pool_size("sqlite://finflow.db"), Some(8));
            Ok(())
        });
    }

    #[test]
    fn the_rate_limit_defaults_to_finfra_s_and_can_be_turned_off() {
        figment::Jail::expect_with(|jail| {
            let config = load_with(jail, None).expect("defaults load");
            let limit = config.finfra.rate_limit.limit().expect("valid");
            assert_eq!(
                limit,
                Some(crate::executor::RateLimit {
                    per_second: 20.0,
                    burst: 40
                })
            );
            jail.set_env("FINFLOW_FINFRA__RATE_LIMIT__PER_SECOND", "0");
            let config = load_with(jail, None).expect("load");
            assert_eq!(config.finfra.rate_limit.limit().expect("valid"), None);
            jail.set_env("FINFLOW_FINFRA__RATE_LIMIT__PER_SECOND", "-1");
            let config = load_with(jail, None).expect("load");
            let error = config.finfra.rate_limit.limit().expect_err("negative");
            assert!(error.to_string().contains("finfra.rate_limit.per_second"));
            jail.set_env("FINFLOW_FINFRA__RATE_LIMIT__PER_SECOND", "7.5");
            jail.set_env("FINFLOW_FINFRA__RATE_LIMIT__BURST", "3");
            let config = load_with(jail, None).expect("load");
            assert_eq!(
                config.finfra.rate_limit.limit().expect("valid"),
                Some(crate::executor::RateLimit {
                    per_second: 7.5,
                    burst: 3
                })
            );
            Ok(())
        });
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let error = Config::load(Some(Path::new("/nonexistent/finflow.toml")))
            .expect_err("missing file")
            .to_string();
        assert!(error.contains("/nonexistent/finflow.toml"), "{error}");
    }

    #[test]
    fn webhooks_and_retention_load_and_bad_ones_are_named() {
        figment::Jail::expect_with(|jail| {
            let config = load_with(jail, None).expect("defaults");
            assert_eq!(
                config.events.retain().expect("valid"),
                Some(Duration::from_secs(90 * 86_400))
            );
            assert!(config.webhooks().expect("none").is_empty());
            let config = load_with(
                jail,
                Some(
                    r#"
[events]
retain = "30d"

[[webhooks]]
name = "lender-a"
url = "https://hooks.example.com/finflow"
secret = "whsec_1"
events = ["loan.disbursed", "loan.paid"]
retry_for = "1h"
retry_initial = "500ms"
"#,
                ),
            )
            .expect("load");
            assert_eq!(
                config.events.retain().expect("valid"),
                Some(Duration::from_secs(30 * 86_400))
            );
            let hooks = config.webhooks().expect("valid");
            assert_eq!(hooks.len(), 1);
            assert_eq!(hooks[0].retry_for, Duration::from_secs(3600));
            assert_eq!(hooks[0].retry_initial, Duration::from_millis(500));
            assert_eq!(hooks[0].timeout, Duration::from_secs(10));
            assert!(!format!("{:?}", config.webhooks).contains("whsec_1"));

            for (bad, names) in [
                (r#"name = "Lender A""#, "webhooks[0].name"),
                (
                    r#"name = "a"
url = "ftp://x""#,
                    "webhooks[0].url",
                ),
                (
                    r#"name = "a"
events = ["loan.exploded"]"#,
                    "loan.exploded",
                ),
                (
                    r#"name = "a"
retry_for = "soon""#,
                    "webhooks[0].retry_for",
                ),
            ] {
                let mut toml = format!("[[webhooks]]\n{bad}\n");
                if !bad.contains("url") {
                    toml.push_str("url = \"http://127.0.0.1:9/\"\n");
                }
                toml.push_str("secret = \"s\"\n");
                let config = load_with(jail, Some(&toml)).expect("load");
                let error = config.webhooks().expect_err(bad).to_string();
                assert!(error.contains(names), "{bad}: {error}");
            }
            let config =
                load_with(jail, Some("[events]\nretain = \"ninety days\"\n")).expect("load");
            let error = config.events.retain().expect_err("bad").to_string();
            assert!(error.contains("events.retain"), "{error}");
            Ok(())
        });
    }
}
