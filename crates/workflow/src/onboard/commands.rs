//! The onboarding's answers to operator commands: `cancel`, and what `resolve` does here
//! (the kit checks that the workflow is stuck and parses the data).

use chrono::{DateTime, Utc};

use finfra_api::model::borrower::BorrowerStatus;

use crate::ids::UserId;
use crate::kit::{Phase as _, advance, ignore};
use crate::machine::{Status, Transition};

use super::route;
use super::state::{OnboardState, Phase, Source, Step};

type T = Transition<OnboardState>;

/// Cancels from any state that is not over. The borrower is not blocked at Finfra: an
/// onboarding that stops before `approve` leaves a borrower that cannot borrow (loans
/// need `APPROVED`), and a cancel may be a mistake that blocking would make permanent.
pub(super) fn cancel(state: &OnboardState, by: &str, reason: &str) -> T {
    let step = match &state.phase {
        Phase::NeedsAttention { stuck, .. } => stuck.name(),
        other => other.name(),
    };
    let unknown = if state.phase.status() == Status::Ambiguous {
        " (the outcome of its last request was unknown)"
    } else {
        ""
    };
    let mut next = state.clone();
    next.phase = Phase::Cancelled {
        step: step.to_owned(),
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    advance(
        next,
        format!("cancelled by {by} at {step}{unknown}: {reason}"),
    )
}

/// `resolve` with a user id: accepted where the id is what is missing (after the create
/// call, before the id arrived).
pub(super) fn resolve_user_id(
    state: &OnboardState,
    stuck: &Phase,
    user_id: UserId,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> T {
    if state.borrower.user_id.is_some() {
        return ignore(state, "resolve refused: the borrower's id is already known");
    }
    // Only where the id is what is missing: before the create call, the borrower does not
    // exist yet and supplying an id would skip its KYC.
    if !matches!(
        stuck.step(),
        Some(Step::CreateBorrower | Step::SubmitKyc | Step::AwaitUserCreated)
    ) {
        return ignore(
            state,
            format!(
                "resolve refused: user_id is accepted once the borrower was created, not at {}",
                stuck.name()
            ),
        );
    }
    let mut next = state.clone();
    next.borrower.learn_user_id(user_id.clone());
    next.borrower.create_accepted = true;
    next.borrower
        .reach(BorrowerStatus::Pending, now, Source::Operator);
    route::next_check(&mut next, user_id.clone(), 0, now);
    let step = next.phase.name();
    advance(
        next,
        format!("resolved by {by} ({reason}): borrower id {user_id} supplied; on to {step}"),
    )
}

/// The stuck phase (now `state.phase`), ready to run again.
pub(super) fn restart(state: &mut OnboardState, now: DateTime<Utc>) {
    let mut phase = state.phase.clone();
    if let Some(run) = phase.run_mut() {
        *run = run.restarted();
    }
    match &mut phase {
        Phase::HubCheck { pending_since, .. } | Phase::RdfBiometric { pending_since, .. } => {
            *pending_since = None;
        }
        Phase::AwaitUserCreated { poll, wait } => {
            *wait = route::fresh_wait(state, Step::AwaitUserCreated, poll.is_some(), now);
            // Poll at once: the person resolving wants an answer now.
            if wait.next_poll.is_some() {
                wait.next_poll = Some(now);
            }
        }
        Phase::AwaitUserVerified { wait, .. } => {
            *wait = route::fresh_wait(state, Step::AwaitUserVerified, true, now);
            wait.next_poll = Some(now);
        }
        Phase::AwaitUserApproved { wait, .. } => {
            *wait = route::fresh_wait(state, Step::AwaitUserApproved, true, now);
            wait.next_poll = Some(now);
        }
        _ => {}
    }
    state.phase = phase;
}
