//! The rate limiter the whole fleet shares, one `rate_limits` row per scope (e.g.
//! `finfra:<client_id>`): a pause that a `429` sets for everyone, and a token bucket that
//! keeps the fleet under a known limit. Both are atomic on both backends (PostgreSQL row
//! lock; SQLite's single writer).
//!
//! **The bucket is leased, not read per request.** A worker takes a batch of tokens in one
//! round trip ([`Store::lease_tokens`]) and spends them from memory. A lease may reserve
//! tokens the bucket has not refilled yet, up to [`Bucket::horizon`] ahead: `tokens` then goes
//! negative, and the `i`-th token of the lease may only be spent once the bucket would have
//! refilled it ([`Lease::ready_after`]). So the fleet's requests, whoever holds which lease,
//! follow one token bucket's schedule, and workers contending for a busy bucket take turns
//! by time slot instead of polling for the next free token.
//!
//! **The pause travels by `NOTIFY` on PostgreSQL.** [`Store::pause`] records the pause and,
//! in the same statement, notifies channel [`PAUSE_CHANNEL`]; every worker listens
//! ([`Store::listen_pauses`]) and keeps the pause in memory. A lease also returns the pause
//! in force, so a notification lost while a listener reconnected costs at most one lease.
//!
//! Clock: PostgreSQL's `now()` on PostgreSQL, the process clock on SQLite (see `time`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use sqlx::AssertSqlSafe;

use crate::dialect::{Columns, each_backend};
use crate::error::{StoreError, decode_error};
use crate::time::{from_sqlite_opt, to_sqlite, to_sqlite_opt};
use crate::tx::SQLITE_BEGIN;
use crate::{Backend, Store};

/// The PostgreSQL channel a pause is announced on. Payload: `{"scope": ..., "until": ...}`
/// (JSON, `until` an RFC 3339 timestamp): the pause in force after the write.
pub const PAUSE_CHANNEL: &str = "finflow_pause";

/// A token bucket: its refill rate, its capacity, and how far ahead a lease may reserve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens stored; a new scope starts full.
    pub capacity: f64,
    /// How far ahead a lease may reserve tokens not refilled yet.
    pub horizon: Duration,
}

impl Bucket {
    fn check(&self) -> Result<(), StoreError> {
        // NaN fails these comparisons too.
        if self.per_second > 0.0
            && self.per_second.is_finite()
            && self.capacity >= 1.0
            && self.capacity.is_finite()
        {
            Ok(())
        } else {
            Err(StoreError::Refused(format!(
                "token bucket needs per_second > 0 and capacity >= 1 (got {}, {})",
                self.per_second, self.capacity
            )))
        }
    }

    /// The most tokens that may be reserved beyond what the bucket holds.
    fn reservable(&self) -> f64 {
        self.per_second * self.horizon.as_secs_f64()
    }
}

/// The answer of [`Store::lease_tokens`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// Tokens granted: 0 when the scope is paused, or when the horizon is fully reserved.
    pub granted: u32,
    /// Tokens the bucket held (refilled) just before this lease took any; negative when
    /// earlier leases reserved ahead.
    pub available: f64,
    /// The scope's pause, when it is paused now.
    pub paused_until: Option<DateTime<Utc>>,
    /// When nothing was granted and the scope is not paused: how long until a token fits
    /// in the horizon.
    pub retry_in: Option<Duration>,
}

impl Lease {
    /// How long after the lease the `index`-th granted token (from 0) may be spent: at once
    /// for tokens the bucket held, else when the bucket would have refilled it.
    #[must_use]
    pub fn ready_after(&self, index: u32, bucket: &Bucket) -> Duration {
        let missing = f64::from(index) + 1.0 - self.available;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / bucket.per_second)
        }
    }
}

/// A pause announced on [`PAUSE_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PauseNotice {
    /// The paused scope.
    pub scope: String,
    /// The pause in force (the latest of all recorded for the scope).
    pub until: DateTime<Utc>,
}

/// What a [`PauseListener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A pause was recorded.
    Pause(PauseNotice),
    /// The connection was lost and made again: notifications may have been missed
    /// meanwhile, read [`Store::paused_until`] once.
    Reconnected,
}

