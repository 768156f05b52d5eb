//! Callbacks to the partner (CONTRACT §7): the four bodies, and their delivery.
//!
//! Delivery is at least once and unordered, like Finfra's: each event is planned (under the
//! state lock, from the seeded delivery RNG) into one or two copies, each with a random extra
//! delay; each copy runs on its own task and is retried with exponential backoff until a `2xx`
//! or `max_attempts`. The ledger counts attempts, deliveries and give-ups.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use crate::app::App;
use crate::config::{CallbackDelivery, CallbackTarget};
use crate::state::timestamp;

/// Path of the status callback for a title.
fn status_path(title: &str) -> String {
    format!("/api/core/ftm/users/{title}/status")
}

const VA_PATH: &str = "/api/core/payment-gateway/virtual-account/status";
const INVOICE_PATH: &str = "/api/core/payment-gateway/invoices/status";
const DIDIT_PATH: &str = "/api/core/users/didit/session/callback";

/// A callback to send: where and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notification {
    /// For the ledger and the record: the callback title, or `virtual_account_payment`,
    /// `invoice`, `didit` for the other three paths.
    pub title: String,
    /// Path (and query) appended to the partner's base URL.
    pub path: String,
    pub body: Value,
}

/// A callback the sandbox emitted (whether or not a receiver is configured), as recorded for
/// tests: [`crate::RunningSandbox::callbacks`], `GET /_sandbox/callbacks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackRecord {
    pub title: String,
    pub path: String,
    pub body: Value,
}

/// The fields of a status callback.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusEvent<'a> {
    pub title: String,
    pub user_id: &'a str,
    /// User and `credit_score` events only.
    pub identity_number: Option<&'a str>,
    /// Only when the borrower came through a KYC session.
    pub kyc_id: Option<&'a str>,
    /// Loan events only.
    pub loan_unique_id: Option<&'a str>,
    /// The borrower's status on user events, the loan's on loan events.
    pub status: &'a str,
    /// The event's extras: `score`/`grade`, `reason`, `reference`.
    pub data: Map<String, Value>,
}

/// `POST /api/core/ftm/users/{callbackTitle}/status`.
pub(crate) fn status_callback(e: StatusEvent<'_>, now: DateTime<Utc>) -> Notification {
    let mut body = Map::new();
    body.insert("event_id".into(), json!(uuid::Uuid::new_v4().to_string()));
    body.insert("callback_title".into(), json!(e.title));
    body.insert("occurred_at".into(), json!(timestamp(now)));
    body.insert("user_id".into(), json!(e.user_id));
    if let Some(nik) = e.identity_number {
        body.insert("identity_number".into(), json!(nik));
    }
    if let Some(kyc) = e.kyc_id {
        body.insert("kyc_id".into(), json!(kyc));
    }
    if let Some(id) = e.loan_unique_id {
        body.insert("loan_unique_id".into(), json!(id));
    }
    body.insert("status".into(), json!(e.status));
    body.insert("data".into(), Value::Object(e.data));
    Notification {
        path: status_path(&e.title),
        title: e.title,
        body: Value::Object(body),
    }
}

/// `POST /api/core/payment-gateway/virtual-account/status` (Xendit's shape; `id` unique per
/// payment).
pub(crate) struct VaPayment<'a> {
    pub payment_id: &'a str,
    pub external_id: &'a str,
    pub account_number: &'a str,
    pub bank_code: &'a str,
    pub amount: &'a str,
}

pub(crate) fn va_payment_callback(p: VaPayment<'_>, now: DateTime<Utc>) -> Notification {
    Notification {
        title: "virtual_account_payment".into(),
        path: VA_PATH.into(),
        body: json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "external_id": p.external_id,
            "payment_id": p.payment_id,
            "account_number": p.account_number,
            "bank_code": p.bank_code,
            "amount": p.amount,
            "transaction_timestamp": timestamp(now),
        }),
    }
}

/// `POST /api/core/payment-gateway/invoices/status`.
pub(crate) fn invoice_callback(
    external_id: &str,
    status: &str,
    amount: &str,
    paid_amount: &str,
    paid_at: Option<DateTime<Utc>>,
) -> Notification {
    Notification {
        title: "invoice".into(),
        path: INVOICE_PATH.into(),
        body: json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "external_id": external_id,
            "status": status,
            "amount": amount,
            "paid_amount": paid_amount,
            "paid_at": paid_at.map(timestamp),
        }),
    }
}

