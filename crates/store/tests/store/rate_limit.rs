//! The shared rate limiter: pauses only move later; the bucket is shared and atomic.

use chrono::{TimeDelta, Utc};
use store::Permit;
use store::testing::TestDb;

store::test_both_backends!(
    a_pause_keeps_the_later_time,
    the_token_bucket_is_shared_and_atomic
);

async fn a_pause_keeps_the_later_time(db: TestDb) {
    let store = &db.store;
    let scope = "finfra:client-1";
    assert_eq!(store.paused_until(scope).await.expect("read"), None);
    let ms = |t: chrono::DateTime<Utc>| t.timestamp_millis();

    let now = Utc::now();
    let long = now + TimeDelta::seconds(20);
    let short = now + TimeDelta::seconds(5);
    assert_eq!(ms(store.pause(scope, long).await.expect("pause")), ms(long));
    assert_eq!(
        ms(store.pause(scope, short).await.expect("pause")),
        ms(long),
        "a shorter pause never shortens"
    );
    assert_eq!(
        store.paused_until(scope).await.expect("read").map(ms),
        Some(ms(long))
    );
    let longer = now + TimeDelta::seconds(30);
    assert_eq!(
        ms(store.pause(scope, longer).await.expect("pause")),
        ms(longer)
    );

    // Concurrent pauses from a fleet: the latest wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .pause("finfra:client-2", now + TimeDelta::seconds(i))
                .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("pause");
    }
    assert_eq!(
        store
            .paused_until("finfra:client-2")
            .await
            .expect("read")
            .map(ms),
        Some(ms(now + TimeDelta::seconds(9)))
    );

    // A pause in the past is no pause; another scope is not paused.
    store
        .pause("finfra:client-3", now - TimeDelta::seconds(1))
        .await
        .expect("pause");
    assert_eq!(
        store.paused_until("finfra:client-3").await.expect("read"),
        None
    );
    assert_eq!(
        store.paused_until("finfra:other").await.expect("read"),
        None
    );

    // A paused scope grants no token.
    match store
        .try_acquire(scope, 100.0, 10.0)
        .await
        .expect("acquire")
    {
        Permit::Wait(wait) => assert!(wait.as_secs() >= 25, "{wait:?}"),
        Permit::Granted => panic!("granted while paused"),
    }
}

async fn the_token_bucket_is_shared_and_atomic(db: TestDb) {
    let store = &db.store;
    // Slow refill: only the burst is available during the test.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.try_acquire("finfra:bucket", 0.001, 5.0).await
        }));
    }
    let mut granted = 0;
    for task in tasks {
        if task.await.expect("task").expect("acquire") == Permit::Granted {
            granted += 1;
        }
    }
    assert_eq!(
        granted, 5,
        "exactly the burst is granted across concurrent callers"
    );
    match store
        .try_acquire("finfra:bucket", 0.001, 5.0)
        .await
        .expect("acquire")
    {
        Permit::Wait(wait) => assert!(wait.as_secs() > 100, "{wait:?}"),
        Permit::Granted => panic!("bucket should be empty"),
    }
    assert!(
        store.try_acquire("finfra:bucket", 0.0, 5.0).await.is_err(),
        "rate must be positive"
    );
}
