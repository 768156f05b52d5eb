//! The shared rate limiter: pauses only move later and are announced; the bucket is leased
//! in batches, shared and atomic.

use chrono::{TimeDelta, Utc};
use std::time::Duration;

use store::testing::TestDb;
use store::{Bucket, Heard};

store::test_both_backends!(
    a_pause_keeps_the_later_time,
    the_token_bucket_is_shared_and_atomic,
    a_lease_reserves_a_batch_in_time_slots,
    a_pause_is_announced_to_every_listener
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
    let lease = store.lease_tokens(scope, &SLOW, 1).await.expect("lease");
    assert_eq!(lease.granted, 0, "granted while paused");
    assert_eq!(lease.paused_until.map(ms), Some(ms(longer)));
}

/// Refills one token in 1000 s: only the capacity is there during a test.
const SLOW: Bucket = Bucket {
    per_second: 0.001,
    capacity: 5.0,
    horizon: Duration::from_secs(1000),
};

async fn the_token_bucket_is_shared_and_atomic(db: TestDb) {
    let store = &db.store;
    // Twelve concurrent leases of one token each: the capacity and one reserved ahead
    // (the horizon refills one), never more.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.lease_tokens("finfra:bucket", &SLOW, 1).await
        }));
    }
    let mut leases = Vec::new();
    for task in tasks {
        leases.push(task.await.expect("task").expect("lease"));
    }
    let granted: u32 = leases.iter().map(|l| l.granted).sum();
    assert_eq!(
        granted, 6,
        "the capacity and the horizon's one, across callers: {leases:?}"
    );
    // Each granted token is its own slot: five at once, the sixth when it is refilled.
    let mut ready: Vec<Duration> = leases
        .iter()
        .filter(|l| l.granted == 1)
        .map(|l| l.ready_after(0, &SLOW))
        .collect();
    ready.sort();
    assert_eq!(ready[..5], [Duration::ZERO; 5]);
    assert!(ready[5] > Duration::from_secs(900), "{ready:?}");
    let refused = leases.iter().find(|l| l.granted == 0).expect("a refusal");
    assert!(
        refused
            .retry_in
            .is_some_and(|wait| wait > Duration::from_secs(900)),
        "{refused:?}"
    );
    assert!(
        store
            .lease_tokens(
                "finfra:bucket",
                &Bucket {
                    per_second: 0.0,
                    ..SLOW
                },
                1
            )
            .await
            .is_err(),
        "the rate must be positive"
    );
}

async fn a_lease_reserves_a_batch_in_time_slots(db: TestDb) {
    let store = &db.store;
    let bucket = Bucket {
        per_second: 10.0,
        capacity: 4.0,
        horizon: Duration::from_secs(1),
    };
    // A new scope is full: 4 at once, then 10 more over the next second.
    let first = store
        .lease_tokens("finfra:batch", &bucket, 30)
        .await
        .expect("lease");
    assert_eq!(first.granted, 14, "{first:?}");
    assert_eq!(first.available, 4.0);
    assert_eq!(first.ready_after(3, &bucket), Duration::ZERO);
    assert_eq!(first.ready_after(13, &bucket), Duration::from_secs(1));
    // Everything within the horizon is reserved: the next token fits 0.1 s after the first
    // lease, less the time between the two (long on a busy machine; the first lease's
    // answer took some of it too).
    let leased = std::time::Instant::now();
    let second = store
        .lease_tokens("finfra:batch", &bucket, 5)
        .await
        .expect("lease");
    let between = leased.elapsed();
    assert_eq!(second.granted, 0, "{second:?}");
    let wait = second.retry_in.expect("a wait");
    let earliest = Duration::from_millis(60).saturating_sub(between);
    assert!(
        wait > earliest && wait <= Duration::from_millis(100),
        "{wait:?}, {between:?} after the first lease"
    );
}

async fn a_pause_is_announced_to_every_listener(db: TestDb) {
    let store = &db.store;
    let Some(mut listener) = store.listen_pauses().await.expect("listen") else {
        // SQLite: one process, nothing to announce to.
        return;
    };
    let other = store::Store::connect(&db.url)
        .await
        .expect("another process");
    let until = Utc::now() + TimeDelta::seconds(3);
    let stored = other.pause("finfra:heard", until).await.expect("pause");
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .expect("announced at once")
        .expect("listen");
    match heard {
        Heard::Pause(notice) => {
            assert_eq!(notice.scope, "finfra:heard");
            assert_eq!(notice.until, stored);
        }
        Heard::Reconnected => panic!("reconnected instead of hearing the pause"),
    }
    // A shorter pause announces the one in force.
    other
        .pause("finfra:heard", until - TimeDelta::seconds(2))
        .await
        .expect("pause");
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .expect("announced at once")
        .expect("listen");
    assert_eq!(
        heard,
        Heard::Pause(store::PauseNotice {
            scope: "finfra:heard".to_owned(),
            until: stored,
        })
    );
    other.close().await;
}
