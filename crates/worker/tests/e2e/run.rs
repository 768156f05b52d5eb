//! The shape every end-to-end run shares: progress notes, killing the worker that receives
//! the callbacks in the middle of its calls, waiting for the work to settle, and the
//! checks that the kill was recovered from and the faults were met.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use finfra_sandbox::Ledger;

use super::db::{Db, WorkflowRow};
use store::testing::{TestBackend, TestDb};

use super::processes::{
    FinflowEnv, SandboxArgs, SandboxProcess, WorkerProcess, free_port, test_log,
};

/// One scenario at a time. Each runs a sandbox, a fleet and a database on this machine's two
/// cores; two at once starve the sandbox, which then stamps requests that were sent before
/// a `429` as arriving well after it (it cannot see when a request left the client), and
/// the Retry-After check would blame the client for the machine's load.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The definitions the test workers load.
pub fn e2e_workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/workflows")
}

/// Progress notes on stderr with `TEST_LOG`.
pub struct Clock {
    pub backend: &'static str,
    pub start: Instant,
}

impl Clock {
    pub fn new(backend: TestBackend) -> Self {
        Self {
            backend: match backend {
                TestBackend::Sqlite => "sqlite",
                TestBackend::Postgres => "postgres",
            },
            start: Instant::now(),
        }
    }

    pub fn note(&self, what: impl std::fmt::Display) {
        if test_log() {
            eprintln!(
                "[e2e {} {:>6.2}s] {what}",
                self.backend,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How a backend is exercised.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Seed of the sandbox's faults and callback duplicates.
    pub seed: u64,
    /// `finflow run` processes; the first receives the callbacks (and is the one killed).
    pub workers: usize,
    /// Workflows each advances at once.
    pub concurrency: usize,
}

/// The share of requests (or callbacks) each fault hits (none by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    pub error_500: f64,
    pub error_429: f64,
    pub error_429_without_retry_after: f64,
    /// Applied, then the connection drops.
    pub ambiguous: f64,
    /// Applied, then answered after the workers' 2 s timeout.
    pub ambiguous_timeout: f64,
    pub duplicate_callback: f64,
}

/// A run's processes: the sandbox with its faults, and the workers on the test's database.
pub struct Fleet {
    pub sandbox: SandboxProcess,
    pub env: FinflowEnv,
    /// The worker the sandbox calls back, on `receiver_port`.
    pub receiver: WorkerProcess,
    pub receiver_port: u16,
    pub others: Vec<WorkerProcess>,
}

const CALLBACK_KEY: &str = "e2e-callback-key";

/// The longest `Retry-After` the sandbox's injected `429`s carry (1 or 2 s).
const MAX_FAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The run's key-encryption key and hash key (base64 of 32 bytes each).
const E2E_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const E2E_HASH_KEY: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// The same keys as `finflow`'s `[privacy]` variables.
pub const PRIVACY_ENV: [(&str, &str); 3] = [
    ("FINFLOW_PRIVACY__KEYS__E2E", E2E_KEY),
    ("FINFLOW_PRIVACY__ACTIVE", "e2e"),
    ("FINFLOW_PRIVACY__HASH_KEY", E2E_HASH_KEY),
];

/// The keys the fleet of a run seals personal data with, for the test's own store.
pub fn keys() -> std::sync::Arc<privacy::KeyRing> {
    use secrecy::SecretString;
    let config = privacy::PrivacyConfig {
        keys: [("e2e".to_owned(), SecretString::from(E2E_KEY))].into(),
        active: Some("e2e".to_owned()),
        hash_key: Some(SecretString::from(E2E_HASH_KEY)),
        retain: None,
    };
    std::sync::Arc::new(privacy::KeyRing::from_config(&config).expect("the e2e keys"))
}

/// After a run: no NIK, name, birth date, e-mail, phone or bank account number of any
/// applicant is stored plain in any table of the database (every column of every row, as
/// text).
pub async fn check_no_plain_personal_data(db: &Db, applicants: &[&worker::sample::Applicant]) {
    let mut texts = Vec::new();
    for table in db.tables().await {
        texts.extend(db.table_text(&table).await);
    }
    assert!(!texts.is_empty());
    for applicant in applicants {
        let body = applicant.body();
        let signatory = &body["authorised_signatory"];
        let birth_date = signatory["birth_date"].as_str().expect("a birth date");
        for value in [
            applicant.nik.as_str(),
            applicant.email.as_str(),
            applicant.phone.as_str(),
            &applicant.full_name(),
            birth_date,
            "123123123213",
        ] {
            if let Some(row) = texts.iter().find(|t| t.contains(value)) {
                panic!(
                    "{value:?} of {} is stored plain: {row}",
                    applicant.business_key
                );
            }
        }
    }
}

/// Starts `finflow sandbox` with `faults` and `run.workers` `finflow run` processes on
/// `test_db`. The sandbox delivers callbacks to the first worker: while it is down (killed),
/// deliveries fail and the sandbox retries them until it is back on the same port.
pub async fn start_fleet(test_db: &TestDb, run: Run, faults: FaultRates, clock: &Clock) -> Fleet {
    let receiver_port = free_port();
    let sandbox = SandboxProcess::start(&SandboxArgs {
        callback_url: format!("http://127.0.0.1:{receiver_port}"),
        callback_auth_key: CALLBACK_KEY.to_owned(),
        seed: run.seed,
        error_500_rate: faults.error_500,
        error_429_rate: faults.error_429,
        ambiguous_rate: faults.ambiguous,
        duplicate_callback_rate: faults.duplicate_callback,
        // The token bucket would make 100 onboardings take minutes at Finfra's 20/s; the
        // 429s under test come from the fault injection instead.
        rate_limit: None,
    });
    // Faults the command line has no flag for, through the control API. A held answer
    // outlives the workers' 2 s timeout: an ambiguous timeout.
    let mut set = sandbox.faults().await;
    set.error_429_without_retry_after_rate = faults.error_429_without_retry_after;
    set.ambiguous_timeout_rate = faults.ambiguous_timeout;
    set.ambiguous_hold = Duration::from_secs(3);
    sandbox.set_faults(&set).await;
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
        // Personal data sealed, as a lender runs it (`keys()`: the test's own store too).
        PRIVACY_ENV[0],
        PRIVACY_ENV[1],
        PRIVACY_ENV[2],
        ("FINFLOW_WORKER__CONCURRENCY", &concurrency),
        // The sandbox has no rate limit here: the fleet keeps none either (a 429's pause
        // still holds every worker).
        ("FINFLOW_FINFRA__RATE_LIMIT__PER_SECOND", "0"),
    ]);
    let receiver = env.start_worker(loopback(receiver_port));
    let others: Vec<_> = (1..run.workers)
        .map(|_| env.start_worker(loopback(free_port())))
        .collect();
    clock.note(format_args!(
        "workers {} and {:?}",
        receiver.id,
        others.iter().map(|w| &w.id).collect::<Vec<_>>()
    ));
    Fleet {
        sandbox,
        env,
        receiver,
        receiver_port,
        others,
    }
}

