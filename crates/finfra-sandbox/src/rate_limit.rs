//! A token bucket per client (CONTRACT §1), and the memory of every `Retry-After` window the
//! sandbox gave, so the ledger can count requests a client sent while it was told to wait.
//!
//! A server cannot see when a client decided to send a request, only when it arrives. A
//! client with several requests in flight (a fleet of workers, a connection pool) has some
//! of them on their way when a `429` answers another one: those arrive inside the window
//! through no fault of the client. So a request arriving inside a window is judged by how
//! long after the `429` it came: within the grace
//! ([`crate::SandboxConfig::retry_after_grace`]) it was already in flight, later it was sent
//! by a client that had been told to wait.
//!
//! Keys are client ids, or `ip:<address>` on endpoints without auth. Time is a monotonic
//! `Instant`, passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::RateLimit;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A `Retry-After` window: since when a key was told to wait, and until when.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The first `429` of this window (later ones inside it only extend `until`).
    told_at: Instant,
    until: Instant,
}

/// How a request arriving inside a `Retry-After` window is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsideWindow {
    /// Within the grace after the `429`: it was already on its way.
    InFlight,
    /// Sent after the client had been told to wait.
    Violation,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    config: Option<RateLimit>,
    buckets: HashMap<String, Bucket>,
    /// The window each key was last told to wait for.
    windows: HashMap<String, Window>,
}

impl Limiter {
    pub fn new(config: Option<RateLimit>) -> Self {
        Self {
            config,
            buckets: HashMap::new(),
            windows: HashMap::new(),
        }
    }

    /// Whether a request from `key` arriving `now` falls inside a `Retry-After` window the
    /// sandbox gave that key, and if so whether it came within `grace` of the `429`.
    pub fn inside_window(&self, key: &str, now: Instant, grace: Duration) -> Option<InsideWindow> {
        let window = self.windows.get(key).filter(|w| now < w.until)?;
        Some(if now.saturating_duration_since(window.told_at) <= grace {
            InsideWindow::InFlight
        } else {
            InsideWindow::Violation
        })
    }

    /// Remembers that `key` was told at `now` to wait `secs` seconds. Inside a running
    /// window this only extends it: the client was told when the window opened.
    pub fn open_window(&mut self, key: &str, now: Instant, secs: u64) {
        let until = now + Duration::from_secs(secs);
        match self.windows.get_mut(key) {
            Some(window) if now < window.until => window.until = window.until.max(until),
            _ => {
                self.windows.insert(
                    key.to_owned(),
                    Window {
                        told_at: now,
                        until,
                    },
                );
            }
        }
    }

    /// Takes a token for `key`. `Err(retry_after_secs)` when the bucket is empty: the whole
    /// seconds until a token is back, at least 1.
    pub fn take(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.config else {
            return Ok(());
        };
        let burst = f64::from(limit.burst.max(1));
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = if limit.per_second > 0.0 {
            ((1.0 - bucket.tokens) / limit.per_second).ceil()
        } else {
            60.0
        };
        // `wait` is a small positive whole number of seconds; the cast only drops ".0".
        Err((wait as u64).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut l = Limiter::new(Some(RateLimit {
            per_second: 2.0,
            burst: 3,
        }));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("c", t0), Ok(()));
        }
        assert_eq!(l.take("c", t0), Err(1));
        // Other clients have their own bucket.
        assert_eq!(l.take("d", t0), Ok(()));
        assert_eq!(l.take("c", t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(l.take("c", t0 + Duration::from_millis(500)), Err(1));
    }

    #[test]
    fn slow_refill_gives_longer_retry_after() {
        let mut l = Limiter::new(Some(RateLimit {
            per_second: 0.25,
            burst: 1,
        }));
        let t0 = Instant::now();
        assert_eq!(l.take("c", t0), Ok(()));
        assert_eq!(l.take("c", t0), Err(4));
    }

    #[test]
    fn windows_are_remembered() {
        let mut l = Limiter::new(None);
        let t0 = Instant::now();
        let strict = Duration::ZERO;
        assert_eq!(l.inside_window("c", t0, strict), None);
        l.open_window("c", t0, 2);
        let late = t0 + Duration::from_millis(1999);
        assert_eq!(
            l.inside_window("c", late, strict),
            Some(InsideWindow::Violation)
        );
        assert_eq!(
            l.inside_window("c", t0 + Duration::from_secs(2), strict),
            None
        );
        assert_eq!(l.inside_window("d", late, strict), None);
        assert_eq!(l.take("c", t0), Ok(()));
    }

    #[test]
    fn requests_within_the_grace_were_in_flight() {
        let mut l = Limiter::new(None);
        let t0 = Instant::now();
        let grace = Duration::from_millis(250);
        l.open_window("c", t0, 1);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(
            l.inside_window("c", at(0), grace),
            Some(InsideWindow::InFlight)
        );
        assert_eq!(
            l.inside_window("c", at(250), grace),
            Some(InsideWindow::InFlight)
        );
        assert_eq!(
            l.inside_window("c", at(251), grace),
            Some(InsideWindow::Violation)
        );
        // A second 429 inside the window (answering a request in flight) extends the wait
        // but does not restart the grace: the client was told at t0.
        l.open_window("c", at(200), 2);
        assert_eq!(
            l.inside_window("c", at(300), grace),
            Some(InsideWindow::Violation)
        );
        assert_eq!(
            l.inside_window("c", at(2199), grace),
            Some(InsideWindow::Violation)
        );
        assert_eq!(l.inside_window("c", at(2200), grace), None);
        // After the window, a new 429 opens a new window with its own grace.
        l.open_window("c", at(3000), 1);
        assert_eq!(
            l.inside_window("c", at(3100), grace),
            Some(InsideWindow::InFlight)
        );
    }
}
