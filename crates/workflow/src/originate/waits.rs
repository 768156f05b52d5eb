//! Events in the phases that wait: callbacks (recorded as facts, whatever their order),
//! the end of the onboarding workflow, repayments, the fallback polls, the overdue timers
//! and the deadlines.

use chrono::{DateTime, Utc};

use finfra_api::callback::{StatusCallback, UserEvent};
use finfra_api::model::borrower::BorrowerStatus;

use crate::action::{Outcome, Reason};
use crate::event::{CallbackEvent, WorkflowFinished};
use crate::kit::wait::{self, WaitWake, wait_woken};
use crate::kit::{Machine, Phase as _, Run, Stage, Waiting, advance, attention, fail, ignore};
use crate::machine::{Handled, Kind, Status, Transition};
use crate::response::FinfraResponse;

use super::facts::Source;
use super::route;
use super::state::{OriginateState, Phase, RejectWhy, Step};

type T = Transition<OriginateState>;

/// Records what a callback says; a note when it is news.
pub(super) fn record(
    state: &mut OriginateState,
    callback: &CallbackEvent,
    now: DateTime<Utc>,
) -> Option<String> {
    match callback {
        CallbackEvent::Status(status) if status.callback_title.is_loan_event() => {
            state.loan.record_status(status, now)
        }
        CallbackEvent::Status(status) => record_borrower(state, status),
        CallbackEvent::VirtualAccountPayment(payment) => {
            let note = state.loan.record_payment(payment)?;
            // A payment may cure an overdue installment.
            state.loan.review_overdue(now, state.policy.overdue_grace);
            Some(note)
        }
        CallbackEvent::Invoice(_) | CallbackEvent::Workflow(_) => None,
    }
}

/// A user callback matters only while waiting for `APPROVED`.
fn record_borrower(state: &mut OriginateState, callback: &StatusCallback) -> Option<String> {
    let Phase::AwaitBorrowerApproved { user_id, .. } = &state.phase else {
        return None;
    };
    let event = callback.callback_title.user_event()?;
    if callback.user_id.as_deref() != Some(user_id.as_str()) {
        return None;
    }
    let status = match event {
        UserEvent::Approved => BorrowerStatus::Approved,
        UserEvent::Rejected => BorrowerStatus::Rejected,
        UserEvent::Blocked => BorrowerStatus::Blocked,
        UserEvent::Created | UserEvent::Verified => return None,
    };
    if state.loan.borrower_status.as_ref() == Some(&status) {
        return None;
    }
    state.loan.borrower_status = Some(status);
    Some(format!("recorded {}", callback.callback_title))
}

/// A callback in a phase that makes a call: recorded, and the step is left when the facts
/// settle it (a disbursement known accepted, a rejection known applied).
pub(super) fn callback_in_call(
    state: &OriginateState,
    callback: &CallbackEvent,
    now: DateTime<Utc>,
) -> T {
    let mut next = state.clone();
    let Some(what) = record(&mut next, callback, now) else {
        return ignore(state, "callback already known or not ours");
    };
    let loan = &next.loan;
    let settles = match &next.phase {
        Phase::DisburseLoan { .. } => {
            loan.disbursement_in_progress() || loan.disbursement_failed() || loan.is_rejected()
        }
        Phase::RejectLoan { .. } => loan.is_rejected(),
        _ => false,
    };
    if let Phase::RequestVirtualAccount { run } = &mut next.phase
        && next.loan.is_paid()
        && matches!(
            run.stage,
            Stage::Backoff { .. } | Stage::ReconcileBackoff { .. }
        )
    {
        // Paid into an account whose request's answer was lost: read the loan now to learn
        // the account, and wait for the payments on it that are not on record yet.
        run.stage = Stage::Reconcile;
        run.reads = 0;
        return advance(
            next,
            format!("{what}: reading the loan to learn its account"),
        );
    }
    if !settles {
        return advance(next, format!("{what}; still in {}", state.phase.name()));
    }
    if let Phase::RejectLoan { why, .. } = &next.phase {
        let why = why.clone();
        return finish_rejection(next, &why, &what);
    }
    route::route_loan(&mut next, now);
    let to = next.phase.name();
    advance(next, format!("{what}: {} → {to}", state.phase.name()))
}

