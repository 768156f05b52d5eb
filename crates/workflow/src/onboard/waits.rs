//! Events in the phases that wait for a callback: the callbacks themselves (recorded as
//! facts, whatever their order), the fallback polls, and the deadlines.
//!
//! Callbacks are at least once and unordered. Each one is recorded as a fact about the
//! borrower (its id, a status reached), once; then the current wait asks whether what it
//! waits for is known (`flow::settle`). So a duplicate changes nothing, a `user_verified`
//! that overtakes a lost `user_created` still gives the id, and a status learnt early skips
//! its wait later.

use chrono::{DateTime, Utc};

use finfra_api::callback::StatusCallback;
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::ekyc::KycSubmissionStatus;

use crate::action::Reason;
use crate::event::{CallbackEvent, Event};
use crate::ids::UserId;
use crate::machine::Transition;
use crate::response::FinfraResponse;
use crate::run::{self, GiveUp, StepCtx, WaitWake, Waiting};

use super::flow::{self, advance, attention, ignore, resume};
use super::state::{OnboardState, Phase, Source};

type T = Transition<OnboardState>;

/// Whether a status callback is about this workflow's borrower: once the id is known, by
/// the id; before, by the NIK or the KYC session.
fn is_ours(state: &OnboardState, callback: &StatusCallback) -> bool {
    match &state.borrower.user_id {
        Some(user_id) => callback.user_id.as_deref() == Some(user_id.as_str()),
        None => {
            callback.identity_number.as_deref() == Some(state.request.nik.as_str())
                || (callback.kyc_id.is_some()
                    && callback.kyc_id.as_deref()
                        == state.borrower.kyc_id.as_ref().map(|k| k.as_str()))
        }
    }
}

/// Records what a callback says about the borrower; a note when it is news.
pub(super) fn record(
    state: &mut OnboardState,
    callback: &CallbackEvent,
    now: DateTime<Utc>,
) -> Option<String> {
    let CallbackEvent::Status(callback) = callback else {
        return None;
    };
    let event = callback.callback_title.user_event()?;
    if !is_ours(state, callback) {
        return None;
    }
    let record = &mut state.borrower;
    let mut news = false;
    if let Some(user_id) = callback.user_id.clone().and_then(|id| UserId::new(id).ok()) {
        news |= record.learn_user_id(user_id);
    }
    // Every user event implies the borrower exists, i.e. reached PENDING at least.
    news |= record.reach(BorrowerStatus::Pending, now, Source::Callback);
    news |= record.reach(event.status(), now, Source::Callback);
    if event.status() == BorrowerStatus::Rejected && record.rejection_reason.is_none() {
        record.rejection_reason.clone_from(&callback.data.reason);
    }
    news.then(|| format!("recorded {}", callback.callback_title))
}

