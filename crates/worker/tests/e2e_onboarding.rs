//! Issue 3's end-to-end test: the promise "a crash at any instant, a 429 storm, a lost or
//! duplicated callback never loses work and never repeats a non-idempotent call blindly",
//! checked on the real binaries, once per backend.
//!
//! One run: `finflow sandbox` with seeded faults (500s, 429s with and without
//! `Retry-After`, ambiguous failures that apply the request and then drop the connection or
//! answer too late, duplicated and reordered callbacks), `finflow run` workers on one
//! database, [`APPLICANTS`] onboardings submitted through the CLI, the Rust API and (on
//! PostgreSQL) the `finflow_submit` SQL function. While the workers work, the one that
//! receives Finfra's callbacks is SIGKILLed in the middle of calls and started again on
//! the same port (the sandbox retries the callbacks it could not deliver). Then every
//! workflow must end where the sandbox's own record says it should, the sandbox's ledger
//! must show no borrower created twice and no request sent inside a `Retry-After` window,
//! the journal must show the interrupted calls being taken over, and `finflow status`
//! must count what SQL counts.
//!
//! Each backend runs as it is deployed: SQLite (one machine) with one worker, which the
//! kill takes down entirely; PostgreSQL with a fleet of two, which keeps working while
//! one of them is down. Two processes on one SQLite file share the `429` pause only as
//! fast as SQLite's single writer lets the pause through, which under load took up to
//! 600 ms here: too late to keep the second process out of a 1 s `Retry-After` window.

mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::applicants::{Applicant, Intent, mix};
use e2e::db::{Db, WorkflowRow};
use e2e::processes::{FinflowEnv, SandboxArgs, SandboxProcess, free_port, test_log};
use finfra_sandbox::{BorrowerSummary, Ledger};
use store::testing::{TestBackend, TestDb};

const KIND: &str = "onboard-borrower";
/// Onboardings per run (the issue asks for at least 100).
const APPLICANTS: usize = 120;
/// Submitted with `finflow submit`, one per product; the rest in bulk.
const THROUGH_CLI: usize = 4;
const CALLBACK_KEY: &str = "e2e-callback-key";
/// How long the whole fleet may take from the first submit until every workflow is
/// terminal. A healthy run needs well under half of it.
const SETTLE_WITHIN: Duration = Duration::from_secs(90);

/// One scenario at a time. Each runs a sandbox, a fleet and a database on this machine's two
/// cores; two at once starve the sandbox, which then stamps requests that were sent before
/// a `429` as arriving well after it (it cannot see when a request left the client), and
/// the Retry-After check would blame the client for the machine's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_survives_faults_and_a_killed_worker_on_sqlite() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let run = Run {
        seed: 11,
        workers: 1,
        concurrency: 16,
    };
    store::testing::run(TestBackend::Sqlite, true, |db| scenario(db, run)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_survives_faults_and_a_killed_worker_on_postgres() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let run = Run {
        seed: 23,
        workers: 2,
        concurrency: 8,
    };
    store::testing::run(TestBackend::Postgres, true, |db| scenario(db, run)).await;
}

/// How a backend is exercised.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Seed of the sandbox's faults and callback duplicates.
    seed: u64,
    /// `finflow run` processes; the first receives the callbacks and is killed.
    workers: usize,
    /// Workflows each advances at once.
    concurrency: usize,
}

/// The test's definitions differ from the shipped ones only in what a test cannot wait
/// for (retry delays, poll interval): the policies under test are the real ones.
#[test]
fn e2e_definitions_keep_the_shipped_policies() {
    let shipped = workflow::Registry::load_dir(&repo_dir().join("workflows")).expect("shipped");
    let e2e = workflow::Registry::load_dir(&e2e_workflows()).expect("e2e definitions");
    let names =
        |r: &workflow::Registry| -> BTreeSet<String> { r.iter().map(|d| d.name.clone()).collect() };
    assert_eq!(
        names(&e2e),
        names(&shipped),
        "one e2e copy per shipped definition"
    );
    for name in names(&shipped) {
        let definition = shipped.latest(&name).expect("loaded");
        let mut ours = e2e.latest(&name).expect("loaded").clone();
        assert!(ours.onboarding.poll_interval <= Duration::from_secs(1));
        ours.onboarding.poll_interval = definition.onboarding.poll_interval;
        assert_eq!(ours.onboarding, definition.onboarding, "{name}");
        assert_eq!(ours.credit, definition.credit, "{name}");
    }
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn e2e_workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/workflows")
}

