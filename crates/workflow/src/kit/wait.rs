//! The wait step: a phase that waits for a callback, kept in a [`Waiting`], with an optional
//! poll to fall back on. Callbacks are at least once and unordered: each is recorded as a
//! fact ([`Machine::record`]), once; then the wait asks whether what it waits for is known
//! ([`Machine::settle`]). So a duplicate changes nothing, and a fact learnt early skips its
//! wait later.
//!
//! | event | next |
//! |---|---|
//! | a callback | recorded; the wait settled when it can be |
//! | `Wake` | the poll when due, `needs_attention` (or the kind's own end) at the deadline |
//! | the poll's answer | the kind's `polled` |
//! | the poll failed | poll again later (exactly after `Retry-After` on a `429`), or give up |
//! | `CallInterrupted`, `Start` | resume: the poll or the wait as it is |
//!
//! A wait that ran out (or whose polls kept failing) is stuck in `needs_attention`, but it
//! keeps listening ([`Action::NeedsAttention`]'s `listening`): when what it waited for
//! arrives before a person acted, it resumes by itself ([`while_stuck`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use finfra_api::retry::{self, RetryDecision, RetryPolicy};

use crate::action::{Action, CallPurpose, Poll, Reason};
use crate::event::{CallbackEvent, Event};
use crate::failure::CallFailure;
use crate::machine::{Handled, Transition};
use crate::request::FinfraRequest;

use super::retry::{GiveUp, StepCtx, after};
use super::{Machine, Phase, advance, attention, ctx, ignore, resume, with_wait};

/// A step waiting for a callback, with an optional poll to fall back on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Until when.
    pub deadline: DateTime<Utc>,
    /// When the next poll is due; `None` when the wait has no poll.
    pub next_poll: Option<DateTime<Utc>>,
    /// A poll call is outstanding.
    pub polling: bool,
    /// Failed polls in a row that count against the retry policy.
    pub poll_failures: u32,
    /// 429s answered to polls in a row.
    pub poll_throttles: u32,
    /// The last failed poll, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<CallFailure>,
}

impl Waiting {
    /// A wait of `timeout` from `now`, polling every `poll_every` when given (the first
    /// poll after one interval: callbacks are the normal path).
    #[must_use]
    pub fn new(now: DateTime<Utc>, timeout: Duration, poll_every: Option<Duration>) -> Self {
        Self {
            since: now,
            deadline: after(now, timeout),
            next_poll: poll_every.map(|every| after(now, every)),
            polling: false,
            poll_failures: 0,
            poll_throttles: 0,
            last_failure: None,
        }
    }

    /// When to wake if nothing arrives: the next poll or the deadline.
    #[must_use]
    pub fn wake_at(&self) -> DateTime<Utc> {
        self.next_poll
            .map_or(self.deadline, |poll| poll.min(self.deadline))
    }
}

/// What a wake-up means to a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitWake {
    /// The deadline has passed.
    TimedOut,
    /// A poll is due: send it (the wait is now `polling`).
    Poll(Waiting),
    /// Nothing was due (an early or repeated wake-up).
    NotDue,
}

/// A wake-up during a wait.
#[must_use]
pub fn wait_woken(wait: &Waiting, now: DateTime<Utc>) -> WaitWake {
    if now >= wait.deadline {
        return WaitWake::TimedOut;
    }
    match wait.next_poll {
        Some(at) if at <= now && !wait.polling => {
            let mut next = wait.clone();
            next.polling = true;
            WaitWake::Poll(next)
        }
        Some(_) | None => WaitWake::NotDue,
    }
}

/// A poll answered but the wait goes on: poll again after `every`.
#[must_use]
pub fn poll_answered(wait: &Waiting, now: DateTime<Utc>, every: Duration) -> Waiting {
    let mut next = wait.clone();
    next.polling = false;
    next.poll_failures = 0;
    next.poll_throttles = 0;
    next.next_poll = Some(after(now, every));
    next
}

