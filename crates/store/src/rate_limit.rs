//! The rate limiter the whole fleet shares, one `rate_limits` row per scope (e.g.
//! `finfra:<client_id>`): a pause that a `429` sets for everyone, and a token bucket that
//! keeps the fleet under a known limit. Both are atomic on both backends (PostgreSQL row
//! lock / upsert; SQLite's single writer).
//!
//! Clock: PostgreSQL's `now()` on PostgreSQL, the process clock on SQLite (see `time`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::StoreError;
use crate::time::{from_sqlite_opt, to_sqlite, to_sqlite_opt};
use crate::tx::SQLITE_BEGIN;
use crate::{Backend, Store};

/// A bucket as PostgreSQL reads it: pause, tokens, refill time, and the database's `now()`.
type BucketRow = (
    Option<DateTime<Utc>>,
    Option<f64>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

/// The answer of [`Store::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// A token was taken: send the request.
    Granted,
    /// No token (or the scope is paused): try again after this long. Nothing was taken.
    Wait(Duration),
}

impl Store {
    /// Pauses a scope until `until` (a `429`'s `Retry-After`). Keeps the later of the stored
    /// pause and `until`, so a short pause never shortens a long one. Returns the pause in
    /// force.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn pause(
        &self,
        scope: &str,
        until: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let until: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "INSERT INTO rate_limits (scope, paused_until, updated_at) \
                     VALUES ($1, $2, now()) ON CONFLICT (scope) DO UPDATE SET \
                     paused_until = greatest(rate_limits.paused_until, excluded.paused_until), \
                     updated_at = now() RETURNING paused_until",
                )
                .bind(scope)
                .bind(until)
                .fetch_one(pool)
                .await?;
                Ok(until.unwrap_or_default())
            }
            Backend::Sqlite(pool) => {
                let until: Option<String> = sqlx::query_scalar(
                    "INSERT INTO rate_limits (scope, paused_until, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (scope) DO UPDATE SET \
                     paused_until = max(coalesce(rate_limits.paused_until, ''), \
                     excluded.paused_until), updated_at = excluded.updated_at \
                     RETURNING paused_until",
                )
                .bind(scope)
                .bind(to_sqlite(until))
                .bind(to_sqlite(Utc::now()))
                .fetch_one(pool)
                .await?;
                Ok(from_sqlite_opt(until)?.unwrap_or_default())
            }
        }
    }

    /// When the scope's pause ends, if it is paused now.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn paused_until(&self, scope: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => Ok(sqlx::query_scalar(
                "SELECT paused_until FROM rate_limits WHERE scope = $1 AND paused_until > now()",
            )
            .bind(scope)
            .fetch_optional(pool)
            .await?
            .flatten()),
            Backend::Sqlite(pool) => {
                let until: Option<Option<String>> = sqlx::query_scalar(
                    "SELECT paused_until FROM rate_limits WHERE scope = $1 AND paused_until > $2",
                )
                .bind(scope)
                .bind(to_sqlite(Utc::now()))
                .fetch_optional(pool)
                .await?;
                from_sqlite_opt(until.flatten())
            }
        }
    }

    /// Takes one token from the scope's shared bucket (`rate` tokens per second, at most
    /// `burst` stored; a new scope starts full), unless the scope is paused.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a `rate` or `burst` that is not positive;
    /// [`StoreError::Database`] on a database failure.
    pub async fn try_acquire(
        &self,
        scope: &str,
        rate: f64,
        burst: f64,
    ) -> Result<Permit, StoreError> {
        // NaN fails these comparisons too.
        if !(rate > 0.0 && burst >= 1.0) {
            return Err(StoreError::Refused(format!(
                "token bucket needs rate > 0 and burst >= 1 (got {rate}, {burst})"
            )));
        }
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO rate_limits (scope, tokens, refilled_at) VALUES ($1, $2, now()) \
                     ON CONFLICT (scope) DO NOTHING",
                )
                .bind(scope)
                .bind(burst)
                .execute(&mut *tx)
                .await?;
                let (paused, tokens, refilled, now): BucketRow = sqlx::query_as(
                    "SELECT paused_until, tokens, refilled_at, now() FROM rate_limits \
                     WHERE scope = $1 FOR UPDATE",
                )
                .bind(scope)
                .fetch_one(&mut *tx)
                .await?;
                let (permit, tokens) = bucket(paused, tokens, refilled, now, rate, burst);
                if let Some(tokens) = tokens {
                    sqlx::query(
                        "UPDATE rate_limits SET tokens = $2, refilled_at = $3, updated_at = $3 \
                         WHERE scope = $1",
                    )
                    .bind(scope)
                    .bind(tokens)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(permit)
            }
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin_with(SQLITE_BEGIN).await?;
                let now = Utc::now();
                let row: Option<(Option<String>, Option<f64>, Option<String>)> = sqlx::query_as(
                    "SELECT paused_until, tokens, refilled_at FROM rate_limits WHERE scope = $1",
                )
                .bind(scope)
                .fetch_optional(&mut *tx)
                .await?;
                let (paused, tokens, refilled) = row.unwrap_or_default();
                let (permit, tokens) = bucket(
                    from_sqlite_opt(paused)?,
                    tokens,
                    from_sqlite_opt(refilled)?,
                    now,
                    rate,
                    burst,
                );
                if let Some(tokens) = tokens {
                    sqlx::query(
                        "INSERT INTO rate_limits (scope, tokens, refilled_at, updated_at) \
                         VALUES ($1, $2, $3, $3) ON CONFLICT (scope) DO UPDATE SET \
                         tokens = excluded.tokens, refilled_at = excluded.refilled_at, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(scope)
                    .bind(tokens)
                    .bind(to_sqlite_opt(Some(now)))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(permit)
            }
        }
    }
}

