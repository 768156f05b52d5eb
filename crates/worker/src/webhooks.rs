//! Outbound webhooks: the lifecycle events (`store::EventRow`) pushed to lenders' URLs,
//! signed, durably retried, in order per workflow, at least once.
//!
//! The deliverer runs inside `finflow run` (`runtime`), one per process; a fleet shares the
//! work through the store: each round it turns new events into deliveries
//! ([`store::Store::dispatch_webhook`], after a per-webhook cursor), claims due deliveries
//! under a lease ([`store::Store::claim_deliveries`]: never one delivery by two processes at
//! once, never a workflow's later event before its earlier one is delivered or given up),
//! posts them, and records the outcome: delivered, or failed with the next attempt after an
//! exponential backoff with jitter, or given up once the webhook's `retry_for` has passed
//! since the delivery was created (`finflow webhooks --failed`, `finflow webhooks replay`).
//!
//! Each request carries `finflow-delivery-id` (stable across attempts: receivers
//! deduplicate on it), `finflow-event-id`, `finflow-event-type` and `finflow-signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (as Stripe and Svix sign);
//! [`verify`] is the receiver's side, and the README's recipe.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use store::{ClaimedDelivery, Store};
use tokio::sync::watch;
use url::Url;

type HmacSha256 = Hmac<sha2::Sha256>;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "finflow-signature";
/// The header carrying the delivery id.
pub const DELIVERY_ID_HEADER: &str = "finflow-delivery-id";
/// The header carrying the event id.
pub const EVENT_ID_HEADER: &str = "finflow-event-id";
/// The header carrying the event type.
pub const EVENT_TYPE_HEADER: &str = "finflow-event-type";

/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Deliveries claimed per round.
const CLAIM_BATCH: i64 = 32;
/// How often an idle deliverer looks for new events.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// A webhook as configured (`[[webhooks]]` in `finflow.toml`), validated.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Names its deliveries and its cursor: 1-64 of `a-z 0-9 _ -`.
    pub name: String,
    pub url: Url,
    pub secret: SecretString,
    /// The event types it receives; empty: all.
    pub events: Vec<String>,
    /// How long a delivery is retried before it is given up.
    pub retry_for: Duration,
    /// The first backoff; each later one doubles (with jitter), up to an hour.
    pub retry_initial: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
}

/// The signature header value of `body` sent at unix second `t`.
#[must_use]
pub fn sign(secret: &SecretString, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body)))
}

