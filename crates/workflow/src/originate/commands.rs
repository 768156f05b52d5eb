//! The origination's answers to operator commands: `cancel`, and what `resolve` does here
//! (the kit checks that the workflow is stuck and parses the data).

use chrono::{DateTime, Utc};

use crate::event::Event;
use crate::ids::UserId;
use crate::kit::{Machine, Phase as _, Run, Stage, Waiting, advance, ignore};
use crate::machine::{Status, Transition};

use super::route;
use super::state::{OriginateState, Phase, RejectWhy, Step};

type T = Transition<OriginateState>;

/// Cancels before the disbursement; refuses after it was sent, or may have been.
///
/// - Before any loan can exist (waiting for the onboarding or the borrower): cancelled at
///   once.
/// - Once the loan may exist and until the disbursement is decided: the loan is rejected at
///   Finfra (`reject_loan`), then `cancelled` (a `404` there means no loan: cancelled).
/// - From the decision to disburse on: refused. The request may have reached Finfra, money
///   may have left, and Finfra refuses to reject a loan once disbursement started.
pub(super) fn cancel(state: &OriginateState, by: &str, reason: &str) -> T {
    if state.loan.disbursement.requested {
        return ignore(
            state,
            format!(
                "cancel refused: the disbursement of loan {} was sent (or may have been) and is \
                 irreversible; Finfra does not reject a loan once disbursement started. The \
                 workflow carries on to repayment; a refused disbursement is resolved, not \
                 cancelled",
                state.loan.unique_id
            ),
        );
    }
    let active = state.phase.active();
    let step = active.name().to_owned();
    let unknown = if active
        .run()
        .is_some_and(|r| r.status() == Status::Ambiguous)
    {
        " (the outcome of its last request was unknown)"
    } else {
        ""
    };
    let mut next = state.clone();
    let why = RejectWhy::Cancel {
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    match active {
        Phase::RejectLoan {
            why: RejectWhy::Cancel { .. },
            ..
        } if !matches!(state.phase, Phase::NeedsAttention { .. }) => ignore(
            state,
            "cancel ignored: already cancelling (rejecting the loan)",
        ),
        Phase::RejectLoan { run, .. } => {
            // Rejecting already (signing timeout, or stuck): the same operation, now for the
            // cancel. A request that may be in flight, or whose outcome is unknown, is read
            // first.
            let mut again = run.restarted();
            if run.stage == Stage::Send && !matches!(state.phase, Phase::NeedsAttention { .. }) {
                again.stage = Stage::Reconcile;
            }
            next.phase = Phase::RejectLoan { why, run: again };
            advance(
                next,
                format!("cancel by {by} at {step}{unknown}: rejecting the loan at Finfra"),
            )
        }
        other if other.step().is_some_and(Step::loan_may_exist) => {
            next.phase = Phase::RejectLoan {
                why,
                run: Run::new(Some(state.op_key(Step::RejectLoan.as_str(), 0))),
            };
            advance(
                next,
                format!("cancel by {by} at {step}{unknown}: rejecting the loan at Finfra first"),
            )
        }
        _ => {
            next.phase = Phase::Cancelled {
                step: step.clone(),
                by: by.to_owned(),
                reason: reason.to_owned(),
            };
            advance(next, format!("cancelled by {by} at {step}: {reason}"))
        }
    }
}

/// `resolve` with a user id: accepted while waiting for the onboarding (the borrower is
/// known another way); the borrower is read first.
pub(super) fn resolve_user_id(
    state: &OriginateState,
    stuck: &Phase,
    user_id: UserId,
    by: &str,
    reason: &str,
) -> T {
    if !matches!(stuck, Phase::AwaitOnboarding { .. }) {
        return ignore(
            state,
            format!(
                "resolve refused: user_id is accepted while waiting for the onboarding, not at {}",
                stuck.name()
            ),
        );
    }
    let mut next = state.clone();
    route::check_borrower(&mut next, user_id.clone());
    advance(
        next,
        format!("resolved by {by} ({reason}): borrower {user_id} supplied; reading it"),
    )
}

/// The stuck phase (now `state.phase`), ready to run again. A disbursement is never sent
/// straight away: it reads the loan first, whatever made it stop.
pub(super) fn restart(state: &mut OriginateState, now: DateTime<Utc>) {
    let policy = state.policy.clone();
    let refused = state.loan.disbursement_failed();
    let fresh = |timeout, poll: bool| {
        let mut wait = Waiting::new(now, timeout, poll.then_some(policy.poll_interval));
        if poll {
            // Read at once: the person resolving wants an answer now.
            wait.next_poll = Some(now);
        }
        wait
    };
    if refused && matches!(state.phase, Phase::AwaitDisbursement { .. }) {
        // A new disbursement after the bank's refusal (Finfra allows it from
        // DISBURSEMENT_FAILED), through the read like any other.
        route::disburse(state);
        return;
    }
    match &mut state.phase {
        Phase::DisburseLoan { run } => {
            let mut again = run.restarted();
            again.stage = Stage::Reconcile;
            *run = again;
        }
        Phase::AwaitOnboarding { wait, .. } => *wait = fresh(policy.timeouts.onboarding, false),
        Phase::AwaitBorrowerApproved { wait, .. } => {
            *wait = fresh(policy.timeouts.borrower_approved, true);
        }
        Phase::AwaitSigned { wait } => *wait = fresh(policy.timeouts.signing, true),
        Phase::AwaitDisbursement { wait } => *wait = fresh(policy.timeouts.disbursement, true),
        Phase::Repaying { wait, .. } => *wait = fresh(policy.timeouts.collection, true),
        other => {
            if let Some(run) = other.run_mut() {
                *run = run.restarted();
            }
        }
    }
}

/// Whether an operator's `command` to this origination needs a second person's approval
/// before it is applied (four-eyes), and why; `None` when one person may apply it.
///
/// Every resolve (and so every retry) of a loan may make money move: it can re-run a
/// disbursement, re-read one whose outcome was unknown and carry on to it, or supply what
/// lets the loan go on towards it. A cancel of a signed loan stops money that the borrower
/// was promised. A cancel before signing moves nothing and needs no approval.
#[must_use]
pub(crate) fn needs_approval(state: &OriginateState, command: &Event) -> Option<String> {
    match command {
        Event::Resolve { data, .. } => {
            let step = effective_step(state).map_or("its current state", Step::as_str);
            let what = if data.get("retry").and_then(serde_json::Value::as_bool) == Some(true) {
                "a retry"
            } else {
                "a resolve"
            };
            let disbursement = if state.loan.disbursement_failed() {
                " after a refused disbursement"
            } else if state.loan.disbursement.requested {
                " after a disbursement was sent"
            } else {
                ""
            };
            Some(format!(
                "{what} of loan {} at {step}{disbursement} can make money move",
                state.loan.unique_id
            ))
        }
        Event::Cancel { .. } if signed(state) => Some(format!(
            "a cancel of signed loan {} stops money promised to the borrower",
            state.loan.unique_id
        )),
        _ => None,
    }
}

/// The step the workflow is at, or was stuck at.
fn effective_step(state: &OriginateState) -> Option<Step> {
    match &state.phase {
        Phase::NeedsAttention { stuck, .. } => stuck.step(),
        other => other.step(),
    }
}

/// Whether the borrower signed: the workflow reached the disbursement or beyond.
fn signed(state: &OriginateState) -> bool {
    state.loan.disbursement.requested
        || effective_step(state).is_some_and(|s| {
            matches!(
                s,
                Step::DisburseLoan
                    | Step::AwaitDisbursement
                    | Step::RequestVirtualAccount
                    | Step::Repaying
            )
        })
}
