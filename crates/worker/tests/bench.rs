//! `finflow bench` as a user runs it: a small SQLite-only benchmark through the real binary
//! prints every figure with a measured value, and says why PostgreSQL has none.

use std::process::Command;

const FINFLOW: &str = env!("CARGO_BIN_EXE_finflow");

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
    // An empty working directory: no finflow.toml, and the bundled definitions.
    let dir = std::env::temp_dir().join(format!("finflow-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut command = Command::new(FINFLOW);
    command
        .args([
            "bench",
            "--onboardings",
            "5",
            "--runs",
            "1",
            "--backend",
            "sqlite",
        ])
        .args(["--idle-samples", "3"])
        .current_dir(&dir)
        .env_remove("DATABASE_URL");
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("run finflow bench");
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