/// A poll failed: poll again later (exactly after `Retry-After` on a 429), or give up.
///
/// # Errors
///
/// [`GiveUp::Attention`] when polls keep failing or cannot succeed.
pub fn poll_failed(
    wait: &Waiting,
    poll: &FinfraRequest,
    failure: &CallFailure,
    ctx: StepCtx<'_>,
) -> Result<Waiting, GiveUp> {
    let mut next = wait.clone();
    next.polling = false;
    next.last_failure = Some(failure.clone());
    let throttled = failure.status == Some(429);
    let (count, policy) = if throttled {
        next.poll_throttles += 1;
        let unlimited = RetryPolicy {
            max_attempts: u32::MAX,
            ..ctx.policy.clone()
        };
        (next.poll_throttles, unlimited)
    } else {
        next.poll_failures += 1;
        (next.poll_failures, ctx.policy.clone())
    };
    let jitter = ctx.jitter("poll", count);
    match retry::decide(
        failure.class.as_idempotent().into(),
        failure.retry_after,
        count,
        &policy,
        jitter,
    ) {
        RetryDecision::RetryAt(delay) => {
            next.next_poll = Some(after(ctx.now, delay));
            Ok(next)
        }
        RetryDecision::Reconcile | RetryDecision::GiveUp => Err(GiveUp::Attention(
            Reason::new(
                "poll_failed",
                format!(
                    "{}: polling {} failed ({})",
                    ctx.step,
                    poll.name(),
                    failure.describe()
                ),
            )
            .with_hint("resolve with {\"retry\": true} to wait again"),
        )),
    }
}

/// The action of a wait step: its poll when one is due, else the wait for what it expects,
/// woken at the wait's own time or at the kind's `also_wake_at` if that is earlier (e.g. the
/// next overdue check of a loan).
pub(super) fn action<M: Machine>(state: &M, wait: &Waiting) -> Action {
    let step = state.phase().name();
    let poll = state.poll_request();
    if wait.polling
        && let Some(request) = poll.clone()
    {
        return Action::Call {
            step: step.to_owned(),
            purpose: CallPurpose::Poll,
            request,
            operation_key: None,
            attempt: wait.poll_failures + wait.poll_throttles + 1,
        };
    }
    let wake_at = state
        .also_wake_at()
        .map_or(wait.wake_at(), |at| wait.wake_at().min(at));
    Action::Wait {
        step: step.to_owned(),
        events: state.expected(),
        deadline: wait.deadline,
        wake_at,
        poll: poll.zip(wait.next_poll).map(|(request, next_at)| Poll {
            request,
            every: state.poll_every(),
            next_at,
        }),
    }
}

/// An event in a wait step (see the module docs).
pub(super) fn on_event<M: Machine>(state: &M, event: &Event, now: DateTime<Utc>) -> Transition<M> {
    let Some(wait) = state.phase().wait() else {
        return ignore(state, "not waiting");
    };
    match event {
        Event::Callback(callback) => state.callback_in_wait(callback, now),
        Event::Wake => state.woken_in_wait(wait, now),
        Event::PollNow { by } => match state.poll_request() {
            Some(_) if !wait.polling => {
                let mut next = wait.clone();
                next.next_poll = Some(now);
                next.polling = true;
                with_wait(
                    state,
                    next,
                    format!("{by}: Finfra's books show news, polling now"),
                )
            }
            Some(_) => ignore(state, "a poll is already under way"),
            None => ignore(state, "this wait has no poll"),
        },
        Event::CallSucceeded(response) if wait.polling => match state.poll_request() {
            Some(poll) if response.answers(&poll) => state.polled(wait, response, now),
            _ => ignore(
                state,
                format!("unexpected answer {} to a poll", response.name()),
            ),
        },
        Event::CallFailed(failure) if wait.polling => {
            let Some(poll) = state.poll_request() else {
                return ignore(state, "no poll in this state");
            };
            let policy = state.retry_policy();
            match poll_failed(wait, &poll, failure, ctx(state, &policy, now)) {
                Ok(wait) => with_wait(
                    state,
                    wait,
                    format!("poll failed ({}): polling again later", failure.describe()),
                ),
                Err(GiveUp::Attention(reason) | GiveUp::Fail(reason)) => {
                    attention(state.clone(), reason, now)
                }
            }
        }
        // A poll whose outcome was lost is a read: asked for again, as is the wait itself.
        Event::CallInterrupted | Event::Start => resume(state, "resuming the wait"),
        Event::CallSucceeded(_)
        | Event::CallFailed(_)
        | Event::Cancel { .. }
        | Event::Resolve { .. } => ignore(state, format!("{} ignored while waiting", event.name())),
    }
}

