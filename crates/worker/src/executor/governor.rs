//! The rate governor: one per worker process, deciding when each Finfra request may leave so
//! that the whole fleet keeps to Finfra's limit on the client (`finfra.rate_limit`) and
//! sends nothing inside a `Retry-After` window any worker was given.
//!
//! **Pace.** The fleet shares one token bucket in the database (`store::Store::lease_tokens`),
//! leased in batches: one round trip gives this process several tokens, each with the
//! moment the bucket would have refilled it, and requests take them from memory in order,
//! each waiting for its token's moment. Whoever holds which lease, the fleet's requests
//! follow one bucket's schedule, and a busy fleet is one queue in lease order: a process
//! reserves the next free moments for the requests it has waiting, so a request waits
//! about the fleet's waiting requests divided by the rate (a lease reserves at most 10 s
//! ahead; past that it is told when to come back). A batch is what this process's waiting
//! requests need plus what its recent pace will ask for while a token is good, so a steady
//! stream of requests costs a round trip per few requests, not one each.
//!
//! Finfra's own bucket (rate `L`, burst `B`) cannot see when a request left, only when it
//! arrived; requests leave late (scheduling, a busy machine) and arrive bunched. So the
//! shared bucket holds only half of `B`, and a token not taken by a request is good for a
//! short while after its moment (`validity`, a quarter of `B`'s worth of refill, 10 ms to 1 s):
//! in any window of `T` seconds the fleet sends at most `B/2 + L·(T + validity)`, which
//! leaves a quarter of `B` for lateness and jitter before Finfra would answer `429`.
//! Under sustained demand every token is taken at its moment and the fleet runs at `L`.
//!
//! On SQLite (one process) the same bucket lives in memory: no database work at all.
//!
//! **Pause.** A `429` pauses this process at once, then is stored (`Store::pause`), which on
//! PostgreSQL also announces it (`NOTIFY finflow_pause`); every process listens and keeps
//! the pause in memory, and a lease returns the pause in force too, so a notification missed
//! while the listener reconnected costs at most one lease. A request is checked against the
//! pause after it got its token and its moment came, the last thing before it is sent, from
//! memory: a pause announced while it waited stops it. A process also reads the stored
//! pause once when it starts, and after its listener reconnects.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use store::{Bucket, BucketState, Heard, Lease, PauseListener, Store, StoreError};
use tokio::sync::{Notify, OnceCell};
use tokio::time::Instant;

/// Finfra's limit on one client (CONTRACT §1: 20 requests/s, burst 40): `finfra.rate_limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, for the whole fleet.
    pub per_second: f64,
    /// Requests Finfra accepts at once after a quiet time.
    pub burst: u32,
}

/// How the governor paces requests to a [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pace {
    /// The fleet's shared bucket: the limit's rate, half its burst, 10 s ahead.
    bucket: Bucket,
    /// How long after its moment an unclaimed leased token may still be taken.
    validity: Duration,
    /// The most tokens one lease asks for: a second's worth.
    max_batch: u32,
}

impl Pace {
    /// `None` when the limit paces nothing (a rate that is not positive).
    fn new(limit: RateLimit) -> Option<Self> {
        let rate = limit.per_second;
        if !(rate > 0.0 && rate.is_finite()) {
            return None;
        }
        let burst = f64::from(limit.burst.max(1));
        let capacity = (burst / 2.0).floor().max(1.0);
        let validity = Duration::from_secs_f64((burst - capacity) / 2.0 / rate)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        // At least one token fits in the horizon, however slow the rate.
        let horizon = Duration::from_secs_f64((1.0 / rate).max(10.0));
        // A whole number between 1 and a million: the cast only drops the fraction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_batch = rate.floor().clamp(1.0, 1e6) as u32;
        Some(Self {
            bucket: Bucket {
                per_second: rate,
                capacity,
                horizon,
            },
            validity,
            max_batch,
        })
    }
}

/// One process's governor. Clones share it (an [`super::Executor`]'s clones all do).
#[derive(Clone, Default)]
pub struct Governor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("pace", &self.inner.pace)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// `None`: requests are not paced, only held back by a pause.
    pace: Option<Pace>,
    state: Mutex<State>,
    /// Tokens arrived, a lease ended, or the pause moved.
    changed: Notify,
    /// The first request reads the stored pause and starts the listener.
    started: OnceCell<()>,
    /// Clients that hold their requests during a pause too: their own check is the last
    /// step before a request leaves (after its token), later than the governor's.
    clients: Mutex<Vec<finfra_api::FinfraClient>>,
}

