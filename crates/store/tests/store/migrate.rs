//! Migrations: repeatable, concurrent, beside apalis's own history, and upgrading a
//! database an older finflow left.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::testing::{TestBackend, TestDb};
use store::{
    CorrelationKey, MIGRATIONS_TABLE, NewWorkflow, ReturningBorrower, Status, Store, StoreError,
    StoreTx, Wait,
};
use uuid::Uuid;

use crate::count;
use crate::inbox::user_event;

store::test_both_backends!(
    unmigrated: migrate_twice_and_concurrently,
    histories_coexist_with_apalis,
    upgrade_fills_identity_keys_of_existing_onboardings,
    an_upgraded_workflow_commits_and_hears_callbacks_through_the_new_functions,
    a_workflow_of_the_previous_build_commits_through_the_group_commit,
    the_previous_builds_rows_are_found_alike_after_the_step_indexes_changed,
    a_workflow_of_the_build_before_the_step_indexes_finishes,
    a_workflow_of_the_build_before_own_hints_finds_its_early_callback,
    a_callback_stored_before_the_inbox_indexes_changed_is_found_by_its_wait,
    a_workflow_of_the_build_before_batches_were_parsed_once_finishes,
    a_callback_stored_after_the_upgrade_before_its_wait_is_found_by_it,
    the_previous_builds_rows_are_found_alike_after_the_fact_ids_became_columns,
    fact_ids_recorded_after_the_upgrade_are_found,
    a_workflow_in_flight_across_the_hold_for_events_is_kept_for_its_holder,
    a_workflow_kept_by_the_build_before_goes_on_after_its_row_is_written_once,
    the_previous_builds_rows_are_found_alike_after_the_changing_columns_moved,
    a_workflow_of_the_build_before_the_changing_columns_moved_finishes,
    a_callback_stored_before_the_wait_match_changed_is_found_by_its_wait,
    a_workflow_of_the_build_before_the_wait_match_changed_finishes,
    a_callback_matched_before_the_index_entries_changed_is_brought_by_the_claim,
    a_workflow_of_the_build_before_the_index_entries_changed_finishes,
    a_workflow_of_the_build_before_batches_were_written_statement_by_statement_finishes,
    a_workflow_of_the_build_before_callbacks_were_stored_statement_by_statement_finishes,
    a_workflow_of_the_build_before_the_indexes_held_only_what_is_read_finishes,
    the_previous_builds_rows_are_found_alike_after_the_context_moved_last,
    a_workflow_of_the_build_before_the_context_moved_last_finishes,
    the_previous_builds_rows_are_found_alike_after_settled_statuses_were_indexed,
    a_workflow_of_the_build_before_settled_statuses_were_indexed_finishes,
    a_workflow_waiting_when_its_waits_became_one_row_per_key_is_woken,
    a_workflow_of_the_build_before_waits_were_one_row_per_key_finishes,
);
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
    let expected = i64::try_from(shipped_versions(db.backend).len()).expect("a few");
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
    assert_eq!(ours, shipped_versions(db.backend));
}

/// The versions of the migration files shipped for `backend` (`migrations/<backend>/NNNN_*.sql`).
fn shipped_versions(backend: TestBackend) -> Vec<i64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(if backend == TestBackend::Postgres {
            "postgres"
        } else {
            "sqlite"
        });
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .expect("migrations folder")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    assert!(versions.len() >= 4, "migrations found in {}", dir.display());
    versions
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

/// Our last migration before `workflows.identity_key`.
fn before_identity_keys(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 4,
        TestBackend::Sqlite => 3,
    }
}

/// An onboarding input naming the borrower's NIK.
fn onboarding_input(nik: &str, note: &str) -> Value {
    json!({
        "borrower": {
            "type": "PERSONAL",
            "authorised_signatory": { "documents": { "ktp": { "number": nik } } }
        },
        "note": note
    })
}

/// A `workflows` row as the previous schema holds it (no `identity_key`), written the way
/// that finflow wrote them.
struct OldRow {
    key: String,
    kind: &'static str,
    status: &'static str,
    input: Value,
    facts: Value,
    created_at: DateTime<Utc>,
}

impl OldRow {
    fn new(key: &str, kind: &'static str, status: &'static str, input: Value) -> Self {
        Self {
            key: key.to_owned(),
            kind,
            status,
            input,
            facts: json!({}),
            created_at: Utc::now(),
        }
    }
}

fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

