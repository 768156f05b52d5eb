//! The retry decision, as a pure function.
//!
//! The client never retries on its own (apart from repeating a request once after a `401`
//! and a token refresh): a retry becomes a scheduled wake-up persisted by the engine, so a
//! crash between attempts loses nothing and no worker sleeps. This module says *what* to do
//! after a failed attempt; the engine does it.
//!
//! [`decide`] is a function of the failure's class, the server's `Retry-After` hint, the
//! attempt number, the policy and a jitter input. Jitter is an input (not a random draw
//! inside) so the decision is reproducible and every case is tested exactly;
//! [`Jitter::from_seed`] derives it deterministically from, e.g., a workflow id and attempt.

use std::time::{Duration, SystemTime};

/// What the engine should do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Send the request again after this delay.
    RetryAt(Duration),
    /// The request may have been applied: read Finfra's state (loan detail, KYC submission,
    /// borrower) before deciding whether to send it again.
    Reconcile,
    /// Another attempt would fail the same way, or the attempts are used up.
    GiveUp,
}

/// The part of a failure that matters to the retry decision.
///
/// Built from an [`Error`](crate::Error) by [`Error::failure`](crate::Error::failure); built
/// by hand in tests and by an engine that persisted only the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Finfra answered with this (non-2xx) status.
    Status {
        /// The HTTP status code.
        status: u16,
        /// Whether the request's method is idempotent (GET, PUT, ...: not POST or PATCH).
        idempotent: bool,
    },
    /// No answer: the request timed out or the connection failed.
    NoAnswer {
        /// Whether the request may have reached Finfra (false for a refused connection,
        /// a DNS failure or a connect timeout).
        sent: bool,
        /// Whether the request's method is idempotent.
        idempotent: bool,
    },
    /// The request cannot succeed as it is: invalid input, a response that cannot be
    /// decoded, bad credentials, a bad URL.
    Permanent,
}

impl Failure {
    /// Whether the request may have been applied although no success was seen.
    ///
    /// A non-idempotent request that was sent and got no answer may have been applied. So
    /// may one answered with a 5xx other than `501`/`503`: a gateway timeout or an internal
    /// error can come after the change was committed (Stripe treats 500s as indeterminate
    /// for the same reason); `501` and `503` say the request was not processed.
    #[must_use]
    pub fn is_ambiguous(self) -> bool {
        match self {
            Self::Status { status, idempotent } => {
                !idempotent && (500..=599).contains(&status) && !matches!(status, 501 | 503)
            }
            Self::NoAnswer { sent, idempotent } => sent && !idempotent,
            Self::Permanent => false,
        }
    }
}

/// Bounds on retrying one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included. After attempt `max_attempts` fails, give up.
    pub max_attempts: u32,
    /// Backoff before the second attempt (before jitter); it doubles with each attempt.
    pub base_delay: Duration,
    /// Cap on the backoff (before jitter). Does not cap a server's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt `attempt` (1-based), with "equal jitter": half the
    /// exponential delay is fixed, the other half scaled by `jitter`, so a delay is never
    /// zero and a fleet that failed together does not retry together.
    #[must_use]
    pub fn backoff(&self, attempt: u32, jitter: Jitter) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let exponential = self
            .base_delay
            .checked_mul(1_u32 << exponent)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = exponential / 2;
        half + half.mul_f64(jitter.0)
    }
}

/// A jitter input in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter(f64);

impl Jitter {
    /// No jitter: the smallest delay.
    pub const NONE: Self = Self(0.0);
    /// Full jitter: the largest delay.
    pub const FULL: Self = Self(1.0);

    /// A jitter of `fraction`, clamped to `[0, 1]` (NaN counts as 0).
    #[must_use]
    pub fn new(fraction: f64) -> Self {
        if fraction.is_nan() {
            Self::NONE
        } else {
            Self(fraction.clamp(0.0, 1.0))
        }
    }

    /// A jitter derived deterministically from `seed` (splitmix64), e.g. a hash of the
    /// workflow id and the attempt number: the same seed always gives the same delay.
    #[must_use]
    pub fn from_seed(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits fill an f64 mantissa exactly.
        #[allow(clippy::cast_precision_loss)]
        let fraction = (z >> 11) as f64 / (1_u64 << 53) as f64;
        Self(fraction)
    }