/// When to SIGKILL the receiving worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillAt {
    /// In the middle of calls, with callbacks on their way to it.
    MidCall,
    /// The same, and while it commits steps in batches (PostgreSQL's group commit): it
    /// committed a batch of several workflows' steps within the last [`BATCHES_WITHIN_MS`].
    DuringBatchedCommits,
}

/// How recent the batch [`KillAt::DuringBatchedCommits`] waits for is.
pub const BATCHES_WITHIN_MS: i64 = 300;

/// SIGKILLs `receiver` (the worker Finfra's callbacks go to) while it is in the middle of
/// calls and callbacks are on their way to it, with a good part of the work done, keeps it
/// down until a delivery to it has failed, and starts it again on the same port. Returns
/// the workflows it held mid-call (at the last kill, if it took more than one) and the new
/// worker.
pub async fn kill_receiver_mid_call(
    db: &Db,
    sandbox: &SandboxProcess,
    env: &FinflowEnv,
    mut receiver: WorkerProcess,
    port: u16,
    clock: &Clock,
    at: KillAt,
) -> (Vec<MidCall>, WorkerProcess) {
    for _ in 0..5 {
        wait_for_kill_point(db, sandbox, &receiver.id, clock, at).await;
        let pid = receiver.pid();
        receiver.kill();
        // A statement the dead worker had sent still commits (a step, or a group commit's
        // batch of steps), even one its backend had not begun to read: wait until its
        // backends have gone, then what it holds is frozen: nobody may take these over
        // before their lease ends.
        db.wait_for_backends_of(pid).await;
        let interrupted = mid_calls(db, &receiver.id).await;
        let ledger = sandbox.ledger().await;
        clock.note(format_args!(
            "SIGKILLed {} holding {} workflows mid-call, {} callbacks undelivered",
            receiver.id,
            interrupted.len(),
            undelivered(&ledger)
        ));
        // Down until a delivery has failed (any attempt from now on does), so the sandbox
        // has to deliver it again to the restarted worker.
        let delivery_failed = undelivered(&ledger) > 0
            && wait_for_delivery_attempt(sandbox, ledger.callback_attempts).await;
        // A 429 the sandbox answered to a request the dead worker had in flight opened a
        // Retry-After window no live process heard of: the restarted worker could not know
        // it. Restart once any such window is over (the sandbox's faults say at most 2 s),
        // so that the ledger's "sent inside a window" counts only windows a sender knew of.
        tokio::time::sleep(MAX_FAULT_RETRY_AFTER).await;
        receiver = env.start_worker(loopback(port));
        clock.note(format_args!("restarted as {}", receiver.id));
        if !interrupted.is_empty() && delivery_failed {
            return (interrupted, receiver);
        }
        // The calls all finished, or the callbacks were delivered, between the look and
        // the kill: try again.
    }
    panic!(
        "could not kill the worker in the middle of a call with callbacks on their way in 5 tries"
    );
}