#[derive(Debug, Default)]
struct State {
    /// The latest pause this process knows of.
    paused_until: Option<DateTime<Utc>>,
    /// Leased tokens no request has taken yet: the moment each may be spent, in order.
    tokens: VecDeque<Instant>,
    /// Requests waiting for a token.
    waiting: u32,
    /// A lease is on its way (one at a time per process).
    leasing: bool,
    /// Tokens this process took lately, per second (decaying over a second).
    recent_rate: f64,
    recent_at: Option<Instant>,
    /// The bucket itself when it lives in memory (SQLite).
    local: BucketState,
}

impl State {
    fn paused_for(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.paused_until
            .and_then(|until| (until - now).to_std().ok())
            .filter(|left| !left.is_zero())
    }

    /// The rate of recent requests, decayed to `now`.
    fn recent_rate(&self, now: Instant) -> f64 {
        self.recent_at.map_or(0.0, |at| {
            self.recent_rate * (-(now - at).as_secs_f64()).exp()
        })
    }

    fn took(&mut self, now: Instant) {
        self.recent_rate = self.recent_rate(now) + 1.0;
        self.recent_at = Some(now);
    }
}

/// What a request waiting for a token does next.
enum Next {
    Take(Instant),
    Lease(u32),
    Wait,
}

impl Governor {
    /// A governor pacing requests to `limit` (none: only pauses hold requests back).
    #[must_use]
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pace: limit.and_then(Pace::new),
                ..Inner::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    /// Makes `client` hold its requests during every pause this governor learns of, so
    /// that a pause announced after a request was admitted still stops it before it leaves.
    pub fn hold_client(&self, client: finfra_api::FinfraClient) {
        if let Some(until) = self.state().paused_until {
            hold(&client, until);
        }
        self.inner
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(client);
    }