/// A callback during a wait: recorded, then the wait settled if it can be.
pub fn callback<M: Machine>(
    state: &M,
    callback: &CallbackEvent,
    now: DateTime<Utc>,
) -> Transition<M> {
    let mut next = state.clone();
    let recorded = next.record(callback, now);
    let from = state.phase().name();
    if next.settle(now) {
        let what = recorded.unwrap_or_else(|| "callback".to_owned());
        let to = next.phase().name();
        return advance(next, format!("{what}: {from} → {to}"));
    }
    match recorded {
        Some(what) => advance(next, format!("{what}; still in {from}")),
        None => ignore(state, "callback already known or not ours"),
    }
}

/// A wake-up during a wait: the poll when due, the kind's `timed_out` at the deadline.
pub fn woken<M: Machine>(state: &M, wait: &Waiting, now: DateTime<Utc>) -> Transition<M> {
    match wait_woken(wait, now) {
        WaitWake::TimedOut => state.timed_out(now),
        WaitWake::Poll(wait) => with_wait(state, wait, "callback late: polling"),
        WaitWake::NotDue => ignore(state, "woken before a poll or the deadline is due"),
    }
}

/// A callback reaching a wait stuck in `needs_attention`: when it settles the wait, the
/// workflow resumes by itself from there; when it is news that does not, it is recorded and
/// the workflow stays stuck; else nothing changes.
pub fn while_stuck<M: Machine>(
    state: &M,
    callback: &CallbackEvent,
    now: DateTime<Utc>,
) -> Transition<M> {
    let Some((stuck, reason)) = state.phase().stuck() else {
        return ignore(state, "not stuck");
    };
    let mut waiting = state.clone();
    *waiting.phase_mut() = stuck.clone();
    let heard = waiting.callback_in_wait(callback, now);
    if heard.handled != Handled::Advanced {
        return ignore(
            state,
            "callback already known or not ours; still needs attention",
        );
    }
    let mut next = heard.state;
    if let Some((again, why)) = next.phase().stuck() {
        // Facts that stop the wait for another reason (a refusal after a timeout) replace
        // the reason; the same stop again is nothing new.
        if again.name() == stuck.name() && why.code == reason.code {
            return ignore(state, "nothing new; still needs attention");
        }
        return advance(next, heard.note);
    }
    if next.phase().name() != stuck.name() {
        return advance(
            next,
            format!(
                "resumed by itself ({} had stopped it): {}",
                reason.code, heard.note
            ),
        );
    }
    // News that does not end the wait (a payment short of the total): recorded, still stuck.
    let recorded = std::mem::replace(next.phase_mut(), state.phase().clone());
    if let Some(slot) = next.phase_mut().stuck_mut() {
        *slot = recorded;
    }
    advance(next, format!("{}; still needs attention", heard.note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn waits_poll_then_time_out() {
        let wait = Waiting::new(
            now(),
            Duration::from_secs(100),
            Some(Duration::from_secs(30)),
        );
        assert_eq!(wait.wake_at(), now() + TimeDelta::seconds(30));
        assert_eq!(wait_woken(&wait, now()), WaitWake::NotDue);
        let WaitWake::Poll(polling) = wait_woken(&wait, now() + TimeDelta::seconds(30)) else {
            panic!("expected a poll");
        };
        let next = poll_answered(
            &polling,
            now() + TimeDelta::seconds(31),
            Duration::from_secs(30),
        );
        assert_eq!(next.next_poll, Some(now() + TimeDelta::seconds(61)));
        assert_eq!(
            wait_woken(&next, now() + TimeDelta::seconds(100)),
            WaitWake::TimedOut
        );
    }
}