/// The token bucket, pure: the permit, and the tokens to store (refilled, minus the one
/// taken) unless the scope is paused. A missing bucket is full.
fn bucket(
    paused_until: Option<DateTime<Utc>>,
    tokens: Option<f64>,
    refilled_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    rate: f64,
    burst: f64,
) -> (Permit, Option<f64>) {
    if let Some(until) = paused_until.filter(|until| *until > now) {
        let wait = (until - now).to_std().unwrap_or_default();
        return (Permit::Wait(wait), None);
    }
    let elapsed = refilled_at
        .map(|at| (now - at).max(TimeDelta::zero()))
        .unwrap_or_default();
    let elapsed_secs = elapsed.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let available = (tokens.unwrap_or(burst) + elapsed_secs * rate).min(burst);
    if available >= 1.0 {
        (Permit::Granted, Some(available - 1.0))
    } else {
        let wait = Duration::from_secs_f64((1.0 - available) / rate);
        (Permit::Wait(wait), Some(available))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_rate_up_to_burst() {
        let now = Utc::now();
        // New scope: full.
        assert_eq!(
            bucket(None, None, None, now, 2.0, 3.0),
            (Permit::Granted, Some(2.0))
        );
        // Empty, half a second at 2/s refills one token.
        let half = now - TimeDelta::milliseconds(500);
        assert_eq!(
            bucket(None, Some(0.0), Some(half), now, 2.0, 3.0),
            (Permit::Granted, Some(0.0))
        );
        // Empty just now: wait half a second for the next token.
        match bucket(None, Some(0.0), Some(now), now, 2.0, 3.0) {
            (Permit::Wait(d), Some(t)) => {
                assert_eq!(t, 0.0);
                assert_eq!(d, Duration::from_millis(500));
            }
            other => panic!("{other:?}"),
        }
        // Long idle never exceeds burst.
        let long_ago = now - TimeDelta::hours(1);
        assert_eq!(
            bucket(None, Some(0.0), Some(long_ago), now, 2.0, 3.0),
            (Permit::Granted, Some(2.0))
        );
    }

    #[test]
    fn a_pause_overrides_the_bucket() {
        let now = Utc::now();
        let until = now + TimeDelta::seconds(7);
        assert_eq!(
            bucket(Some(until), Some(3.0), Some(now), now, 2.0, 3.0),
            (Permit::Wait(Duration::from_secs(7)), None)
        );
        let past = now - TimeDelta::seconds(1);
        assert!(matches!(
            bucket(Some(past), None, None, now, 2.0, 3.0).0,
            Permit::Granted
        ));
    }
}
