//! The onboarding's decision: operator commands (cancel, resolve) in any state, then the
//! event handed to the phase's kind (a call or a wait).

use chrono::{DateTime, Utc};
use serde_json::Value;

use finfra_api::model::borrower::BorrowerStatus;

use crate::event::Event;
use crate::machine::{Status, Transition};
use crate::resolution::{self, Resolution};
use crate::run::{self, Settled};

use super::flow::{self, advance, ignore};
use super::state::{OnboardState, Phase, Source, Step};
use super::{calls, waits};

type T = Transition<OnboardState>;

/// `(state, event, now) -> transition`.
pub(super) fn decide(state: &OnboardState, event: &Event, now: DateTime<Utc>) -> T {
    match event {
        Event::Cancel { by, reason } => return cancel(state, by, reason),
        Event::Resolve { by, reason, data } => return resolve(state, by, reason, data, now),
        _ => {}
    }
    let stuck = matches!(state.phase, Phase::NeedsAttention { .. });
    match run::before_phase(event, state.phase.name(), state.phase.is_terminal(), stuck) {
        Some(Settled::Resume(note)) => return flow::resume(state, note),
        Some(Settled::Ignore(note)) => return ignore(state, note),
        None => {}
    }
    if state.phase.run().is_some() {
        calls::on_event(state, event, now)
    } else {
        waits::on_event(state, event, now)
    }
}

/// Cancels from any state that is not over. The borrower is not blocked at Finfra: an
/// onboarding that stops before `approve` leaves a borrower that cannot borrow (loans
/// need `APPROVED`), and a cancel may be a mistake that blocking would make permanent.
fn cancel(state: &OnboardState, by: &str, reason: &str) -> T {
    if state.phase.is_terminal() {
        return ignore(
            state,
            format!(
                "cancel ignored: the workflow is already {}",
                state.phase.name()
            ),
        );
    }
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

fn resolve(state: &OnboardState, by: &str, reason: &str, data: &Value, now: DateTime<Utc>) -> T {
    let Phase::NeedsAttention { stuck, .. } = &state.phase else {
        return ignore(
            state,
            format!(
                "resolve ignored: the workflow is {}, not needs_attention",
                state.phase.name()
            ),
        );
    };
    let resolution = match resolution::parse(data) {
        Ok(resolution) => resolution,
        Err(message) => return ignore(state, format!("resolve refused: {message}")),
    };
    let mut next = state.clone();
    match resolution {
        Resolution::Retry => {
            next.phase = restart(state, stuck, now);
            let step = next.phase.name();
            advance(next, format!("resolved by {by} ({reason}): {step} again"))
        }
        Resolution::UserId(user_id) => {
            if state.borrower.user_id.is_some() {
                return ignore(state, "resolve refused: the borrower's id is already known");
            }
            // Only where the id is what is missing: before the create call, the borrower
            // does not exist yet and supplying an id would skip its KYC.
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
            next.borrower.learn_user_id(user_id.clone());
            next.borrower.create_accepted = true;
            next.borrower
                .reach(BorrowerStatus::Pending, now, Source::Operator);
            flow::next_check(&mut next, user_id.clone(), 0, now);
            let step = next.phase.name();
            advance(
                next,
                format!(
                    "resolved by {by} ({reason}): borrower id {user_id} supplied; on to {step}"
                ),
            )
        }
    }
}

/// The stuck phase, ready to run again.
fn restart(state: &OnboardState, stuck: &Phase, now: DateTime<Utc>) -> Phase {
    let mut phase = stuck.clone();
    if let Some(run) = phase.run_mut() {
        *run = run.restarted();
    }
    match &mut phase {
        Phase::HubCheck { pending_since, .. } | Phase::RdfBiometric { pending_since, .. } => {
            *pending_since = None;
        }
        Phase::AwaitUserCreated { poll, wait } => {
            *wait = flow::fresh_wait(state, Step::AwaitUserCreated, poll.is_some(), now);
            // Poll at once: the person resolving wants an answer now.
            if wait.next_poll.is_some() {
                wait.next_poll = Some(now);
            }
        }
        Phase::AwaitUserVerified { wait, .. } => {
            *wait = flow::fresh_wait(state, Step::AwaitUserVerified, true, now);
            wait.next_poll = Some(now);
        }
        Phase::AwaitUserApproved { wait, .. } => {
            *wait = flow::fresh_wait(state, Step::AwaitUserApproved, true, now);
            wait.next_poll = Some(now);
        }
        _ => {}
    }
    phase
}