fn mac(secret: &SecretString, t: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks a `finflow-signature` header against `body`: a `v1` that matches in constant
/// time, with a timestamp at most `tolerance` away from `now` (against replays).
#[must_use]
pub fn verify(
    secret: &SecretString,
    header: &str,
    body: &[u8],
    tolerance: Duration,
    now: DateTime<Utc>,
) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let age = now.timestamp().abs_diff(t);
    if age > tolerance.as_secs() {
        return false;
    }
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    signatures
        .iter()
        .any(|s| unhex(s).is_some_and(|bytes| mac.clone().verify_slice(&bytes).is_ok()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The wait before attempt `failed + 1`, after `failed` failed attempts: `initial` doubled
/// per failure, at most an hour, then "equal jitter" (between half and all of it), the
/// random part seeded from the delivery id and the attempt so a fleet spreads its retries
/// and a test can predict them.
#[must_use]
pub fn backoff(initial: Duration, failed: u32, delivery_id: &str) -> Duration {
    let exp = failed.saturating_sub(1).min(20);
    let full = initial.saturating_mul(1 << exp).min(MAX_BACKOFF);
    let seed = delivery_id
        .bytes()
        .chain(failed.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let half = full / 2;
    let millis = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(if millis == 0 { 0 } else { seed % (millis + 1) })
}

/// The JSON body of a delivery.
#[must_use]
pub fn body(delivery: &ClaimedDelivery) -> Vec<u8> {
    let e = &delivery.event;
    json!({
        "id": e.id,
        "type": e.event_type,
        "occurred_at": e.occurred_at,
        "workflow_id": e.workflow_id,
        "kind": e.kind,
        "business_key": e.business_key,
        "data": e.payload,
    })
    .to_string()
    .into_bytes()
}

/// One process's deliverer.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    webhooks: Vec<Webhook>,
    worker_id: String,
    http: reqwest::Client,
}

impl Deliverer {
    /// A deliverer of `webhooks` for the process `worker_id`.
    ///
    /// # Errors
    /// The HTTP client cannot be built (TLS set-up).
    pub fn new(
        store: Store,
        webhooks: Vec<Webhook>,
        worker_id: impl Into<String>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("finflow-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            webhooks,
            worker_id: worker_id.into(),
            http,
        })
    }

    /// Delivers until `stop` turns `true`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let busy = match self.round().await {
                Ok(busy) => busy,
                Err(error) => {
                    tracing::warn!(error.message = %error, "webhook round failed");
                    false
                }
            };
            if *stop.borrow() {
                return;
            }
            if !busy {
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        }
    }

    /// One round: dispatch new events, send what is due. `true` when it sent something
    /// (there may be more at once).
    ///
    /// # Errors
    /// The store failed.
    pub async fn round(&self) -> Result<bool, store::StoreError> {
        for webhook in &self.webhooks {
            while self
                .store
                .dispatch_webhook(&webhook.name, &webhook.events)
                .await?
                >= 500
            {}
        }
        let lease = self
            .webhooks
            .iter()
            .map(|w| w.timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(30);
        let due = self
            .store
            .claim_deliveries(&self.worker_id, CLAIM_BATCH, lease)
            .await?;
        let busy = !due.is_empty();
        let sends = due.into_iter().map(|d| self.deliver(d));
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
        Ok(busy)
    }

    #[tracing::instrument(skip_all, fields(webhook = %delivery.webhook, delivery.id = %delivery.id, event.id = delivery.event.id))]
    async fn deliver(&self, delivery: ClaimedDelivery) -> Result<(), store::StoreError> {
        let Some(webhook) = self.webhooks.iter().find(|w| w.name == delivery.webhook) else {
            // A webhook removed from the configuration: its deliveries wait for it (or
            // for an operator), untouched.
            return Ok(());
        };
        let body = body(&delivery);
        let t = Utc::now().timestamp();
        let sent = self
            .http
            .post(webhook.url.clone())
            .timeout(webhook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_ID_HEADER, &delivery.id)
            .header(EVENT_ID_HEADER, delivery.event.id.to_string())
            .header(EVENT_TYPE_HEADER, &delivery.event.event_type)
            .header(SIGNATURE_HEADER, sign(&webhook.secret, t, &body))
            .body(body)
            .send()
            .await;
        let (error, status) = match sent {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                crate::metrics::webhook_attempt(&webhook.name, "delivered");
                return self
                    .store
                    .delivery_succeeded(&delivery.id, &self.worker_id, status)
                    .await;
            }
            Ok(response) => {
                let status = response.status().as_u16();
                (format!("receiver answered {status}"), Some(status))
            }
            // Without the URL: it may carry a token.
            Err(e) => (e.without_url().to_string(), None),
        };
        let failed = u32::try_from(delivery.attempts).unwrap_or(0) + 1;
        let wait = backoff(webhook.retry_initial, failed, &delivery.id);
        let now = Utc::now();
        let next = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
        let deadline = delivery.created_at
            + chrono::TimeDelta::from_std(webhook.retry_for).unwrap_or(chrono::TimeDelta::MAX);
        let retry_at = (next <= deadline).then_some(next);
        let result = if retry_at.is_some() {
            "retry"
        } else {
            "given_up"
        };
        crate::metrics::webhook_attempt(&webhook.name, result);
        if retry_at.is_none() {
            tracing::warn!(error.message = %error, attempts = failed, "webhook delivery given up");
        } else {
            tracing::info!(error.message = %error, attempts = failed, "webhook delivery failed; retrying");
        }
        self.store
            .delivery_failed(&delivery.id, &self.worker_id, &error, status, retry_at)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("whsec_test")
    }

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_old_timestamp_does_not() {
        let now = Utc::now();
        let t = now.timestamp();
        let header = sign(&secret(), t, b"{\"id\":1}");
        let tolerance = Duration::from_secs(300);
        assert!(verify(&secret(), &header, b"{\"id\":1}", tolerance, now));
        assert!(!verify(&secret(), &header, b"{\"id\":2}", tolerance, now));
        assert!(!verify(
            &SecretString::from("other"),
            &header,
            b"{\"id\":1}",
            tolerance,
            now
        ));
        let old = sign(&secret(), t - 600, b"{\"id\":1}");
        assert!(!verify(&secret(), &old, b"{\"id\":1}", tolerance, now));
        assert!(!verify(&secret(), "v1=00", b"{\"id\":1}", tolerance, now));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b"key", b"1700000000.{}",
        // hashlib.sha256).hexdigest().
        let header = sign(&SecretString::from("key"), 1_700_000_000, b"{}");
        assert_eq!(
            header,
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        let initial = Duration::from_secs(10);
        for failed in 1..=12 {
            let full = initial.saturating_mul(1 << (failed - 1)).min(MAX_BACKOFF);
            let wait = backoff(initial, failed, "lender-42");
            assert!(wait >= full / 2 && wait <= full, "{failed}: {wait:?}");
        }
        assert_eq!(
            backoff(initial, 3, "lender-42"),
            backoff(initial, 3, "lender-42")
        );
        assert_ne!(
            backoff(initial, 3, "lender-42"),
            backoff(initial, 3, "lender-43"),
            "spread across deliveries"
        );
    }
}
