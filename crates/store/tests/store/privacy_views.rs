//! What analysts read through SQL holds no personal data (migrations postgres/0013,
//! sqlite/0009): no view shows a NIK, a name, a phone or any other personal value the
//! input, the context, the inbox or a free-text error holds; on PostgreSQL the role
//! `finflow_reader` reads every view and no table, and `finflow_operator` adds only a
//! command request a second person approves.

use serde_json::json;
use sqlx::{Connection, PgConnection};
use store::testing::{TestBackend, TestDb};
use store::{CorrelationKeys, InboxEvent, NewWorkflow, RequestStatus, Source, Status, Store};
use uuid::Uuid;

use crate::{step, submit_and_claim};

store::test_both_backends!(no_view_shows_personal_data);
store::test_both_backends!(unmigrated: loans_read_the_onboarding_key_from_facts);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_reads_every_view_and_no_table() {
    store::testing::run(TestBackend::Postgres, true, reader_reads_views_only).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_requests_commands_and_reads_no_table() {
    store::testing::run(TestBackend::Postgres, true, operator_requests_only).await;
}

const NIK: &str = "3174091203850007";
const NAME: &str = "Siti Rahmawati";
const PHONE: &str = "+6281298765432";
const EMAIL: &str = "siti.rahmawati@example.com";
const BIRTH_DATE: &str = "1985-03-12";
const MOTHER: &str = "Sri Wahyuni";
const ADDRESS: &str = "Jl. Melati No. 7";
const ACCOUNT: &str = "5550001234567";

/// Every personal value the test puts in the database.
const PERSONAL: [&str; 8] = [
    NIK, NAME, PHONE, EMAIL, BIRTH_DATE, MOTHER, ADDRESS, ACCOUNT,
];

fn onboarding_input() -> serde_json::Value {
    json!({
        "definition": "personal-single-payment",
        "borrower": {
            "type": "PERSONAL",
            "authorised_signatory": {
                "name": NAME, "phone": PHONE, "email": EMAIL, "birth_date": BIRTH_DATE,
                "mother_maiden_name": MOTHER, "address": ADDRESS,
                "documents": { "ktp": { "number": NIK, "image": "data:image/jpeg;base64,/9j/4AAQ" } }
            },
            "bank_account": { "bank_code": "BCA", "account_number": ACCOUNT, "holder": NAME }
        }
    })
}

/// The views of the database's schema, by name (a future view is covered without a change
/// here).
async fn view_names(store: &Store) -> Vec<String> {
    match store.backend() {
        store::Backend::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.views \
             WHERE table_schema = current_schema() ORDER BY table_name",
            )
            .fetch_all(pool)
            .await
        }
        store::Backend::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")
                .fetch_all(pool)
                .await
        }
    }
    .expect("listing views")
}

/// Every row of `view`, each serialized to text with all its columns.
async fn rows_as_text(store: &Store, view: &str) -> Vec<String> {
    match store.backend() {
        store::Backend::Postgres(pool) => {
            let sql = format!("SELECT row_to_json(v)::text FROM \"{view}\" v");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
        }
        store::Backend::Sqlite(pool) => {
            let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{view}')"
            )))
            .fetch_all(pool)
            .await
            .expect("columns");
            let list = columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT json_array({list}) FROM \"{view}\"");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
        }
    }
    .unwrap_or_else(|e| panic!("SELECT * FROM {view}: {e}"))
}

