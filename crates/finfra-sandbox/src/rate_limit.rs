//! A token bucket per client (CONTRACT §1), and the memory of every `Retry-After` window the
//! sandbox gave, so the ledger can count requests a client sent while it was told to wait.
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

#[derive(Debug)]
pub(crate) struct Limiter {
    config: Option<RateLimit>,
    buckets: HashMap<String, Bucket>,
    /// Until when each key was told to wait.
    windows: HashMap<String, Instant>,
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
    /// sandbox gave that key.
    pub fn inside_window(&self, key: &str, now: Instant) -> bool {
        self.windows.get(key).is_some_and(|until| now < *until)
    }

    /// Remembers that `key` was told to wait `secs` seconds from `now`.
    pub fn open_window(&mut self, key: &str, now: Instant, secs: u64) {
        let until = now + Duration::from_secs(secs);
        let w = self.windows.entry(key.to_owned()).or_insert(until);
        *w = (*w).max(until);
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
        assert!(!l.inside_window("c", t0));
        l.open_window("c", t0, 2);
        assert!(l.inside_window("c", t0 + Duration::from_millis(1999)));
        assert!(!l.inside_window("c", t0 + Duration::from_secs(2)));
        assert_eq!(l.take("c", t0), Ok(()));
    }
}