/// Waits until a fifth of the workflows are terminal, `worker` holds at least one workflow
/// mid-call and the sandbox has callbacks still to deliver (and, as `at` asks, `worker` has
/// just committed a batch).
async fn wait_for_kill_point(
    db: &Db,
    sandbox: &SandboxProcess,
    worker: &str,
    clock: &Clock,
    at: KillAt,
) {
    // Generous: on a shared 2-core machine a debug build may take this long to finish a
    // fifth of the journeys.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (terminal, total) = db.progress().await;
        if terminal * 5 >= total
            && (at == KillAt::MidCall
                || db.batched_commits(worker, Some(BATCHES_WITHIN_MS)).await > 0)
            && !db.held_mid_call(worker).await.is_empty()
            && undelivered(&sandbox.ledger().await) > 0
        {
            clock.note(format_args!(
                "{terminal}/{total} terminal, {worker} holds workflows mid-call"
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

/// The server's side of the run's PostgreSQL database, through a session on another
/// database of the same server: it can refuse connections to it and end every session on
/// it, as a restart of the server does to its clients.
pub struct DatabaseGate {
    admin: sqlx::PgConnection,
    name: String,
}

impl DatabaseGate {
    pub async fn of(test_db: &TestDb) -> Self {
        use sqlx::Connection as _;
        use std::str::FromStr as _;
        let options =
            sqlx::postgres::PgConnectOptions::from_str(&test_db.url).expect("the test URL");
        let name = options.get_database().expect("a database name").to_owned();
        let admin = sqlx::PgConnection::connect_with(&options.database("postgres"))
            .await
            .expect("an admin session on the server");
        Self { admin, name }
    }

    /// Connections refused (`ALLOW_CONNECTIONS false`: "database … is not currently
    /// accepting connections") and every session on it ended (`pg_terminate_backend`:
    /// transactions in flight roll back, advisory locks and `LISTEN`s go with their
    /// sessions). Returns the ended sessions of the worker process `pid` and of other
    /// workers.
    pub async fn close(&mut self, pid: Option<u32>) -> Ended {
        self.allow(false).await;
        // Workers name their sessions `finflow-worker:<pid>-…` (store::WORKER_ORIGIN_PREFIX).
        let (of_worker, of_others): (i64, i64) = sqlx::query_as(
            // Materialized: the sessions on this database only, before any is ended (a
            // condition pushed into pg_stat_activity would end sessions on other databases).
            "WITH sessions AS MATERIALIZED (SELECT pid, application_name FROM pg_stat_activity \
                                           WHERE datname = $1), \
                  ended AS (SELECT application_name FROM sessions WHERE pg_terminate_backend(pid)) \
             SELECT count(*) FILTER (WHERE application_name LIKE $2), \
                    count(*) FILTER (WHERE application_name LIKE $3 AND application_name NOT LIKE $2) \
             FROM ended",
        )
        .bind(&self.name)
        // Without a pid, a pattern no session name matches: every worker is "other".
        .bind(format!(
            "{}{}-%",
            store::WORKER_ORIGIN_PREFIX,
            pid.map_or_else(|| "none".to_owned(), |pid| pid.to_string())
        ))
        .bind(format!("{}%", store::WORKER_ORIGIN_PREFIX))
        .fetch_one(&mut self.admin)
        .await
        .expect("end the sessions");
        Ended {
            of_worker,
            of_others,
        }
    }

    /// Connections accepted again.
    pub async fn open(&mut self) {
        self.allow(true).await;
    }

    async fn allow(&mut self, yes: bool) {
        let sql = format!(
            "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {yes}",
            self.name.replace('"', "\"\"")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut self.admin)
            .await
            .expect("ALTER DATABASE … ALLOW_CONNECTIONS");
    }
}

/// Takes the run's PostgreSQL database away for `down` ([`DatabaseGate::close`], then
/// `open`) once a fifth of the work is terminal, while `worker` holds workflows mid-call, has
/// just committed a batch of steps and callbacks are on their way (as for a kill). Returns
/// the workflows `worker` held mid-call (looked up just before) and the sessions ended. The
/// test's own store is not used while the database is away.
pub async fn take_the_database_away(
    test_db: &TestDb,
    sandbox: &SandboxProcess,
    worker: &WorkerProcess,
    down: Duration,
    clock: &Clock,
) -> (Vec<MidCall>, Ended) {
    let mut gate = DatabaseGate::of(test_db).await;
    let db = Db {
        store: test_db.store.clone(),
    };
    wait_for_kill_point(
        &db,
        sandbox,
        &worker.id,
        clock,
        KillAt::DuringBatchedCommits,
    )
    .await;
    let interrupted = mid_calls(&db, &worker.id).await;
    let ended = gate.close(Some(worker.pid())).await;
    clock.note(format_args!(
        "database away: {} sessions of {} and {} of the other workers ended, {} workflows held \
         mid-call",
        ended.of_worker,
        worker.id,
        ended.of_others,
        interrupted.len()
    ));
    tokio::time::sleep(down).await;
    gate.open().await;
    clock.note("database back");
    (interrupted, ended)
}

/// A workflow held mid-call when its worker was killed or the database went away.
#[derive(Debug)]
pub struct MidCall {
    pub workflow: WorkflowRow,
    /// Its last journal row then: the decision to call.
    pub seq: i32,
}

/// The workflows `worker` holds mid-call now ([`Db::held_mid_call_after`]).
async fn mid_calls(db: &Db, worker: &str) -> Vec<MidCall> {
    db.held_mid_call_after(worker)
        .await
        .into_iter()
        .map(|(workflow, seq)| MidCall { workflow, seq })
        .collect()
}

/// Sessions the database's going away ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// Of the worker it was timed on.
    pub of_worker: i64,
    /// Of the other workers.
    pub of_others: i64,
}

/// Callback deliveries the sandbox has neither completed nor given up.
pub fn undelivered(ledger: &Ledger) -> u64 {
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
pub async fn wait_until_all_terminal(db: &Db, since: Instant, within: Duration, clock: &Clock) {
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
        if since.elapsed() > within {
            let left: Vec<WorkflowRow> = db
                .workflows()
                .await
                .into_values()
                .filter(|w| !matches!(w.status.as_str(), "completed" | "failed" | "cancelled"))
                .collect();
            panic!(
                "{} workflows not terminal after {within:?}:\n{}",
                left.len(),
                diagnose(db, &left).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A few workflows with the tail of their journal, for a failure message.
pub async fn diagnose(db: &Db, workflows: &[WorkflowRow]) -> String {
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

/// The journal shows the kill: each call the dead worker had in flight was taken over by
/// another worker, which first recorded it as interrupted (and so reconciled it), after the
/// dead worker's decision to call, its last row: it wrote nothing after it. A takeover
/// before that decision (from a worker killed earlier, or a lease that ran out) is not this
/// kill's: the dead worker went on with the workflow after it.
pub async fn check_recovery(db: &Db, interrupted: &[MidCall]) {
    for MidCall { workflow: w, seq } in interrupted {
        let killed = w.lease_owner.as_deref().expect("held by the killed worker");
        let journal = db.journal(&w.id).await;
        let taken_over = journal
            .iter()
            .find(|row| row.seq > *seq && row.outcome == "interrupted" && row.worker_id != killed)
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
                .filter(|row| row.seq > *seq)
                .all(|row| row.worker_id != killed),
            "{}: the dead worker wrote after its decision to call:\n{journal:#?}",
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
        interrupted
            .iter()
            .all(|mid| recovered.contains(&mid.workflow.id)),
        "SQL on step_journal shows every recovery"
    );
}

/// The engine met the faults (it did not just get lucky): 429s, ambiguous outcomes and
/// plain retries are all in the journal.
pub async fn check_engine_saw_the_faults(db: &Db) {
    for outcome in ["rate_limited", "ambiguous", "retry"] {
        assert!(
            !db.journal_with_outcome(outcome).await.is_empty(),
            "no `{outcome}` row in the journal"
        );
    }
}

/// The lifecycle feed agrees with where every workflow ended: each terminal outcome has
/// exactly one event of its type, written by the workflow's last step (its last journal
/// row) and last in its feed; a paid loan's milestones each appear once, in the order they
/// happened, with one `loan.payment_applied` per payment it recorded; every event belongs
/// to a committed journal row, in commit order. A worker killed mid-step left no event
/// for a step that did not commit (its successor's step is the one that wrote it, once).
pub async fn check_events(db: &Db, workflows: &[WorkflowRow]) {
    let mut problems = Vec::new();
    for w in workflows {
        let id: uuid::Uuid = w.id.parse().expect("a uuid");
        let kind = db
            .store
            .get(id)
            .await
            .expect("get")
            .expect("the workflow")
            .kind;
        let events = db.store.workflow_events(id).await.expect("events");
        let journal = db.store.journal(id).await.expect("journal");
        let seqs: BTreeSet<i32> = journal.iter().map(|j| j.seq).collect();
        // The last row that changed the workflow: a worker that lost its lease mid-call
        // (taken over while starved of CPU) still journals what it saw, after the end.
        let last_seq = journal
            .iter()
            .filter(|j| {
                !j.entry
                    .error
                    .as_deref()
                    .is_some_and(|e| e.ends_with("not applied: the workflow was taken over"))
            })
            .map(|j| j.seq)
            .max();
        let mut say = |p: String| problems.push(format!("{} ({kind}): {p}", w.business_key));
        let expected = match (kind.as_str(), w.status.as_str(), w.state.as_str()) {
            ("onboard-borrower", "completed", "approved") => "borrower.approved",
            ("onboard-borrower", "completed", "declined") => "borrower.declined",
            ("onboard-borrower", "failed", _) => "borrower.failed",
            ("originate-loan", "completed", "paid") => "loan.paid",
            ("originate-loan", "failed", "rejected") => "loan.rejected",
            ("originate-loan", "failed", _) => "workflow.failed",
            ("originate-loan", "cancelled", _) => "loan.cancelled",
            (_, "cancelled", _) => "workflow.cancelled",
            other => {
                say(format!("not terminal: {other:?}"));
                continue;
            }
        };
        const ENDS: &[&str] = &[
            "borrower.approved",
            "borrower.declined",
            "borrower.failed",
            "loan.paid",
            "loan.rejected",
            "loan.cancelled",
            "workflow.failed",
            "workflow.cancelled",
        ];
        let ends: Vec<_> = events
            .iter()
            .filter(|e| ENDS.contains(&e.event_type.as_str()))
            .collect();
        match ends[..] {
            [end] if end.event_type == expected => {
                if Some(end) != events.last() {
                    say(format!("{expected} is not its last event"));
                }
                if end.journal_seq != last_seq {
                    say(format!(
                        "{expected} belongs to journal row {:?}, its last is {last_seq:?}",
                        end.journal_seq
                    ));
                }
            }
            _ => say(format!(
                "expected one {expected}, the feed has {:?}",
                ends.iter().map(|e| &e.event_type).collect::<Vec<_>>()
            )),
        }
        let mut previous = 0;
        for e in &events {
            let seq = e.journal_seq.unwrap_or_default();
            if !seqs.contains(&seq) {
                say(format!(
                    "{} belongs to no journal row ({seq})",
                    e.event_type
                ));
            }
            if seq < previous {
                say(format!("{} out of commit order", e.event_type));
            }
            previous = seq;
            if e.kind.as_deref() != Some(kind.as_str())
                || e.business_key.as_deref() != Some(w.business_key.as_str())
            {
                say(format!("{} names another workflow", e.event_type));
            }
        }
        if expected == "loan.paid" {
            let milestones: Vec<&str> = events
                .iter()
                .map(|e| e.event_type.as_str())
                .filter(|t| ["loan.created", "loan.signed", "loan.disbursed"].contains(t))
                .collect();
            if milestones != ["loan.created", "loan.signed", "loan.disbursed"] {
                say(format!("milestones {milestones:?}"));
            }
            let context: serde_json::Value =
                serde_json::from_str(&w.context).expect("context is JSON");
            let payments = context["loan"]["repayment"]["payments"]
                .as_array()
                .map_or(0, Vec::len);
            let applied = events
                .iter()
                .filter(|e| e.event_type == "loan.payment_applied")
                .count();
            if applied != payments || payments == 0 {
                say(format!(
                    "{applied} loan.payment_applied for {payments} payments recorded"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the event feed disagrees with the workflows:\n{}",
        problems.join("\n")
    );
}
