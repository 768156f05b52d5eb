//! The onboarding's route: which phase follows which.
//!
//! ```text
//! [ekyc_ocr → ekyc_biometric] → [create_document → upload_document]* → create_borrower
//!   → [submit_kyc] → await_user_created → [hub_check]* → [rdf_biometric]
//!   → await_user_verified → credit_score → [credit_history] → policy
//!   → approve_borrower → await_user_approved → approved
//!   | block_borrower → declined
//! ```
//! Bracketed steps run when the definition (or the input's documents) asks for them; a
//! wait whose condition is already known from earlier callbacks is skipped.

use chrono::{DateTime, Utc};

use finfra_api::model::borrower::BorrowerStatus;

use crate::action::Reason;
use crate::definition::ReturningBorrowers;
use crate::ids::{KycId, UserId};
use crate::kit::{Machine, Phase as _, Run, Waiting};

use super::policy;
use super::state::{BorrowerRecord, OnboardState, Phase, PolicyDecision, Step};

fn run(state: &OnboardState, step: Step, occurrence: usize) -> Run {
    Run::new(Some(state.op_key(step.as_str(), occurrence)))
}

/// The first phase of a new onboarding.
pub(super) fn begin(state: &mut OnboardState) {
    if state.definition.onboarding.ekyc.enabled {
        state.phase = Phase::EkycOcr {
            run: run(state, Step::EkycOcr, 0),
        };
    } else {
        after_ekyc(state);
    }
}

/// A returning borrower: its id is known, and the borrower is read before anything else.
pub(super) fn adopt(state: &mut OnboardState, user_id: UserId) {
    state.borrower.learn_user_id(user_id.clone());
    state.borrower.create_accepted = true;
    state.phase = Phase::CheckReturningBorrower {
        user_id,
        run: Run::new(None),
    };
}

/// What the read of a returning borrower means: carry on from its status (an `APPROVED`
/// borrower is approved again, or its credit checked again when the definition asks), or
/// stop where Finfra rejected or blocked it.
pub(super) fn returning(
    state: &mut OnboardState,
    user_id: UserId,
    status: &BorrowerStatus,
    now: DateTime<Utc>,
) {
    match status {
        BorrowerStatus::Approved => match state.definition.onboarding.returning_borrowers {
            ReturningBorrowers::Adopt => state.phase = Phase::Approved { user_id },
            ReturningBorrowers::RecheckCredit => credit_score(state, user_id),
        },
        BorrowerStatus::ApprovedByPartner => after_approve(state, user_id, now),
        BorrowerStatus::Verified => credit_score(state, user_id),
        BorrowerStatus::Pending | BorrowerStatus::Unknown(_) => await_verified(state, user_id, now),
        BorrowerStatus::Rejected | BorrowerStatus::Blocked => settle_dead_end(state),
    }
}

/// After e-KYC (or without it): the documents, then the create call.
pub(super) fn after_ekyc(state: &mut OnboardState) {
    next_document(state, 0);
}

/// Document `index`, or the create call when all are uploaded.
pub(super) fn next_document(state: &mut OnboardState, index: usize) {
    if index < state.request.documents.len() {
        state.phase = Phase::CreateDocument {
            index,
            run: run(state, Step::CreateDocument, index),
        };
    } else {
        create_borrower(state);
    }
}

/// The create call, on the KYC session when there is one.
pub(super) fn create_borrower(state: &mut OnboardState) {
    state.phase = Phase::CreateBorrower {
        kyc_id: state.borrower.kyc_id.clone(),
        run: run(state, Step::CreateBorrower, 0),
    };
}

/// The create call was accepted (or found applied).
pub(super) fn after_create(state: &mut OnboardState, now: DateTime<Utc>) {
    state.borrower.create_accepted = true;
    match state.borrower.kyc_id.clone() {
        Some(kyc_id) if !state.borrower.kyc_submitted => {
            state.phase = Phase::SubmitKyc {
                kyc_id,
                run: run(state, Step::SubmitKyc, 0),
            };
        }
        Some(kyc_id) => await_user_created(state, Some(kyc_id), now),
        None => await_user_created(state, None, now),
    }
}

/// Waits for the borrower's id; `poll` names the KYC session to poll when there is one.
pub(super) fn await_user_created(
    state: &mut OnboardState,
    poll: Option<KycId>,
    now: DateTime<Utc>,
) {
    let wait = fresh_wait(state, Step::AwaitUserCreated, poll.is_some(), now);
    state.phase = Phase::AwaitUserCreated { poll, wait };
    settle(state, now);
}

/// A new wait for `step`, with its deadline and poll from the definition.
pub(super) fn fresh_wait(
    state: &OnboardState,
    step: Step,
    polls: bool,
    now: DateTime<Utc>,
) -> Waiting {
    let policy = &state.definition.onboarding;
    let t = &policy.timeouts;
    let every = Some(policy.poll_interval);
    match step {
        Step::AwaitUserCreated if polls => Waiting::new(now, t.kyc_submission, every),
        Step::AwaitUserCreated => Waiting::new(now, t.user_created, None),
        Step::AwaitUserVerified => Waiting::new(now, t.user_verified, every),
        _ => Waiting::new(now, t.user_approved, every),
    }
}