/// `POST /api/core/users/didit/session/callback?verificationSessionId=..&status=..`. The
/// contract gives only the query; the body repeats it with the session's decision.
pub(crate) fn didit_callback(session_id: &str, status: &str, now: DateTime<Utc>) -> Notification {
    let query =
        serde_urlencoded::to_string([("verificationSessionId", session_id), ("status", status)])
            .unwrap_or_default();
    Notification {
        title: "didit".into(),
        path: format!("{DIDIT_PATH}?{query}"),
        body: json!({
            "session_id": session_id,
            "status": status,
            "created_at": timestamp(now),
        }),
    }
}

/// Extra delays of the copies of one event: one copy, or two with `duplicate_rate`; each
/// delayed by `0..=max_reorder_delay`.
pub(crate) fn plan(rng: &mut StdRng, delivery: &CallbackDelivery) -> Vec<Duration> {
    let copies =
        if delivery.duplicate_rate > 0.0 && rng.random_bool(delivery.duplicate_rate.min(1.0)) {
            2
        } else {
            1
        };
    let max = u64::try_from(delivery.max_reorder_delay.as_millis()).unwrap_or(u64::MAX);
    (0..copies)
        .map(|_| {
            if max == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(rng.random_range(0..=max))
            }
        })
        .collect()
}

/// Delivers one copy of an event: waits `delay`, then tries until a `2xx` or the last attempt.
pub(crate) async fn deliver(
    app: Arc<App>,
    target: CallbackTarget,
    n: Notification,
    delay: Duration,
) {
    wait(delay).await;
    let url = format!(
        "{}{}",
        target.base_url.as_str().trim_end_matches('/'),
        n.path
    );
    let delivery = &app.config.delivery;
    let attempts = delivery.max_attempts.max(1);
    for attempt in 1..=attempts {
        app.with_state(|s| s.ledger.callback_attempts += 1);
        let sent = app
            .http
            .post(&url)
            .header("finfra-auth-key", &target.auth_key)
            .json(&n.body)
            .timeout(delivery.answer_timeout)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                debug!(callback.title = %n.title, attempt, "callback delivered");
                app.with_state(|s| s.ledger.callbacks_delivered += 1);
                return;
            }
            Ok(r) => {
                debug!(callback.title = %n.title, attempt, status = %r.status(), "callback refused")
            }
            Err(e) => {
                debug!(callback.title = %n.title, attempt, error.message = %e, "callback failed")
            }
        }
        if attempt < attempts {
            // retry_base × 2^(attempt-1); the shift is capped so it cannot overflow.
            let backoff = delivery
                .retry_base
                .saturating_mul(1 << (attempt - 1).min(20));
            tokio::time::sleep(backoff).await;
        }
    }
    warn!(callback.title = %n.title, attempts, "callback given up");
    app.with_state(|s| s.ledger.callbacks_failed += 1);
}

/// Waits `delay`; no time at all when it is zero. (A zero `tokio::time::sleep` still waits
/// for the timer's next millisecond: a sandbox with no delays would add one to every
/// callback and timed transition.)
pub(crate) async fn wait(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn status_body_has_exactly_the_contract_fields() {
        let n = status_callback(
            StatusEvent {
                title: "loan_disbursed".into(),
                user_id: "u1",
                loan_unique_id: Some("loan-1"),
                status: "DISBURSED",
                data: [("reference".to_owned(), json!("DISB-1"))]
                    .into_iter()
                    .collect(),
                ..StatusEvent::default()
            },
            Utc::now(),
        );
        assert_eq!(n.path, "/api/core/ftm/users/loan_disbursed/status");
        let keys: Vec<_> = n.body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "callback_title",
                "data",
                "event_id",
                "loan_unique_id",
                "occurred_at",
                "status",
                "user_id"
            ]
        );
    }

    #[test]
    fn plans_are_reproducible_from_the_seed() {
        let d = CallbackDelivery {
            duplicate_rate: 0.5,
            max_reorder_delay: Duration::from_millis(100),
            ..CallbackDelivery::default()
        };
        let run = || {
            let mut rng = StdRng::seed_from_u64(7);
            (0..20).map(|_| plan(&mut rng, &d)).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert!(run().iter().any(|p| p.len() == 2));
    }
}
