//! `finflow migrate`: apalis's schema, then ours, on a dedicated connection; safe to run
//! repeatedly and from several processes at once.
//!
//! * Histories: apalis keeps its own (`apalis._sqlx_migrations` on PostgreSQL,
//!   `_sqlx_migrations` on SQLite); ours is `finflow_migrations` on both, so neither migrator
//!   sees the other's versions as unknown.
//! * A dedicated connection, closed afterwards: a failed `Migrator::run` keeps sqlx's advisory
//!   lock on its connection, and a pooled one would hand that lock to the next migrator.
//! * Concurrency: on PostgreSQL sqlx's advisory lock serializes migrators (apalis's and ours
//!   use the same lock, one after the other). On SQLite sqlx takes no lock, so the whole run
//!   happens in one `BEGIN IMMEDIATE` transaction: a second process waits for the write lock,
//!   then finds everything applied. sqlx nests each migration in a savepoint.
//! * apalis-sqlite's `setup()` is not called: besides its migrations it sets
//!   `synchronous=OFF` (and cache pragmas) on a pooled connection. Our pool's connections
//!   already run WAL and `synchronous=FULL`.
//! * Data a migration cannot compute in SQL: SQLite has no SHA-256, so the identity keys of
//!   existing onboardings (`workflows.identity_key`, see `identity`) are filled in Rust after
//!   our migrations, in the same transaction; the fill is idempotent and finds nothing to do
//!   once done.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::connect::sqlite_durable;
use crate::error::StoreError;
use crate::identity::backfill_sqlite;
use crate::tx::SQLITE_BEGIN;
use crate::{Backend, Store};

/// Name of finflow's migration history table, on both backends.
pub const MIGRATIONS_TABLE: &str = "finflow_migrations";

/// How long a second migrating process waits for the first (SQLite write lock).
const SQLITE_MIGRATE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

fn ours_postgres() -> Migrator {
    let mut m = sqlx::migrate!("../../migrations/postgres");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

fn ours_sqlite() -> Migrator {
    let mut m = sqlx::migrate!("../../migrations/sqlite");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// `migrator` without the migrations after `last` (`None`: all of them).
fn up_to(mut migrator: Migrator, last: Option<i64>) -> Migrator {
    if let Some(last) = last {
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|m| m.version <= last)
            .cloned()
            .collect::<Vec<_>>()
            .into();
    }
    migrator
}

impl Store {
    /// Applies apalis's migrations and then finflow's. Idempotent; concurrent runs (several
    /// processes) wait for each other.
    ///
    /// # Errors
    /// [`StoreError::Migrate`] when a migration fails or the database holds a migration this
    /// build does not know (a newer finflow migrated it); [`StoreError::Database`] when the
    /// dedicated connection cannot be opened.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_up_to(None).await
    }

    /// [`Store::migrate`], stopping after our migration `last` (`None`: all), and without the
    /// Rust fill of SQLite's identity keys unless all ran: for tests that build a database
    /// as an older finflow left it and then upgrade it.
    pub(crate) async fn migrate_up_to(&self, last: Option<i64>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
                let result = migrate_postgres(&mut conn, last).await;
                // Closing releases the advisory lock a failed run may still hold.
                let closed = conn.close().await;
                result?;
                closed?;
            }
            Backend::Sqlite(pool) => {
                let options = sqlite_durable(
                    (*pool.connect_options()).clone(),
                    SQLITE_MIGRATE_BUSY_TIMEOUT,
                );
                let mut conn = SqliteConnection::connect_with(&options).await?;
                let result = migrate_sqlite(&mut conn, last).await;
                let closed = conn.close().await;
                result?;
                closed?;
            }
        }
        tracing::debug!("database migrated");
        Ok(())
    }
}

/// What identifies the PostgreSQL schema this build migrates to: the lowercase hex SHA-256
/// of apalis's migrations and ours (versions and checksums), in the order they run. Test
/// databases copy one template per digest (`testing`).
#[cfg(feature = "testing")]
pub(crate) fn postgres_digest() -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for migrator in [
        apalis_postgres::PostgresStorage::migrations(),
        ours_postgres(),
    ] {
        for migration in migrator.iter() {
            hash.update(migration.version.to_be_bytes());
            hash.update(&*migration.checksum);
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

// `run_direct` is `Migrator::run` on a connection we already hold. `run(&mut conn)` would do
// the same, but its `Acquire<'a>` bound makes the future not `Send` (sqlx's own comment on
// `run_direct`), and the worker must be able to spawn `migrate()`.
pub(crate) async fn migrate_postgres(
    conn: &mut PgConnection,
    last: Option<i64>,
) -> Result<(), StoreError> {
    apalis_postgres::PostgresStorage::migrations()
        .run_direct(None, conn, false)
        .await?;
    up_to(ours_postgres(), last)
        .run_direct(None, conn, false)
        .await?;
    Ok(())
}

async fn migrate_sqlite(conn: &mut SqliteConnection, last: Option<i64>) -> Result<(), StoreError> {
    let mut tx = conn.begin_with(SQLITE_BEGIN).await?;
    apalis_sqlite::SqliteStorage::migrations()
        .run_direct(None, &mut *tx, false)
        .await?;
    up_to(ours_sqlite(), last)
        .run_direct(None, &mut *tx, false)
        .await?;
    if last.is_none() {
        backfill_sqlite(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ours_postgres, ours_sqlite};

    /// Every migration of this build is as it landed (`migrations/landed.sha384`): a
    /// database records each migration's checksum and refuses to upgrade when a file it ran
    /// was edited since, even in a comment.
    #[test]
    fn a_landed_migration_is_never_edited() {
        let landed = include_str!("../../../migrations/landed.sha384");
        for (backend, migrator) in [("postgres", ours_postgres()), ("sqlite", ours_sqlite())] {
            for migration in migrator.iter() {
                let checksum: String = migration
                    .checksum
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let line = format!("{backend} {} {checksum}", migration.version);
                let listed = landed
                    .lines()
                    .find(|l| l.starts_with(&format!("{backend} {} ", migration.version)));
                match listed {
                    Some(listed) => assert_eq!(
                        listed, line,
                        "{backend} migration {} ({}) differs from the one that landed: \
                         databases that ran it refuse to upgrade; put it back as it was and \
                         write the change as a new migration",
                        migration.version, migration.description
                    ),
                    None => panic!(
                        "{backend} migration {} ({}) is not in migrations/landed.sha384: \
                         add the line `{line}` (and edit the migration no more once it landed)",
                        migration.version, migration.description
                    ),
                }
            }
        }
    }
}