/// If what the current wait waits for is already known (callbacks arrive early and out of
/// order), moves on at once. Whether it moved.
pub(super) fn settle(state: &mut OnboardState, now: DateTime<Utc>) -> bool {
    enum Next {
        Stay,
        Fail(Reason),
        Checks(UserId),
        Credit(UserId),
        Approved(UserId),
    }
    let record = &state.borrower;
    // A rejection seen by a poll waits (a while) for the callback that gives the reason.
    let dead_end =
        dead_end(record).filter(|_| record.rejection_reason_due().is_none_or(|due| now >= due));
    let next = match (&state.phase, dead_end) {
        (Phase::AwaitUserCreated { .. }, dead_end) => match (&record.user_id, dead_end) {
            (Some(_), Some(reason)) => Next::Fail(reason),
            (Some(user_id), None) => Next::Checks(user_id.clone()),
            (None, _) => Next::Stay,
        },
        (Phase::AwaitUserVerified { .. } | Phase::AwaitUserApproved { .. }, Some(reason)) => {
            Next::Fail(reason)
        }
        (Phase::AwaitUserVerified { user_id, .. }, None) if record.is_verified() => {
            Next::Credit(user_id.clone())
        }
        (Phase::AwaitUserApproved { user_id, .. }, None)
            if record.has_reached(&BorrowerStatus::Approved) =>
        {
            Next::Approved(user_id.clone())
        }
        _ => Next::Stay,
    };
    match next {
        Next::Stay => return false,
        Next::Fail(reason) => {
            let step = state.phase.name().to_owned();
            state.phase = Phase::Failed { step, reason };
        }
        Next::Checks(user_id) => next_check(state, user_id, 0, now),
        Next::Credit(user_id) => credit_score(state, user_id),
        Next::Approved(user_id) => state.phase = Phase::Approved { user_id },
    }
    true
}

/// Why a borrower cannot be onboarded any more, if Finfra rejected or blocked them.
pub(super) fn dead_end(record: &BorrowerRecord) -> Option<Reason> {
    if record.has_reached(&BorrowerStatus::Rejected) {
        let reason = record
            .rejection_reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_owned());
        Some(Reason::new(
            "kyc_rejected",
            format!("Finfra rejected the borrower's KYC: {reason}"),
        ))
    } else if record.has_reached(&BorrowerStatus::Blocked) {
        Some(Reason::new(
            "borrower_blocked",
            "the borrower was blocked at Finfra",
        ))
    } else {
        None
    }
}

/// Fails the workflow if Finfra rejected or blocked the borrower.
pub(super) fn settle_dead_end(state: &mut OnboardState) {
    if let Some(reason) = dead_end(&state.borrower) {
        let step = state.phase.name().to_owned();
        state.phase = Phase::Failed { step, reason };
    }
}

/// Hub check `index`, then RDF, then the KYC review.
pub(super) fn next_check(
    state: &mut OnboardState,
    user_id: UserId,
    index: usize,
    now: DateTime<Utc>,
) {
    let policy = &state.definition.onboarding;
    if index < policy.hub_checks.len() {
        state.phase = Phase::HubCheck {
            user_id,
            index,
            pending_since: None,
            run: Run::new(None),
        };
    } else if policy.rdf_biometric {
        state.phase = Phase::RdfBiometric {
            user_id,
            pending_since: None,
            run: run(state, Step::RdfBiometric, 0),
        };
    } else {
        await_verified(state, user_id, now);
    }
}

/// Waits for `user_verified`, unless it is already known.
pub(super) fn await_verified(state: &mut OnboardState, user_id: UserId, now: DateTime<Utc>) {
    let wait = fresh_wait(state, Step::AwaitUserVerified, true, now);
    state.phase = Phase::AwaitUserVerified { user_id, wait };
    settle(state, now);
}

/// The score report.
pub(super) fn credit_score(state: &mut OnboardState, user_id: UserId) {
    state.phase = Phase::CreditScore {
        user_id,
        run: run(state, Step::CreditScore, 0),
    };
}

/// After the score (and the history, when read): the policy decides approve or block.
pub(super) fn decide_policy(state: &mut OnboardState, user_id: UserId, now: DateTime<Utc>) {
    let reasons = state.borrower.credit.as_ref().map_or_else(
        || vec!["no credit facts".to_owned()],
        |facts| policy::decline_reasons(&state.definition.credit, facts),
    );
    let approved = reasons.is_empty();
    state.borrower.decision = Some(PolicyDecision {
        approved,
        reasons,
        at: now,
    });
    state.phase = if approved {
        Phase::ApproveBorrower {
            user_id,
            run: run(state, Step::ApproveBorrower, 0),
        }
    } else {
        Phase::BlockBorrower {
            user_id,
            run: run(state, Step::BlockBorrower, 0),
        }
    };
}

/// Approved by the partner: waits for Finfra's final `APPROVED`, unless already known.
pub(super) fn after_approve(state: &mut OnboardState, user_id: UserId, now: DateTime<Utc>) {
    let wait = fresh_wait(state, Step::AwaitUserApproved, true, now);
    state.phase = Phase::AwaitUserApproved { user_id, wait };
    settle(state, now);
}

/// Blocked: declined.
pub(super) fn declined(state: &mut OnboardState, user_id: UserId) {
    let reasons = state
        .borrower
        .decision
        .as_ref()
        .map(|d| d.reasons.clone())
        .unwrap_or_default();
    state.phase = Phase::Declined { user_id, reasons };
}
