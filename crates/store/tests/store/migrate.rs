//! Migrations: repeatable, concurrent, and beside apalis's own history.

use store::testing::{TestBackend, TestDb};
use store::{MIGRATIONS_TABLE, Store};

use crate::count;

store::test_both_backends!(unmigrated: migrate_twice_and_concurrently, histories_coexist_with_apalis);
store::test_both_backends!(a_pooled_sqlite_connection_stays_durable);

/// Four "processes" (independent pools) migrate a fresh database at the same time, then one
/// migrates again: all succeed and every migration is applied exactly once.
async fn migrate_twice_and_concurrently(db: TestDb) {
    let mut racers = Vec::new();
    for _ in 0..4 {
        let other = Store::connect(&db.url).await.expect("another store");
        racers.push(tokio::spawn(async move {
            let migrated = other.migrate().await;
            other.close().await;
            migrated
        }));
    }
    for racer in racers {
        racer.await.expect("task").expect("a concurrent migrate");
    }
    db.store.migrate().await.expect("migrate again");

    let ours = count(
        &db.store,
        "SELECT count(*) FROM finflow_migrations WHERE success",
    )
    .await;
    let expected = if db.backend == TestBackend::Postgres {
        4
    } else {
        3
    };
    assert_eq!(ours, expected, "each of our migrations applied once");
    // The schema is there and usable.
    assert_eq!(count(&db.store, "SELECT count(*) FROM workflows").await, 0);
    assert_eq!(
        count(&db.store, "SELECT count(*) FROM workflow_status_counts").await,
        0
    );
}

/// Our history (`finflow_migrations`) and apalis's (`apalis._sqlx_migrations` on
/// PostgreSQL, `_sqlx_migrations` on SQLite) live side by side in one database: apalis's own
/// `setup()` and our `migrate()` run in either order, repeatedly, without tripping over the
/// other's versions.
async fn histories_coexist_with_apalis(db: TestDb) {
    assert_eq!(MIGRATIONS_TABLE, "finflow_migrations");
    match db.store.backend() {
        store::Backend::Postgres(pool) => {
            apalis_postgres::PostgresStorage::setup(pool)
                .await
                .expect("apalis setup first");
            db.store
                .migrate()
                .await
                .expect("our migrate after apalis's");
            apalis_postgres::PostgresStorage::setup(pool)
                .await
                .expect("apalis setup again");
            db.store.migrate().await.expect("our migrate again");
            let apalis = count(&db.store, "SELECT count(*) FROM apalis._sqlx_migrations").await;
            let expected = apalis_postgres::PostgresStorage::migrations()
                .iter()
                .count() as i64;
            assert_eq!(apalis, expected, "apalis's history is complete and its own");
            let public: Option<String> =
                sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations')::text")
                    .fetch_one(pool)
                    .await
                    .expect("regclass");
            assert_eq!(public, None, "nobody wrote the default history table");
        }
        store::Backend::Sqlite(pool) => {
            db.store.migrate().await.expect("our migrate first");
            apalis_sqlite::SqliteStorage::setup(pool)
                .await
                .expect("apalis setup after ours");
            db.store.migrate().await.expect("our migrate again");
            apalis_sqlite::SqliteStorage::setup(pool)
                .await
                .expect("apalis setup again");
            let apalis = count(&db.store, "SELECT count(*) FROM _sqlx_migrations").await;
            let expected = apalis_sqlite::SqliteStorage::migrations().iter().count() as i64;
            assert_eq!(apalis, expected, "apalis's history is complete and its own");
        }
    }
    let ours: Vec<i64> = match db.store.backend() {
        store::Backend::Postgres(pool) => {
            sqlx::query_scalar("SELECT version FROM finflow_migrations ORDER BY version")
                .fetch_all(pool)
                .await
        }
        store::Backend::Sqlite(pool) => {
            sqlx::query_scalar("SELECT version FROM finflow_migrations ORDER BY version")
                .fetch_all(pool)
                .await
        }
    }
    .expect("our history");
    let expected: Vec<i64> = if db.backend == TestBackend::Postgres {
        vec![1, 2, 3, 4]
    } else {
        vec![1, 2, 3]
    };
    assert_eq!(ours, expected);
}

/// On SQLite every pooled connection commits with `synchronous=FULL` (2), WAL, a busy
/// timeout and foreign keys, even after apalis-sqlite's `setup()` (which sets
/// `synchronous=OFF` on the connection it uses) ran on the pool. PostgreSQL has no such
/// setting to lose; its variant checks the session is a normal durable one.
async fn a_pooled_sqlite_connection_stays_durable(db: TestDb) {
    match db.store.backend() {
        store::Backend::Sqlite(pool) => {
            apalis_sqlite::SqliteStorage::setup(pool)
                .await
                .expect("apalis setup on our pool");
            // Hold every connection of the pool at once, so each one is checked.
            let max = pool.options().get_max_connections();
            let mut held = Vec::new();
            for _ in 0..max {
                held.push(pool.acquire().await.expect("acquire"));
            }
            for conn in &mut held {
                let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                assert_eq!(
                    synchronous, 2,
                    "synchronous=FULL on every pooled connection"
                );
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                assert_eq!(journal, "wal");
                let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                assert_eq!(fk, 1);
                let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                assert!(busy >= 1000, "busy_timeout is set ({busy} ms)");
            }
        }
        store::Backend::Postgres(pool) => {
            let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(pool)
                .await
                .expect("show");
            assert_ne!(sync, "off");
        }
    }
}
