//! The fleet's reconciliation schedule (`[reconcile] every`): every worker starts the run of
//! each period as it begins, through `console::reconcile::start_run` (the one way to start
//! a run, also behind `finflow reconcile` and the console's page). A scheduled run's business key names its
//! period, so the workers that all try to start it start it once: the store keeps one
//! workflow per kind and business key, and the same key with the same input is the same
//! workflow.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use store::Store;
use tokio::sync::watch;
use workflow::Engine;

/// The business key and input of the scheduled run of the period that contains `now`.
#[must_use]
pub fn scheduled(now: DateTime<Utc>, every: Duration, window: Option<Duration>) -> (String, Value) {
    let secs = i64::try_from(every.as_secs().max(60)).unwrap_or(i64::MAX);
    let start = now.timestamp().div_euclid(secs) * secs;
    let period = DateTime::from_timestamp(start, 0).unwrap_or(now);
    let key = format!(
        "scheduled/{}/{}",
        humanize(every),
        period.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let input = match window.and_then(|w| TimeDelta::from_std(w).ok()) {
        Some(window) => json!({ "from": (period - window).date_naive() }),
        None => json!({}),
    };
    (key, input)
}

fn humanize(every: Duration) -> String {
    let secs = every.as_secs();
    if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{}m", secs / 60)
    }
}

/// Starts the run of each period as it begins, until `stop`.
pub async fn schedule(
    store: Store,
    engine: Engine,
    every: Duration,
    window: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.min(Duration::from_secs(60)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (key, input) = scheduled(Utc::now(), every, window);
        match console::reconcile::start_run(&store, &engine, &key, input).await {
            Ok(run) if run.created => {
                tracing::info!(workflow.id = %run.id, business_key = %key, "reconciliation run started");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(business_key = %key, error.message = %error, "cannot start the reconciliation run");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn one_key_per_period_whoever_asks() {
        let every = Duration::from_secs(3600);
        let a = scheduled(
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 0, 1).unwrap(),
            every,
            None,
        );
        let b = scheduled(
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 59, 59).unwrap(),
            every,
            None,
        );
        let c = scheduled(
            Utc.with_ymd_and_hms(2026, 12, 3, 17, 0, 0).unwrap(),
            every,
            None,
        );
        assert_eq!(a, b);
        assert_eq!(a.0, "scheduled/1h/2026-12-03T16:00:00Z");
        assert_eq!(c.0, "scheduled/1h/2026-12-03T17:00:00Z");
        assert_eq!(a.1, json!({}));
    }

    #[test]
    fn a_window_looks_back_from_the_period() {
        let (key, input) = scheduled(
            Utc.with_ymd_and_hms(2026, 12, 3, 16, 30, 0).unwrap(),
            Duration::from_secs(86_400),
            Some(Duration::from_secs(30 * 86_400)),
        );
        assert_eq!(key, "scheduled/1d/2026-12-03T00:00:00Z");
        assert_eq!(input, json!({"from": "2026-11-03"}));
    }
}
