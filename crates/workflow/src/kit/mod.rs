//! The machine kit: everything every workflow kind does alike, written once.
//!
//! A kind (`onboard`, `originate`) supplies its phases ([`Phase`]) and its state
//! ([`Machine`]): which request each phase sends, how it reads Finfra's answers, what a
//! callback means to it, its policy. The kit supplies the rest:
//!
//! - the decision's skeleton ([`decide`]): operator commands first, then the guard every
//!   machine applies before a phase sees an event (a finished or stuck workflow), then the
//!   event handed to the phase's kind of step;
//! - the call step ([`call`]): answers, failures, the retry rules of [`retry`], "read before
//!   you believe" after an unknown outcome, reconciliation, interruptions;
//! - the wait step ([`wait`]): callbacks recorded as facts, the fallback poll, deadlines,
//!   and a stuck wait that resumes by itself when what it waited for arrives;
//! - the action of a state ([`action`]), a function of the state alone;
//! - the transition constructors ([`advance`], [`ignore`], [`resume`], [`fail`],
//!   [`attention`]).
//!
//! # Read before you believe
//!
//! A request repeated after an unknown outcome (a lost answer, a `5xx`, a worker that died
//! mid-call) may meet a world that moved on: Finfra applied the first send, and the loan or
//! the borrower is now in a state where the same request is refused. So once a step's run is
//! [`Run::uncertain`], a `4xx` answer is never taken at its word: the step reads Finfra's
//! state (its [`Machine::reconcile_read`]) and the machine decides from what the read shows
//! ([`Machine::reconciled`]). Only when the read shows the request was *not* applied does the
//! `4xx` stand, judged as on a first send.

pub mod call;
pub mod retry;
pub mod wait;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use finfra_api::retry::RetryPolicy;
use serde_json::Value;

use crate::action::{Action, Expected, Reason};
use crate::definition::DefinitionRef;
use crate::event::{CallbackEvent, Event};
use crate::failure::CallFailure;
use crate::ids::{OperationKey, UserId, WorkflowId};
use crate::machine::{Handled, Observations, Status, Summary, Transition};
use crate::request::FinfraRequest;
use crate::resolution::{self, Resolution};
use crate::response::FinfraResponse;

pub use retry::{GiveUp, RETRY_HINT, Run, Stage, StepCtx, after};
pub use wait::{WaitWake, Waiting};

/// A kind's phases: where a workflow of that kind is, with what its step needs.
pub trait Phase: Clone + fmt::Debug {
    /// The state name (a contract: stored in SQL).
    fn name(&self) -> &'static str;
    /// The status of a finished phase (`completed`, `failed` or `cancelled`); `None` while
    /// the workflow goes on.
    fn finished(&self) -> Option<Status>;
    /// The run of a phase that makes a call (the call step).
    fn run(&self) -> Option<&Run>;
    /// The run, to replace it.
    fn run_mut(&mut self) -> Option<&mut Run>;
    /// The wait of a phase that waits for a callback (the wait step).
    fn wait(&self) -> Option<&Waiting>;
    /// The wait, to replace it.
    fn wait_mut(&mut self) -> Option<&mut Waiting>;
    /// In `needs_attention`: the phase that is stuck, and why.
    fn stuck(&self) -> Option<(&Self, &Reason)>;
    /// In `needs_attention`: the phase that is stuck, to update what it knows.
    fn stuck_mut(&mut self) -> Option<&mut Self>;
    /// The `needs_attention` phase for `stuck`.
    fn needs_attention(stuck: Self, reason: Reason, since: DateTime<Utc>) -> Self;
    /// The `failed` phase, at `step`.
    fn failed(step: String, reason: Reason) -> Self;

    /// Whether the workflow is over.
    fn is_terminal(&self) -> bool {
        self.finished().is_some()
    }

    /// The phase that acts: the stuck one in `needs_attention`, else this one.
    fn active(&self) -> &Self {
        self.stuck().map_or(self, |(stuck, _)| stuck)
    }

    /// The coarse status.
    fn status(&self) -> Status {
        if let Some(status) = self.finished() {
            return status;
        }
        if self.stuck().is_some() {
            return Status::NeedsAttention;
        }
        self.run().map_or(Status::Waiting, Run::status)
    }
}

/// A kind's state: what the kit needs to drive it, and what only the kind knows.
pub trait Machine: Clone + fmt::Debug + Sized {
    /// The kind's phases.
    type Phase: Phase;

