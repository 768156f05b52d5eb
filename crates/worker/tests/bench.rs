//! `finflow bench` as a user runs it: a small SQLite-only benchmark through the real binary
//! prints every figure with a measured value, and says why PostgreSQL has none; a small
//! PostgreSQL one (the server at `DATABASE_URL`, default 127.0.0.1:5432) gives the figures
//! only PostgreSQL has (round trips, transactions and WAL per step, HOT updates) as JSON.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");

/// The new flags at sizes that keep a run to a few seconds.
const SMALL: [&str; 12] = [
    "--onboardings",
    "5",
    "--runs",
    "1",
    "--idle-samples",
    "2",
    "--floor-secs",
    "0.5",
    "--preload",
    "20",
    "--in-flight",
    "2",
];

/// Runs `finflow bench` with `args` in an empty working directory (no finflow.toml: the
/// bundled definitions) without any FINFLOW_ setting; `keep_database_url` keeps
/// `DATABASE_URL` for PostgreSQL.
fn bench(name: &str, args: &[&str], keep_database_url: bool) -> (Output, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("finflow-bench-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut command = Command::new(FINFLOW);
    command.arg("bench").args(args).current_dir(&dir);
    if !keep_database_url {
        command.env_remove("DATABASE_URL");
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    (command.output().expect("run finflow bench"), dir)
}

/// The value columns of the table row starting with `label`: SQLite, PostgreSQL, ratio.
fn row<'a>(stdout: &'a str, label: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label) && !l.contains(':'))
        .unwrap_or_else(|| panic!("no table row {label:?} in:\n{stdout}"));
    line[label.len()..].split_whitespace().collect()
}

