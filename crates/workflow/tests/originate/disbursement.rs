//! Exactly-once disbursement. Every way the disbursement call can fail, and every event the
//! executor may deliver afterwards (resumes, interruptions, timers, callbacks, operators),
//! never lead to a second disbursement request until a read of the loan showed no
//! disbursement in progress.

use std::time::Duration;

use finfra_api::callback::CallbackTitle;
use workflow::ActionKind::{Call, NeedsAttention, SleepUntil, Wait};
use workflow::kit::Phase as _;
use workflow::originate::OriginateState;
use workflow::{Action, CallFailure, CallPurpose, Event, FinfraRequest, Handled, Status, Workflow};

use crate::common::{at, t0};
use crate::fixtures::*;
use crate::table::{Row, row, run};

/// Every failure the disbursement call can end with, by name.
fn failures() -> Vec<(&'static str, Event)> {
    vec![
        (
            "timeout after sending",
            err(CallFailure::timeout(true, false)),
        ),
        (
            "timeout before sending",
            err(CallFailure::timeout(false, false)),
        ),
        (
            "connection reset",
            err(CallFailure::connection(true, false)),
        ),
        (
            "connection refused",
            err(CallFailure::connection(false, false)),
        ),
        ("500", err(CallFailure::server(500, false))),
        ("502", err(CallFailure::server(502, false))),
        ("503", err(CallFailure::server(503, false))),
        (
            "429",
            err(CallFailure::rate_limited(Some(Duration::from_secs(3)))),
        ),
        (
            "a 200 we could not decode",
            err(CallFailure::undecodable(200)),
        ),
        (
            "409",
            err(CallFailure::conflict("Loan is already DISBURSING")),
        ),
        (
            "400 not signed",
            err(CallFailure::rejected(400, "Loan agreement is not signed")),
        ),
        ("CallInterrupted", Event::CallInterrupted),
        ("Start (resume)", Event::Start),
        ("Wake while outstanding", Event::Wake),
    ]
}

/// What the executor, the inbox, the timers and the operators may deliver next, in any
/// order and any number of times.
fn noise() -> Vec<Event> {
    vec![
        Event::CallInterrupted,
        Event::Start,
        Event::Wake,
        cb(CallbackTitle::LoanSigned),
        err(CallFailure::timeout(true, false)),
        err(CallFailure::server(503, false)),
        ok(disbursing("DISB-STALE")),
        resolve(serde_json::json!({"retry": true})),
        cancel(),
    ]
}

fn is_reconcile_read(action: &Action) -> bool {
    matches!(
        action,
        Action::Call {
            purpose: CallPurpose::Reconcile,
            request: FinfraRequest::GetLoan { .. },
            ..
        }
    )
}

/// Feeds `noise` for a while (far in the future, so every timer is due), asserting no
/// disbursement is requested; returns the state.
fn shake(mut state: OriginateState, what: &str) -> OriginateState {
    for round in 0..3 {
        for event in noise() {
            let now = after_days(30 * (round + 1));
            let t = decide(&state, &event, now);
            assert!(
                !sends_disbursement(&t.action),
                "{what}, then {}: a disbursement request without a read ({})",
                event.name(),
                t.note
            );
            state = t.state;
        }
    }
    state
}

#[test]
fn no_failure_of_the_disbursement_call_leads_to_a_second_request_without_a_read() {
    for (what, failure) in failures() {
        let after = decide(&s_disburse(), &failure, t0());
        assert!(
            !sends_disbursement(&after.action),
            "{what}: sends the disbursement again at once ({})",
            after.note
        );
        assert!(
            after.state.loan.disbursement.requested,
            "{what}: the request is remembered"
        );
        // Whatever comes next, no disbursement request...
        let state = shake(after.state, what);
        // ...until a read showed none in progress. The workflow reads the loan, or is parked
        // for a person (whose retry reads it).
        let mut state = state;
        let mut now = after_days(400);
        for _ in 0..4 {
            let action = workflow::OriginateLoan::action(&state);
            if is_reconcile_read(&action) {
                break;
            }
            let event = match action {
                Action::NeedsAttention { .. } => resolve(serde_json::json!({"retry": true})),
                _ => Event::Wake,
            };
            now += chrono::TimeDelta::days(1);
            state = decide(&state, &event, now).state;
        }
        let action = workflow::OriginateLoan::action(&state);
        assert!(
            is_reconcile_read(&action),
            "{what}: the next step is not a read of the loan but {action:?}"
        );
        // The read shows DISBURSING: never sent again, the workflow waits for the bank.
        let accepted = decide(
            &state,
            &ok(get_loan(loan_disbursement(
                "DISBURSING",
                "DISBURSING",
                "DISB-1",
            ))),
            now,
        );
        assert_eq!(
            accepted.state.phase.name(),
            "await_disbursement",
            "{what}: {}",
            accepted.note
        );
        assert!(!sends_disbursement(&accepted.action));
        // The read shows SIGNED, no disbursement: only now is it sent again.
        let not_applied = decide(&state, &ok(get_loan(loan("SIGNED"))), now);
        assert!(
            sends_disbursement(&not_applied.action)
                || not_applied.state.phase.name() == "needs_attention",
            "{what}: after a read showing no disbursement, send again ({})",
            not_applied.note
        );
    }
}

