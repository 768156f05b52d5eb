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
//! one of them is down. A third run is PostgreSQL's group commit under a SIGKILL: one
//! worker advancing many workflows at once, so that it commits their steps in batches, is
//! killed right after a batch of several workflows' steps (and with calls in flight), and
//! everything above must hold all the same. Two processes on one SQLite file share the `429` pause only as
//! fast as SQLite's single writer lets the pause through, which under load took up to
//! 600 ms here: too late to keep the second process out of a 1 s `Retry-After` window.

mod e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e::applicants::{Applicant, Intent, mix};
use e2e::db::{Db, WorkflowRow};
use e2e::processes::{FinflowEnv, SandboxProcess};
use e2e::run::{
    BATCHES_WITHIN_MS, Clock, FaultRates, Fleet, KillAt, ONE_AT_A_TIME, Run,
    check_engine_saw_the_faults, check_events, check_recovery, diagnose, e2e_workflows,
    kill_receiver_mid_call, repo_dir, start_fleet, wait_until_all_terminal,
};
use finfra_sandbox::{BorrowerSummary, Ledger};
use store::testing::{TestBackend, TestDb};

const KIND: &str = "onboard-borrower";
/// Onboardings per run (the issue asks for at least 100).
const APPLICANTS: usize = 120;
/// Submitted with `finflow submit`, one per product; the rest in bulk.
const THROUGH_CLI: usize = 4;
/// How long the whole fleet may take from the first submit until every workflow is
/// terminal. A healthy run needs well under half of it.
const SETTLE_WITHIN: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_survives_faults_and_a_killed_worker_on_sqlite() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let run = Run {
        seed: 11,
        workers: 1,
        concurrency: 16,
    };
    store::testing::run(TestBackend::Sqlite, true, |db| {
        scenario(db, run, KillAt::MidCall)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_survives_faults_and_a_killed_worker_on_postgres() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let run = Run {
        seed: 23,
        workers: 2,
        concurrency: 8,
    };
    store::testing::run(TestBackend::Postgres, true, |db| {
        scenario(db, run, KillAt::MidCall)
    })
    .await;
}

/// Group commit: what a SIGKILL between a batch's statement and its acknowledgement leaves
/// (all of the batch committed, or none of it) is what the next worker takes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_survives_a_worker_killed_during_batched_commits_on_postgres() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let run = Run {
        seed: 31,
        workers: 1,
        concurrency: 40,
    };
    store::testing::run(TestBackend::Postgres, true, |db| {
        scenario(db, run, KillAt::DuringBatchedCommits)
    })
    .await;
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
        let (Some(shipped_loans), Some(mut our_loans)) =
            (definition.origination.clone(), ours.origination.clone())
        else {
            panic!("{name}: both copies have [origination]");
        };
        assert!(our_loans.poll_interval <= Duration::from_secs(1));
        assert!(our_loans.repayment_poll_interval <= Duration::from_secs(2));
        our_loans.poll_interval = shipped_loans.poll_interval;
        our_loans.repayment_poll_interval = shipped_loans.repayment_poll_interval;
        assert_eq!(our_loans, shipped_loans, "{name}");
    }
}

async fn scenario(test_db: TestDb, run: Run, kill_at: KillAt) {
    let clock = Clock::new(test_db.backend);
    let db = Db {
        store: test_db.store.clone().with_keys(e2e::run::keys()),
    };
    let applicants = mix(APPLICANTS);

    let Fleet {
        sandbox,
        env,
        receiver,
        receiver_port,
        others: _others,
    } = start_fleet(
        &test_db,
        run,
        FaultRates {
            error_500: 0.03,
            error_429: 0.003,
            error_429_without_retry_after: 0.003,
            ambiguous: 0.03,
            ambiguous_timeout: 0.004,
            duplicate_callback: 0.2,
        },
        &clock,
    )
    .await;

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
    // their way to it.
    let killed = receiver.id.clone();
    let (interrupted, _receiver) = kill_receiver_mid_call(
        &db,
        &sandbox,
        &env,
        receiver,
        receiver_port,
        &clock,
        kill_at,
    )
    .await;

    wait_until_all_terminal(&db, submitted, SETTLE_WITHIN, &clock).await;
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
    check_events(&db, &workflows.values().cloned().collect::<Vec<_>>()).await;
    if kill_at == KillAt::DuringBatchedCommits {
        let batches = db.batched_commits(&killed, None).await;
        assert!(batches > 0, "{killed} committed no batch");
        clock.note(format_args!(
            "{killed} committed {batches} batches of several workflows' steps before the \
             kill (one within {BATCHES_WITHIN_MS} ms of it)"
        ));
    }
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
        "requests sent inside a Retry-After window: {:?}, by endpoint {:?} (faults {:?})",
        ledger.requests_inside_retry_after,
        ledger.requests_inside_retry_after_by_endpoint,
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