fn finish_rejection(mut state: OriginateState, why: &RejectWhy, what: &str) -> T {
    state.phase = match why {
        RejectWhy::SigningTimeout { .. } => Phase::Rejected {
            step: Step::AwaitSigned.as_str().to_owned(),
            reason: Reason::new(
                "signing_timeout",
                format!(
                    "loan {} was not signed in time: rejected at Finfra",
                    state.loan.unique_id
                ),
            ),
        },
        RejectWhy::Cancel { by, reason } => Phase::Cancelled {
            step: Step::RejectLoan.as_str().to_owned(),
            by: by.clone(),
            reason: reason.clone(),
        },
    };
    let to = state.phase.name();
    advance(state, format!("{what}: {to}"))
}

/// A callback in a phase that waits: the end of the onboarding it waits for, or a fact
/// about the loan (a loan paid in full as far as finflow knows is confirmed with Finfra soon).
pub(super) fn callback_in_wait(
    state: &OriginateState,
    callback: &CallbackEvent,
    now: DateTime<Utc>,
) -> T {
    if let CallbackEvent::Workflow(finished) = callback {
        return onboarding_finished(state, finished, now);
    }
    let mut heard = wait::callback(state, callback, now);
    let loan = &heard.state.loan;
    if heard.handled == Handled::Advanced
        && heard.state.phase.step() == state.phase.step()
        && loan.covered()
        && !loan.is_paid()
    {
        poll_soon(&mut heard.state, now);
        heard.action = crate::kit::action(&heard.state);
    }
    heard
}

fn poll_soon(state: &mut OriginateState, now: DateTime<Utc>) {
    if let Some(wait) = state.phase.wait_mut()
        && !wait.polling
        && wait.next_poll.is_none_or(|at| at > now)
    {
        wait.next_poll = Some(now);
    }
}

/// The onboarding workflow the input names has finished.
fn onboarding_finished(
    state: &OriginateState,
    finished: &WorkflowFinished,
    now: DateTime<Utc>,
) -> T {
    let Phase::AwaitOnboarding { business_key, .. } = &state.phase else {
        return ignore(state, "not waiting for an onboarding");
    };
    if finished.kind != Kind::OnboardBorrower.as_str() || &finished.business_key != business_key {
        return ignore(state, "the end of another workflow: not ours");
    }
    let why = finished
        .reason
        .as_ref()
        .map_or_else(|| "no reason given".to_owned(), ToString::to_string);
    let mut next = state.clone();
    match (finished.status, &finished.outcome) {
        (Status::Completed, Some(Outcome::BorrowerApproved { user_id })) => {
            route::check_borrower(&mut next, user_id.clone());
            advance(
                next,
                format!("onboarding {business_key} approved borrower {user_id}: reading it"),
            )
        }
        (Status::Completed, Some(Outcome::BorrowerDeclined { user_id, reasons })) => {
            next.loan.user_id = Some(user_id.clone());
            fail(
                next,
                Reason::new(
                    "borrower_declined",
                    format!(
                        "onboarding {business_key} declined borrower {user_id}: {}",
                        reasons.join("; ")
                    ),
                ),
            )
        }
        (Status::Cancelled, _) => fail(
            next,
            Reason::new(
                "onboarding_cancelled",
                format!("onboarding {business_key} was cancelled: {why}"),
            ),
        ),
        (Status::Failed, _) => fail(
            next,
            Reason::new(
                "onboarding_failed",
                format!("onboarding {business_key} failed: {why}"),
            ),
        ),
        (status, _) => attention(
            next,
            Reason::new(
                "unexpected_outcome",
                format!(
                    "onboarding {business_key} ended {status} in state {} without a borrower",
                    finished.state
                ),
            )
            .with_hint("find the borrower and resolve with {\"user_id\": \"<24 hex>\"}, or cancel"),
            now,
        ),
    }
}

/// A wake-up during a wait: overdue installments first (repaying), then the poll or the
/// deadline.
pub(super) fn woken(state: &OriginateState, wait: &Waiting, now: DateTime<Utc>) -> T {
    let mut next = state.clone();
    let mut flagged = None;
    if let Phase::Repaying {
        next_check: Some(check),
        ..
    } = &state.phase
        && *check <= now
    {
        let (news, following) = next.loan.review_overdue(now, state.policy.overdue_grace);
        if let Phase::Repaying { next_check, .. } = &mut next.phase {
            *next_check = following;
        }
        flagged = Some(if news {
            format!("installments overdue: {:?}", next.loan.overdue_now())
        } else {
            "overdue check: nothing overdue".to_owned()
        });
    }
    match wait_woken(wait, now) {
        WaitWake::TimedOut if state.loan.is_paid() => {
            next.phase = Phase::Paid;
            advance(next, "the loan is PAID")
        }
        WaitWake::TimedOut => timed_out(next, now),
        WaitWake::Poll(polling) => {
            if let Some(slot) = next.phase.wait_mut() {
                *slot = polling;
            }
            let note = flagged.map_or_else(String::new, |f| format!("{f}; "));
            advance(next, format!("{note}callback late: polling"))
        }
        WaitWake::NotDue => match flagged {
            Some(note) => advance(next, note),
            None => ignore(state, "woken before a poll, a check or the deadline is due"),
        },
    }
}