    /// The fraction in `[0, 1]`.
    #[must_use]
    pub fn fraction(self) -> f64 {
        self.0
    }
}

/// Decides what to do after attempt number `attempt` (1-based) failed with `failure`.
///
/// - An ambiguous failure ([`Failure::is_ambiguous`]) → [`RetryDecision::Reconcile`],
///   whatever the attempt: reading is always safe and needed before any re-send.
/// - Attempts used up → [`RetryDecision::GiveUp`].
/// - `429` → exactly the server's `Retry-After` if given, else the backoff.
/// - `408`, `5xx` other than `501`, a timeout or connection failure on an idempotent
///   request or before sending → the `Retry-After` if given, else the backoff.
/// - Any other status (`400`, `401`, `403`, `404`, `409`, `415`, `501`, ...) and permanent
///   failures → [`RetryDecision::GiveUp`]: the same request would fail the same way.
#[must_use]
pub fn decide(
    failure: Failure,
    retry_after: Option<Duration>,
    attempt: u32,
    policy: &RetryPolicy,
    jitter: Jitter,
) -> RetryDecision {
    if failure.is_ambiguous() {
        return RetryDecision::Reconcile;
    }
    let transient = match failure {
        Failure::Status { status, .. } => {
            matches!(status, 408 | 429) || ((500..=599).contains(&status) && status != 501)
        }
        Failure::NoAnswer { .. } => true,
        Failure::Permanent => false,
    };
    if !transient || attempt >= policy.max_attempts {
        return RetryDecision::GiveUp;
    }
    RetryDecision::RetryAt(retry_after.unwrap_or_else(|| policy.backoff(attempt, jitter)))
}

