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

/// A SQLite connection ready for a write transaction, and the turn it holds
/// ([`Store::turn_to_write`]): the caller begins it, `sqlx::Connection::begin_with(&mut *conn,
/// SQLITE_BEGIN)`.
pub(crate) type InTurn<'a> = (
    tokio::sync::MutexGuard<'a, ()>,
    sqlx::pool::PoolConnection<Sqlite>,
);

/// How a SQLite write transaction's commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqliteSync {
    /// `synchronous = FULL`, as every connection of the store runs: the WAL is synced
    /// before the commit returns.
    Full,
    /// `synchronous = NORMAL` for this one transaction: its commit returns without syncing
    /// the WAL. For claims alone, as PostgreSQL's claims skip their WAL flush
    /// (`crate::claim`): nothing outside the database acts on a claim before its holder
    /// commits a step, and that commit (`Full`) syncs the WAL, the claim's frames before its
    /// own. A process that dies loses nothing of it either (the WAL is the operating
    /// system's to write); only a machine that stops first can take a claim back, and then
    /// the workflow is due and free again, as after any lost claim.
    Normal,
}

impl Store {
    /// SQLite: a connection for a write transaction (`BEGIN IMMEDIATE`, which the caller
    /// sends) once the writers of the step path of this store that came before it (the
    /// batches of step commits, claims and callbacks, `group::SqliteWrites`; the due scan's
    /// claims; a reconciliation step's commit) have had their turn, first come, first served;
    /// the guard keeps the turn until it drops, after `COMMIT`. With [`SqliteSync::Normal`]
    /// the connection runs `synchronous = NORMAL` until it goes back to the pool, where the
    /// store's `after_release` sets `FULL` again (SQLite refuses the change inside a
    /// transaction, so it comes before `BEGIN`).
    ///
    /// SQLite's own wait for its write lock (`busy_timeout`) polls with growing sleeps (1,
    /// 2, 5, 10, 15, 20, 25 ms …): a writer that arrives while another commits back to back
    /// can sleep through every moment the lock is free (a claim or a callback queued behind
    /// a stream of step commits waited tens of milliseconds when each kind wrote apart).
    /// Writers of other stores and processes still meet on SQLite's lock.
    ///
    /// # Errors
    /// [`StoreError::Database`] when no connection is available or `BEGIN` fails.
    pub(crate) async fn turn_to_write(
        &self,
        pool: &sqlx::SqlitePool,
        sync: SqliteSync,
    ) -> Result<InTurn<'_>, StoreError> {
        let turn = self.write_turn.lock().await;
        let mut conn = pool.acquire().await?;
        if sync == SqliteSync::Normal {
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *conn)
                .await?;
        }
        Ok((turn, conn))
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
