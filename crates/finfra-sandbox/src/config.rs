//! Configuration of a sandbox: who may log in, how fast things happen, how callbacks are
//! delivered and which faults are injected.
//!
//! Two presets cover the usual needs: [`SandboxConfig::for_tests`] (everything instant and
//! well behaved, transitions driven by the control API) and [`SandboxConfig::standalone`]
//! (a realistic partner sandbox: rate limit on, small delays, loans signed and disbursed on
//! their own). Every field is public, so a test starts from a preset and changes what it needs.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

/// The grace of [`SandboxConfig::standalone`]: requests arriving within 250 ms of a `429`
/// were on their way when it was answered. Long enough for a client's in-flight requests
/// and the moment it takes to tell its other workers; short beside any `Retry-After` (at
/// least 1 s), so a client that ignores the header is still caught.
pub const RETRY_AFTER_GRACE: Duration = Duration::from_millis(250);

/// Everything a sandbox needs to start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to listen on. Port `0` picks a free port; [`crate::RunningSandbox::addr`] tells which.
    pub listen: SocketAddr,
    /// The URL the sandbox advertises in presigned upload URLs. `None`: `http://{listen}` (an
    /// unspecified listen address such as `0.0.0.0` is advertised as `127.0.0.1`).
    pub public_url: Option<Url>,
    /// The partner every borrower belongs to (`partner_id` in borrower responses).
    pub partner_id: Uuid,
    /// The API clients that may exchange Basic credentials for tokens. Must not be empty; the
    /// first is the one [`crate::RunningSandbox::client_id`] returns.
    pub clients: Vec<ClientCredentials>,
    /// Lifetime of access tokens (`expires_in`). Zero issues tokens that are already expired.
    pub token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Token bucket per client id (per source address on endpoints without auth). `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Injected faults on `/api/*`. [`Faults::default`] injects none.
    pub faults: Faults,
    /// Where callbacks go. `None`: callbacks are only recorded (see
    /// [`crate::RunningSandbox::callbacks`]).
    pub callback: Option<CallbackTarget>,
    /// How callbacks are delivered: retries, duplicates, reordering.
    pub delivery: CallbackDelivery,
    /// Delays of the asynchronous transitions and the demo auto-behaviour.
    pub timing: Timing,
    /// How long a presigned upload URL stays valid.
    pub presign_ttl: Duration,
    /// Largest request body accepted (larger: `413`). KYC bodies carry base64 images.
    pub max_body_bytes: usize,
    /// How long after a `429` a request arriving inside its `Retry-After` window is taken to
    /// have been in flight already (the ledger's `requests_in_flight_at_429`) rather than
    /// sent by a client told to wait (`requests_inside_retry_after`). Zero judges every
    /// request inside a window a violation.
    pub retry_after_grace: Duration,
}

impl SandboxConfig {
    /// Zero delays, no faults, no rate limit, no auto sign, disburse or repay, one client
    /// `test-client` / `test-secret`, fast callback retries (10 ms base), and no grace after
    /// a `429` (a test sending one request at a time has none in flight).
    #[must_use]
    pub fn for_tests() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public_url: None,
            partner_id: Uuid::new_v4(),
            clients: vec![ClientCredentials::new("test-client", "test-secret")],
            token_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(24 * 3600),
            rate_limit: None,
            faults: Faults::default(),
            callback: None,
            delivery: CallbackDelivery {
                retry_base: Duration::from_millis(10),
                ..CallbackDelivery::default()
            },
            timing: Timing::zero(),
            presign_ttl: Duration::from_secs(15 * 60),
            max_body_bytes: 20 * 1024 * 1024,
            retry_after_grace: Duration::ZERO,
        }
    }

    /// A realistic sandbox for demos and offline development: the default rate limit (20/s,
    /// burst 40), small delays, loans signed, disbursed and repaid on their own, a few duplicated and
    /// reordered callbacks, a [`RETRY_AFTER_GRACE`] for requests in flight at a `429`, and
    /// random client credentials (read them from the running handle).
    #[must_use]
    pub fn standalone() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let secret = Uuid::new_v4().simple().to_string();
        Self {
            clients: vec![ClientCredentials::new(
                format!("sandbox-{}", &id[..8]),
                secret,
            )],
            rate_limit: Some(RateLimit::default()),
            delivery: CallbackDelivery {
                duplicate_rate: 0.05,
                max_reorder_delay: Duration::from_millis(500),
                ..CallbackDelivery::default()
            },
            timing: Timing::realistic(),
            retry_after_grace: RETRY_AFTER_GRACE,
            ..Self::for_tests()
        }
    }
}

impl Default for SandboxConfig {
    /// Same as [`SandboxConfig::for_tests`].
    fn default() -> Self {
        Self::for_tests()
    }
}

/// One API client's Basic credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCredentials {
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    /// CONTRACT §1: 20 requests/s, burst 40.
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 40,
        }
    }
}

/// Faults injected on `/api/*` endpoints, drawn from a RNG seeded with `seed`, one draw per
/// request, so a given request sequence meets the same faults every run.
///
/// The rates are probabilities in `0.0..=1.0`; their sum should not exceed 1. A 500 or 429 is
/// answered *instead of* the operation (nothing is applied); an ambiguous failure is answered
/// *after* it (the change is applied, then the client gets no usable answer).
///
/// [`Faults::endpoints`] gives one endpoint rates of its own, e.g. frequent ambiguous
/// failures on the virtual-account request only; the draw stays one per request in arrival
/// order, so the sequence is as reproducible as without.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub seed: u64,
    /// `500 Internal Server Error`, operation not applied.
    pub error_500_rate: f64,
    /// `429` with a `Retry-After` (1 or 2 s), operation not applied.
    pub error_429_rate: f64,
    /// `429` without `Retry-After`, operation not applied.
    pub error_429_without_retry_after_rate: f64,
    /// Extra latency drawn uniformly from `min..=max` before every faultable request.
    #[serde(with = "opt_duration_range_ms")]
    pub latency: Option<(Duration, Duration)>,
    /// The operation is applied, then the connection is closed without a response.
    pub ambiguous_rate: f64,
    /// The operation is applied, then the response is held for [`Faults::ambiguous_hold`]
    /// (meant to be longer than the client's timeout) before it is sent.
    pub ambiguous_timeout_rate: f64,
    #[serde(with = "duration_ms")]
    pub ambiguous_hold: Duration,
    /// Whether `POST /api/auth/token`, `/api/auth/token/v2` and `/api/auth/refresh` get
    /// faults too. Off by default, so that fault tests exercise the business endpoints.
    pub include_auth: bool,
    /// Rates for particular endpoints, keyed as in the ledger (`"METHOD /template"` with the
    /// reference's parameter names, e.g. `"POST /api/core/virtual-account/request"`): a rate
    /// given there replaces the one above for requests to that endpoint; a rate left out
    /// keeps it. Latency, `ambiguous_hold` and the seed are shared. Keys must name an
    /// `/api/` endpoint ([`Faults::check`]).
    pub endpoints: BTreeMap<String, EndpointFaults>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            seed: 0,
            error_500_rate: 0.0,
            error_429_rate: 0.0,
            error_429_without_retry_after_rate: 0.0,
            latency: None,
            ambiguous_rate: 0.0,
            ambiguous_timeout_rate: 0.0,
            ambiguous_hold: Duration::from_secs(15),
            include_auth: false,
            endpoints: BTreeMap::new(),
        }
    }
}

impl Faults {
    /// No faults at all.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// The same faults, with `rates` for `endpoint` (a ledger key such as
    /// `"POST /api/core/virtual-account/request"`).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>, rates: EndpointFaults) -> Self {
        self.endpoints.insert(endpoint.into(), rates);
        self
    }

    /// Whether these faults make sense: every rate in `0.0..=1.0`, and every key of
    /// [`Faults::endpoints`] shaped like a ledger key of an `/api/` endpoint
    /// (`"POST /api/..."`), so that a misspelt key is refused rather than silently ignored.
    ///
    /// # Errors
    /// What is wrong, naming the field.
    pub fn check(&self) -> Result<(), String> {
        let rate = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, not {v}"))
            }
        };
        rate("error_500_rate", self.error_500_rate)?;
        rate("error_429_rate", self.error_429_rate)?;
        rate(
            "error_429_without_retry_after_rate",
            self.error_429_without_retry_after_rate,
        )?;
        rate("ambiguous_rate", self.ambiguous_rate)?;
        rate("ambiguous_timeout_rate", self.ambiguous_timeout_rate)?;
        for (endpoint, e) in &self.endpoints {
            let shaped = endpoint.split_once(' ').is_some_and(|(method, path)| {
                ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method)
                    && path.starts_with("/api/")
                    && !path.contains(char::is_whitespace)
            });
            if !shaped {
                return Err(format!(
                    "endpoints: {endpoint:?} is not an endpoint as the ledger names it, \
                     e.g. \"POST /api/core/virtual-account/request\""
                ));
            }
            for (name, v) in [
                ("error_500_rate", e.error_500_rate),
                ("error_429_rate", e.error_429_rate),
                (
                    "error_429_without_retry_after_rate",
                    e.error_429_without_retry_after_rate,
                ),
                ("ambiguous_rate", e.ambiguous_rate),
                ("ambiguous_timeout_rate", e.ambiguous_timeout_rate),
            ] {
                if let Some(v) = v {
                    rate(&format!("endpoints[{endpoint:?}].{name}"), v)?;
                }
            }
        }
        Ok(())
    }
}

/// One endpoint's own fault rates (see [`Faults::endpoints`]); `None` keeps the general rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointFaults {
    pub error_500_rate: Option<f64>,
    pub error_429_rate: Option<f64>,
    pub error_429_without_retry_after_rate: Option<f64>,
    pub ambiguous_rate: Option<f64>,
    pub ambiguous_timeout_rate: Option<f64>,
}

/// The partner's callback receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackTarget {
    /// Base URL; the paths of CONTRACT §7 are appended to it.
    #[serde(with = "url_string")]
    pub base_url: Url,
    /// Sent as `finfra-auth-key` on every callback.
    pub auth_key: String,
}

/// How callbacks are delivered (CONTRACT §7: at least once, unordered).
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackDelivery {
    /// Seed of the RNG behind duplicates and reordering.
    pub seed: u64,
    /// Probability that an event is delivered twice (two independent deliveries).
    pub duplicate_rate: f64,
    /// Each delivery waits a random `0..=max_reorder_delay` before its first attempt, so later
    /// events may overtake earlier ones.
    pub max_reorder_delay: Duration,
    /// Backoff after the n-th failed attempt is `retry_base × 2^(n-1)`.
    pub retry_base: Duration,
    /// Attempts before giving up (counted in the ledger as failed).
    pub max_attempts: u32,
    /// An attempt without an answer within this time counts as failed.
    pub answer_timeout: Duration,
    /// Share of loans whose status callbacks (`loan_*` and `bnpl_*` events: signed,
    /// disbursed, paid, ...) are never delivered, as if lost for good between Finfra and the
    /// partner; the payment webhooks still arrive. Chosen per loan from its `unique_id` and
    /// `seed`, so the same loans every run; counted in [`crate::Ledger::callbacks_dropped`].
    pub drop_loan_callbacks_rate: f64,
}

impl CallbackDelivery {
    /// Whether the callbacks of loan `unique_id` are dropped for good.
    #[must_use]
    pub fn drops_loan(&self, unique_id: &str) -> bool {
        if self.drop_loan_callbacks_rate <= 0.0 {
            return false;
        }
        // FNV-1a of the seed and the id: stable across runs and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.seed.to_le_bytes().iter().chain(unique_id.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        #[allow(clippy::cast_precision_loss)] // a share, not an exact count
        let share = (hash >> 11) as f64 / (1u64 << 53) as f64;
        share < self.drop_loan_callbacks_rate
    }
}

impl Default for CallbackDelivery {
    /// CONTRACT §7: 1 s, 2 s, 4 s, ... 10 tries, 10 s answer timeout; no duplicates, in order.
    fn default() -> Self {
        Self {
            seed: 0,
            duplicate_rate: 0.0,
            max_reorder_delay: Duration::ZERO,
            retry_base: Duration::from_secs(1),
            max_attempts: 10,
            answer_timeout: Duration::from_secs(10),
            drop_loan_callbacks_rate: 0.0,
        }
    }
}

/// Delays of the asynchronous transitions. Even a zero delay runs on a spawned task, never
/// inline in the response that caused it, as with real Finfra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Create request accepted → borrower exists (`PENDING`, `user_created`).
    pub borrower_created: Duration,
    /// `PENDING` → `VERIFIED` or `REJECTED`.
    pub kyc_review: Duration,
    /// `APPROVED_BY_PARTNER` → `APPROVED`.
    pub final_approval: Duration,
    /// `SIGNING` → `SIGNED` on its own after this delay; `None`: wait for the control call.
    pub auto_sign: Option<Duration>,
    /// `DISBURSING` → `DISBURSED` on its own after this delay; `None`: wait for the control
    /// call. A bank refusal (magic account number) always happens on its own, after this
    /// delay or at once.
    pub auto_disburse: Option<Duration>,
    /// A simulated borrower who repays: once a loan is `DISBURSED` and has a virtual
    /// account, it pays the next installment's full amount into that account every
    /// `auto_repay` (the first one `auto_repay` after the account is issued, or after the
    /// disbursement completes if the account came first), exactly as
    /// [`crate::RunningSandbox::pay_virtual_account`] does: the virtual-account webhook for
    /// each payment, `loan_paid` / `bnpl_paid` after the last. `None`: payments only come
    /// through the control call. A borrower tagged `+paynow` (see the crate docs) does not
    /// wait for it: they pay the whole loan the moment the account is issued.
    pub auto_repay: Option<Duration>,
}

impl Timing {
    /// Everything at once; signing, disbursement and repayment wait for the control API.
    #[must_use]
    pub fn zero() -> Self {
        Self {
            borrower_created: Duration::ZERO,
            kyc_review: Duration::ZERO,
            final_approval: Duration::ZERO,
            auto_sign: None,
            auto_disburse: None,
            auto_repay: None,
        }
    }

    /// Small delays, and borrowers who sign and repay (an installment a second) and banks
    /// that pay out on their own.
    #[must_use]
    pub fn realistic() -> Self {
        Self {
            borrower_created: Duration::from_millis(200),
            kyc_review: Duration::from_secs(1),
            final_approval: Duration::from_millis(500),
            auto_sign: Some(Duration::from_secs(1)),
            auto_disburse: Some(Duration::from_secs(2)),
            auto_repay: Some(Duration::from_secs(1)),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::zero()
    }
}

/// Durations as whole milliseconds in the control API's JSON.
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A URL as its string (the workspace's `url` has no serde feature).
mod url_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use url::Url;

    pub fn serialize<S: Serializer>(u: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
        let s = String::deserialize(d)?;
        Url::parse(&s).map_err(D::Error::custom)
    }
}

/// `latency` as `{"min_ms": .., "max_ms": ..}` or `null`.
mod opt_duration_range_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Range {
        min_ms: u64,
        max_ms: u64,
    }

    pub fn serialize<S: Serializer>(
        v: &Option<(Duration, Duration)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        v.as_ref()
            .map(|(min, max)| Range {
                min_ms: ms(min),
                max_ms: ms(max),
            })
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(Duration, Duration)>, D::Error> {
        Ok(Option::<Range>::deserialize(d)?.map(|r| {
            (
                Duration::from_millis(r.min_ms),
                Duration::from_millis(r.max_ms),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_loans_are_a_stable_share() {
        let delivery = CallbackDelivery {
            seed: 7,
            drop_loan_callbacks_rate: 0.25,
            ..CallbackDelivery::default()
        };
        let ids: Vec<String> = (0..2000).map(|i| format!("op-{i:08}")).collect();
        let dropped = ids.iter().filter(|id| delivery.drops_loan(id)).count();
        assert!((400..600).contains(&dropped), "{dropped} of 2000 at 25 %");
        assert!(
            ids.iter()
                .all(|id| delivery.drops_loan(id) == delivery.drops_loan(id)),
            "the same loans every time"
        );
        assert!(!CallbackDelivery::default().drops_loan("op-00000001"));
    }
}
