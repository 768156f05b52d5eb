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
