//! A transaction on either backend, for callers that combine their own writes with a submit
//! or a wake-up ([`Store::submit_in`], [`Store::schedule_wakeup_in`]): all commit together or
//! none does.

use sqlx::{Postgres, Sqlite, Transaction};

use crate::error::StoreError;
use crate::{Backend, Store};

/// An open transaction. Dropping it without [`StoreTx::commit`] rolls it back. The variants
/// are public so a caller can run its own SQL in it (`&mut **tx` is the connection).
#[derive(Debug)]
pub enum StoreTx<'c> {
    Postgres(Transaction<'c, Postgres>),
    Sqlite(Transaction<'c, Sqlite>),
}

impl StoreTx<'_> {
    /// Commits.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the commit fails (then nothing was written).
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(tx) => tx.commit().await?,
            Self::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls back.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the connection fails (the server rolls back anyway).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(tx) => tx.rollback().await?,
            Self::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

impl<'c> From<Transaction<'c, Postgres>> for StoreTx<'c> {
    /// Wraps a transaction the caller opened on its own pool of the same database.
    fn from(tx: Transaction<'c, Postgres>) -> Self {
        Self::Postgres(tx)
    }
}

impl<'c> From<Transaction<'c, Sqlite>> for StoreTx<'c> {
    /// Wraps a transaction the caller opened on the same SQLite file. Open it with
    /// `BEGIN IMMEDIATE` (as [`Store::begin`] does): a deferred transaction that reads and
    /// then writes can fail with `SQLITE_BUSY` without waiting.
    fn from(tx: Transaction<'c, Sqlite>) -> Self {
        Self::Sqlite(tx)
    }
}

/// How every SQLite write transaction of the store starts: take the write lock up front, so
/// concurrent writers queue on `busy_timeout` instead of failing on upgrade.
pub(crate) const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";

/// A SQLite write transaction and the turn it holds ([`Store::begin_in_turn`]).
pub(crate) type InTurn<'a> = (
    tokio::sync::MutexGuard<'a, ()>,
    Transaction<'static, Sqlite>,
);

impl Store {
    /// SQLite: `BEGIN IMMEDIATE` once the writers of the step path of this store that came
    /// before it (the batches of step commits, claims and callbacks, `group::SqliteWrites`;
    /// the due scan's claims; a reconciliation step's commit) have had their turn, first
    /// come, first served; the guard keeps the turn until it drops, after `COMMIT`.
    ///
    /// SQLite's own wait for its write lock (`busy_timeout`) polls with growing sleeps (1,
    /// 2, 5, 10, 15, 20, 25 ms …): a writer that arrives while another commits back to back
    /// can sleep through every moment the lock is free (a claim or a callback queued behind
    /// a stream of step commits waited tens of milliseconds when each kind wrote apart).
    /// Writers of other stores and processes still meet on SQLite's lock.
    ///
    /// # Errors
    /// [`StoreError::Database`] when no connection is available or `BEGIN` fails.
    pub(crate) async fn begin_in_turn(
        &self,
        pool: &sqlx::SqlitePool,
    ) -> Result<InTurn<'_>, StoreError> {
        let turn = self.write_turn.lock().await;
        Ok((turn, pool.begin_with(SQLITE_BEGIN).await?))
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE` on SQLite).
    ///
    /// # Errors
    /// [`StoreError::Database`] when no connection is available or `BEGIN` fails.
    pub async fn begin(&self) -> Result<StoreTx<'static>, StoreError> {
        Ok(match &self.backend {
            Backend::Postgres(pool) => StoreTx::Postgres(pool.begin().await?),
            Backend::Sqlite(pool) => StoreTx::Sqlite(pool.begin_with(SQLITE_BEGIN).await?),
        })
    }
}