    /// Waits until one request of `scope` may leave. `None`: send it now. `Some(left)`: the
    /// fleet is paused for `left` more, do not send (checked after the wait, from memory).
    ///
    /// # Errors
    /// The store failed to lease tokens.
    pub(super) async fn admit(
        &self,
        store: &Store,
        scope: &str,
    ) -> Result<Option<Duration>, StoreError> {
        self.start(store, scope).await;
        let Some(pace) = self.inner.pace else {
            return Ok(self.held(Utc::now()));
        };
        let asked = Instant::now();
        let slot = {
            let _waiting = Waiting::new(&self.inner);
            loop {
                let changed = self.inner.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let next = {
                    let mut state = self.state();
                    if let Some(left) = state.paused_for(Utc::now()) {
                        drop(state);
                        crate::metrics::global().rate_held();
                        return Ok(Some(left));
                    }
                    let now = Instant::now();
                    let mut expired = 0;
                    while state
                        .tokens
                        .front()
                        .is_some_and(|at| *at + pace.validity < now)
                    {
                        state.tokens.pop_front();
                        expired += 1;
                    }
                    if expired > 0 {
                        crate::metrics::global().rate_tokens_expired(expired);
                    }
                    if let Some(at) = state.tokens.pop_front() {
                        Next::Take(at)
                    } else if state.leasing {
                        Next::Wait
                    } else {
                        state.leasing = true;
                        // What waits now, and what the recent pace will ask for while these
                        // tokens are good.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let ahead = (state.recent_rate(now) * pace.validity.as_secs_f64())
                            .floor()
                            .clamp(0.0, f64::from(pace.max_batch))
                            as u32;
                        Next::Lease(state.waiting.saturating_add(ahead).min(pace.max_batch))
                    }
                };
                match next {
                    Next::Take(at) => break at,
                    Next::Lease(want) => {
                        let _leasing = Leasing(&self.inner);
                        // Boxed: a lease serves many requests, and every request's future
                        // holds a pointer rather than a lease's state.
                        Box::pin(self.lease(store, scope, &pace, want)).await?;
                    }
                    Next::Wait => changed.await,
                }
            }
        };
        // The token's moment; a pause announced meanwhile stops the request.
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(left) = self.held(Utc::now()) {
                return Ok(Some(left));
            }
            let now = Instant::now();
            if now >= slot {
                self.state().took(now);
                crate::metrics::global().rate_waited(now - asked);
                return Ok(None);
            }
            tokio::select! {
                () = tokio::time::sleep_until(slot) => {}
                () = changed => {}
            }
        }
    }

    /// One lease for `want` tokens, from the database or the in-memory bucket; when
    /// nothing fit, waits until something may (other requests of this process wait for
    /// this one meanwhile), unless a pause comes first.
    async fn lease(
        &self,
        store: &Store,
        scope: &str,
        pace: &Pace,
        want: u32,
    ) -> Result<(), StoreError> {
        let lease = if store.pg_pool().is_some() {
            store.lease_tokens(scope, &pace.bucket, want).await?
        } else {
            let mut state = self.state();
            let now = Utc::now();
            let (lease, tokens, at) = store::take_tokens(&pace.bucket, state.local, now, want);
            state.local = BucketState {
                tokens: Some(tokens),
                refilled_at: Some(at),
                paused_until: None,
            };
            lease
        };
        // The lease was taken before its answer arrived: counting from now errs late.
        let received = Instant::now();
        crate::metrics::global().rate_leased(lease.granted);
        self.add(&lease, pace, received);
        if let Some(wait) = lease.retry_in {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.held(Utc::now()).is_none() {
                tokio::select! {
                    () = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
                    () = changed => {}
                }
            }
        }
        Ok(())
    }

    /// Adds a lease's tokens (and the pause it reported), and wakes the waiting requests.
    fn add(&self, lease: &Lease, pace: &Pace, received: Instant) {
        {
            let mut state = self.state();
            if let Some(until) = lease.paused_until {
                state.paused_until = state.paused_until.max(Some(until));
            }
            for index in 0..lease.granted {
                let at = received + lease.ready_after(index, &pace.bucket);
                state.tokens.push_back(at);
            }
            state.tokens.make_contiguous().sort_unstable();
        }
        self.inner.changed.notify_waiters();
    }

    /// How long the pause this process knows of lasts, counting a held-back request.
    fn held(&self, now: DateTime<Utc>) -> Option<Duration> {
        let left = self.state().paused_for(now);
        if left.is_some() {
            crate::metrics::global().rate_held();
        }
        left
    }

    /// Records a `429`'s pause: this process stops at once, then the store records it for
    /// the fleet (and announces it on PostgreSQL). Returns the pause in force.
    ///
    /// # Errors
    /// The store failed; this process is paused all the same.
    pub(super) async fn pause(
        &self,
        store: &Store,
        scope: &str,
        until: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        // A 429 the client answered itself, for a pause already known (up to the rounding
        // of its clock): nothing new to tell the fleet.
        let slack = chrono::TimeDelta::milliseconds(100);
        if self
            .state()
            .paused_until
            .is_some_and(|known| known + slack >= until)
        {
            return Ok(until);
        }
        self.inner.note_pause(until);
        let until = store.pause(scope, until).await?;
        self.inner.note_pause(until);
        Ok(until)
    }

    /// Once per process, before its first request: on PostgreSQL a listener for the pauses
    /// the fleet records from now on, then the pause stored before (in this order, so that
    /// none falls in between).
    async fn start(&self, store: &Store, scope: &str) {
        self.inner
            .started
            // Boxed: once per process, and every request's future holds a pointer.
            .get_or_init(|| Box::pin(async {
                let listener = match store.listen_pauses().await {
                    Ok(listener) => listener,
                    Err(error) => {
                        // The listening task keeps trying; leases bring the pause meanwhile.
                        tracing::warn!(error.message = %error, "cannot listen to the fleet's pauses yet");
                        None
                    }
                };
                catch_up(&self.inner, store, scope).await;
                if store.pg_pool().is_some() {
                    tokio::spawn(listen(
                        Arc::downgrade(&self.inner),
                        listener,
                        store.clone(),
                        scope.to_owned(),
                    ));
                }
            }))
            .await;
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Extends the pause this process knows of (a later one wins), waking the requests
    /// waiting for tokens or their moment.
    fn note_pause(&self, until: DateTime<Utc>) {
        {
            let mut state = self.state();
            state.paused_until = state.paused_until.max(Some(until));
        }
        for client in self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            hold(client, until);
        }
        self.changed.notify_waiters();
    }
}