async fn insert_old(tx: &mut StoreTx<'_>, row: &OldRow) -> Uuid {
    let id = Uuid::new_v4();
    let terminal = matches!(row.status, "completed" | "failed" | "cancelled");
    let finished_at = terminal.then_some(row.created_at);
    match tx {
        StoreTx::Postgres(tx) => {
            sqlx::query(
                "INSERT INTO workflows (id, kind, business_key, definition_name, status, state, \
                 input, input_hash, facts, created_at, updated_at, finished_at) \
                 VALUES ($1, $2, $3, $2, $4, 'new', $5, \
                 encode(sha256(convert_to($5::text, 'UTF8')), 'hex'), $6, $7, $7, $8)",
            )
            .bind(id)
            .bind(row.kind)
            .bind(&row.key)
            .bind(row.status)
            .bind(&row.input)
            .bind(&row.facts)
            .bind(row.created_at)
            .bind(finished_at)
            .execute(&mut **tx)
            .await
            .expect("an old row");
        }
        StoreTx::Sqlite(tx) => {
            // The store's canonical JSON: serde_json prints object keys sorted (the
            // workspace does not enable `preserve_order`), compact.
            let input = row.input.to_string();
            let hash: String = Sha256::digest(input.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            sqlx::query(
                "INSERT INTO workflows (id, kind, business_key, definition_name, status, state, \
                 input, input_hash, facts, created_at, updated_at, finished_at) \
                 VALUES ($1, $2, $3, $2, $4, 'new', $5, $6, $7, $8, $8, $9)",
            )
            .bind(id.to_string())
            .bind(row.kind)
            .bind(&row.key)
            .bind(row.status)
            .bind(input)
            .bind(hash)
            .bind(row.facts.to_string())
            .bind(sqlite_time(row.created_at))
            .bind(finished_at.map(sqlite_time))
            .execute(&mut **tx)
            .await
            .expect("an old row");
        }
    }
    id
}

/// Every row's `(business_key, (kind, input, identity_key))`.
async fn identity_keys(store: &Store) -> BTreeMap<String, (String, Value, Option<String>)> {
    let sql = "SELECT business_key, kind, input, identity_key FROM workflows";
    match store.backend() {
        store::Backend::Postgres(pool) => {
            sqlx::query_as::<_, (String, String, Value, Option<String>)>(sql)
                .fetch_all(pool)
                .await
                .expect("rows")
                .into_iter()
                .map(|(key, kind, input, identity)| (key, (kind, input, identity)))
                .collect()
        }
        store::Backend::Sqlite(pool) => {
            sqlx::query_as::<_, (String, String, String, Option<String>)>(sql)
                .fetch_all(pool)
                .await
                .expect("rows")
                .into_iter()
                .map(|(key, kind, input, identity)| {
                    let input = serde_json::from_str(&input).expect("JSON input");
                    (key, (kind, input, identity))
                })
                .collect()
        }
    }
}

/// A database at the previous schema with onboardings (two unfinished ones of one borrower,
/// one without a NIK, one with a key the new rule refuses, more than a backfill batch of
/// others) and a loan is upgraded: every onboarding with a NIK gets its identity key (the
/// same the Rust store derives, on PostgreSQL computed by the migration's SQL), the rest stay
/// NULL, nothing else changes, the duplicates survive, and a second migrate changes nothing.
/// Afterwards the rules hold against the old rows.
async fn upgrade_fills_identity_keys_of_existing_onboardings(db: TestDb) {
    let store = &db.store;
    store::testing::migrate_up_to(store, before_identity_keys(db.backend))
        .await
        .expect("the previous schema");

    let (nik_a, nik_b) = ("3275062009921981", "3275064107850003");
    let start = Utc::now() - chrono::Duration::hours(1);
    let mut rows = vec![
        OldRow::new(
            "old-1",
            "onboard-borrower",
            "pending",
            onboarding_input(nik_a, "1"),
        ),
        OldRow::new(
            "old-2",
            "onboard-borrower",
            "needs_attention",
            onboarding_input(nik_a, "2"),
        ),
        OldRow {
            facts: json!({ "user_id": "user-b" }),
            ..OldRow::new(
                "old-3",
                "onboard-borrower",
                "completed",
                onboarding_input(nik_b, "3"),
            )
        },
        OldRow::new(
            "old-4",
            "onboard-borrower",
            "failed",
            json!({ "borrower": {} }),
        ),
        OldRow::new(
            "loan-1",
            "originate-loan",
            "pending",
            onboarding_input(nik_a, "loan"),
        ),
        OldRow::new(
            " bad key\n",
            "onboard-borrower",
            "pending",
            onboarding_input("3275060101010001", "x"),
        ),
    ];
    for i in 0..1_200 {
        rows.push(OldRow::new(
            &format!("bulk-{i}"),
            "onboard-borrower",
            "completed",
            onboarding_input(&format!("32{i:014}"), "bulk"),
        ));
    }
    for (i, row) in rows.iter_mut().enumerate() {
        row.created_at = start + chrono::Duration::seconds(i64::try_from(i).expect("small"));
    }
    let mut tx = store.begin().await.expect("begin");
    let mut ids = BTreeMap::new();
    for row in &rows {
        ids.insert(row.key.clone(), insert_old(&mut tx, row).await);
    }
    tx.commit().await.expect("commit");

    store.migrate().await.expect("the upgrade");

    let upgraded = identity_keys(store).await;
    assert_eq!(upgraded.len(), rows.len(), "no row added or lost");
    for (key, (kind, input, identity)) in &upgraded {
        assert_eq!(
            identity.as_deref(),
            store::identity_key(kind, input).as_deref(),
            "{key:?}"
        );
    }
    let filled = upgraded.values().filter(|(_, _, i)| i.is_some()).count();
    assert_eq!(
        filled,
        1_200 + 4,
        "every onboarding with a NIK, nothing else"
    );
    assert_eq!(
        upgraded["old-1"].2, upgraded["old-2"].2,
        "the duplicates kept"
    );
    assert!(
        upgraded[" bad key\n"].2.is_some(),
        "old keys stay as they are"
    );
    assert_eq!(upgraded["loan-1"].2, None);
    assert_eq!(upgraded["old-4"].2, None);
    let index =
        match db.backend {
            TestBackend::Postgres => count(
                store,
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'workflows_identity_key_idx'",
            )
            .await,
            TestBackend::Sqlite => {
                count(
                    store,
                    "SELECT count(*) FROM sqlite_master \
                 WHERE type = 'index' AND name = 'workflows_identity_key_idx'",
                )
                .await
            }
        };
    assert_eq!(index, 1, "identity_key is indexed");

    store.migrate().await.expect("migrate again");
    assert_eq!(
        identity_keys(store).await,
        upgraded,
        "a second run changes nothing"
    );

    // The rules against the old rows: the borrower of the two unfinished onboardings is held
    // (by the older), yet each of those keys still answers for itself.
    match store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "new-a",
            onboarding_input(nik_a, "new"),
        ))
        .await
    {
        Err(StoreError::OnboardingInProgress {
            business_key,
            workflow_id,
        }) => {
            assert_eq!(
                (business_key.as_str(), workflow_id),
                ("old-1", ids["old-1"])
            );
        }
        other => panic!("expected old-1 to hold the borrower, got {other:?}"),
    }
    let again = store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "old-2",
            onboarding_input(nik_a, "2"),
        ))
        .await
        .expect("the same key and input");
    assert_eq!((again.id, again.created), (ids["old-2"], false));

    // The completed one makes its borrower a returning borrower.
    let returning = store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "new-b",
            onboarding_input(nik_b, "new"),
        ))
        .await
        .expect("a returning borrower's onboarding");
    assert_eq!(
        store.returning_borrower(returning.id).await.expect("query"),
        Some(ReturningBorrower {
            business_key: "old-3".into(),
            workflow_id: ids["old-3"],
            user_id: "user-b".into(),
        })
    );
}

