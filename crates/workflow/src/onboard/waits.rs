//! The onboarding's wait steps: what a callback or a poll says about the borrower, and
//! what a deadline that passed means.
//!
//! Callbacks are at least once and unordered. Each one is recorded as a fact about the
//! borrower (its id, a status reached), once; then the current wait asks whether what it
//! waits for is known (`route::settle`). So a duplicate changes nothing, a `user_verified`
//! that overtakes a lost `user_created` still gives the id, and a status learnt early skips
//! its wait later.

use chrono::{DateTime, Utc};

use finfra_api::callback::StatusCallback;
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::ekyc::KycSubmissionStatus;

use crate::action::Reason;
use crate::event::CallbackEvent;
use crate::ids::UserId;
use crate::kit::wait::poll_answered;
use crate::kit::{Phase as _, Waiting, advance, attention, ignore, with_wait};
use crate::machine::Transition;
use crate::response::FinfraResponse;

use super::route;
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
    if event.status() == BorrowerStatus::Rejected
        && record.rejection_reason.is_none()
        && callback.data.reason.is_some()
    {
        record.rejection_reason.clone_from(&callback.data.reason);
        news = true;
    }
    news.then(|| format!("recorded {}", callback.callback_title))
}

/// A poll answered.
pub(super) fn polled(
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
                    route::settle_dead_end(&mut next);
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
    if route::settle(&mut next, now) {
        let to = next.phase.name();
        return advance(next, format!("poll: {from} → {to}"));
    }
    let every = state.definition.onboarding.poll_interval;
    let mut wait = poll_answered(wait, now, every);
    if let Some(due) = next.borrower.rejection_reason_due() {
        // Only the KYC submission (e-KYC) or the `user_rejected` callback gives the reason:
        // read the submission at the next poll if there is one, else wait for the callback.
        let submission_read = matches!(response, FinfraResponse::GetKycSubmission(_));
        if submission_read || next.borrower.kyc_id.is_none() {
            wait.next_poll = Some(due);
        }
        return with_wait(
            &next,
            wait,
            "poll: the borrower is REJECTED; waiting for the user_rejected callback and its reason",
        );
    }
    let note = if news {
        "poll recorded news; still waiting"
    } else {
        "poll: not yet"
    };
    with_wait(&next, wait, note)
}

/// The deadline passed with nothing: a person must look (the hint says what `resolve`
/// accepts).
pub(super) fn timed_out(state: &OnboardState, now: DateTime<Utc>) -> T {
    if route::dead_end(&state.borrower).is_some() {
        let mut next = state.clone();
        route::settle_dead_end(&mut next);
        return advance(
            next,
            "the deadline passed without Finfra's reason for the rejection",
        );
    }
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