/// Holds `client`'s requests until `until` (nothing when it has passed).
fn hold(client: &finfra_api::FinfraClient, until: DateTime<Utc>) {
    if let Ok(wait) = (until - Utc::now()).to_std() {
        client.hold_for(wait);
    }
}

/// Counts a request among those waiting for a token while it lives.
struct Waiting<'a>(&'a Inner);

impl<'a> Waiting<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.state().waiting += 1;
        Self(inner)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.waiting = state.waiting.saturating_sub(1);
    }
}

/// The lease on its way: when it ends (or its request is dropped), another may start.
struct Leasing<'a>(&'a Inner);

impl Drop for Leasing<'_> {
    fn drop(&mut self) {
        self.0.state().leasing = false;
        self.0.changed.notify_waiters();
    }
}

/// Reads the stored pause into memory (a failure is logged: the next lease or notification
/// brings it).
async fn catch_up(inner: &Inner, store: &Store, scope: &str) {
    match store.paused_until(scope).await {
        Ok(Some(until)) => inner.note_pause(until),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(error.message = %error, "could not read the fleet's pause");
        }
    }
}

/// Keeps `inner`'s pause up to date with the pauses the fleet records on PostgreSQL
/// (from `listening`, the listener `Governor::start` made, if it could), until the governor
/// is dropped or the store closed.
async fn listen(
    inner: Weak<Inner>,
    mut listening: Option<PauseListener>,
    store: Store,
    scope: String,
) {
    let closed = || store.pg_pool().is_none_or(sqlx::Pool::is_closed);
    loop {
        let mut listener = match listening.take() {
            Some(listener) => listener,
            None => match store.listen_pauses().await {
                Ok(Some(listener)) => {
                    // Listening from here on: what was recorded before is read once.
                    let Some(governor) = inner.upgrade() else {
                        return;
                    };
                    catch_up(&governor, &store, &scope).await;
                    listener
                }
                Ok(None) => return,
                Err(_) if closed() => return,
                Err(error) => {
                    tracing::warn!(error.message = %error, "cannot listen to the fleet's pauses; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        loop {
            let heard = listener.next().await;
            let Some(governor) = inner.upgrade() else {
                return;
            };
            match heard {
                Ok(Heard::Pause(notice)) if notice.scope == scope => {
                    tracing::debug!(pause.until = %notice.until, "the fleet is paused");
                    governor.note_pause(notice.until);
                }
                Ok(Heard::Pause(_)) => {}
                Ok(Heard::Reconnected) => catch_up(&governor, &store, &scope).await,
                Err(_) if closed() => return,
                Err(error) => {
                    tracing::warn!(error.message = %error, "lost the fleet's pause notifications; listening again");
                    break;
                }
            }
        }
    }
}

impl super::Executor {
    /// This executor, with `governor` deciding when its Finfra requests leave (by default
    /// they are not paced, only held back by a pause).
    #[must_use]
    pub fn with_governor(mut self, governor: Governor) -> Self {
        governor.hold_client(self.client.clone());
        self.governor = governor;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finfra_s_limit_leaves_a_quarter_of_its_burst_for_lateness() {
        let pace = Pace::new(RateLimit {
            per_second: 20.0,
            burst: 40,
        })
        .expect("paced");
        assert_eq!(pace.bucket.capacity, 20.0);
        assert_eq!(pace.bucket.horizon, Duration::from_secs(10));
        assert_eq!(pace.validity, Duration::from_millis(500));
        // In-window bound: B/2 + L × validity = 20 + 10, a quarter of 40 to spare.
        assert_eq!(pace.max_batch, 20);
    }

    #[test]
    fn slow_and_tight_limits_still_pace() {
        let slow = Pace::new(RateLimit {
            per_second: 0.5,
            burst: 1,
        })
        .expect("paced");
        assert_eq!(slow.bucket.capacity, 1.0);
        assert_eq!(slow.bucket.horizon, Duration::from_secs(10));
        assert_eq!(slow.max_batch, 1);
        let glacial = Pace::new(RateLimit {
            per_second: 0.01,
            burst: 1,
        })
        .expect("paced");
        assert_eq!(glacial.bucket.horizon, Duration::from_secs(100));
        assert_eq!(slow.validity, Duration::from_millis(10));
        for off in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                Pace::new(RateLimit {
                    per_second: off,
                    burst: 40
                }),
                None
            );
        }
    }

    async fn sqlite() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("finflow-governor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let store = Store::connect(&format!("sqlite:{}", dir.join("g.db").display()))
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        (store, dir)
    }

    #[tokio::test]
    async fn requests_leave_at_the_limit_after_half_the_burst() {
        let (store, dir) = sqlite().await;
        let governor = Governor::new(Some(RateLimit {
            per_second: 50.0,
            burst: 8,
        }));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let governor = governor.clone();
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let left = governor.admit(&store, "finfra:t").await.expect("admit");
                assert_eq!(left, None);
                Instant::now() - start
            }));
        }
        let mut sent = Vec::new();
        for task in tasks {
            sent.push(task.await.expect("task"));
        }
        sent.sort();
        // Half the burst (4) at once, then one every 20 ms: the n-th request never leaves
        // before its token is refilled, however late the ones before it left.
        for (n, at) in sent.iter().enumerate().skip(4) {
            let refilled = Duration::from_millis(20 * (n as u64 - 3));
            assert!(*at >= refilled, "request {n} left at {at:?}: {sent:?}");
        }
        assert!(sent[23] < Duration::from_secs(3), "{sent:?}");
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_pause_stops_requests_waiting_for_their_moment() {
        let (store, dir) = sqlite().await;
        let governor = Governor::new(Some(RateLimit {
            per_second: 1.0,
            burst: 2,
        }));
        // The one token of the bucket goes at once; the next is refilled in a second.
        assert_eq!(
            governor.admit(&store, "finfra:p").await.expect("admit"),
            None
        );
        let waiting = {
            let governor = governor.clone();
            let store = store.clone();
            tokio::spawn(async move { governor.admit(&store, "finfra:p").await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let until = Utc::now() + chrono::TimeDelta::seconds(5);
        governor
            .pause(&store, "finfra:p", until)
            .await
            .expect("pause");
        let left = waiting.await.expect("task").expect("admit");
        assert!(
            left.is_some_and(|left| left > Duration::from_secs(4)),
            "{left:?}"
        );
        // And the next request hears it without waiting for a token.
        assert!(
            governor
                .admit(&store, "finfra:p")
                .await
                .expect("admit")
                .is_some()
        );
        let stored = store.paused_until("finfra:p").await.expect("read");
        assert_eq!(
            stored.map(|t| t.timestamp_millis()),
            Some(until.timestamp_millis())
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod held_clients {
    use finfra_api::auth::Credentials;
    use finfra_api::{ClientConfig, Error, FinfraClient};
    use secrecy::SecretString;

    use super::*;

    /// A client of a port nothing listens on: a request that leaves fails to connect.
    fn unreachable() -> FinfraClient {
        FinfraClient::new(ClientConfig::new(
            url::Url::parse("http://127.0.0.1:9/").expect("url"),
            Credentials::new("c", SecretString::from("s".to_owned())),
        ))
        .expect("client")
    }

    #[tokio::test]
    async fn a_pause_learnt_after_admission_still_stops_the_request_before_it_leaves() {
        let governor = Governor::new(None);
        let client = unreachable();
        governor.hold_client(client.clone());
        // Admitted (no pause yet); then the fleet's pause arrives before the request leaves.
        governor
            .inner
            .note_pause(Utc::now() + chrono::TimeDelta::seconds(2));
        let held = client.approve_borrower("6a41ff87dda4eefd0b7b0300").await;
        assert!(
            matches!(held, Err(Error::RateLimited { .. })),
            "held by the client's last check, never sent: {held:?}"
        );
        // Without a pause the request does leave (and finds nobody listening).
        let free = unreachable();
        let sent = free.approve_borrower("6a41ff87dda4eefd0b7b0300").await;
        assert!(!matches!(sent, Err(Error::RateLimited { .. })), "{sent:?}");
    }

    #[tokio::test]
    async fn a_client_registered_during_a_pause_holds_at_once() {
        let governor = Governor::new(None);
        governor
            .inner
            .note_pause(Utc::now() + chrono::TimeDelta::seconds(2));
        let client = unreachable();
        governor.hold_client(client.clone());
        let held = client.approve_borrower("6a41ff87dda4eefd0b7b0300").await;
        assert!(matches!(held, Err(Error::RateLimited { .. })), "{held:?}");
    }
}