/// Parses a `Retry-After` header value: delta-seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), relative to `now`.
///
/// Returns `None` for a date in the past (no hint: back off on our own), for anything that
/// is neither form, and for a value that is not ASCII. Accepts a `&str`, `&[u8]` or
/// `&HeaderValue`.
#[must_use]
pub fn parse_retry_after<V: AsRef<[u8]> + ?Sized>(value: &V, now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value.as_ref()).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(text).ok()?;
    at.duration_since(now).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(status: u16) -> Failure {
        Failure::Status {
            status,
            idempotent: false,
        }
    }

    fn get(status: u16) -> Failure {
        Failure::Status {
            status,
            idempotent: true,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    fn decide_at(failure: Failure, retry_after: Option<Duration>, attempt: u32) -> RetryDecision {
        decide(failure, retry_after, attempt, &policy(), Jitter::FULL)
    }

    #[test]
    fn rate_limited_with_retry_after_waits_exactly_that_long() {
        let hint = Some(Duration::from_secs(7));
        assert_eq!(
            decide_at(post(429), hint, 1),
            RetryDecision::RetryAt(Duration::from_secs(7))
        );
        // Above max_delay too: the server knows its window better than our cap.
        let long = Some(Duration::from_secs(600));
        assert_eq!(
            decide_at(get(429), long, 2),
            RetryDecision::RetryAt(Duration::from_secs(600))
        );
    }

    #[test]
    fn rate_limited_without_retry_after_backs_off_exponentially() {
        // Full jitter: the whole exponential delay, 1 s, 2 s, 4 s, 8 s.
        for (attempt, secs) in [(1, 1), (2, 2), (3, 4), (4, 8)] {
            assert_eq!(
                decide_at(post(429), None, attempt),
                RetryDecision::RetryAt(Duration::from_secs(secs)),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn backoff_applies_jitter_to_half_the_delay_and_caps() {
        let p = policy();
        assert_eq!(p.backoff(3, Jitter::NONE), Duration::from_secs(2));
        assert_eq!(p.backoff(3, Jitter::new(0.5)), Duration::from_secs(3));
        assert_eq!(p.backoff(3, Jitter::FULL), Duration::from_secs(4));
        // 2^9 s = 512 s is capped at 60 s before jitter.
        assert_eq!(p.backoff(10, Jitter::NONE), Duration::from_secs(30));
        assert_eq!(p.backoff(10, Jitter::FULL), Duration::from_secs(60));
        // Huge attempt numbers saturate rather than overflow.
        assert_eq!(p.backoff(u32::MAX, Jitter::FULL), Duration::from_secs(60));
        // Attempt 0 is treated like the first.
        assert_eq!(p.backoff(0, Jitter::FULL), Duration::from_secs(1));
    }

    #[test]
    fn jitter_from_seed_is_deterministic_and_in_range() {
        for seed in [0, 1, 42, u64::MAX] {
            let j = Jitter::from_seed(seed);
            assert_eq!(j, Jitter::from_seed(seed));
            assert!((0.0..=1.0).contains(&j.fraction()));
        }
        assert_ne!(Jitter::from_seed(1), Jitter::from_seed(2));
        assert_eq!(Jitter::new(f64::NAN), Jitter::NONE);
        assert_eq!(Jitter::new(7.0), Jitter::FULL);
    }

    #[test]
    fn server_errors_on_idempotent_requests_back_off() {
        for status in [500, 502, 503, 504] {
            assert_eq!(
                decide_at(get(status), None, 2),
                RetryDecision::RetryAt(Duration::from_secs(2)),
                "status {status}"
            );
        }
        assert_eq!(
            decide_at(get(503), Some(Duration::from_secs(9)), 1),
            RetryDecision::RetryAt(Duration::from_secs(9))
        );
    }

    #[test]
    fn server_errors_on_non_idempotent_requests_reconcile_except_unprocessed() {
        for status in [500, 502, 504] {
            assert_eq!(decide_at(post(status), None, 1), RetryDecision::Reconcile);
        }
        // 503: not processed, safe to send again.
        assert_eq!(
            decide_at(post(503), None, 1),
            RetryDecision::RetryAt(Duration::from_secs(1))
        );
        assert_eq!(decide_at(post(501), None, 1), RetryDecision::GiveUp);
    }

    #[test]
    fn timeouts_and_resets_after_sending_a_post_reconcile() {
        let failure = Failure::NoAnswer {
            sent: true,
            idempotent: false,
        };
        assert_eq!(decide_at(failure, None, 1), RetryDecision::Reconcile);
        // Even with attempts used up: the engine must learn what happened.
        assert_eq!(decide_at(failure, None, 99), RetryDecision::Reconcile);
    }

    #[test]
    fn unsent_or_idempotent_requests_without_answer_back_off() {
        let refused = Failure::NoAnswer {
            sent: false,
            idempotent: false,
        };
        let get_timeout = Failure::NoAnswer {
            sent: true,
            idempotent: true,
        };
        assert_eq!(
            decide_at(refused, None, 1),
            RetryDecision::RetryAt(Duration::from_secs(1))
        );
        assert_eq!(
            decide_at(get_timeout, None, 3),
            RetryDecision::RetryAt(Duration::from_secs(4))
        );
    }

    #[test]
    fn client_errors_give_up_except_408_and_429() {
        for status in [400, 401, 403, 404, 409, 415, 422] {
            assert_eq!(decide_at(post(status), None, 1), RetryDecision::GiveUp);
            assert_eq!(decide_at(get(status), None, 1), RetryDecision::GiveUp);
        }
        assert_eq!(
            decide_at(post(408), None, 1),
            RetryDecision::RetryAt(Duration::from_secs(1))
        );
    }

    #[test]
    fn permanent_failures_give_up() {
        assert_eq!(
            decide_at(Failure::Permanent, None, 1),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn gives_up_after_max_attempts() {
        assert_eq!(
            decide_at(get(500), None, 4),
            RetryDecision::RetryAt(Duration::from_secs(8))
        );
        assert_eq!(decide_at(get(500), None, 5), RetryDecision::GiveUp);
        assert_eq!(
            decide_at(get(429), Some(Duration::from_secs(1)), 5),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        let header = reqwest::header::HeaderValue::from_static("5");
        assert_eq!(
            parse_retry_after(&header, now),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn retry_after_in_the_past_or_now_is_no_hint() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            None
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            None
        );
    }

    #[test]
    fn retry_after_garbage_is_no_hint() {
        let now = SystemTime::now();
        for garbage in ["", "soon", "-1", "1.5", "99999999999999999999999", "12 s"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
        assert_eq!(parse_retry_after(&b"\xff\xfe"[..], now), None);
    }
}
