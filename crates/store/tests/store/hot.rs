//! The step path keeps the PostgreSQL connections it just used (`store`'s `hot` module):
//! never more than half the pool, never for long, and never past `close`.

use std::time::{Duration, Instant};

use store::testing::TestDb;
use store::{Store, StoreOptions};

use crate::new_workflow;

store::test_both_backends!(kept_connections_go_back_to_the_pool);

async fn kept_connections_go_back_to_the_pool(db: TestDb) {
    if !crate::is_postgres(db.backend) {
        return; // SQLite keeps none
    }
    let store = Store::connect_with(
        &db.url,
        &StoreOptions {
            max_connections: Some(2),
            ..StoreOptions::default()
        },
    )
    .await
    .expect("a store of two connections");
    let pool = store.pg_pool().expect("PostgreSQL").clone();

    // A burst of step-path statements: the pool never needs more than its two.
    for i in 0..20 {
        store
            .submit(&new_workflow(&format!("hot-{i}")))
            .await
            .expect("submit");
    }
    // The kept connection is one the pool counts as lent; the other half stays free.
    let first = tokio::time::timeout(Duration::from_secs(2), pool.acquire())
        .await
        .expect("half the pool is never kept")
        .expect("a connection");
    // The kept one goes back within a fraction of a second, so a second caller gets it.
    let started = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(2), pool.acquire())
        .await
        .expect("a kept connection goes back soon")
        .expect("a connection");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop((first, second));

    // Closing waits for lent connections: the kept ones are given back at once.
    store
        .submit(&new_workflow("hot-last"))
        .await
        .expect("submit");
    tokio::time::timeout(Duration::from_secs(2), store.close())
        .await
        .expect("close returns: kept connections are given back");
}

/// `StoreError::is_unavailable` tells a database that cannot be reached or does not accept
/// connections now (worth waiting for) from one that answers with a refusal that waiting
/// does not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_database_not_available_now_is_told_from_one_that_does_not_exist() {
    store::testing::run(
        store::testing::TestBackend::Postgres,
        false,
        unavailable_or_not,
    )
    .await;
}

async fn unavailable_or_not(db: TestDb) {
    use std::str::FromStr as _;
    let connect = |url: String| async move {
        let options = StoreOptions {
            acquire_timeout: Duration::from_secs(1),
            ..StoreOptions::default()
        };
        Store::connect_with(&url, &options)
            .await
            .expect_err("no store")
    };
    // Nothing listens on port 9 (discard) of this machine.
    let refused = connect("postgres://postgres@127.0.0.1:9/finflow?sslmode=disable".into()).await;
    assert!(refused.is_unavailable(), "{refused:?}");

    let pg = sqlx::postgres::PgConnectOptions::from_str(&db.url).expect("the test URL");
    let name = pg.get_database().expect("a database name").to_owned();
    let missing = connect(db.url.replace(&name, "finflow_no_such_database")).await;
    assert!(!missing.is_unavailable(), "{missing:?}");
    assert!(!missing.is_transient(), "{missing:?}");

    let admin = sqlx::PgPool::connect_with(pg.database("postgres"))
        .await
        .expect("an admin session");
    let allow = |yes: bool| format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {yes}");
    sqlx::query(sqlx::AssertSqlSafe(allow(false)))
        .execute(&admin)
        .await
        .expect("refuse connections");
    let refusing = connect(db.url.clone()).await;
    sqlx::query(sqlx::AssertSqlSafe(allow(true)))
        .execute(&admin)
        .await
        .expect("accept connections");
    assert!(refusing.is_unavailable(), "{refusing:?}");
}