/// A poll answered.
pub(super) fn polled(
    state: &OriginateState,
    wait: &Waiting,
    response: &FinfraResponse,
    now: DateTime<Utc>,
) -> T {
    let mut next = state.clone();
    let from = state.phase.name();
    match (response, &state.phase) {
        (FinfraResponse::GetBorrower(borrower), Phase::AwaitBorrowerApproved { user_id, .. }) => {
            let user_id = user_id.clone();
            if let Err(reason) = route::after_borrower(&mut next, borrower, &user_id, now) {
                return fail(next, reason);
            }
        }
        (FinfraResponse::GetLoan(loan), _) => {
            next.loan.observe(loan, now, Source::Read);
            if let Phase::Repaying { .. } = next.phase {
                let (_, following) = next.loan.review_overdue(now, state.policy.overdue_grace);
                if let Phase::Repaying { next_check, .. } = &mut next.phase {
                    *next_check = following;
                }
            }
        }
        _ => {}
    }
    if next.phase.step() != state.phase.step() || route::settle(&mut next, now) {
        let to = next.phase.name();
        return advance(next, format!("poll: {from} → {to}"));
    }
    let every = match next.phase {
        Phase::Repaying { .. } => route::repayment_poll_every(&next),
        _ => state.policy.poll_interval,
    };
    // From the wait `settle` may have shortened (a PAID loan waiting for its payments).
    let wait = crate::kit::wait::poll_answered(next.phase.wait().unwrap_or(wait), now, every);
    let mut out = next;
    if let Some(slot) = out.phase.wait_mut() {
        *slot = wait;
    }
    advance(out, "poll: not yet")
}

/// The deadline passed.
pub(super) fn timed_out(mut state: OriginateState, now: DateTime<Utc>) -> T {
    let since = state.phase.wait().map_or(now, |w| w.since);
    let unique_id = state.loan.unique_id.clone();
    let retry = "resolve with {\"retry\": true} to wait again (with a read at once)";
    let reason = match &state.phase {
        Phase::AwaitOnboarding { business_key, .. } => Reason::new(
            "onboarding_timeout",
            format!("onboarding {business_key} has not finished since {since}"),
        )
        .with_hint(
            "resolve with {\"user_id\": \"<24 hex>\"} when the borrower is known, or with \
             {\"retry\": true} to wait again",
        ),
        Phase::AwaitBorrowerApproved { user_id, .. } => Reason::new(
            "borrower_approval_timeout",
            format!("borrower {user_id} not APPROVED since {since}"),
        )
        .with_hint(retry),
        Phase::AwaitSigned { .. } => {
            // The borrower did not sign in time: the loan is rejected at Finfra.
            let key = state.op_key(Step::RejectLoan.as_str(), 0);
            state.phase = Phase::RejectLoan {
                why: RejectWhy::SigningTimeout { since },
                run: Run::new(Some(key)),
            };
            return advance(
                state,
                format!("loan {unique_id} not signed since {since}: rejecting it"),
            );
        }
        Phase::AwaitDisbursement { .. } => Reason::new(
            "disbursement_timeout",
            format!(
                "loan {unique_id}: the disbursement was accepted at Finfra but neither disbursed \
                 nor refused since {since}"
            ),
        )
        .with_hint(
            "check the transfer with Finfra; resolve with {\"retry\": true} to wait again \
             (nothing is sent again)",
        ),
        Phase::Repaying { .. } => Reason::new(
            "repayment_overdue",
            format!(
                "loan {unique_id}: {} still outstanding, installments {:?} overdue",
                state.loan.outstanding().unwrap_or_default(),
                state.loan.overdue_now()
            ),
        )
        .with_hint(retry),
        _ => return ignore(&state, "not waiting"),
    };
    attention(state, reason, now)
}