/// Progress notes on stderr with `TEST_LOG`.
struct Clock {
    backend: &'static str,
    start: Instant,
}

impl Clock {
    fn note(&self, what: impl std::fmt::Display) {
        if test_log() {
            eprintln!(
                "[e2e {} {:>6.2}s] {what}",
                self.backend,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn scenario(test_db: TestDb, run: Run) {
    let backend = match test_db.backend {
        TestBackend::Sqlite => "sqlite",
        TestBackend::Postgres => "postgres",
    };
    let clock = Clock {
        backend,
        start: Instant::now(),
    };
    let db = Db {
        store: test_db.store.clone(),
    };
    let applicants = mix(APPLICANTS);

    // The sandbox delivers callbacks to the worker that will be killed: while it is down,
    // deliveries fail and the sandbox retries them until it is back on the same port.
    let receiver_port = free_port();
    let sandbox = SandboxProcess::start(&SandboxArgs {
        callback_url: format!("http://127.0.0.1:{receiver_port}"),
        callback_auth_key: CALLBACK_KEY.to_owned(),
        seed: run.seed,
        error_500_rate: 0.03,
        error_429_rate: 0.003,
        ambiguous_rate: 0.03,
        duplicate_callback_rate: 0.2,
    });
    // Faults the command line has no flag for, through the control API. A held answer
    // outlives the workers' 2 s timeout: an ambiguous timeout.
    let mut faults = sandbox.faults().await;
    faults.error_429_without_retry_after_rate = 0.003;
    faults.ambiguous_timeout_rate = 0.004;
    faults.ambiguous_hold = Duration::from_secs(3);
    sandbox.set_faults(&faults).await;
    clock.note(format_args!("sandbox at {}", sandbox.base_url));

    let workflows_dir = e2e_workflows();
    let concurrency = run.concurrency.to_string();
    let env = FinflowEnv::new(&[
        ("FINFLOW_DATABASE_URL", &test_db.url),
        ("FINFLOW_FINFRA__BASE_URL", &sandbox.base_url),
        ("FINFLOW_FINFRA__CLIENT_ID", &sandbox.client_id),
        ("FINFLOW_FINFRA__CLIENT_SECRET", &sandbox.client_secret),
        ("FINFLOW_FINFRA__TIMEOUT_SECS", "2"),
        ("FINFLOW_CALLBACKS__AUTH_KEY", CALLBACK_KEY),
        (
            "FINFLOW_WORKER__WORKFLOWS_DIR",
            workflows_dir.to_str().expect("a UTF-8 path"),
        ),
        // A killed worker's workflows are taken over when their lease ends.
        ("FINFLOW_WORKER__LEASE_SECS", "2"),
        ("FINFLOW_WORKER__CONCURRENCY", &concurrency),
    ]);
    let mut receiver = env.start_worker(loopback(receiver_port));
    let others: Vec<_> = (1..run.workers)
        .map(|_| env.start_worker(loopback(free_port())))
        .collect();
    clock.note(format_args!(
        "workers {} and {:?}",
        receiver.id,
        others.iter().map(|w| &w.id).collect::<Vec<_>>()
    ));

    // Submit: a few as a user would, the rest in bulk as other systems would.
    for applicant in &applicants[..THROUGH_CLI] {
        env.submit(KIND, &applicant.business_key, &applicant.input());
    }
    for (i, applicant) in applicants[THROUGH_CLI..].iter().enumerate() {
        if test_db.backend == TestBackend::Postgres && i % 2 == 0 {
            db.submit_sql(applicant).await;
        } else {
            db.submit_rust(applicant).await;
        }
    }
    let submitted = Instant::now();
    clock.note(format_args!("{APPLICANTS} onboardings submitted"));

    // Kill the receiving worker while it is in the middle of calls and callbacks are on
    // their way to it, with a good part of the work done and the rest still to do.
    let mut interrupted = Vec::new();
    let mut delivery_failed = false;
    for _ in 0..5 {
        wait_for_kill_point(&db, &sandbox, &receiver.id, &clock).await;
        receiver.kill();
        // Frozen now: nobody may take these over before their lease ends.
        interrupted = db.held_mid_call(&receiver.id).await;
        let ledger = sandbox.ledger().await;
        clock.note(format_args!(
            "SIGKILLed {} holding {} workflows mid-call, {} callbacks undelivered",
            receiver.id,
            interrupted.len(),
            undelivered(&ledger)
        ));
        // Down until a delivery has failed (any attempt from now on does), so the sandbox
        // has to deliver it again to the restarted worker.
        delivery_failed = undelivered(&ledger) > 0
            && wait_for_delivery_attempt(&sandbox, ledger.callback_attempts).await;
        receiver = env.start_worker(loopback(receiver_port));
        clock.note(format_args!("restarted as {}", receiver.id));
        if !interrupted.is_empty() && delivery_failed {
            break;
        }
        // The calls all finished, or the callbacks were delivered, between the look and
        // the kill: try again.
    }
    assert!(
        !interrupted.is_empty() && delivery_failed,
        "could not kill the worker in the middle of a call with callbacks on their way in 5 tries"
    );

    wait_until_all_terminal(&db, submitted, &clock).await;
    clock.note("every workflow is terminal");

    let ledger = sandbox.ledger().await;
    let borrowers = sandbox.borrowers().await;
    let rejections = rejection_reasons(&sandbox).await;
    let workflows = db.workflows().await;

    check_outcomes(&db, &applicants, &workflows, &borrowers, &rejections).await;
    check_ledger(&applicants, &ledger);
    check_recovery(&db, &interrupted).await;
    check_engine_saw_the_faults(&db).await;
    check_status_counts(&db, &env, &workflows).await;
    clock.note(format_args!(
        "checked: faults injected {:?}, {:?} requests in flight at a 429, {} callbacks \
         duplicated, {} delivery attempts for {} deliveries",
        ledger.faults_injected,
        ledger.requests_in_flight_at_429,
        ledger.callbacks_duplicated,
        ledger.callback_attempts,
        ledger.callbacks_delivered
    ));
}

/// Waits until a fifth of the workflows are terminal, `worker` holds at least one workflow
/// mid-call and the sandbox has callbacks still to deliver.
async fn wait_for_kill_point(db: &Db, sandbox: &SandboxProcess, worker: &str, clock: &Clock) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (terminal, total) = db.progress().await;
        if terminal * 5 >= total
            && !db.held_mid_call(worker).await.is_empty()
            && undelivered(&sandbox.ledger().await) > 0
        {
            clock.note(format_args!(
                "{terminal}/{total} terminal: killing {worker}"
            ));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{worker} never held a workflow mid-call ({terminal}/{total} terminal)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Callback deliveries the sandbox has neither completed nor given up.
fn undelivered(ledger: &Ledger) -> u64 {
    let deliveries = ledger.callbacks_emitted.values().sum::<u64>() + ledger.callbacks_duplicated;
    deliveries.saturating_sub(ledger.callbacks_delivered + ledger.callbacks_failed)
}

/// Whether the sandbox starts a callback delivery (beyond the first `attempts`) within 5 s.
async fn wait_for_delivery_attempt(sandbox: &SandboxProcess, attempts: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if sandbox.ledger().await.callback_attempts > attempts {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits (bounded) until no workflow is left to run; fails at once if one needs a person.
async fn wait_until_all_terminal(db: &Db, since: Instant, clock: &Clock) {
    let mut last = (0, 0);
    loop {
        let (terminal, total) = db.progress().await;
        if terminal == total {
            return;
        }
        if (terminal, total) != last && terminal % 20 == 0 {
            clock.note(format_args!("{terminal}/{total} terminal"));
        }
        last = (terminal, total);
        let stuck = db.needing_attention().await;
        if !stuck.is_empty() {
            panic!(
                "workflows need attention, which no fault of this run should cause:\n{}",
                diagnose(db, &stuck).await
            );
        }
        if since.elapsed() > SETTLE_WITHIN {
            let left: Vec<WorkflowRow> = db
                .workflows()
                .await
                .into_values()
                .filter(|w| !matches!(w.status.as_str(), "completed" | "failed" | "cancelled"))
                .collect();
            panic!(
                "{} workflows not terminal after {SETTLE_WITHIN:?}:\n{}",
                left.len(),
                diagnose(db, &left).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A few workflows with the tail of their journal, for a failure message.
async fn diagnose(db: &Db, workflows: &[WorkflowRow]) -> String {
    let mut out = String::new();
    for w in workflows.iter().take(5) {
        out.push_str(&format!(
            "- {} {} {}/{} lease {:?}: {:?}\n",
            w.business_key, w.id, w.state, w.status, w.lease_owner, w.last_error
        ));
        let journal = db.journal(&w.id).await;
        for row in journal.iter().skip(journal.len().saturating_sub(10)) {
            out.push_str(&format!(
                "    #{} {} {} -> {} {:?} by {}\n",
                row.seq, row.step, row.action, row.outcome, row.error, row.worker_id
            ));
        }
    }
    out
}

/// The reason Finfra gave with each `user_rejected`, by user id.
async fn rejection_reasons(sandbox: &SandboxProcess) -> BTreeMap<String, String> {
    sandbox
        .callbacks()
        .await
        .into_iter()
        .filter(|c| c.title == "user_rejected")
        .filter_map(|c| {
            Some((
                c.body["user_id"].as_str()?.to_owned(),
                c.body["data"]["reason"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Every workflow ended where the sandbox's record of its borrower says it should, and
/// where its input meant it to. Every problem is listed, with the journals of the first few
/// workflows concerned.
async fn check_outcomes(
    db: &Db,
    applicants: &[Applicant],
    workflows: &BTreeMap<String, WorkflowRow>,
    borrowers: &[BorrowerSummary],
    rejections: &BTreeMap<String, String>,
) {
    assert_eq!(
        workflows.len(),
        applicants.len(),
        "one workflow per applicant"
    );
    assert_eq!(
        borrowers.len(),
        applicants.len(),
        "the sandbox has exactly our borrowers"
    );
    let mut problems = Vec::new();
    let mut offenders = Vec::new();
    for applicant in applicants {
        let w = &workflows[&applicant.business_key];
        let found = outcome_problems(applicant, w, borrowers, rejections);
        if !found.is_empty() {
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("{}: {p}", w.business_key)),
            );
            offenders.push(w.clone());
        }
    }
    assert!(
        problems.is_empty(),
        "{} workflows did not end as the sandbox says:\n{}\n{}",
        offenders.len(),
        problems.join("\n"),
        diagnose(db, &offenders).await
    );
}

fn outcome_problems(
    applicant: &Applicant,
    w: &WorkflowRow,
    borrowers: &[BorrowerSummary],
    rejections: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let theirs: Vec<_> = borrowers
        .iter()
        .filter(|b| b.nik == applicant.nik)
        .collect();
    let [b] = theirs[..] else {
        return vec![format!("{} sandbox borrowers have its NIK", theirs.len())];
    };
    let Some(user_id) = b.id.clone() else {
        return vec![format!("the sandbox is still creating it ({})", b.status)];
    };
    if w.user_id().as_deref() != Some(user_id.as_str()) {
        problems.push(format!(
            "recorded Finfra user id {:?}, the sandbox's is {user_id}",
            w.user_id()
        ));
    }
    let ours = (w.state.as_str(), w.status.as_str());
    let expected = match b.status.as_str() {
        "APPROVED" => ("approved", "completed"),
        "BLOCKED" => ("declined", "completed"),
        "REJECTED" => {
            let error = w.last_error.as_deref().unwrap_or_default();
            match rejections.get(&user_id) {
                Some(reason) if error.starts_with("kyc_rejected") && error.contains(reason) => {}
                reason => problems.push(format!(
                    "error {error:?} does not give Finfra's rejection reason {reason:?}"
                )),
            }
            ("failed", "failed")
        }
        other => ("?", other),
    };
    if ours != expected {
        problems.push(format!(
            "ended {ours:?}, but the sandbox's borrower is {} (expected {expected:?})",
            b.status
        ));
    }
    let meant = match applicant.intent {
        Intent::Approve => &["APPROVED"][..],
        Intent::ScoreDecides => &["APPROVED", "BLOCKED"][..],
        Intent::KycRejected => &["REJECTED"][..],
        Intent::PolicyDeclined => &["BLOCKED"][..],
    };
    if !meant.contains(&b.status.as_str()) {
        problems.push(format!(
            "meant {:?}, the sandbox's borrower is {}",
            applicant.intent, b.status
        ));
    }
    problems
}

/// The sandbox's ledger: one borrower per NIK, nothing sent inside a Retry-After window.
fn check_ledger(applicants: &[Applicant], ledger: &Ledger) {
    let niks: BTreeSet<&str> = applicants.iter().map(|a| a.nik.as_str()).collect();
    let created: BTreeSet<&str> = ledger
        .borrowers_created_per_nik
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(created, niks, "every borrower created");
    let twice: Vec<_> = ledger
        .borrowers_created_per_nik
        .iter()
        .filter(|(_, n)| **n != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "borrowers created more than once: {twice:?}"
    );
    assert_eq!(
        ledger.total_requests_inside_retry_after(),
        0,
        "requests sent inside a Retry-After window: {:?} (faults {:?})",
        ledger.requests_inside_retry_after,
        ledger.faults_injected
    );
    // The run exercised what it claims to.
    for fault in ["500", "429", "429_without_retry_after", "ambiguous"] {
        assert!(
            ledger.faults_injected.get(fault).copied().unwrap_or(0) > 0,
            "no {fault} fault was injected: {:?}",
            ledger.faults_injected
        );
    }
    assert!(ledger.callbacks_duplicated > 0, "no duplicated callback");
    // Deliveries failed while the receiver was down (the run waited for one); none was
    // given up: the sandbox delivered them to the restarted worker.
    assert_eq!(ledger.callbacks_failed, 0, "a callback was given up");
}

/// The journal shows the kill: each call the dead worker had in flight was taken over by
/// another worker, which first recorded it as interrupted (and so reconciled it).
async fn check_recovery(db: &Db, interrupted: &[WorkflowRow]) {
    for w in interrupted {
        let killed = w.lease_owner.as_deref().expect("held by the killed worker");
        let journal = db.journal(&w.id).await;
        let taken_over = journal
            .iter()
            .find(|row| row.outcome == "interrupted" && row.worker_id != killed)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no `interrupted` row after {killed} died mid-call in {}:\n{journal:#?}",
                    w.business_key, w.state
                )
            });
        assert_eq!(taken_over.action, "call_interrupted");
        assert!(
            journal
                .iter()
                .filter(|row| row.seq > taken_over.seq)
                .all(|row| row.worker_id != killed),
            "{}: the dead worker wrote after the takeover",
            w.business_key
        );
    }
    let recovered: BTreeSet<String> = db
        .journal_with_outcome("interrupted")
        .await
        .into_iter()
        .map(|row| row.workflow_id)
        .collect();
    assert!(
        interrupted.iter().all(|w| recovered.contains(&w.id)),
        "SQL on step_journal shows every recovery"
    );
}

/// The engine met the faults (it did not just get lucky): 429s, ambiguous outcomes and
/// plain retries are all in the journal.
async fn check_engine_saw_the_faults(db: &Db) {
    for outcome in ["rate_limited", "ambiguous", "retry"] {
        assert!(
            !db.journal_with_outcome(outcome).await.is_empty(),
            "no `{outcome}` row in the journal"
        );
    }
}

/// `finflow status --json` and the SQL view count the same, and what the rows say.
async fn check_status_counts(db: &Db, env: &FinflowEnv, workflows: &BTreeMap<String, WorkflowRow>) {
    let mut expected: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for w in workflows.values() {
        *expected
            .entry((KIND.to_owned(), w.state.clone(), w.status.clone()))
            .or_default() += 1;
    }
    assert_eq!(db.status_view().await, expected, "workflow_status_counts");
    let status = env.status_json();
    let reported: BTreeMap<(String, String, String), i64> = status["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().expect("a string").to_owned();
            (
                (text("kind"), text("state"), text("status")),
                c["count"].as_i64().expect("a count"),
            )
        })
        .collect();
    assert_eq!(reported, expected, "finflow status --json");
}