    /// Where the workflow is.
    fn phase(&self) -> &Self::Phase;
    /// Where the workflow is, to move it.
    fn phase_mut(&mut self) -> &mut Self::Phase;
    /// The workflow's id (seeds operation keys and jitter).
    fn workflow_id(&self) -> &WorkflowId;
    /// The pinned definition's retry policy.
    fn retry_policy(&self) -> RetryPolicy;

    /// The action of a finished phase (`Complete`, `Fail` or `Cancelled`).
    fn finished_action(&self) -> Action;
    /// What `resolve` or `cancel` can do about a state that names no request it can make.
    fn inconsistent_hint(&self) -> &'static str;

    /// The current call step's own request.
    fn request(&self) -> Option<FinfraRequest>;
    /// The read that tells whether the current call step's request was applied (`None`
    /// when no read can tell).
    fn reconcile_read(&self) -> Option<FinfraRequest>;
    /// The callbacks that end (or feed) the current wait.
    fn expected(&self) -> Vec<Expected>;
    /// The current wait's fallback poll.
    fn poll_request(&self) -> Option<FinfraRequest>;
    /// How often the current wait polls.
    fn poll_every(&self) -> Duration;
    /// A time the current wait must wake at besides its poll and deadline (an overdue check).
    fn also_wake_at(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// `cancel` of a workflow that is not finished.
    fn cancel(&self, by: &str, reason: &str) -> Transition<Self>;
    /// `resolve` with `{"retry": true}`: the phase is the stuck one; make it run again.
    fn restart(&mut self, now: DateTime<Utc>);
    /// `resolve` with `{"user_id": ..}` of a workflow stuck in `stuck`.
    fn resolve_user_id(
        &self,
        stuck: &Self::Phase,
        user_id: UserId,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Transition<Self>;

    /// The call step's request succeeded.
    fn succeeded(&self, response: &FinfraResponse, now: DateTime<Utc>) -> Transition<Self>;
    /// The reconcile read answered: was the request applied?
    fn reconciled(
        &self,
        run: &Run,
        request: &FinfraRequest,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self>;
    /// A status of the call step's request that means something of its own to this kind
    /// (an expired upload URL, a `409` of a borrower that exists), before the generic rules.
    fn own_failure(
        &self,
        _run: &Run,
        _request: &FinfraRequest,
        _failure: &CallFailure,
        _now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        None
    }
    /// A failure of the reconcile read that answers the question (a `404` of a loan that
    /// was never created), before the generic rules.
    fn own_read_failure(
        &self,
        _run: &Run,
        _request: &FinfraRequest,
        _failure: &CallFailure,
        _now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        None
    }
    /// A callback during a call step: recorded, and the step left when the facts settle it.
    fn callback_in_call(&self, callback: &CallbackEvent, now: DateTime<Utc>) -> Transition<Self> {
        let mut next = self.clone();
        match next.record(callback, now) {
            Some(what) => advance(next, format!("{what}; still in {}", self.phase().name())),
            None => ignore(self, "callback already known or not ours"),
        }
    }

    /// Records what a callback says, as facts; a note when it is news.
    fn record(&mut self, callback: &CallbackEvent, now: DateTime<Utc>) -> Option<String>;
    /// If what the current wait waits for is known, moves on. Whether it moved.
    fn settle(&mut self, now: DateTime<Utc>) -> bool;
    /// The wait's poll answered.
    fn polled(
        &self,
        wait: &Waiting,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self>;
    /// The wait's deadline passed.
    fn timed_out(&self, now: DateTime<Utc>) -> Transition<Self>;
    /// A callback during a wait: recorded, then the wait settled if it can be.
    fn callback_in_wait(&self, callback: &CallbackEvent, now: DateTime<Utc>) -> Transition<Self> {
        wait::callback(self, callback, now)
    }
    /// A wake-up during a wait: the poll or the deadline.
    fn woken_in_wait(&self, wait: &Waiting, now: DateTime<Utc>) -> Transition<Self> {
        wait::woken(self, wait, now)
    }

    /// The key of the operation of `step` (`occurrence` tells repeated ones apart).
    fn op_key(&self, step: &str, occurrence: usize) -> OperationKey {
        let occurrence = u32::try_from(occurrence).unwrap_or(u32::MAX);
        OperationKey::derive(self.workflow_id(), step, occurrence)
    }
}

/// A transition to `state`, which moved on.
pub fn advance<M: Machine>(state: M, note: impl Into<String>) -> Transition<M> {
    Transition {
        action: action(&state),
        state,
        note: note.into(),
        handled: Handled::Advanced,
        observations: Observations::default(),
    }
}

/// A transition that changes nothing.
pub fn ignore<M: Machine>(state: &M, note: impl Into<String>) -> Transition<M> {
    Transition {
        state: state.clone(),
        action: action(state),
        note: note.into(),
        handled: Handled::Ignored,
        observations: Observations::default(),
    }
}

/// A transition that changes nothing but asks the executor to act on the current action
/// (the answer to `Start` and `CallInterrupted`).
pub fn resume<M: Machine>(state: &M, note: impl Into<String>) -> Transition<M> {
    Transition {
        state: state.clone(),
        action: action(state),
        note: note.into(),
        handled: Handled::Resumed,
        observations: Observations::default(),
    }
}

/// Ends the workflow `failed` at its current step.
pub fn fail<M: Machine>(mut state: M, reason: Reason) -> Transition<M> {
    let note = format!("failed at {}: {reason}", state.phase().name());
    set_failed(&mut state, reason);
    advance(state, note)
}

/// Moves the state to `failed` at its current step (the stuck one, when stuck).
pub fn set_failed<M: Machine>(state: &mut M, reason: Reason) {
    let step = state.phase().active().name().to_owned();
    *state.phase_mut() = M::Phase::failed(step, reason);
}

/// Stops the workflow where it is, for a person.
pub fn attention<M: Machine>(mut state: M, reason: Reason, now: DateTime<Utc>) -> Transition<M> {
    let note = format!("needs attention at {}: {reason}", state.phase().name());
    set_attention(&mut state, reason, now);
    advance(state, note)
}

/// Moves the state to `needs_attention`, stuck where it is.
pub fn set_attention<M: Machine>(state: &mut M, reason: Reason, now: DateTime<Utc>) {
    let stuck = state.phase().clone();
    *state.phase_mut() = M::Phase::needs_attention(stuck, reason, now);
}

/// Gives up as the retry rules said: `failed` or `needs_attention`.
pub fn give_up<M: Machine>(state: &M, outcome: GiveUp, now: DateTime<Utc>) -> Transition<M> {
    match outcome {
        GiveUp::Fail(reason) => fail(state.clone(), reason),
        GiveUp::Attention(reason) => attention(state.clone(), reason, now),
    }
}

/// The executor answered something the step did not ask for.
pub fn unexpected<M: Machine>(
    state: &M,
    response: &FinfraResponse,
    now: DateTime<Utc>,
) -> Transition<M> {
    let expected = action(state)
        .request()
        .map_or("nothing", FinfraRequest::name);
    attention(
        state.clone(),
        Reason::new(
            "unexpected_response",
            format!("the executor answered {} to {expected}", response.name()),
        )
        .with_hint(RETRY_HINT),
        now,
    )
}

/// The state with the call step's run replaced.
pub fn with_run<M: Machine>(state: &M, run: Run, note: impl Into<String>) -> Transition<M> {
    let mut next = state.clone();
    if let Some(slot) = next.phase_mut().run_mut() {
        *slot = run;
    }
    advance(next, note)
}

/// The state with the wait step's wait replaced.
pub fn with_wait<M: Machine>(state: &M, wait: Waiting, note: impl Into<String>) -> Transition<M> {
    let mut next = state.clone();
    if let Some(slot) = next.phase_mut().wait_mut() {
        *slot = wait;
    }
    advance(next, note)
}

/// What the retry rules need to know about the current step.
pub fn ctx<'a, M: Machine>(
    state: &'a M,
    policy: &'a RetryPolicy,
    now: DateTime<Utc>,
) -> StepCtx<'a> {
    StepCtx {
        workflow: state.workflow_id(),
        step: state.phase().name(),
        policy,
        now,
    }
}

/// `(state, event, now) -> transition`, for every kind: operator commands, then the guard
/// before every phase, then the phase's step.
pub fn decide<M: Machine>(state: &M, event: &Event, now: DateTime<Utc>) -> Transition<M> {
    let phase = state.phase();
    match event {
        Event::Cancel { .. } | Event::Resolve { .. } if phase.is_terminal() => {
            return ignore(
                state,
                format!(
                    "{} refused: the workflow is already {}",
                    event.name(),
                    phase.name()
                ),
            );
        }
        Event::Cancel { by, reason } => return state.cancel(by, reason),
        Event::Resolve { by, reason, data } => return resolve(state, by, reason, data, now),
        Event::Callback(callback) if phase.stuck().is_some_and(|(s, _)| s.wait().is_some()) => {
            return wait::while_stuck(state, callback, now);
        }
        _ => {}
    }
    let terminal = phase.is_terminal();
    let stuck = phase.stuck().is_some();
    if matches!(event, Event::Start | Event::CallInterrupted) && (terminal || stuck) {
        return resume(state, format!("resumed: the workflow is {}", phase.name()));
    }
    if terminal {
        return ignore(
            state,
            format!("{} ignored: the workflow is {}", event.name(), phase.name()),
        );
    }
    if stuck {
        return ignore(
            state,
            format!(
                "{} ignored: waiting for an operator to resolve or cancel",
                event.name()
            ),
        );
    }
    if phase.run().is_some() {
        call::on_event(state, event, now)
    } else {
        wait::on_event(state, event, now)
    }
}

/// `resolve` of a stuck workflow: `{"retry": true}` runs the stuck step again; a user id
/// is the kind's to judge.
fn resolve<M: Machine>(
    state: &M,
    by: &str,
    reason: &str,
    data: &Value,
    now: DateTime<Utc>,
) -> Transition<M> {
    let Some((stuck, _)) = state.phase().stuck() else {
        return ignore(
            state,
            format!(
                "resolve ignored: the workflow is {}, not needs_attention",
                state.phase().name()
            ),
        );
    };
    let resolution = match resolution::parse(data) {
        Ok(resolution) => resolution,
        Err(message) => return ignore(state, format!("resolve refused: {message}")),
    };
    match resolution {
        Resolution::Retry => {
            let mut next = state.clone();
            *next.phase_mut() = stuck.clone();
            next.restart(now);
            let step = next.phase().name();
            advance(next, format!("resolved by {by} ({reason}): {step} again"))
        }
        Resolution::UserId(user_id) => state.resolve_user_id(stuck, user_id, by, reason, now),
    }
}

/// The action of a state: a function of the state alone.
pub fn action<M: Machine>(state: &M) -> Action {
    let phase = state.phase();
    if phase.is_terminal() {
        return state.finished_action();
    }
    if let Some((stuck, reason)) = phase.stuck() {
        // A stuck wait keeps listening: what it waited for may still come, and resumes it.
        let listening = if stuck.wait().is_some() {
            let mut waiting = state.clone();
            *waiting.phase_mut() = stuck.clone();
            waiting.expected()
        } else {
            Vec::new()
        };
        return Action::NeedsAttention {
            step: stuck.name().to_owned(),
            reason: reason.clone(),
            listening,
        };
    }
    match (phase.run(), phase.wait()) {
        (Some(run), _) => call::action(state, run),
        (None, Some(wait)) => wait::action(state, wait),
        (None, None) => inconsistent(state),
    }
}

/// A state our transitions never build (an index past the end of a list): stop for a person
/// rather than guess.
fn inconsistent<M: Machine>(state: &M) -> Action {
    Action::NeedsAttention {
        step: state.phase().name().to_owned(),
        reason: Reason::new(
            "inconsistent_state",
            "the stored state does not name a request it can make (was it edited by hand?)",
        )
        .with_hint(state.inconsistent_hint()),
        listening: Vec::new(),
    }
}

/// What SQL and the CLI see of a state: its name and status, the attempt of the step that
/// acts, the reason it stopped (or the last failure), and the kind's facts.
pub fn summary<M: Machine>(state: &M, definition: DefinitionRef, facts: Value) -> Summary {
    let phase = state.phase();
    let last_error = match (phase.stuck(), phase.is_terminal()) {
        (Some((_, reason)), _) => Some(reason.to_string()),
        (None, true) => match state.finished_action() {
            Action::Fail { reason } => Some(reason.to_string()),
            _ => None,
        },
        (None, false) => phase
            .run()
            .and_then(|r| r.last_failure.as_ref())
            .or_else(|| phase.wait().and_then(|w| w.last_failure.as_ref()))
            .map(CallFailure::describe),
    };
    Summary {
        state: phase.name().to_owned(),
        status: phase.status(),
        definition,
        attempt: phase.active().run().map_or(1, |r| r.attempt),
        last_error,
        facts,
    }
}
