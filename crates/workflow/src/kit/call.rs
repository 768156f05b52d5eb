//! The call step: a phase that makes one Finfra call, kept in a [`Run`]. Answers go to the
//! kind ([`Machine::succeeded`], [`Machine::reconciled`]); failures go through the kind's
//! own statuses first ([`Machine::own_failure`]), then the [`retry`] rules;
//! anything else while the request is outstanding means its outcome is unknown.
//!
//! | event | stage | next |
//! |---|---|---|
//! | the answer | `send` | the kind's `succeeded` |
//! | a failure | `send` | the kind's own statuses; a refusal (`4xx`) after an unknown outcome → read before believing it; a `409` with a read → read; else the retry rules |
//! | the read's answer | `reconcile` | the kind's `reconciled`: applied → on; not applied → send again, or, after a refusal, the refusal stands |
//! | the read failed | `reconcile` | the kind's own statuses; else read again or give up |
//! | `Wake` | a backoff | send (or read) again when it is over |
//! | `CallInterrupted`, `Start`, `Wake`, a callback, a stale answer | `send` | reconcile if the request needs it, else send again |
//! | `CallInterrupted`, `Start` | otherwise | resume: the read or the timer as it is |
//!
//! A disbursement ([`FinfraRequest::reads_before_every_resend`]) is never sent again after a
//! failure without a read of the loan, even when the failure proves nothing was applied.

use chrono::{DateTime, Utc};

use crate::action::{Action, CallPurpose, SleepReason};
use crate::event::Event;
use crate::failure::CallFailure;
use crate::machine::{Handled, Transition};
use crate::request::FinfraRequest;

use super::retry::{self, Run, Stage};
use super::{Machine, Phase, ctx, give_up, ignore, resume, with_run};

/// The action of a call step, in its run's stage: the step's own request, its reconcile
/// read, or a sleep.
pub(super) fn action<M: Machine>(state: &M, run: &Run) -> Action {
    let step = state.phase().name();
    let call = |purpose, request: Option<FinfraRequest>, attempt| match request {
        Some(request) => Action::Call {
            step: step.to_owned(),
            purpose,
            request,
            operation_key: run.operation_key.clone(),
            attempt,
        },
        None => super::inconsistent(state),
    };
    match &run.stage {
        Stage::Send => call(CallPurpose::Perform, state.request(), run.attempt),
        Stage::Reconcile => call(
            CallPurpose::Reconcile,
            state.reconcile_read(),
            run.reads + 1,
        ),
        Stage::Backoff { at, reason } => Action::SleepUntil {
            step: step.to_owned(),
            at: *at,
            reason: *reason,
        },
        Stage::ReconcileBackoff { at } => Action::SleepUntil {
            step: step.to_owned(),
            at: *at,
            reason: SleepReason::ReconcileRetry,
        },
    }
}