/// A PostgreSQL connection listening to [`PAUSE_CHANNEL`], from [`Store::listen_pauses`].
/// It holds one connection of the store's pool until dropped or the pool is closed.
pub struct PauseListener {
    listener: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for PauseListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PauseListener").finish_non_exhaustive()
    }
}

impl PauseListener {
    /// Waits for the next pause (of any scope) or a reconnection. A payload that does not
    /// parse is skipped with a warning.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the connection cannot be made again or the pool was
    /// closed (then stop listening).
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(Heard::Reconnected);
            };
            match serde_json::from_str::<PauseNotice>(notification.payload()) {
                Ok(notice) => return Ok(Heard::Pause(notice)),
                Err(error) => tracing::warn!(
                    error.message = %error,
                    channel = PAUSE_CHANNEL,
                    "ignored a pause notification that does not parse"
                ),
            }
        }
    }
}

impl Store {
    /// Pauses a scope until `until` (a `429`'s `Retry-After`). Keeps the later of the stored
    /// pause and `until`, so a short pause never shortens a long one. On PostgreSQL the same
    /// statement announces the pause in force on [`PAUSE_CHANNEL`]. Returns the pause in
    /// force.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn pause(
        &self,
        scope: &str,
        until: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        // PostgreSQL announces the pause in the same statement (`pg_notify`); SQLite can't.
        match &self.backend {
            Backend::Postgres(pool) => {
                // NOTIFY is delivered when the statement commits, with the pause as stored.
                let until: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "WITH p AS (INSERT INTO rate_limits (scope, paused_until, updated_at) \
                     VALUES ($1, $2, now()) ON CONFLICT (scope) DO UPDATE SET \
                     paused_until = greatest(rate_limits.paused_until, excluded.paused_until), \
                     updated_at = now() RETURNING scope, paused_until) \
                     SELECT p.paused_until, pg_notify($3, json_build_object('scope', p.scope, \
                     'until', p.paused_until)::text) FROM p",
                )
                .bind(scope)
                .bind(until)
                .bind(PAUSE_CHANNEL)
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
        each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT paused_until FROM rate_limits WHERE scope = $1 AND paused_until > {}",
                d.now()
            )))
            .bind(scope)
            .fetch_optional(pool)
            .await?;
            Ok(row
                .map(|row| row.at_opt("paused_until"))
                .transpose()?
                .flatten())
        })
    }

    /// Listens to the pauses every worker records ([`PAUSE_CHANNEL`]), on a connection of
    /// the pool held until the listener is dropped or the pool closed. `None` on SQLite,
    /// which has no notifications (one process: its pauses are its own).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the connection or the `LISTEN` fails.
    pub async fn listen_pauses(&self) -> Result<Option<PauseListener>, StoreError> {
        // LISTEN is PostgreSQL's alone.
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(PAUSE_CHANNEL).await?;
                Ok(Some(PauseListener { listener }))
            }
            Backend::Sqlite(_) => Ok(None),
        }
    }

    /// Leases up to `want` tokens from the scope's shared bucket in one round trip (a new
    /// scope starts full), reserving up to `bucket.horizon` ahead; grants nothing while the
    /// scope is paused. Spend the `i`-th token no earlier than [`Lease::ready_after`] after
    /// the answer arrived.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a bucket whose rate is not positive or whose capacity is
    /// below 1; [`StoreError::Database`] on a database failure.
    pub async fn lease_tokens(
        &self,
        scope: &str,
        bucket: &Bucket,
        want: u32,
    ) -> Result<Lease, StoreError> {
        bucket.check()?;
        // PostgreSQL: one statement on its clock under the row lock; SQLite: `take_tokens`.
        match &self.backend {
            Backend::Postgres(pool) => {
                // One statement: refill, take, and return what was there, under the row
                // lock. `now()` is when the statement began, possibly before another
                // lease's that held the lock: the refill never runs backwards (`at`), so
                // time is never counted twice.
                let sql = "WITH cur AS ( \
                       SELECT paused_until, coalesce(paused_until > now(), false) AS paused, \
                       least($3::float8, coalesce(tokens, $3::float8) + $2::float8 * \
                         greatest(0::float8, extract(epoch FROM now() - \
                         coalesce(refilled_at, now()))::float8)) AS available, \
                       greatest(coalesce(refilled_at, now()), now()) AS at \
                       FROM rate_limits WHERE scope = $1 FOR UPDATE \
                     ), g AS ( \
                       SELECT cur.*, CASE WHEN paused THEN 0::float8 ELSE \
                         least($5::float8, greatest(0::float8, \
                         floor(available + $2::float8 * $4::float8))) END AS granted \
                       FROM cur \
                     ) \
                     UPDATE rate_limits r SET tokens = g.available - g.granted, \
                       refilled_at = g.at, updated_at = now() \
                     FROM g WHERE r.scope = $1 \
                     RETURNING g.granted, g.available, \
                       CASE WHEN g.paused THEN g.paused_until END AS paused_until";
                for _ in 0..2 {
                    let row: Option<(f64, f64, Option<DateTime<Utc>>)> = sqlx::query_as(sql)
                        .bind(scope)
                        .bind(bucket.per_second)
                        .bind(bucket.capacity)
                        .bind(bucket.horizon.as_secs_f64())
                        .bind(f64::from(want))
                        .fetch_optional(pool)
                        .await?;
                    if let Some((granted, available, paused_until)) = row {
                        return Ok(lease_of(granted, available, paused_until, bucket));
                    }
                    // The first lease of the scope: a full bucket.
                    sqlx::query(
                        "INSERT INTO rate_limits (scope, tokens, refilled_at) \
                         VALUES ($1, $2, now()) ON CONFLICT (scope) DO NOTHING",
                    )
                    .bind(scope)
                    .bind(bucket.capacity)
                    .execute(pool)
                    .await?;
                }
                Err(decode_error(format!(
                    "rate_limits row of {scope:?} vanished while leasing"
                )))
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
                let state = BucketState {
                    tokens,
                    refilled_at: from_sqlite_opt(refilled)?,
                    paused_until: from_sqlite_opt(paused)?,
                };
                let (lease, tokens, at) = take_tokens(bucket, state, now, want);
                sqlx::query(
                    "INSERT INTO rate_limits (scope, tokens, refilled_at, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (scope) DO UPDATE SET \
                     tokens = excluded.tokens, refilled_at = excluded.refilled_at, \
                     updated_at = excluded.updated_at",
                )
                .bind(scope)
                .bind(tokens)
                .bind(to_sqlite_opt(Some(at)))
                .bind(to_sqlite(now))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(lease)
            }
        }
    }
}