#[test]
fn a_small_sqlite_bench_prints_the_figures() {
    let mut args = SMALL.to_vec();
    args.extend(["--backend", "sqlite"]);
    let (output, dir) = bench("sqlite", &args, false);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "finflow bench failed:\n{stdout}\n{stderr}"
    );

    for label in [
        "onboardings per second",
        "step-to-step p50 (ms)",
        "step-to-step p90 (ms)",
        "step-to-step p99 (ms)",
        "between steps p50 (ms)",
        "resume after callback p50 (ms)",
        "resume after callback, idle p50 (ms)",
        "idle pickup p50 (ms)",
        "idle pickup p90 (ms)",
        "steps per second",
        "floor transactions/s, before",
        "floor transactions/s, after",
        "floor transactions/s (median)",
        "steps/s as a share of the floor",
        "workflows.context bytes (avg)",
        "finflow process CPU per step (ms)",
        "peak RSS (MB)",
        "RSS with --in-flight parked (MB)",
        "preload loading time (s)",
    ] {
        let values = row(&stdout, label);
        let sqlite: f64 = values[0]
            .parse()
            .unwrap_or_else(|_| panic!("{label}: no SQLite figure in {values:?}\n{stdout}"));
        assert!(sqlite > 0.0, "{label}: {sqlite}\n{stdout}");
        assert_eq!(values[1], "-", "{label}: PostgreSQL was not asked for");
        // One line per figure too.
        assert!(
            stdout.contains(&format!("{label}: SQLite {}", values[0])),
            "{label}: no line of its own\n{stdout}"
        );
    }
    // What only PostgreSQL measures has no SQLite figure.
    for label in [
        "SQL round trips per step",
        "transactions per step",
        "WAL bytes per step",
        "HOT share of workflows updates",
    ] {
        assert_eq!(row(&stdout, label)[0], "-", "{label}\n{stdout}");
    }
    // SQLite's one write lane was busy for part of the run; how long a batch of step
    // commits alone takes, only PostgreSQL's lane of its own tells.
    let line = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: SQLite ")))
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no line {label:?}\n{stdout}"))
    };
    let busy: f64 = line("group commit: share of the time its lane was busy")
        .parse()
        .expect("a share");
    assert!(busy > 0.0 && busy < 1.1, "{busy}\n{stdout}");
    assert_eq!(
        line("group commit: a batch of step commits (ms), mean"),
        "-"
    );
    // The floor is the database's own: far more transactions than finflow has steps.
    let share: f64 = row(&stdout, "steps/s as a share of the floor")[0]
        .parse()
        .expect("a share");
    assert!(share > 0.0 && share < 1.0, "{share}\n{stdout}");
    assert!(
        stdout.contains("SQLite run 1: preloaded 20 workflows ("),
        "{stdout}"
    );
    assert!(stdout.contains("; 2 in flight parked after "), "{stdout}");
    assert!(
        stdout.contains("PostgreSQL: skipped: not asked for (--backend sqlite)"),
        "{stdout}"
    );
    // Every onboarding ran to its end: none failed, is stuck or waits for a person.
    let outcomes = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SQLite outcomes over all runs: "))
        .unwrap_or_else(|| panic!("no outcomes line\n{stdout}"));
    let total: u32 = outcomes
        .split(", ")
        .map(|o| {
            let (count, outcome) = o.split_once(' ').expect("count and outcome");
            // Approved, or declined on the credit score the sandbox derives from the NIK.
            assert!(outcome.starts_with("completed/"), "{outcome}\n{stdout}");
            count.parse::<u32>().expect("a count")
        })
        .sum();
    assert_eq!(total, 5, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_small_postgres_bench_gives_the_figures_as_json() {
    let mut args = SMALL.to_vec();
    args.extend(["--backend", "postgres", "--json"]);
    let (output, dir) = bench("postgres", &args, true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "finflow bench failed (it needs the PostgreSQL server at DATABASE_URL, default \
         postgres://postgres@127.0.0.1:5432/postgres):\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let postgres = &report["backends"]["postgres"];
    assert_eq!(postgres["measured"], true, "{report:#}");
    let median = &postgres["median"];
    let figure = |key: &str| {
        median[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key} in {median:#}"))
    };
    // The names the table and the README's use stay.
    for key in [
        "onboardings_per_second",
        "journal_rows_per_onboarding",
        "transactions_per_onboarding",
        "step_to_step_p50_ms",
        "idle_pickup_p50_ms",
    ] {
        assert!(figure(key) > 0.0, "{key}: {median:#}");
    }
    let rows = figure("journal_rows_per_onboarding");
    assert!((5.0..=40.0).contains(&rows), "{rows}");
    for key in [
        "steps_per_second",
        "floor_tps",
        "floor_tps_before",
        "floor_tps_after",
        "wal_bytes_per_step",
        "context_bytes_avg",
        "peak_rss_mb",
        "in_flight_rss_mb",
        "preload_seconds",
    ] {
        assert!(figure(key) > 0.0, "{key}: {median:#}");
    }
    // Every step commits, and a commit is at least one round trip and one transaction.
    assert!(figure("round_trips_per_step") >= 1.0, "{median:#}");
    assert!(figure("transactions_per_step") >= 1.0, "{median:#}");
    let per_onboarding = figure("round_trips_per_onboarding");
    let per_step = figure("round_trips_per_step");
    assert!(
        (per_onboarding - per_step * rows).abs() < 0.01 * per_onboarding,
        "{median:#}"
    );
    let share = figure("steps_share_of_floor");
    assert!(share > 0.0 && share < 1.0, "{median:#}");
    // A step that continues inline changes no indexed column: its update is HOT
    // (migration 0017), and so is one that records a fact but keeps the user and loan ids
    // (0021): about half of all updates of an onboarding (a third before 0021).
    let hot = figure("hot_update_share");
    assert!((0.4..=1.0).contains(&hot), "{median:#}");
    // The server's CPU, read from /proc when the server runs on this machine and its
    // processes are seen here (CI's and the default URL's): a step does more than the floor's
    // one insert and one update.
    if server_seen_here() {
        let step = figure("server_cpu_ms_per_step");
        let floor = figure("floor_server_cpu_ms_per_transaction");
        assert!(step > 0.0 && floor > 0.0, "{median:#}");
        let ratio = figure("server_cpu_step_in_floor_transactions");
        assert!(
            (ratio - step / floor).abs() < 1e-6 * ratio && ratio > 1.0,
            "{median:#}"
        );
    }
    // finflow's own side of a step: the engine, the receiver and the sandbox ran in the bench's
    // process, whose CPU is read from /proc/self.
    assert!(figure("process_cpu_ms_per_step") > 0.0, "{median:#}");
    // Through the proxy the store's connections are plain (it refuses TLS).
    assert_eq!(figure("tls"), 0.0, "{median:#}");
    assert_eq!(
        postgres["runs"][0]["tls"].as_bool(),
        Some(false),
        "{postgres:#}"
    );
    // Every step commit went in a batch of one or more.
    let run = &postgres["runs"][0];
    let batch = &run["group_commit_batch"];
    assert!(batch["p50"].as_f64() >= Some(1.0), "{run:#}");
    assert!(batch["samples"].as_u64() > Some(0), "{run:#}");
    for key in [
        "group_commit_mean",
        "group_claim_mean",
        "group_callback_mean",
    ] {
        let mean = figure(key);
        assert!((1.0..=32.0).contains(&mean), "{key}: {median:#}");
    }
    // How long a batch of step commits took, and how busy each lane was: one batch of a
    // lane in flight at a time, so never more than the measurement (a little past its end
    // at most: the last batches answer after the last workflow's end was stamped).
    let batch_ms = figure("group_commit_ms_mean");
    let elapsed_ms = run["elapsed_ms"].as_f64().expect("elapsed");
    assert!(batch_ms > 0.0 && batch_ms < elapsed_ms, "{run:#}");
    let lanes = run["lane_busy_share"].as_object().expect("lanes");
    let names: Vec<&str> = lanes.keys().map(String::as_str).collect();
    assert_eq!(names, ["callback", "claim", "commit"], "{run:#}");
    for (lane, share) in lanes {
        let share = share.as_f64().expect("a share");
        assert!((0.0..1.1).contains(&share), "{lane}: {run:#}");
    }
    assert_eq!(
        figure("commit_lane_busy_share"),
        lanes["commit"].as_f64().expect("commit"),
        "{median:#}"
    );
    assert!(figure("commit_lane_busy_share") > 0.0, "{median:#}");
    // Some wake-ups find their workflow held or finished; never more than a few an onboarding.
    let stale = figure("stale_claims_per_onboarding");
    assert!((0.0..5.0).contains(&stale), "{median:#}");
    assert_eq!(run["preload"]["workflows"], 20, "{run:#}");
    assert!(
        run["preload"]["journal_rows"].as_u64() >= Some(100),
        "{run:#}"
    );
    assert_eq!(run["in_flight"]["workflows"], 2, "{run:#}");
    // Read from the `finflow run` process that parked them: a worker's own memory.
    let worker_rss = run["in_flight"]["rss_mb"]
        .as_f64()
        .expect("the worker's RSS");
    assert!(
        worker_rss > 1.0 && run["in_flight"]["peak_rss_mb"].as_f64() >= Some(worker_rss),
        "{run:#}"
    );
    let trips = &run["round_trips"];
    assert!(trips["syncs"].as_u64() > Some(0), "{run:#}");
    assert!(trips["connections"].as_u64() > Some(0), "{run:#}");
    let outcomes = run["outcomes"].as_object().expect("outcomes");
    let total: u64 = outcomes
        .iter()
        .map(|(outcome, count)| {
            assert!(outcome.starts_with("completed/"), "{outcome}: {run:#}");
            count.as_u64().expect("a count")
        })
        .sum();
    assert_eq!(total, 5, "{run:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the PostgreSQL server of `DATABASE_URL` (or the default) runs on this machine
/// and its processes are seen here: a session's backend (`pg_backend_pid()`) is a
/// `postgres` process in this machine's `/proc`. Not on another machine, nor in a container
/// of its own, where the bench reads no server CPU.
fn server_seen_here() -> bool {
    use sqlx::Connection as _;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| store::testing::DEFAULT_DATABASE_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("the bench just used this server");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("pg_backend_pid()");
        // Read while the session is open: its backend is alive.
        let seen = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "postgres");
        let _ = conn.close().await;
        seen
    })
}