#[test]
fn a_replayed_success_sends_nothing_twice() {
    // The executor committed the answer's decision, crashed, and a new worker replays it.
    let accepted = ok(disbursing("DISB-1"));
    let once = decide(&s_disburse(), &accepted, t0());
    let twice = decide(&once.state, &accepted, t0());
    assert_eq!(twice.handled, Handled::Ignored, "{}", twice.note);
    assert!(!sends_disbursement(&twice.action));
}

/// The disbursement's answer was lost: reading the loan.
pub fn s_disburse_ambiguous() -> OriginateState {
    drive(&s_disburse(), &[err(CallFailure::timeout(true, false))])
}

/// A second disbursement after the bank refused the first: reading the loan first.
pub fn s_redisburse() -> OriginateState {
    drive(&s_refused(), &[resolve(serde_json::json!({"retry": true}))])
}

pub fn rows() -> Vec<Row> {
    vec![
        row("timeout after sending: read the loan", s_disburse(), err(CallFailure::timeout(true, false)), "disburse_loan", Call)
            .status(Status::Ambiguous)
            .request("get_loan")
            .purpose(CallPurpose::Reconcile),
        row("503: back off, then read (not send)", s_disburse(), err(CallFailure::server(503, false)), "disburse_loan", SleepUntil)
            .status(Status::Ambiguous)
            .check(|t| assert!(matches!(t.action, Action::SleepUntil { reason: workflow::SleepReason::ReconcileRetry, .. }))),
        row("after the backoff: the read", drive(&s_disburse(), &[err(CallFailure::server(503, false))]), Event::Wake, "disburse_loan", Call)
            .at(after_days(1))
            .request("get_loan"),
        row("409: read the loan", s_disburse(), err(CallFailure::conflict("Loan is already DISBURSING")), "disburse_loan", Call)
            .request("get_loan"),
        row("undecodable 200: read the loan", s_disburse(), err(CallFailure::undecodable(200)), "disburse_loan", Call)
            .request("get_loan"),
        row("interrupted: read the loan", s_disburse(), Event::CallInterrupted, "disburse_loan", Call)
            .request("get_loan"),
        row("400 not signed: a person looks", s_disburse(), err(CallFailure::rejected(400, "Loan agreement is not signed")), "needs_attention", NeedsAttention),
        row("read: DISBURSING, accepted", s_disburse_ambiguous(), ok(get_loan(loan_disbursement("DISBURSING", "DISBURSING", "DISB-7"))), "await_disbursement", Wait)
            .check(|t| assert_eq!(t.state.loan.disbursement.reference.as_deref(), Some("DISB-7"))),
        row("read: DISBURSED already, on to the account", s_disburse_ambiguous(), ok(get_loan(loan_disbursement("DISBURSED", "DISBURSED", "DISB-7"))), "request_virtual_account", Call),
        row("read: SIGNED, not applied: send again", s_disburse_ambiguous(), ok(get_loan(loan("SIGNED"))), "disburse_loan", Call)
            .request("disburse_loan")
            .purpose(CallPurpose::Perform)
            .check(|t| assert_eq!(attempt(t), 2)),
        row("read: DISBURSEMENT_FAILED of this request: a person looks", s_disburse_ambiguous(), ok(get_loan(loan_disbursement("DISBURSEMENT_FAILED", "FAILED", "DISB-7"))), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "disbursement_failed")),
        row("read fails: read again later", s_disburse_ambiguous(), err(CallFailure::server(500, true)), "disburse_loan", SleepUntil)
            .status(Status::Ambiguous),
        row("read 404: a person looks, nothing sent", s_disburse_ambiguous(), err(CallFailure::rejected(404, "Loan not found")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "reconcile_failed")),
        row("loan_disbursed while the answer is lost: done", s_disburse_ambiguous(), disbursed_cb("DISB-1"), "request_virtual_account", Call),
        row("loan_disbursed while the request is outstanding", s_disburse(), disbursed_cb("DISB-1"), "request_virtual_account", Call),
        // The bank's answer.
        row("loan_disbursement_failed: a person looks", s_await_disbursement(), disbursement_failed_cb("DISB-1", "Account closed"), "needs_attention", NeedsAttention)
            .check(|t| {
                assert_eq!(reason_code(t), "disbursement_failed");
                assert!(matches!(&t.action, Action::NeedsAttention { reason, .. } if reason.message.contains("Account closed") && reason.hint.as_deref().is_some_and(|h| h.contains("retry"))));
            }),
        row("disbursement not settled in time: a person looks, nothing re-sent", s_await_disbursement(), Event::Wake, "needs_attention", NeedsAttention)
            .at(after_days(1))
            .check(|t| assert_eq!(reason_code(t), "disbursement_timeout")),
        row("resolve after the timeout: wait again, read at once", drive_at(&s_await_disbursement(), Event::Wake, after_days(1)), resolve(serde_json::json!({"retry": true})), "await_disbursement", Wait)
            .at(after_days(2))
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, .. } if *wake_at == after_days(2)))),
        row("poll while the bank is late: DISBURSED", drive_at(&s_await_disbursement(), Event::Wake, at(30)), ok(get_loan(loan_disbursement("DISBURSED", "DISBURSED", "DISB-1"))), "request_virtual_account", Call),
        row("poll shows the refusal", drive_at(&s_await_disbursement(), Event::Wake, at(30)), ok(get_loan(loan_disbursement("DISBURSEMENT_FAILED", "FAILED", "DISB-1"))), "needs_attention", NeedsAttention),
        // A new disbursement after a refusal: through a read.
        row("resolve retry after a refusal: read first", s_refused(), resolve(serde_json::json!({"retry": true})), "disburse_loan", Call)
            .request("get_loan")
            .purpose(CallPurpose::Reconcile)
            .check(|t| {
                let Action::Call { operation_key, .. } = &t.action else { panic!() };
                assert_ne!(operation_key, &s_disburse().phase.run().unwrap().operation_key, "a new operation");
            }),
        row("the read shows only the known refusal: disburse again", s_redisburse(), ok(get_loan(loan_disbursement("DISBURSEMENT_FAILED", "FAILED", "DISB-1"))), "disburse_loan", Call)
            .request("disburse_loan")
            .purpose(CallPurpose::Perform),
        row("the read shows a new disbursement: wait, no request", s_redisburse(), ok(get_loan(loan_disbursement("DISBURSING", "DISBURSING", "DISB-2"))), "await_disbursement", Wait),
        row("the read shows a new refusal: a person looks", s_redisburse(), ok(get_loan(loan_disbursement("DISBURSEMENT_FAILED", "FAILED", "DISB-2"))), "needs_attention", NeedsAttention),
        row("second disbursement accepted, the old refusal comes again: ignored", drive(&s_redisburse(), &[ok(get_loan(loan_disbursement("DISBURSEMENT_FAILED", "FAILED", "DISB-1"))), ok(disbursing("DISB-2"))]), disbursement_failed_cb("DISB-1", "Account closed"), "await_disbursement", Wait)
            .ignored(),
        row("second disbursement paid out", drive(&s_redisburse(), &[ok(get_loan(loan_disbursement("DISBURSEMENT_FAILED", "FAILED", "DISB-1"))), ok(disbursing("DISB-2"))]), disbursed_cb("DISB-2"), "request_virtual_account", Call)
            .check(|t| {
                assert_eq!(t.state.loan.disbursement.failures.len(), 1);
                assert_eq!(t.state.loan.disbursement.reference.as_deref(), Some("DISB-2"));
            }),
    ]
}