/// A lease as PostgreSQL computed it, with the wait the caller needs when nothing fit.
fn lease_of(
    granted: f64,
    available: f64,
    paused_until: Option<DateTime<Utc>>,
    bucket: &Bucket,
) -> Lease {
    // `granted` is a whole number between 0 and `want` (a u32).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let granted = granted.max(0.0) as u32;
    Lease {
        granted,
        available,
        paused_until,
        retry_in: (granted == 0 && paused_until.is_none()).then(|| retry_in(available, bucket)),
    }
}

/// How long until a token fits in the horizon of a bucket holding `available`.
fn retry_in(available: f64, bucket: &Bucket) -> Duration {
    let missing = 1.0 - (available + bucket.reservable());
    Duration::from_secs_f64((missing / bucket.per_second).max(0.0))
}

/// A bucket as stored: tokens at `refilled_at` (none: full), and the scope's pause.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BucketState {
    /// Tokens at `refilled_at`; negative when leases reserved ahead.
    pub tokens: Option<f64>,
    /// When `tokens` was computed.
    pub refilled_at: Option<DateTime<Utc>>,
    /// The scope's pause, if any (past or not).
    pub paused_until: Option<DateTime<Utc>>,
}

/// The lease arithmetic, pure (the SQL of [`Store::lease_tokens`] on PostgreSQL does the
/// same): the lease, and the tokens to store with the time they were computed at. Also the
/// in-process bucket of a single worker (SQLite).
#[must_use]
pub fn take_tokens(
    bucket: &Bucket,
    state: BucketState,
    now: DateTime<Utc>,
    want: u32,
) -> (Lease, f64, DateTime<Utc>) {
    let elapsed = state
        .refilled_at
        .map(|at| (now - at).max(TimeDelta::zero()))
        .unwrap_or_default();
    let at = state.refilled_at.map_or(now, |at| at.max(now));
    let elapsed_secs = elapsed.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let available = (state.tokens.unwrap_or(bucket.capacity) + elapsed_secs * bucket.per_second)
        .min(bucket.capacity);
    if let Some(until) = state.paused_until.filter(|until| *until > now) {
        let lease = Lease {
            granted: 0,
            available,
            paused_until: Some(until),
            retry_in: None,
        };
        return (lease, available, at);
    }
    let fits = (available + bucket.reservable())
        .floor()
        .clamp(0.0, f64::from(want));
    let lease = lease_of(fits, available, None, bucket);
    (lease, available - f64::from(lease.granted), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bucket = Bucket {
        per_second: 2.0,
        capacity: 3.0,
        horizon: Duration::from_secs(1),
    };

    fn state(tokens: f64, refilled_at: DateTime<Utc>) -> BucketState {
        BucketState {
            tokens: Some(tokens),
            refilled_at: Some(refilled_at),
            paused_until: None,
        }
    }

    #[test]
    fn a_new_bucket_is_full_and_a_lease_reserves_up_to_the_horizon() {
        let now = Utc::now();
        // 3 held + 2 refilled within the 1 s horizon.
        let (lease, tokens, at) = take_tokens(&B, BucketState::default(), now, 10);
        assert_eq!(lease.granted, 5);
        assert_eq!(lease.available, 3.0);
        assert_eq!((tokens, at), (-2.0, now));
        // The three held go at once, the next two as the bucket refills them.
        let ready: Vec<_> = (0..5).map(|i| lease.ready_after(i, &B)).collect();
        assert_eq!(
            ready,
            [0, 0, 0, 500, 1000].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn a_lease_takes_only_what_is_wanted() {
        let now = Utc::now();
        let (lease, tokens, _) = take_tokens(&B, BucketState::default(), now, 2);
        assert_eq!((lease.granted, tokens), (2, 1.0));
    }

    #[test]
    fn the_bucket_refills_at_rate_up_to_its_capacity() {
        let now = Utc::now();
        let half = now - TimeDelta::milliseconds(500);
        let (lease, tokens, _) = take_tokens(&B, state(-1.0, half), now, 1);
        assert_eq!((lease.available, lease.granted, tokens), (0.0, 1, -1.0));
        assert_eq!(lease.ready_after(0, &B), Duration::from_millis(500));
        let long_ago = now - TimeDelta::hours(1);
        let (lease, _, _) = take_tokens(&B, state(0.0, long_ago), now, 1);
        assert_eq!(lease.available, 3.0);
    }

    #[test]
    fn nothing_is_granted_beyond_the_horizon_and_the_wait_says_when() {
        let now = Utc::now();
        // Fully reserved: -2 + 2 within the horizon = 0 fit.
        let (lease, tokens, _) = take_tokens(&B, state(-2.0, now), now, 4);
        assert_eq!(lease.granted, 0);
        assert_eq!(tokens, -2.0, "nothing taken");
        assert_eq!(lease.retry_in, Some(Duration::from_millis(500)));
        // Half a token fits: a quarter of a second for the other half.
        let (lease, _, _) = take_tokens(&B, state(-1.5, now), now, 4);
        assert_eq!(lease.granted, 0);
        assert_eq!(lease.retry_in, Some(Duration::from_millis(250)));
        let (lease, _, _) = take_tokens(&B, state(-1.0, now), now, 4);
        assert_eq!((lease.granted, lease.retry_in), (1, None));
    }

    #[test]
    fn time_never_runs_backwards() {
        // A lease that began before another one's `now` (it waited for the row lock)
        // refills nothing and keeps the later time.
        let now = Utc::now();
        let later = now + TimeDelta::milliseconds(300);
        let (lease, _, at) = take_tokens(&B, state(0.0, later), now, 1);
        assert_eq!(lease.available, 0.0);
        assert_eq!(at, later);
    }

    #[test]
    fn a_pause_grants_nothing() {
        let now = Utc::now();
        let until = now + TimeDelta::seconds(7);
        let paused = BucketState {
            paused_until: Some(until),
            ..BucketState::default()
        };
        let (lease, tokens, _) = take_tokens(&B, paused, now, 3);
        assert_eq!(lease.granted, 0);
        assert_eq!(lease.paused_until, Some(until));
        assert_eq!(lease.retry_in, None);
        assert_eq!(tokens, 3.0);
        let past = BucketState {
            paused_until: Some(now - TimeDelta::seconds(1)),
            ..BucketState::default()
        };
        assert_eq!(take_tokens(&B, past, now, 3).0.granted, 3);
    }
}