/// A workflow a database of the build before this one holds (written at its schema, before
/// the step commit, the claim and the callback became one call each on PostgreSQL) is
/// claimed, waits, hears its callback and finishes through the upgraded store.
async fn an_upgraded_workflow_commits_and_hears_callbacks_through_the_new_functions(db: TestDb) {
    let last = before_identity_keys(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The same from the schema of the build before group commit (PostgreSQL 0015; SQLite's
/// schema did not change): its workflow goes through `finflow_commit_steps`,
/// `finflow_record_callbacks` and the batched claim.
async fn a_workflow_of_the_previous_build_commits_through_the_group_commit(db: TestDb) {
    let last = match db.backend {
        TestBackend::Postgres => 15,
        TestBackend::Sqlite => 10,
    };
    upgraded_workflow_finishes(db, last).await;
}

/// A workflow written at schema `last`, then the store upgraded: claimed, waiting, woken by
/// its callback, finished.
async fn upgraded_workflow_finishes(db: TestDb, last: i64) {
    let store = &db.store;
    store::testing::migrate_up_to(store, last)
        .await
        .expect("the previous schema");
    let nik = "3275062009921981";
    let mut tx = store.begin().await.expect("tx");
    let id = insert_old(
        &mut tx,
        &OldRow::new(
            "old-due",
            "onboard-borrower",
            "pending",
            onboarding_input(nik, "due"),
        ),
    )
    .await;
    tx.commit().await.expect("commit");
    store.migrate().await.expect("upgrade");
    make_due(store, "old-due").await;

    let claimed = store
        .claim(id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("the old workflow is due");
    assert!(claimed.events.is_empty());
    store
        .commit_step(&verified_wait(&claimed, nik))
        .await
        .expect("a wait committed");

    let recorded = store
        .record_callback(&user_event("evt-upgraded", "user_verified", nik))
        .await
        .expect("record");
    assert_eq!(
        recorded.woke,
        Some(id),
        "the callback wakes the upgraded workflow"
    );

    let claimed = store
        .claim(id, "w2", crate::LEASE)
        .await
        .expect("claim")
        .expect("due after its callback");
    assert_eq!(claimed.events.len(), 1, "the claim brings its event");
    let mut done = crate::step(&claimed, "approved", Status::Completed, None);
    done.processed_events = vec![claimed.events[0].id];
    let committed = store.commit_step(&done).await.expect("finished");
    assert!(committed.pending_events.is_empty());
    assert_eq!(committed.seq, 2, "two journal rows");
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.status, Status::Completed);
}

/// The step of `claimed` that begins a wait for `user_verified` about the borrower with NIK
/// `nik`, without a deadline.
fn verified_wait(claimed: &store::Claimed, nik: &str) -> store::StepCommit {
    let mut wait = crate::step(claimed, "await_user_verified", Status::Waiting, None);
    wait.waits = vec![Wait::new(
        "user_verified",
        CorrelationKey::IdentityNumber,
        nik,
    )];
    wait
}

/// Migration PG 0017 / SQLite 0011 drop and narrow indexes of `workflows`: a database of the
/// build before it answers the console's filters, counts and stuck list with the same rows
/// after the upgrade (and a workflow of it finishes: the test after it).
async fn the_previous_builds_rows_are_found_alike_after_the_step_indexes_changed(db: TestDb) {
    let last = before_step_indexes(db.backend);
    rows_found_alike_after_upgrade(db, last).await;
}

/// Rows written at schema `last` are found by the console's filters (by user id, loan id,
/// status, kind and state) after the upgrade, and its counts and stuck list answer as they
/// did before it.
async fn rows_found_alike_after_upgrade(db: TestDb, last: i64) {
    let store = &db.store;
    store::testing::migrate_up_to(store, last)
        .await
        .expect("the previous schema");
    let mut tx = store.begin().await.expect("tx");
    let mut loan = OldRow::new("loan-1", "originate-loan", "completed", json!({"n": 1}));
    loan.facts = json!({"user_id": "u-1", "loan_unique_id": "L-1"});
    insert_old(&mut tx, &loan).await;
    let mut stuck = OldRow::new(
        "stuck",
        "onboard-borrower",
        "needs_attention",
        onboarding_input("3275062009921982", "stuck"),
    );
    stuck.facts = json!({"user_id": "u-2"});
    insert_old(&mut tx, &stuck).await;
    let plain = OldRow::new(
        "plain",
        "onboard-borrower",
        "completed",
        onboarding_input("3275062009921983", "plain"),
    );
    insert_old(&mut tx, &plain).await;
    tx.commit().await.expect("commit");

    let filters = [
        store::WorkflowFilter {
            user_id: Some("u-1".into()),
            ..store::WorkflowFilter::default()
        },
        store::WorkflowFilter {
            user_id: Some("u-2".into()),
            ..store::WorkflowFilter::default()
        },
        store::WorkflowFilter {
            loan_unique_id: Some("L-1".into()),
            ..store::WorkflowFilter::default()
        },
        store::WorkflowFilter {
            status: Some("needs_attention".into()),
            ..store::WorkflowFilter::default()
        },
        store::WorkflowFilter {
            kind: Some("onboard-borrower".into()),
            status: Some("completed".into()),
            state: Some("new".into()),
            ..store::WorkflowFilter::default()
        },
    ];
    // The filters' and the stuck list's SQL is this build's, which may read what the upgrade
    // adds (PG 0031's `status_settled`): they are compared with the rows written, the counts
    // (a view of the schema) with their answer before.
    let counts = || async move { format!("{:?}", store.status_counts().await.expect("counts")) };
    let before = counts().await;
    store.migrate().await.expect("upgrade");
    let mut found = Vec::new();
    for filter in &filters {
        let (rows, _) = store
            .list_workflows(filter, None, 50)
            .await
            .expect("a list");
        found.push(rows.into_iter().map(|w| w.business_key).collect::<Vec<_>>());
    }
    assert_eq!(
        found,
        [
            vec!["loan-1"],
            vec!["stuck"],
            vec!["loan-1"],
            vec!["stuck"],
            vec!["plain"]
        ],
        "the filters find their rows after the upgrade"
    );
    assert_eq!(counts().await, before, "the same counts");
    let (stuck, total) = store.stuck_page(20).await.expect("stuck");
    let stuck: Vec<String> = stuck.into_iter().map(|w| w.business_key).collect();
    assert_eq!(
        (stuck, total),
        (vec!["stuck".to_owned()], 1),
        "the stuck list"
    );
}

async fn a_workflow_of_the_build_before_the_step_indexes_finishes(db: TestDb) {
    let last = before_step_indexes(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// Migration PG 0018 replaces `finflow_commit_step` (a new wait finds the callbacks already
/// stored by primary key) and `finflow_schedule_wakeup`: a workflow of the build before it
/// (PG 0017; SQLite's schema did not change), whose callback arrives after the upgrade but
/// before it waits, finds the callback when it begins to wait, and finishes.
async fn a_workflow_of_the_build_before_own_hints_finds_its_early_callback(db: TestDb) {
    let last = match db.backend {
        TestBackend::Postgres => 17,
        TestBackend::Sqlite => 11,
    };
    early_callback_found_after_upgrade(db, last, Early::AfterUpgrade).await;
}

/// Migration PG 0019 / SQLite 0012 rebuild the inbox's key and pending indexes over the
/// unmatched and the matched callbacks apart: a callback stored unmatched before the upgrade
/// (beside one nobody waits for) is found by the wait that comes after it.
async fn a_callback_stored_before_the_inbox_indexes_changed_is_found_by_its_wait(db: TestDb) {
    let last = match db.backend {
        TestBackend::Postgres => 18,
        TestBackend::Sqlite => 11,
    };
    early_callback_found_after_upgrade(db, last, Early::BeforeUpgrade).await;
}

/// Migration PG 0020 replaces the batch functions and `finflow_record_callback` (a callback
/// stored already matched); SQLite's sequence changed in code only. A workflow written at
/// the schema before it is claimed, waits, is woken by its callback (stored matched) and
/// finishes through the new functions.
async fn a_workflow_of_the_build_before_batches_were_parsed_once_finishes(db: TestDb) {
    let last = before_batches_parsed_once(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The same upgrade: a callback stored after it, before its wait began (so stored
/// unmatched), is found by the wait when it comes.
async fn a_callback_stored_after_the_upgrade_before_its_wait_is_found_by_it(db: TestDb) {
    let last = before_batches_parsed_once(db.backend);
    early_callback_found_after_upgrade(db, last, Early::AfterUpgrade).await;
}

/// The last migration of the build before batches were parsed once (PG 0019; SQLite's
/// schema did not change, 0012).
fn before_batches_parsed_once(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 19,
        TestBackend::Sqlite => 12,
    }
}

/// Migration PG 0021 turns the facts' user and loan ids into stored generated columns and
/// moves their indexes onto them (SQLite's schema did not change): the rows of the build
/// before it are found by the same filters after it.
async fn the_previous_builds_rows_are_found_alike_after_the_fact_ids_became_columns(db: TestDb) {
    let last = before_fact_id_columns(db.backend);
    rows_found_alike_after_upgrade(db, last).await;
}

/// The same upgrade: a workflow written before it, whose steps after it record a user id and
/// then a loan id in its facts, is found by each id as soon as its step is committed (by the
/// console's filters and the reconciliation's lookup, which read the new columns).
async fn fact_ids_recorded_after_the_upgrade_are_found(db: TestDb) {
    let store = &db.store;
    store::testing::migrate_up_to(store, before_fact_id_columns(db.backend))
        .await
        .expect("the previous schema");
    let mut tx = store.begin().await.expect("tx");
    let id = insert_old(
        &mut tx,
        &OldRow::new("loan-9", "originate-loan", "pending", json!({"n": 9})),
    )
    .await;
    tx.commit().await.expect("commit");
    store.migrate().await.expect("upgrade");
    make_due(store, "loan-9").await;

    let found_by = |user: &str, loan: &str| {
        let (user, loan) = (user.to_owned(), loan.to_owned());
        async move {
            let mut found = Vec::new();
            for filter in [
                store::WorkflowFilter {
                    user_id: Some(user.clone()),
                    ..store::WorkflowFilter::default()
                },
                store::WorkflowFilter {
                    loan_unique_id: Some(loan.clone()),
                    ..store::WorkflowFilter::default()
                },
            ] {
                let (rows, _) = store.list_workflows(&filter, None, 50).await.expect("list");
                found.push(rows.len());
            }
            let known = store.known_loans(&[loan]).await.expect("known loans");
            found.push(known.len());
            found
        }
    };
    assert_eq!(found_by("u-9", "L-9").await, [0, 0, 0], "no ids yet");

    let claimed = store
        .claim(id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut user = crate::step(
        &claimed,
        "user_created",
        Status::Running,
        claimed.workflow.next_run_at,
    );
    user.facts = json!({ "user_id": "u-9" });
    user.release_lease = false; // the next step follows inline
    let committed = store
        .commit_step(&user)
        .await
        .expect("the user id recorded");
    assert_eq!(
        found_by("u-9", "L-9").await,
        [1, 0, 0],
        "found by its user id"
    );

    let mut loan = crate::step(
        &claimed,
        "loan_created",
        Status::Running,
        claimed.workflow.next_run_at,
    );
    loan.expected_version = committed.version;
    loan.facts = json!({ "user_id": "u-9", "loan_unique_id": "L-9" });
    store
        .commit_step(&loan)
        .await
        .expect("the loan id recorded");
    assert_eq!(found_by("u-9", "L-9").await, [1, 1, 1], "found by both ids");
}

/// The last migration of the build before the fact ids became columns (PG 0020; SQLite's
/// schema did not change, 0012).
fn before_fact_id_columns(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 20,
        TestBackend::Sqlite => 12,
    }
}

/// When the callback that comes before its wait is stored.
#[derive(Clone, Copy, PartialEq)]
enum Early {
    BeforeUpgrade,
    AfterUpgrade,
}

/// A workflow written at schema `last`, the store upgraded; its callback stored (before or
/// after the upgrade) before it waits: the wait finds it, the claim brings it, the workflow
/// finishes.
async fn early_callback_found_after_upgrade(db: TestDb, last: i64, early: Early) {
    let store = &db.store;
    let last = match early {
        Early::BeforeUpgrade => with_waits_by_key(db.backend, last),
        Early::AfterUpgrade => last,
    };
    store::testing::migrate_up_to(store, last)
        .await
        .expect("the previous schema");
    let nik = "3275062009921984";
    let mut tx = store.begin().await.expect("tx");
    let id = insert_old(
        &mut tx,
        &OldRow::new(
            "old-early",
            "onboard-borrower",
            "pending",
            onboarding_input(nik, "early"),
        ),
    )
    .await;
    tx.commit().await.expect("commit");
    let record = |event_id: &'static str, title: &'static str| async move {
        store
            .record_callback(&crate::inbox::user_event(event_id, title, nik))
            .await
            .expect("record")
    };
    let mut recorded = None;
    if early == Early::BeforeUpgrade {
        record("evt-unwaited", "user_created").await;
        recorded = Some(record("evt-early", "user_verified").await);
    }
    store.migrate().await.expect("upgrade");
    make_due(store, "old-early").await;
    let claimed = store
        .claim(id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("the old workflow is due");
    let recorded = match recorded {
        Some(recorded) => recorded,
        None => record("evt-early", "user_verified").await,
    };
    assert_eq!(recorded.woke, None, "nothing waits for it yet");

    let mut wait = crate::step(&claimed, "await_user_verified", Status::Waiting, None);
    wait.waits = vec![Wait::new(
        "user_verified",
        CorrelationKey::IdentityNumber,
        nik,
    )];
    let waited = store.commit_step(&wait).await.expect("a wait committed");
    assert_eq!(
        waited.pending_events,
        vec![recorded.inbox_id],
        "the wait finds the callback stored before it, and only that one"
    );
    let claimed = store
        .claim(id, "w2", crate::LEASE)
        .await
        .expect("claim")
        .expect("due with its event");
    assert_eq!(
        claimed.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![recorded.inbox_id],
        "the claim brings it"
    );
    let mut done = crate::step(&claimed, "approved", Status::Completed, None);
    done.processed_events = vec![claimed.events[0].id];
    let committed = store.commit_step(&done).await.expect("finished");
    assert!(committed.pending_events.is_empty());
    let row = store.get(id).await.expect("get").expect("exists");
    assert_eq!(row.status, Status::Completed);
}

/// Makes the workflow with `business_key` due now (rows written at an old schema are not).
async fn make_due(store: &store::Store, business_key: &str) {
    let due = "UPDATE workflows SET next_run_at = created_at WHERE business_key = $1";
    match store.backend() {
        store::Backend::Postgres(pool) => sqlx::query(due)
            .bind(business_key)
            .execute(pool)
            .await
            .map(drop),
        store::Backend::Sqlite(pool) => sqlx::query(due)
            .bind(business_key)
            .execute(pool)
            .await
            .map(drop),
    }
    .expect("due");
}

/// The last migration of the build before the step indexes changed (PG 0017, SQLite 0011).
fn before_step_indexes(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 16,
        TestBackend::Sqlite => 10,
    }
}

/// The last schema before PG 0022 (the step commit takes the holder's lease); SQLite's did
/// not change.
fn before_held_for_waiting_callbacks(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 21,
        TestBackend::Sqlite => 12,
    }
}

/// A workflow claimed under the build before 0022, with its callback stored before the wait
/// for it began; the database upgraded; this build commits the wait with its lease given:
/// the workflow is kept for its holder and the callback comes back with the commit.
async fn a_workflow_in_flight_across_the_hold_for_events_is_kept_for_its_holder(db: TestDb) {
    let store = &db.store;
    store::testing::migrate_up_to(
        store,
        with_waits_by_key(db.backend, before_held_for_waiting_callbacks(db.backend)),
    )
    .await
    .expect("the previous schema");
    let nik = "3201000000000017";
    let early = store
        .record_callback(&crate::inbox::user_event("evt-across", "user_created", nik))
        .await
        .expect("stored by the build before");
    let claimed = crate::submit_and_claim(store, "across-0022", "w1").await;
    store.migrate().await.expect("upgrade");

    let mut wait =
        crate::inbox::wait_user_created(&claimed, nik, Utc::now() + chrono::TimeDelta::hours(1));
    wait.hold_for_events = Some(crate::LEASE);
    let committed = store
        .commit_step(&wait)
        .await
        .expect("commit after the upgrade");
    let kept: Vec<i64> = committed.kept.iter().map(|e| e.id).collect();
    assert_eq!(kept, vec![early.inbox_id]);
    let row = store
        .get(claimed.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (row.status, row.lease_owner.as_deref(), row.version),
        (Status::Running, Some("w1"), committed.version)
    );
}

/// The last schema before PG 0023 (a step's commit writes the workflow's row once); SQLite's
/// did not change.
fn before_row_written_once(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 22,
        TestBackend::Sqlite => 12,
    }
}

/// A workflow the build before 0023 kept for its holder (its callback stored before the wait
/// began); the database upgraded; the holder consumes that callback and waits for the next,
/// already stored too: this build keeps the workflow again, at the version its commit
/// returns, with the second callback.
async fn a_workflow_kept_by_the_build_before_goes_on_after_its_row_is_written_once(db: TestDb) {
    let store = &db.store;
    store::testing::migrate_up_to(
        store,
        with_waits_by_key(db.backend, before_row_written_once(db.backend)),
    )
    .await
    .expect("the previous schema");
    let nik = "3201000000000018";
    let deadline = Utc::now() + chrono::TimeDelta::hours(1);
    let created = store
        .record_callback(&crate::inbox::user_event(
            "evt-kept-before",
            "user_created",
            nik,
        ))
        .await
        .expect("stored by the build before");
    let claimed = crate::submit_and_claim(store, "kept-across-0023", "w1").await;
    let mut wait = crate::inbox::wait_user_created(&claimed, nik, deadline);
    wait.hold_for_events = Some(crate::LEASE);
    let kept = store
        .commit_step(&wait)
        .await
        .expect("kept by the build before");
    assert_eq!(kept.kept.len(), 1);
    let verified = store
        .record_callback(&crate::inbox::user_event(
            "evt-verified-before",
            "user_verified",
            nik,
        ))
        .await
        .expect("the next callback, early too");
    store.migrate().await.expect("upgrade");

    let mut next = crate::step(
        &claimed,
        "wait_user_verified",
        Status::Waiting,
        Some(deadline),
    );
    next.waits = vec![Wait::new(
        "user_verified",
        CorrelationKey::IdentityNumber,
        nik,
    )];
    next.expected_version = kept.version;
    next.processed_events = vec![created.inbox_id];
    next.hold_for_events = Some(crate::LEASE);
    let committed = store
        .commit_step(&next)
        .await
        .expect("the holder commits after the upgrade");
    let ids: Vec<i64> = committed.kept.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        vec![verified.inbox_id],
        "kept again, for the next callback"
    );
    let row = store
        .get(claimed.workflow.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (row.status, row.lease_owner.as_deref(), row.version),
        (Status::Running, Some("w1"), committed.version)
    );
    assert_eq!(
        store
            .journal(claimed.workflow.id)
            .await
            .expect("journal")
            .len(),
        2
    );
}

/// The last schema before PG 0024 (what a step changes moves to the end of the row);
/// SQLite's did not change.
fn before_changing_columns_last(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 23,
        TestBackend::Sqlite => 12,
    }
}

/// Migration PG 0024 moves columns of `workflows` (and drops and creates again the indexes,
/// constraints and views that read them): the console's filters, counts and stuck list find
/// the rows a database of the build before holds.
async fn the_previous_builds_rows_are_found_alike_after_the_changing_columns_moved(db: TestDb) {
    let last = before_changing_columns_last(db.backend);
    rows_found_alike_after_upgrade(db, last).await;
}

async fn a_workflow_of_the_build_before_the_changing_columns_moved_finishes(db: TestDb) {
    let last = before_changing_columns_last(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// PostgreSQL 0024 moves the context and the columns steps change to the end of the row,
/// each moved column as it was: after the upgrade every row reads as before, column by
/// column, and so does every view; the columns keep their types, defaults, NOT NULL,
/// storage, compression and comments; the indexes, constraints and views are defined as
/// before, the views with their comments and grants (their access lists, as text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_moving_the_changing_columns_keeps_rows_columns_indexes_and_views() {
    store::testing::run(TestBackend::Postgres, false, |db| {
        let before = before_changing_columns_last(db.backend);
        columns_moved_alike(
            db,
            before,
            Some(before + 1),
            &[
                "context",
                "state",
                "attempt",
                "waiting_for",
                "deadline",
                "last_error",
                "finished_at",
                "status",
                "lease_owner",
                "lease_until",
                "version",
                "next_run_at",
                "updated_at",
            ],
        )
    })
    .await;
}

/// PostgreSQL 0030 moves the context to the end of the row, after the columns steps change,
/// as 0024 moved them: every row, column, index, constraint and view alike after the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_moving_the_context_last_keeps_rows_columns_indexes_and_views() {
    store::testing::run(TestBackend::Postgres, false, |db| {
        let before = before_context_last(db.backend);
        columns_moved_alike(
            db,
            before,
            Some(before + 1),
            &[
                "state",
                "attempt",
                "waiting_for",
                "deadline",
                "last_error",
                "finished_at",
                "status",
                "lease_owner",
                "lease_until",
                "version",
                "next_run_at",
                "updated_at",
                "context",
            ],
        )
    })
    .await;
}

/// Rows written at schema `before`, then the upgrade to `upgrade_to` (`None`: the last
/// schema): everything `schema_and_rows` reads is as before, and `workflows` ends with
/// `tail`, in that order.
async fn columns_moved_alike(db: TestDb, before: i64, upgrade_to: Option<i64>, tail: &[&str]) {
    let store = &db.store;
    let pool = store.pg_pool().expect("a PostgreSQL store");
    store::testing::migrate_up_to(store, before)
        .await
        .expect("the previous schema");
    // Rows in several states: finished and stuck ones as an older build left them, one
    // waiting with a context and a fact, one held by its worker.
    let mut tx = store.begin().await.expect("tx");
    let mut loan = OldRow::new("loan-1", "originate-loan", "completed", json!({"n": 1}));
    loan.facts = json!({"user_id": "u-1", "loan_unique_id": "L-1"});
    insert_old(&mut tx, &loan).await;
    let stuck = OldRow::new(
        "stuck",
        "onboard-borrower",
        "needs_attention",
        onboarding_input("3275062009921982", "stuck"),
    );
    insert_old(&mut tx, &stuck).await;
    tx.commit().await.expect("commit");
    let claimed = crate::submit_and_claim(store, "waiting", "w1").await;
    let mut wait = crate::step(
        &claimed,
        "await_user_verified",
        Status::Waiting,
        Some(Utc::now() + chrono::TimeDelta::hours(1)),
    );
    wait.context = json!({"borrower": {"statuses": ["PENDING"]}, "phase": "await"});
    wait.facts = json!({"user_id": "u-9"});
    wait.waiting_for = Some("user_verified".into());
    store.commit_step(&wait).await.expect("wait");
    crate::submit_and_claim(store, "held", "w2").await;

    let prior = schema_and_rows(pool).await;
    match upgrade_to {
        Some(last) => store::testing::migrate_up_to(store, last).await,
        None => store.migrate().await,
    }
    .expect("upgrade");
    let after = schema_and_rows(pool).await;
    for (what, (old, new)) in [
        "rows",
        "columns",
        "indexes",
        "constraints",
        "views",
        "view rows",
    ]
    .iter()
    .zip(prior.iter().zip(&after))
    {
        assert_eq!(new, old, "{what} after the upgrade");
    }

    let order: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'workflows'::regclass \
         AND attnum > 0 AND NOT attisdropped ORDER BY attnum DESC LIMIT $1",
    )
    .bind(i64::try_from(tail.len()).expect("a few"))
    .fetch_all(pool)
    .await
    .expect("columns");
    assert_eq!(
        order.into_iter().rev().collect::<Vec<_>>(),
        tail,
        "the columns moved, last"
    );
}

/// What moving columns (0024, 0030) must keep, as text: every row of `workflows` (as JSON,
/// so column order does not count), its columns' attributes, indexes and constraints, and
/// every view of the schema (definition, comment, grants, rows).
async fn schema_and_rows(pool: &sqlx::PgPool) -> Vec<Vec<String>> {
    let queries = [
        "SELECT to_jsonb(w)::text FROM workflows w ORDER BY id",
        "SELECT concat_ws(' | ', attname, format_type(atttypid, atttypmod), attnotnull, \
             attstorage, attcompression, attgenerated, \
             pg_get_expr(d.adbin, d.adrelid), col_description(attrelid, attnum)) \
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE attrelid = 'workflows'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname",
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'workflows' \
         AND schemaname = current_schema() ORDER BY indexname",
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'workflows'::regclass ORDER BY conname",
        "SELECT concat_ws(' | ', relname, pg_get_viewdef(oid), obj_description(oid, 'pg_class'), \
             relacl::text, reloptions::text) \
         FROM pg_class WHERE relkind = 'v' AND relnamespace = current_schema()::regnamespace \
         ORDER BY relname",
    ];
    let mut out = Vec::new();
    for sql in queries {
        out.push(
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        );
    }
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relkind = 'v' \
         AND relnamespace = current_schema()::regnamespace ORDER BY relname",
    )
    .fetch_all(pool)
    .await
    .expect("views");
    let mut rows = Vec::new();
    for view in views {
        let sql = format!("SELECT v::text FROM \"{view}\" v ORDER BY v::text");
        let text: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"));
        rows.push(format!("{view}: {}", text.join("; ")));
    }
    out.push(rows);
    out
}

/// The last schema before PG 0025 (a wait's match reads only the key columns its waits
/// name); SQLite's did not change.
fn before_wait_match_by_named_keys(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 24,
        TestBackend::Sqlite => 12,
    }
}