#[test]
fn disbursement_branches() {
    run(&rows());
}

#[test]
fn every_send_of_a_disbursement_but_the_first_follows_a_read_showing_none_in_progress() {
    // Walk long random-ish sequences from the disburse step, recording every action, and
    // check the rule on the whole trace.
    let reads = [
        ok(get_loan(loan("SIGNED"))),
        ok(get_loan(loan_disbursement(
            "DISBURSING",
            "DISBURSING",
            "DISB-1",
        ))),
    ];
    let mut pool = noise();
    pool.extend(failures().into_iter().map(|(_, e)| e));
    pool.extend(reads);
    for seed in 0..200_usize {
        let mut state = s_disburse();
        let mut last_read_showed_none = false;
        let mut sends = 1; // the first request, from s_disburse
        let mut now = t0();
        for i in 0..40 {
            let event = &pool[(seed * 7 + i * 13 + seed * i) % pool.len()];
            now += chrono::TimeDelta::hours(1);
            let before = workflow::OriginateLoan::action(&state);
            let t = decide(&state, event, now);
            if is_reconcile_read(&before) && matches!(event, Event::CallSucceeded(_)) {
                last_read_showed_none = matches!(event, Event::CallSucceeded(workflow::FinfraResponse::GetLoan(l)) if l.status.as_str() == "SIGNED");
            }
            if t.handled != Handled::Ignored
                && sends_disbursement(&t.action)
                && !sends_disbursement(&before)
            {
                sends += 1;
                assert!(
                    last_read_showed_none,
                    "seed {seed}, step {i}: disbursement request #{sends} after {} without a read showing none ({})",
                    event.name(),
                    t.note
                );
                last_read_showed_none = false;
            }
            state = t.state;
        }
    }
}