/// An event in a phase that waits.
pub(super) fn on_event(state: &OnboardState, event: &Event, now: DateTime<Utc>) -> T {
    let Some(wait) = state.phase.wait() else {
        return ignore(state, "not waiting");
    };
    match event {
        Event::Callback(callback) => {
            let mut next = state.clone();
            let recorded = record(&mut next, callback, now);
            let from = state.phase.name();
            if flow::settle(&mut next, now) {
                let what = recorded.unwrap_or_else(|| "callback".to_owned());
                let to = next.phase.name();
                advance(next, format!("{what}: {from} → {to}"))
            } else if let Some(what) = recorded {
                advance(next, format!("{what}; still in {from}"))
            } else {
                ignore(state, "callback already known or not ours")
            }
        }
        Event::Wake => match run::wait_woken(wait, now) {
            WaitWake::TimedOut => timed_out(state, now),
            WaitWake::Poll(wait) => with_wait(state, wait, "callback late: polling"),
            WaitWake::NotDue => ignore(state, "woken before a poll or the deadline is due"),
        },
        Event::CallSucceeded(response) if wait.polling => match flow::poll_request(state) {
            Some(poll) if response.answers(&poll) => polled(state, wait, response, now),
            _ => ignore(
                state,
                format!("unexpected answer {} to a poll", response.name()),
            ),
        },
        Event::CallFailed(failure) if wait.polling => {
            let Some(poll) = flow::poll_request(state) else {
                return ignore(state, "no poll in this state");
            };
            let policy = state.definition.retry.policy();
            let ctx = StepCtx {
                workflow: &state.workflow_id,
                step: state.phase.name(),
                policy: &policy,
                now,
            };
            match run::poll_failed(wait, &poll, failure, ctx) {
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
        // A poll whose outcome was lost is simply asked for again (it is a read), as is the
        // wait itself on a resume.
        Event::CallInterrupted | Event::Start => resume(state, "resuming the wait"),
        Event::CallSucceeded(_)
        | Event::CallFailed(_)
        | Event::Cancel { .. }
        | Event::Resolve { .. } => ignore(state, format!("{} ignored while waiting", event.name())),
    }
}

fn with_wait(state: &OnboardState, wait: Waiting, note: impl Into<String>) -> T {
    let mut next = state.clone();
    if let Some(slot) = next.phase.wait_mut() {
        *slot = wait;
    }
    advance(next, note)
}

/// A poll answered.
fn polled(
    state: &OnboardState,
    wait: &Waiting,
    response: &FinfraResponse,
    now: DateTime<Utc>,
) -> T {
    let mut next = state.clone();
    let mut news = false;
    match response {
        FinfraResponse::GetKycSubmission(submission) => {
            if let Some(user_id) = submission
                .user_id
                .clone()
                .and_then(|id| UserId::new(id).ok())
            {
                news |= next.borrower.learn_user_id(user_id);
                news |= next
                    .borrower
                    .reach(BorrowerStatus::Pending, now, Source::Poll);
            }
            if submission.status == KycSubmissionStatus::Rejected {
                if next.borrower.rejection_reason.is_none() && !submission.reasons.is_empty() {
                    next.borrower.rejection_reason = Some(submission.reasons.join("; "));
                }
                next.borrower
                    .reach(BorrowerStatus::Rejected, now, Source::Poll);
                // Rejected before an id was known: nothing to wait for any more.
                if next.borrower.user_id.is_none() {
                    flow::settle_dead_end(&mut next);
                    return advance(next, "the KYC submission was rejected");
                }
                news = true;
            }
        }
        FinfraResponse::GetBorrower(borrower) => {
            news |= next
                .borrower
                .reach(borrower.status.clone(), now, Source::Poll);
        }
        _ => {}
    }
    let from = state.phase.name();
    if flow::settle(&mut next, now) {
        let to = next.phase.name();
        return advance(next, format!("poll: {from} → {to}"));
    }
    let every = state.definition.onboarding.poll_interval;
    let note = if news {
        "poll recorded news; still waiting"
    } else {
        "poll: not yet"
    };
    let wait = run::poll_answered(wait, now, every);
    with_wait(&next, wait, note)
}

/// The deadline passed with nothing: a person must look (the hint says what `resolve`
/// accepts).
fn timed_out(state: &OnboardState, now: DateTime<Utc>) -> T {
    let since = state.phase.wait().map_or(now, |w| w.since);
    let nik = &state.request.nik;
    let reason = match &state.phase {
        Phase::AwaitUserCreated { poll: Some(_), .. } => Reason::new(
            "user_created_timeout",
            format!(
                "no borrower id for NIK {nik} since {since}: no user_created callback and the KYC submission shows none"
            ),
        ),
        Phase::AwaitUserCreated { poll: None, .. } => Reason::new(
            "user_created_timeout",
            format!(
                "no user_created callback for NIK {nik} since {since}; the create request was accepted"
            ),
        ),
        Phase::AwaitUserVerified { user_id, .. } => Reason::new(
            "user_verified_timeout",
            format!("borrower {user_id} not verified or rejected since {since}"),
        ),
        Phase::AwaitUserApproved { user_id, .. } => Reason::new(
            "user_approved_timeout",
            format!("borrower {user_id} not APPROVED since {since}"),
        ),
        _ => return ignore(state, "not waiting"),
    };
    let hint = match &state.phase {
        Phase::AwaitUserCreated { .. } => {
            "find the borrower at Finfra and resolve with {\"user_id\": \"<24 hex>\"}, or resolve with {\"retry\": true} to wait again"
        }
        _ => "resolve with {\"retry\": true} to wait again",
    };
    attention(state.clone(), reason.with_hint(hint), now)
}
