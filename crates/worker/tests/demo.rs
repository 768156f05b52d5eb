//! `finflow demo` as a newcomer runs it: in an empty directory, with nothing set up. It must
//! finish, print its summary and the SQL to look inside, and leave a database in which every
//! journey ended as the mix asked: the loan paid when its borrower was approved, failed
//! with the onboarding's reason when not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use store::Store;

const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");

/// A fresh empty directory (no `workflows/`, no `finflow.toml`), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("finflow-demo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `finflow demo ARGS` in `dir` without any `FINFLOW_*` variable of ours.
fn demo(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(FINFLOW);
    command.arg("demo").args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    command.output().expect("run finflow demo")
}

fn text(output: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One workflow row.
#[derive(Debug, Clone)]
struct Row {
    kind: String,
    key: String,
    status: String,
    state: String,
    last_error: Option<String>,
}

async fn workflows(dir: &Path) -> Vec<Row> {
    let url = format!("sqlite://{}", dir.join("finflow-demo.db").display());
    let store = Store::connect(&url).await.expect("the demo's database");
    let pool = store.sqlite_pool().expect("SQLite");
    let rows: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT kind, business_key, status, state, last_error FROM workflows ORDER BY business_key, kind",
    )
    .fetch_all(pool)
    .await
    .expect("workflows");
    store.close().await;
    rows.into_iter()
        .map(|(kind, key, status, state, last_error)| Row {
            kind,
            key,
            status,
            state,
            last_error,
        })
        .collect()
}

#[tokio::test]
async fn the_demo_runs_every_journey_to_its_end_in_a_fresh_database() {
    let dir = TempDir::new();
    let started = Instant::now();
    let output = demo(
        &dir.0,
        &["--journeys", "6", "--seed", "11", "--timeout", "60"],
    );
    let elapsed = started.elapsed();
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "finflow demo: 6 journeys finished in",
        "KIND",
        "Borrowers",
        "Loans",
        "Callbacks",
        "Look inside",
        "sqlite3 finflow-demo.db \"select kind, business_key, status, state from workflow_overview",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{report}");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("finflow-demo.db (SQLite, new)"), "{report}");
    assert!(
        elapsed < Duration::from_secs(45),
        "6 journeys took {elapsed:?}"
    );

    // Every workflow ended; each journey is an onboarding and a loan under one key.
    let rows = workflows(&dir.0).await;
    assert_eq!(rows.len(), 12, "{rows:#?}");
    let mut journeys: BTreeMap<&str, BTreeMap<&str, &Row>> = BTreeMap::new();
    for row in &rows {
        assert!(
            row.status == "completed" || row.status == "failed",
            "not finished: {row:?}"
        );
        journeys
            .entry(row.key.as_str())
            .or_default()
            .insert(row.kind.as_str(), row);
    }
    assert_eq!(journeys.len(), 6);
    let mut paid = 0;
    for (key, kinds) in &journeys {
        let onboarding = kinds["onboard-borrower"];
        let loan = kinds["originate-loan"];
        // The mix's tags decide the borrower; a clean one is approved (business single
        // payment may still be declined by the score the sandbox derives from the NIK).
        if key.ends_with("-reject") {
            assert_eq!(onboarding.status, "failed", "{onboarding:?}");
        } else if key.ends_with("-lowscore") || key.ends_with("-overdue") {
            assert_eq!(onboarding.state, "declined", "{onboarding:?}");
        } else if !key.contains("business-single-payment") {
            assert_eq!(onboarding.state, "approved", "{onboarding:?}");
        }
        if onboarding.state == "approved" {
            assert_eq!(
                (loan.status.as_str(), loan.state.as_str()),
                ("completed", "paid"),
                "{loan:?}"
            );
            paid += 1;
        } else {
            assert_eq!(loan.status, "failed", "{loan:?}");
            let why = loan.last_error.as_deref().unwrap_or("");
            assert!(why.contains(key), "the loan names its onboarding: {why}");
        }
    }
    assert!(paid >= 2, "{rows:#?}");
    assert!(
        journeys.keys().any(|k| k.ends_with("-reject")),
        "the mix has a KYC rejection: {:?}",
        journeys.keys()
    );

    // A second run starts from a new database, not on top of the first one's.
    let output = demo(
        &dir.0,
        &["--journeys", "1", "--seed", "3", "--timeout", "60"],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("recreated"),
        "{}",
        text(&output)
    );
    let rows = workflows(&dir.0).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
}

#[test]
fn a_wrong_database_url_is_one_clear_line() {
    let dir = TempDir::new();
    let output = demo(&dir.0, &["--database-url", "mysql://db/finflow"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("sqlite://") && errors[0].contains("postgres://"));
    assert!(!dir.0.join("finflow-demo.db").exists());
}

#[test]
fn a_timeout_still_prints_the_summary_and_fails() {
    let dir = TempDir::new();
    let output = demo(&dir.0, &["--journeys", "2", "--timeout", "1"]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("TIMED OUT after 1 s"), "{report}");
    assert!(stdout.contains("Not finished"), "{report}");
    assert!(stdout.contains("Look inside"), "{report}");
}

/// `--database-url postgres://...` runs the same on PostgreSQL, in that database as it is
/// (here a fresh, unmigrated one: the demo migrates it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_postgresql_too() {
    store::testing::run(
        store::testing::TestBackend::Postgres,
        false,
        |db| async move {
            let dir = TempDir::new();
            let output = demo(
                &dir.0,
                &[
                    "--journeys",
                    "4",
                    "--seed",
                    "5",
                    "--timeout",
                    "60",
                    "--database-url",
                    &db.url,
                ],
            );
            let report = text(&output);
            assert!(output.status.success(), "{report}");
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("psql '"),
                "the SQL to look inside is PostgreSQL's:\n{report}"
            );
            assert!(!dir.0.join("finflow-demo.db").exists(), "no SQLite file");
            let pool = db.store.pg_pool().expect("PostgreSQL");
            let unfinished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM workflows WHERE status NOT IN ('completed', 'failed')",
            )
            .fetch_one(pool)
            .await
            .expect("count");
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM workflows")
                .fetch_one(pool)
                .await
                .expect("count");
            assert_eq!((total, unfinished), (8, 0), "{report}");
        },
    )
    .await;
}
