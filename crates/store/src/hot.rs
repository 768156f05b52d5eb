//! PostgreSQL connections kept between the statements of the step path (claim, step commit,
//! stored callback), so that each costs its one round trip.
//!
//! sqlx tests every connection returned to its pool with a round trip of its own (a `Sync`),
//! unconditionally. Under load that doubled the round trips of a step. A statement of the
//! step path therefore takes a connection this store used a moment ago, if there is one,
//! and gives it back here rather than to the pool when it succeeded. A connection kept
//! here is one the pool counts as in use: at most [`Hot::most`] are kept, each for at most
//! [`KEEP`] unused (a sweeper hands older ones back to the pool, where sqlx tests them), so
//! the rest of the store never waits long for them. A statement that failed, or was cut off,
//! drops its connection to the pool, which tests it and closes a broken one.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::error::StoreError;

/// How long a kept connection may wait for its next statement.
const KEEP: Duration = Duration::from_millis(100);

/// The kept connections of a store (and its clones).
#[derive(Debug, Default)]
pub(crate) struct Hot {
    idle: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    sweeping: std::sync::atomic::AtomicBool,
}

impl Hot {
    /// At most this many of `pool`'s connections are kept: half of it, so the rest of the
    /// store always has the other half.
    fn most(pool: &PgPool) -> usize {
        (pool.options().get_max_connections() / 2) as usize
    }

    /// A connection for one statement of the step path: a kept one if there is a fresh
    /// one, else one from the pool.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the pool has none to give.
    pub(crate) async fn take(self: &Arc<Self>, pool: &PgPool) -> Result<HotConn, StoreError> {
        let kept = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.pop()
                .and_then(|(conn, since)| (since.elapsed() < KEEP).then_some(conn))
        };
        let conn = match kept {
            Some(conn) => conn,
            // Boxed: the pool's acquisition may open a connection, a future of about 12 KB;
            // unboxed, every statement of the step path held it, and tokio copied it whole
            // with each batch's task (`group::tests`).
            None => Box::pin(pool.acquire()).await?,
        };
        Ok(HotConn {
            conn: Some(conn),
            hot: Arc::clone(self),
            most: Self::most(pool),
        })
    }

    /// Gives every kept connection back to the pool (before it is closed).
    pub(crate) fn release_all(&self) {
        let kept = std::mem::take(
            &mut *self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        drop(kept);
    }

    fn keep(self: &Arc<Self>, conn: PoolConnection<Postgres>, most: usize) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() >= most {
            return; // dropped: back to the pool
        }
        idle.push((conn, Instant::now()));
        drop(idle);
        if !self
            .sweeping
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }
}

/// Hands connections kept unused for [`KEEP`] back to the pool, until the store is gone.
async fn sweep(hot: Weak<Hot>) {
    let mut tick = tokio::time::interval(KEEP);
    loop {
        tick.tick().await;
        let Some(hot) = hot.upgrade() else {
            return;
        };
        let stale: Vec<_> = {
            let mut idle = hot
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (fresh, stale) = idle
                .drain(..)
                .partition(|(_, since)| since.elapsed() < KEEP);
            *idle = fresh;
            stale
        };
        drop(stale);
    }
}

/// A connection for one statement of the step path; [`HotConn::keep`] it after success.
/// Dropped otherwise, it goes back to the pool (which tests it).
pub(crate) struct HotConn {
    conn: Option<PoolConnection<Postgres>>,
    hot: Arc<Hot>,
    most: usize,
}

impl HotConn {
    /// The statement succeeded: keep the connection for the next one.
    pub(crate) fn keep(mut self) {
        if let Some(conn) = self.conn.take() {
            self.hot.keep(conn, self.most);
        }
    }
}

impl std::ops::Deref for HotConn {
    type Target = sqlx::PgConnection;

    fn deref(&self) -> &Self::Target {
        self.conn.as_ref().expect("present until kept")
    }
}

impl std::ops::DerefMut for HotConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_mut().expect("present until kept")
    }
}