/// An event in a call step (see the module docs).
pub(super) fn on_event<M: Machine>(state: &M, event: &Event, now: DateTime<Utc>) -> Transition<M> {
    let (Some(run), Some(request)) = (state.phase().run(), state.request()) else {
        return ignore(state, "no call to make in this state");
    };
    if let Event::PollNow { .. } = event {
        return ignore(
            state,
            "asked to read Finfra while a call is under way: nothing to do",
        );
    }
    match (event, &run.stage) {
        (Event::CallSucceeded(response), Stage::Send) if response.answers(&request) => {
            state.succeeded(response, now)
        }
        (Event::CallFailed(failure), Stage::Send) => failed(state, run, &request, failure, now),
        (Event::CallSucceeded(response), Stage::Reconcile) => match state.reconcile_read() {
            Some(read) if response.answers(&read) => state.reconciled(run, &request, response, now),
            // A stale answer to an earlier call: the read is still outstanding.
            _ => ignore(
                state,
                format!(
                    "a stale {} answer ignored while reconciling",
                    response.name()
                ),
            ),
        },
        (Event::CallFailed(failure), Stage::Reconcile) => {
            read_failed(state, run, &request, failure, now)
        }
        (Event::Wake, Stage::Backoff { .. } | Stage::ReconcileBackoff { .. }) => {
            match retry::woken(run, now) {
                Some(next) => {
                    let what = if next.stage == Stage::Reconcile {
                        "backoff over: reading before sending again"
                    } else {
                        "backoff over: sending again"
                    };
                    with_run(state, next, what)
                }
                None => ignore(state, "woken before the backoff is over"),
            }
        }
        // Anything else while our request is outstanding means the executor no longer knows
        // what became of it (a crash, a lost lease): never assume it was not sent.
        (
            Event::CallInterrupted
            | Event::Start
            | Event::Wake
            | Event::Callback(_)
            | Event::CallSucceeded(_),
            Stage::Send,
        ) => outstanding(state, run, &request, event, now),
        // A reconcile read is a read, and a backoff a timer: re-issue them as they are.
        (Event::CallInterrupted | Event::Start, _) => {
            resume(state, format!("resumed in {}", state.phase().name()))
        }
        (Event::Callback(callback), _) => state.callback_in_call(callback, now),
        _ => ignore(
            state,
            format!("{} ignored in {}", event.name(), state.phase().name()),
        ),
    }
}

/// An event other than the answer while the request is outstanding.
fn outstanding<M: Machine>(
    state: &M,
    run: &Run,
    request: &FinfraRequest,
    event: &Event,
    now: DateTime<Utc>,
) -> Transition<M> {
    if let Event::Callback(callback) = event {
        // What the callback says first: it may settle the step (a loan_disbursed while the
        // disbursement's answer is lost); else a request that needs it is reconciled. A
        // duplicate or someone else's is ignored like anywhere else.
        let recorded = state.callback_in_call(callback, now);
        if recorded.handled == Handled::Ignored
            || recorded.state.phase().name() != state.phase().name()
            || !request.effect().needs_reconcile()
        {
            return recorded;
        }
        return with_run(
            &recorded.state,
            retry::interrupted(run, request),
            format!(
                "callback while {} was outstanding: its outcome is unknown, reconciling before sending again",
                request.name()
            ),
        );
    }
    if request.effect().needs_reconcile() {
        return with_run(
            state,
            retry::interrupted(run, request),
            format!(
                "{} while {} was outstanding: its outcome is unknown, reconciling before sending again",
                event.name(),
                request.name()
            ),
        );
    }
    match event {
        // A wake-up means the executor does not think the call is in flight either (a
        // `Call` is due at once): it was lost.
        Event::CallInterrupted | Event::Start | Event::Wake => with_run(
            state,
            retry::interrupted(run, request),
            format!(
                "{} may not have been sent: sending it again (safe to repeat)",
                request.name()
            ),
        ),
        _ => ignore(
            state,
            format!(
                "{} ignored: {} is outstanding",
                event.name(),
                request.name()
            ),
        ),
    }
}