/// An onboarding, a loan and a callback full of personal data, everywhere it may sit: the
/// input, the context, `last_error`, the journal's error, the inbox's NIK and payload.
/// Then no row of any view holds any of it.
async fn no_view_shows_personal_data(db: TestDb) {
    let store = &db.store;
    let onboarding = store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "onboarding-1",
            onboarding_input(),
        ))
        .await
        .expect("submit");
    let claimed = store
        .claim(onboarding.id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut stuck = step(&claimed, "ekyc_ocr", Status::NeedsAttention, None);
    stuck.context = json!({ "ocr": { "name": NAME, "nik": NIK, "birth_date": BIRTH_DATE } });
    stuck.facts = json!({ "borrower_type": "PERSONAL" });
    stuck.last_error = Some(format!(
        "kyc_mismatch: OCR read {NAME} born {BIRTH_DATE}, NIK {NIK}, phone {PHONE}"
    ));
    stuck.journal.error = Some(format!("422: {EMAIL} at {ADDRESS}, mother {MOTHER}"));
    store.commit_step(&stuck).await.expect("commit");

    // A loan whose input names the onboarding and a disbursement account; failed on input
    // that quotes it.
    let loan = store
        .submit(&NewWorkflow::new(
            "originate-loan",
            "loan-1",
            json!({
                "borrower": { "onboarding": "onboarding-1" },
                "disbursement_account": { "bank_code": "BCA", "account_number": ACCOUNT, "holder": NAME }
            }),
        ))
        .await
        .expect("submit");
    let claimed = store
        .claim(loan.id, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut failed = step(&claimed, "failed", Status::Failed, None);
    failed.last_error = Some(format!("invalid input: account {ACCOUNT} of {NAME}"));
    failed.facts = json!({ "onboarding_business_key": "onboarding-1", "loan_status": null });
    store.commit_step(&failed).await.expect("commit");

    // A submitted onboarding nobody started: its row in the views too.
    let _ = submit_and_claim(store, "fresh", "w2").await;

    // A callback no workflow takes: the NIK as its key, the person in its payload.
    store
        .record_callback(&InboxEvent {
            source: Source::Status,
            event_id: "evt-1".into(),
            title: "user_created".into(),
            keys: CorrelationKeys {
                identity_number: Some(NIK.into()),
                ..CorrelationKeys::default()
            },
            payload: json!({ "identity_number": NIK, "name": NAME, "phone": PHONE }),
        })
        .await
        .expect("record");

    let views = view_names(store).await;
    for expected in [
        "borrowers",
        "loans",
        "reconciliation_findings",
        "stuck_workflows",
        "unmatched_callbacks",
        "workflow_overview",
        "workflow_status_counts",
    ] {
        assert!(
            views.iter().any(|v| v == expected),
            "{expected} in {views:?}"
        );
    }
    let mut seen = 0;
    for view in &views {
        for row in rows_as_text(store, view).await {
            seen += 1;
            for value in PERSONAL {
                assert!(!row.contains(value), "{view} shows {value:?}: {row}");
            }
        }
    }
    assert!(
        seen >= 10,
        "the views have rows to look at ({seen}): the test is not vacuous"
    );

    // What they show instead: codes, and which key a callback carries.
    let sql_stuck = "SELECT business_key, last_error_code FROM stuck_workflows";
    let sql_loan = "SELECT last_error_code FROM workflow_overview WHERE business_key = 'loan-1'";
    let sql_step = "SELECT last_step_error_code FROM workflow_overview \
                    WHERE business_key = 'onboarding-1'";
    let sql_unmatched = "SELECT correlation_keys, age_seconds FROM unmatched_callbacks";
    type Codes = (
        Vec<(String, Option<String>)>,
        Option<String>,
        Option<String>,
        (Option<String>, i64),
    );
    let (stuck_rows, loan_code, step_code, unmatched): Codes = match store.backend() {
        store::Backend::Postgres(pool) => (
            sqlx::query_as(sql_stuck)
                .fetch_all(pool)
                .await
                .expect("stuck"),
            sqlx::query_scalar(sql_loan)
                .fetch_one(pool)
                .await
                .expect("loan"),
            sqlx::query_scalar(sql_step)
                .fetch_one(pool)
                .await
                .expect("step"),
            sqlx::query_as(sql_unmatched)
                .fetch_one(pool)
                .await
                .expect("unmatched"),
        ),
        store::Backend::Sqlite(pool) => (
            sqlx::query_as(sql_stuck)
                .fetch_all(pool)
                .await
                .expect("stuck"),
            sqlx::query_scalar(sql_loan)
                .fetch_one(pool)
                .await
                .expect("loan"),
            sqlx::query_scalar(sql_step)
                .fetch_one(pool)
                .await
                .expect("step"),
            sqlx::query_as(sql_unmatched)
                .fetch_one(pool)
                .await
                .expect("unmatched"),
        ),
    };
    assert_eq!(
        stuck_rows,
        vec![("onboarding-1".into(), Some("kyc_mismatch".into()))]
    );
    assert_eq!(loan_code.as_deref(), Some("invalid_input"));
    assert_eq!(step_code.as_deref(), Some("422"));
    assert_eq!(unmatched.0.as_deref(), Some("identity_number"));
    assert!((0..600).contains(&unmatched.1), "age {}", unmatched.1);

    // `finflow status` still gets the whole text, from the table.
    let (oldest, total) = store.oldest_stuck(10).await.expect("stuck");
    assert_eq!(total, 1);
    assert!(
        oldest[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("kyc_mismatch: OCR read")),
        "{oldest:?}"
    );
}

/// `loans.onboarding_business_key` comes from the facts: a loan stored before migration
/// 0013 (started or not) gets it from its input; a loan started since has it from the
/// workflow crate's facts; a loan naming a Finfra user id has none.
async fn loans_read_the_onboarding_key_from_facts(db: TestDb) {
    let store = &db.store;
    let before = match db.backend {
        TestBackend::Postgres => 11,
        TestBackend::Sqlite => 7,
    };
    store::testing::migrate_up_to(store, before)
        .await
        .expect("migrating to the schema before the change");
    let loan = |key: &str, borrower: serde_json::Value| {
        NewWorkflow::new("originate-loan", key, json!({ "borrower": borrower }))
    };
    // Rows as the schema of the time held them (written in SQL: this build's store writes
    // today's columns).
    let old = |key: &'static str,
               input: serde_json::Value,
               state: &'static str,
               facts: serde_json::Value| {
        let (input, facts) = (input.to_string(), facts.to_string());
        async move {
            const PG: &str = "INSERT INTO workflows (id, kind, business_key, definition_name, \
                 status, state, context, input, input_hash, facts, next_run_at) VALUES \
                 (gen_random_uuid(), 'originate-loan', $1, 'originate-loan', 'waiting', $2, '{}', \
                 $3::jsonb, md5($3), $4::jsonb, now())";
            const SQLITE: &str = "INSERT INTO workflows (id, kind, business_key, definition_name, \
                 status, state, context, input, input_hash, facts, next_run_at, created_at, \
                 updated_at) VALUES (lower(hex(randomblob(16))), 'originate-loan', $1, \
                 'originate-loan', 'waiting', $2, '{}', $3, 'h', $4, \
                 strftime('%Y-%m-%dT%H:%M:%fZ'), strftime('%Y-%m-%dT%H:%M:%fZ'), \
                 strftime('%Y-%m-%dT%H:%M:%fZ'))";
            match store.backend() {
                store::Backend::Postgres(pool) => sqlx::query(PG)
                    .bind(key)
                    .bind(state)
                    .bind(&input)
                    .bind(&facts)
                    .execute(pool)
                    .await
                    .map(drop),
                store::Backend::Sqlite(pool) => sqlx::query(SQLITE)
                    .bind(key)
                    .bind(state)
                    .bind(&input)
                    .bind(&facts)
                    .execute(pool)
                    .await
                    .map(drop),
            }
            .expect("an old row")
        }
    };
    // Started by an older worker: facts without the key.
    old(
        "old-waiting",
        json!({ "borrower": { "onboarding": "onboarding-7" } }),
        "await_onboarding",
        json!({ "loan_type": "BNPL" }),
    )
    .await;
    old(
        "old-new",
        json!({ "borrower": { "onboarding": "onboarding-8" } }),
        "new",
        json!({}),
    )
    .await;
    old(
        "old-user",
        json!({ "borrower": { "user_id": "6a41ff87dda4eefd0b7b0300" } }),
        "new",
        json!({}),
    )
    .await;

    store.migrate().await.expect("the upgrade");

    // Started since: the facts the workflow crate writes now.
    let fresh = store
        .submit(&loan(
            "new-waiting",
            json!({ "onboarding": "onboarding-9" }),
        ))
        .await
        .expect("submit")
        .id;
    let claimed = store
        .claim(fresh, "w1", crate::LEASE)
        .await
        .expect("claim")
        .expect("due");
    let mut waiting = step(&claimed, "await_onboarding", Status::Waiting, None);
    waiting.facts = json!({ "loan_type": "BNPL", "onboarding_business_key": "onboarding-9" });
    store.commit_step(&waiting).await.expect("commit");

    let sql = "SELECT business_key, onboarding_business_key, loan_type FROM loans \
               ORDER BY business_key";
    type Row = (String, Option<String>, Option<String>);
    let rows: Vec<Row> = match store.backend() {
        store::Backend::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        store::Backend::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .expect("loans");
    let row = |key: &str, onboarding: Option<&str>, loan_type: Option<&str>| {
        (
            key.to_owned(),
            onboarding.map(str::to_owned),
            loan_type.map(str::to_owned),
        )
    };
    assert_eq!(
        rows,
        vec![
            row("new-waiting", Some("onboarding-9"), Some("BNPL")),
            row("old-new", Some("onboarding-8"), None),
            row("old-user", None, None),
            row("old-waiting", Some("onboarding-7"), Some("BNPL")),
        ],
        "the backfill keeps the other facts"
    );
}

/// A connection of its own (closed after, so no pooled connection keeps the role) as
/// `role`.
async fn connect_as(db: &TestDb, role: &str) -> PgConnection {
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET ROLE {role}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("SET ROLE {role}: {e}"));
    conn
}

/// The SQLSTATE `sql` fails with, or `None` when it succeeds.
async fn sqlstate(conn: &mut PgConnection, sql: &str) -> Option<String> {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => None,
        Err(sqlx::Error::Database(e)) => Some(e.code().map(|c| c.into_owned()).unwrap_or_default()),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// What neither role may read or write: the tables, personal data first.
const TABLE_READS: [&str; 9] = [
    "SELECT input FROM workflows",
    "SELECT context FROM workflows",
    "SELECT id FROM workflows",
    "SELECT payload FROM callback_inbox",
    "SELECT identity_number FROM callback_inbox",
    "SELECT key_value FROM workflow_waits",
    "SELECT payload FROM command_requests",
    "SELECT payload FROM events",
    "SELECT error FROM step_journal",
];

async fn reader_reads_views_only(db: TestDb) {
    let store = &db.store;
    store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "onboarding-1",
            onboarding_input(),
        ))
        .await
        .expect("submit");
    let views = view_names(store).await;
    assert!(views.len() >= 7, "{views:?}");

    let mut conn = connect_as(&db, "finflow_reader").await;
    for view in &views {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(v)::text FROM \"{view}\" v"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("finflow_reader reads {view}: {e}"));
        for row in rows {
            assert!(!row.contains(NIK) && !row.contains(NAME), "{view}: {row}");
        }
    }
    for sql in TABLE_READS {
        assert_eq!(
            sqlstate(&mut conn, sql).await.as_deref(),
            Some("42501"),
            "finflow_reader: {sql}"
        );
    }
    // Nor commands, nor submits (finflow_submit runs with the caller's rights).
    let id = Uuid::new_v4();
    for sql in [
        format!("SELECT finflow_request_command('{id}', 'cancel', 'why')"),
        "SELECT finflow_submit('onboard-borrower', 'k', '{}'::jsonb)".to_owned(),
        "INSERT INTO callback_inbox (source, event_id, title, payload) \
         VALUES ('operator', 'x', 'cancel', '{}')"
            .to_owned(),
    ] {
        assert_eq!(
            sqlstate(&mut conn, &sql).await.as_deref(),
            Some("42501"),
            "finflow_reader: {sql}"
        );
    }
    conn.close().await.expect("close");
}