/// Migration PG 0025 replaces `finflow_commit_step`'s match of the callbacks stored before a
/// wait: a callback stored unmatched before the upgrade is found by the wait that begins
/// after it.
async fn a_callback_stored_before_the_wait_match_changed_is_found_by_its_wait(db: TestDb) {
    let last = before_wait_match_by_named_keys(db.backend);
    early_callback_found_after_upgrade(db, last, Early::BeforeUpgrade).await;
}

/// The same upgrade: a workflow written at the schema before it is claimed, waits, is woken
/// by its callback and finishes through the new function.
async fn a_workflow_of_the_build_before_the_wait_match_changed_finishes(db: TestDb) {
    let last = before_wait_match_by_named_keys(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The last schema before PG 0026 (fewer index entries a step: the journal keyed by
/// (workflow_id, seq), its finished_at by block range, the inbox's consumed mark unindexed);
/// SQLite's did not change.
fn before_fewer_index_entries(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 25,
        TestBackend::Sqlite => 12,
    }
}

/// Migration PG 0026 replaces the index by which a claim finds a workflow's unconsumed
/// callbacks and the journal's keys: a callback matched before the upgrade and not yet
/// consumed is brought by the claim after it and consumed once; the workflow's journal goes
/// on from the rows written before, numbered after them.
async fn a_callback_matched_before_the_index_entries_changed_is_brought_by_the_claim(db: TestDb) {
    let store = &db.store;
    store::testing::migrate_up_to(
        store,
        with_waits_by_key(db.backend, before_fewer_index_entries(db.backend)),
    )
    .await
    .expect("the previous schema");
    let nik = "3275062009921985";
    let claimed = crate::submit_and_claim(store, "matched-before", "w1").await;
    let id = claimed.workflow.id;
    store
        .commit_step(&verified_wait(&claimed, nik))
        .await
        .expect("a wait committed");
    let recorded = store
        .record_callback(&user_event("evt-matched-before", "user_verified", nik))
        .await
        .expect("record");
    assert_eq!(recorded.woke, Some(id), "matched before the upgrade");
    let before = store.journal(id).await.expect("journal");

    store.migrate().await.expect("upgrade");
    let claimed = store
        .claim(id, "w2", crate::LEASE)
        .await
        .expect("claim")
        .expect("due after its callback");
    assert_eq!(claimed.events.len(), 1, "the claim brings the event");
    assert_eq!(claimed.events[0].id, recorded.inbox_id);
    let mut done = crate::step(&claimed, "verified", Status::Completed, None);
    done.processed_events = vec![recorded.inbox_id];
    let committed = store.commit_step(&done).await.expect("finished");
    assert!(committed.pending_events.is_empty());
    assert!(store.pending_events(id).await.expect("pending").is_empty());

    let journal = store.journal(id).await.expect("journal");
    assert_eq!(
        journal.len(),
        before.len() + 1,
        "the rows before, and one more"
    );
    assert_eq!(
        &journal[..before.len()],
        &before[..],
        "the rows before, as they were"
    );
    let last = journal.last().expect("the new row");
    assert_eq!(last.seq, before.last().expect("a row before").seq + 1);
    assert!(
        before.iter().all(|row| row.id < last.id),
        "numbered after the rows before"
    );
}

async fn a_workflow_of_the_build_before_the_index_entries_changed_finishes(db: TestDb) {
    let last = before_fewer_index_entries(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The last schema before PG 0027 (a batch of step commits written statement by statement);
/// SQLite's did not change.
fn before_batches_statement_by_statement(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 26,
        TestBackend::Sqlite => 12,
    }
}

/// A workflow stored at the schema before 0027 is claimed, waits, is woken by its callback
/// and finishes through the new batch function.
async fn a_workflow_of_the_build_before_batches_were_written_statement_by_statement_finishes(
    db: TestDb,
) {
    let last = before_batches_statement_by_statement(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The last schema before PG 0028 (a batch of callbacks stored statement by statement);
/// SQLite's did not change.
fn before_callbacks_statement_by_statement(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 27,
        TestBackend::Sqlite => 12,
    }
}

/// A workflow stored at the schema before 0028 is claimed, waits, is woken by its callback
/// (stored through the new batch function) and finishes.
async fn a_workflow_of_the_build_before_callbacks_were_stored_statement_by_statement_finishes(
    db: TestDb,
) {
    let last = before_callbacks_statement_by_statement(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The last schema before PG 0029 (the funnel's steps and the inbox's times indexed only as
/// read); SQLite's did not change.
fn before_indexes_held_only_what_is_read(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 28,
        TestBackend::Sqlite => 12,
    }
}

/// A workflow stored at the schema before 0029 is claimed, waits, is woken by its callback
/// and finishes, its journal and callbacks indexed the new way.
async fn a_workflow_of_the_build_before_the_indexes_held_only_what_is_read_finishes(db: TestDb) {
    let last = before_indexes_held_only_what_is_read(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The last schema before PG 0030 (the context last in the row); SQLite's did not change.
fn before_context_last(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 29,
        TestBackend::Sqlite => 12,
    }
}

/// Migration PG 0030 moves the context of `workflows` (and drops and creates again the
/// views that read the table): the console's filters, counts and stuck list find the rows a
/// database of the build before holds.
async fn the_previous_builds_rows_are_found_alike_after_the_context_moved_last(db: TestDb) {
    let last = before_context_last(db.backend);
    rows_found_alike_after_upgrade(db, last).await;
}

/// A workflow stored at the schema before 0030 is claimed, waits, is woken by its callback
/// and finishes, its context written at the row's end.
async fn a_workflow_of_the_build_before_the_context_moved_last_finishes(db: TestDb) {
    let last = before_context_last(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// The last schema before PG 0031 (the statuses a workflow rests in indexed apart from
/// `status`); SQLite's did not change.
fn before_settled_statuses(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 30,
        TestBackend::Sqlite => 12,
    }
}

/// Migration PG 0031 replaces `workflows_finished_idx` with an index of `status_settled`,
/// which the console's status filter, the overview's counts and the stuck list now read: they
/// find the rows a database of the build before holds.
async fn the_previous_builds_rows_are_found_alike_after_settled_statuses_were_indexed(db: TestDb) {
    let last = before_settled_statuses(db.backend);
    rows_found_alike_after_upgrade(db, last).await;
}

/// A workflow stored at the schema before 0031 is claimed, waits, is woken by its callback
/// and finishes.
async fn a_workflow_of_the_build_before_settled_statuses_were_indexed_finishes(db: TestDb) {
    let last = before_settled_statuses(db.backend);
    upgraded_workflow_finishes(db, last).await;
}

/// PostgreSQL 0031 gives every row of the build before its `status_settled` (its status
/// where the workflow rests in it, NULL where it moves on by itself), reads it through a new
/// index instead of `workflows_finished_idx`, and leaves every other column, the other
/// indexes and the views as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_settled_statuses_are_filled_and_indexed_at_the_upgrade() {
    store::testing::run(TestBackend::Postgres, false, |db| async move {
        let store = &db.store;
        let pool = store.pg_pool().expect("a PostgreSQL store");
        store::testing::migrate_up_to(store, before_settled_statuses(db.backend))
            .await
            .expect("the previous schema");
        let mut tx = store.begin().await.expect("tx");
        for (key, status) in [
            ("done", "completed"),
            ("gone", "failed"),
            ("stopped", "cancelled"),
            ("stuck", "needs_attention"),
            ("asleep", "sleeping"),
            ("new", "pending"),
        ] {
            insert_old(
                &mut tx,
                &OldRow::new(key, "originate-loan", status, json!({ "key": key })),
            )
            .await;
        }
        tx.commit().await.expect("commit");
        let waiting = crate::submit_and_claim(store, "waiting", "w1").await;
        let wait = crate::step(&waiting, "await_signed", Status::Waiting, None);
        store.commit_step(&wait).await.expect("wait");
        crate::submit_and_claim(store, "held", "w2").await;
        let rows = "SELECT business_key || ' ' || status FROM workflows ORDER BY business_key";
        let prior: Vec<String> = sqlx::query_scalar(rows)
            .fetch_all(pool)
            .await
            .expect("rows");
        let indexes = "SELECT indexname::text FROM pg_indexes WHERE tablename = 'workflows' \
                       ORDER BY 1";
        let prior_indexes: Vec<String> = sqlx::query_scalar(indexes)
            .fetch_all(pool)
            .await
            .expect("indexes");

        store::testing::migrate_up_to(store, before_settled_statuses(db.backend) + 1)
            .await
            .expect("upgrade");
        let after: Vec<String> = sqlx::query_scalar(rows)
            .fetch_all(pool)
            .await
            .expect("rows");
        assert_eq!(after, prior, "the rows as they were");
        let settled: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT business_key, status_settled FROM workflows ORDER BY business_key",
        )
        .fetch_all(pool)
        .await
        .expect("settled");
        let rest = |s: &str| Some(s.to_owned());
        assert_eq!(
            settled,
            [
                ("asleep".to_owned(), None),
                ("done".to_owned(), rest("completed")),
                ("gone".to_owned(), rest("failed")),
                ("held".to_owned(), None),
                ("new".to_owned(), None),
                ("stopped".to_owned(), rest("cancelled")),
                ("stuck".to_owned(), rest("needs_attention")),
                ("waiting".to_owned(), None),
            ]
        );
        let mut expected: Vec<String> = prior_indexes
            .into_iter()
            .filter(|i| i != "workflows_finished_idx")
            .chain(["workflows_settled_idx".to_owned()])
            .collect();
        expected.sort();
        let after_indexes: Vec<String> = sqlx::query_scalar(indexes)
            .fetch_all(pool)
            .await
            .expect("indexes");
        assert_eq!(after_indexes, expected);
    })
    .await;
}

/// `last`, or on SQLite the schema from which this build's statements read and write the
/// waits (SQLite 0013: one row per key), for a scenario that records a callback or commits a
/// wait before its upgrade: the PostgreSQL migrations those scenarios are about did not
/// change SQLite's schema, whose variant then runs without an upgrade.
fn with_waits_by_key(backend: TestBackend, last: i64) -> i64 {
    match backend {
        TestBackend::Postgres => last,
        TestBackend::Sqlite => last.max(before_wait_rows_per_key(backend) + 1),
    }
}

/// The last schema before PG 0032 / SQLite 0013 (a wait one row per key).
fn before_wait_rows_per_key(backend: TestBackend) -> i64 {
    match backend {
        TestBackend::Postgres => 31,
        TestBackend::Sqlite => 12,
    }
}

/// Runs `sql` with the workflow id `id` as `$1` (a `uuid` on PostgreSQL, its text on
/// SQLite).
async fn execute_with_id(store: &store::Store, sql: &str, id: Uuid) {
    match store.backend() {
        store::Backend::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
        store::Backend::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .execute(pool)
            .await
            .map(drop),
    }
    .expect(sql);
}

/// A workflow that waits at the upgrade (rows of the build before: one per title) waits
/// after it for the same titles under the same keys, in one row per key: a callback with a
/// title it does not wait for passes it by, one it waits for wakes it, and its claim brings
/// that callback.
async fn a_workflow_waiting_when_its_waits_became_one_row_per_key_is_woken(db: TestDb) {
    let store = &db.store;
    store::testing::migrate_up_to(store, before_wait_rows_per_key(db.backend))
        .await
        .expect("the previous schema");
    let nik = "3275062009921982";
    let mut tx = store.begin().await.expect("tx");
    let id = insert_old(
        &mut tx,
        &OldRow::new(
            "old-waiting",
            "onboard-borrower",
            "waiting",
            onboarding_input(nik, "waiting"),
        ),
    )
    .await;
    tx.commit().await.expect("commit");
    for (event, key, value) in [
        ("user_verified", "identity_number", nik),
        ("user_rejected", "identity_number", nik),
        ("user_blocked", "identity_number", nik),
        ("user_created", "user_id", "user-old"),
    ] {
        execute_with_id(
            store,
            &format!(
                "INSERT INTO workflow_waits (workflow_id, event, key_name, key_value) \
                 VALUES ($1, '{event}', '{key}', '{value}')"
            ),
            id,
        )
        .await;
    }
    assert_eq!(count(store, "SELECT count(*) FROM workflow_waits").await, 4);

    store::testing::migrate_up_to(store, before_wait_rows_per_key(db.backend) + 1)
        .await
        .expect("upgrade");
    assert_eq!(
        count(store, "SELECT count(*) FROM workflow_waits").await,
        2,
        "one row per key"
    );
    let waits: Vec<(String, CorrelationKey, String)> = store
        .waits(id)
        .await
        .expect("waits")
        .into_iter()
        .map(|w| (w.event, w.key_name, w.key_value))
        .collect();
    let mut expected = vec![
        (
            "user_blocked".to_owned(),
            CorrelationKey::IdentityNumber,
            nik.to_owned(),
        ),
        (
            "user_created".to_owned(),
            CorrelationKey::UserId,
            "user-old".to_owned(),
        ),
        (
            "user_rejected".to_owned(),
            CorrelationKey::IdentityNumber,
            nik.to_owned(),
        ),
        (
            "user_verified".to_owned(),
            CorrelationKey::IdentityNumber,
            nik.to_owned(),
        ),
    ];
    let mut found = waits.clone();
    found.sort();
    expected.sort();
    assert_eq!(found, expected, "{waits:?}");

    let passed_by = store
        .record_callback(&user_event("evt-not-awaited", "user_approved", nik))
        .await
        .expect("record");
    assert_eq!(passed_by.woke, None, "a title it does not wait for");
    let woke = store
        .record_callback(&user_event("evt-awaited", "user_rejected", nik))
        .await
        .expect("record");
    assert_eq!(woke.woke, Some(id), "a title it waits for, under its key");
    let claimed = store
        .claim(id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("due after its callback");
    let titles: Vec<&str> = claimed.events.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(titles, ["user_rejected"]);
}

/// A workflow stored at the schema before PG 0032 / SQLite 0013 is claimed, waits (one row
/// per key now), is woken by its callback and finishes.
async fn a_workflow_of_the_build_before_waits_were_one_row_per_key_finishes(db: TestDb) {
    let last = before_wait_rows_per_key(db.backend);
    upgraded_workflow_finishes(db, last).await;
}
