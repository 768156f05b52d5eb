//! Errors a caller branches on: a database not available now (worth waiting for) against
//! one that answers with a refusal.

use std::time::{Duration, Instant};

use store::testing::TestDb;
use store::{Store, StoreOptions};

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

/// A server that refuses connections is told at once, with the reason, by a store opened
/// with the default options: before, the pool tried again for its whole acquire timeout
/// (10 s) and only then said why, so `finflow status` against a stopped server hung 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_server_refusing_connections_is_told_at_once() {
    let started = Instant::now();
    // Nothing listens on port 9 (discard) of this machine.
    let refused = Store::connect("postgres://postgres@127.0.0.1:9/finflow?sslmode=disable")
        .await
        .expect_err("no store");
    let took = started.elapsed();
    assert!(refused.is_unavailable(), "{refused:?}");
    let mut reasons = Vec::new();
    let mut error: Option<&dyn std::error::Error> = Some(&refused);
    while let Some(e) = error {
        reasons.push(e.to_string());
        error = e.source();
    }
    assert!(
        reasons.iter().any(|r| r.contains("refused")),
        "the reason named: {reasons:?}"
    );
    assert!(
        took < StoreOptions::default().acquire_timeout / 2,
        "told after {took:?}"
    );
}