async fn operator_requests_only(db: TestDb) {
    let store = &db.store;
    let id = store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "onboarding-1",
            onboarding_input(),
        ))
        .await
        .expect("submit")
        .id;
    let done = submit_and_claim(store, "done", "w1").await;
    store
        .commit_step(&step(&done, "approved", Status::Completed, None))
        .await
        .expect("commit");

    let mut conn = connect_as(&db, "finflow_operator").await;
    for view in view_names(store).await {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{view}\"")))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("finflow_operator reads {view}: {e}"));
    }
    for sql in TABLE_READS {
        assert_eq!(
            sqlstate(&mut conn, sql).await.as_deref(),
            Some("42501"),
            "finflow_operator: {sql}"
        );
    }
    for sql in [
        "INSERT INTO callback_inbox (source, event_id, title, payload) \
         VALUES ('operator', 'x', 'cancel', '{}')",
        "INSERT INTO command_requests (workflow_id, title, payload, requested_by, reason, \
         needs_approval, expires_at) SELECT id, 'cancel', '{}', 'x', 'y', 'z', now() \
         FROM workflow_overview",
        "UPDATE workflows SET status = 'cancelled'",
    ] {
        assert_eq!(
            sqlstate(&mut conn, sql).await.as_deref(),
            Some("42501"),
            "finflow_operator: {sql}"
        );
    }

    // What it was granted: a request, in its login's name, for a second person.
    let request_id: i64 = sqlx::query_scalar(
        "SELECT finflow_request_command($1, 'resolve', 'bank fixed', '{\"retry\": true}')",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .expect("finflow_operator requests a command");
    let refused = [
        (
            format!(
                "SELECT finflow_request_command('{}', 'cancel', 'r')",
                done.workflow.id
            ),
            "55000",
        ),
        (
            format!(
                "SELECT finflow_request_command('{}', 'cancel', 'r')",
                Uuid::new_v4()
            ),
            "P0002",
        ),
        (
            format!("SELECT finflow_request_command('{id}', 'delete', 'r')"),
            "22023",
        ),
        (
            format!("SELECT finflow_request_command('{id}', 'cancel', ' ')"),
            "22023",
        ),
    ];
    for (sql, code) in refused {
        assert_eq!(
            sqlstate(&mut conn, &sql).await.as_deref(),
            Some(code),
            "{sql}"
        );
    }
    conn.close().await.expect("close");

    let request = store
        .command_request(request_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(request.workflow_id, id);
    assert_eq!(request.status, RequestStatus::Pending);
    assert_eq!(request.requested_by, "postgres", "the login role");
    assert_eq!(
        request.payload,
        json!({ "by": "postgres", "reason": "bank fixed", "data": { "retry": true } })
    );
    // The requester cannot approve it; a second person can, and it is queued.
    assert!(
        store
            .approve_command(request_id, "postgres", "mine")
            .await
            .is_err()
    );
    let approved = store
        .approve_command(request_id, "bob", "checked")
        .await
        .expect("approve");
    assert_eq!(approved.status, RequestStatus::Approved);
}