/// The step's request failed: the kind's own statuses first, then "read before you
/// believe" for a refusal after an unknown outcome, then the generic rules.
fn failed<M: Machine>(
    state: &M,
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> Transition<M> {
    if let Some(transition) = state.own_failure(run, request, failure, now) {
        return transition;
    }
    if run.uncertain
        && retry::is_refusal(failure)
        && let Some(read) = state.reconcile_read()
    {
        // An earlier send may have been applied, and this refusal may only say that
        // Finfra's state moved on since.
        return with_run(
            state,
            reading(run, failure, true),
            format!(
                "{} refused ({}) after an unknown outcome of an earlier send: reading {} before believing it",
                request.name(),
                failure.describe(),
                read.name()
            ),
        );
    }
    rules(state, run, request, failure, now, true)
}

/// The run, now reading Finfra's state after `failure`; `refused` when the failure is a
/// refusal that stands if the read shows nothing was applied.
fn reading(run: &Run, failure: &CallFailure, refused: bool) -> Run {
    let mut next = run.clone();
    next.stage = Stage::Reconcile;
    next.reads = 0;
    next.refused = refused;
    next.last_failure = Some(failure.clone());
    next
}

/// The generic rules for a failure: a `409` read (unless the state was just read), then
/// the retry rules.
fn rules<M: Machine>(
    state: &M,
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    now: DateTime<Utc>,
    read_on_conflict: bool,
) -> Transition<M> {
    if read_on_conflict
        && failure.conflict
        && let Some(read) = state.reconcile_read()
    {
        // A 409 says Finfra's state is not what the request expects (already applied, or
        // moved on): not a failure of ours, it uses up no attempt.
        return with_run(
            state,
            reading(run, failure, false),
            format!(
                "409 on {}: reading {} to learn why",
                request.name(),
                read.name()
            ),
        );
    }
    let policy = state.retry_policy();
    match retry::send_failed(run, request, failure, ctx(state, &policy, now)) {
        Ok(mut next) => {
            if request.reads_before_every_resend()
                && let Stage::Backoff { at, .. } = next.stage
            {
                // Even a failure that proves nothing was applied (429, 503, no connection)
                // is followed by a read, never by a blind re-send: the rule is simpler to
                // trust than a classification.
                next.stage = Stage::ReconcileBackoff { at };
                next.reads = 0;
            }
            let note = match &next.stage {
                Stage::Reconcile => format!(
                    "{} outcome unknown ({}): reconciling before sending again",
                    request.name(),
                    failure.describe()
                ),
                Stage::Backoff { at, .. } => format!(
                    "{} failed ({}): again at {at}",
                    request.name(),
                    failure.describe()
                ),
                Stage::ReconcileBackoff { at } => format!(
                    "{} failed ({}): reading at {at} before any new request",
                    request.name(),
                    failure.describe()
                ),
                Stage::Send => format!("{} failed ({})", request.name(), failure.describe()),
            };
            with_run(state, next, note)
        }
        Err(outcome) => give_up(state, outcome, now),
    }
}

/// The reconcile read failed: the kind's own statuses first (a `404` that answers the
/// question), then read again later or give up.
fn read_failed<M: Machine>(
    state: &M,
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> Transition<M> {
    if let Some(transition) = state.own_read_failure(run, request, failure, now) {
        return transition;
    }
    let Some(read) = state.reconcile_read() else {
        return ignore(state, "no reconcile read in this state");
    };
    let policy = state.retry_policy();
    match retry::read_failed(run, &read, failure, ctx(state, &policy, now)) {
        Ok(run) => with_run(
            state,
            run,
            format!(
                "{} failed ({}): reading again later",
                read.name(),
                failure.describe()
            ),
        ),
        Err(outcome) => give_up(state, outcome, now),
    }
}

/// Sends the step's request again after a read showed it was not applied (within the
/// retry policy's attempts). When the read followed a refusal of a repeat, the refusal
/// stands instead: judged as on a first send, by the kind's own statuses and the rules.
pub fn resend<M: Machine>(
    state: &M,
    run: &Run,
    request: &FinfraRequest,
    now: DateTime<Utc>,
    why: &str,
) -> Transition<M> {
    if run.refused
        && let Some(refusal) = &run.last_failure
    {
        let mut first = run.clone();
        first.uncertain = false;
        first.refused = false;
        first.stage = Stage::Send;
        let mut t = state
            .own_failure(&first, request, refusal, now)
            .unwrap_or_else(|| rules(state, &first, request, refusal, now, false));
        t.note = format!("{why}, so the refusal stands: {}", t.note);
        return t;
    }
    let policy = state.retry_policy();
    match retry::resend(run, request, ctx(state, &policy, now)) {
        Ok(run) => with_run(
            state,
            run,
            format!("{why}: sending {} again", request.name()),
        ),
        Err(outcome) => give_up(state, outcome, now),
    }
}
