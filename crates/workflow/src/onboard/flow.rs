//! The onboarding's route: which phase follows which, what each phase asks Finfra, and
//! the action derived from the state alone.
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

use finfra_api::callback::CallbackTitle;
use finfra_api::model::borrower::{BlockBorrower, BorrowerStatus, CreateBorrower, NpwpDocument};
use finfra_api::model::credit::ScoreReportRequest;
use finfra_api::model::document::{CreateDocument, DocumentType};
use finfra_api::model::ekyc::{BiometricRequest, OcrRequest};

use crate::action::{Action, CorrelationKey, Expected, Outcome, Reason};
use crate::ids::{KycId, OperationKey, UserId};
use crate::machine::{Handled, Transition};
use crate::request::FinfraRequest;
use crate::run::{Run, Waiting};

use super::policy;
use super::state::{BorrowerRecord, OnboardState, Phase, PolicyDecision, Step};

/// A transition to `state`, which moved on.
pub(super) fn advance(state: OnboardState, note: impl Into<String>) -> Transition<OnboardState> {
    Transition {
        action: action(&state),
        state,
        note: note.into(),
        handled: Handled::Advanced,
    }
}

/// A transition that changes nothing.
pub(super) fn ignore(state: &OnboardState, note: impl Into<String>) -> Transition<OnboardState> {
    Transition {
        state: state.clone(),
        action: action(state),
        note: note.into(),
        handled: Handled::Ignored,
    }
}

/// A transition that changes nothing but asks the executor to act on the current action
/// (the answer to `Start` and `CallInterrupted`).
pub(super) fn resume(state: &OnboardState, note: impl Into<String>) -> Transition<OnboardState> {
    Transition {
        state: state.clone(),
        action: action(state),
        note: note.into(),
        handled: Handled::Resumed,
    }
}

/// Fails the workflow at its current step.
pub(super) fn fail(mut state: OnboardState, reason: Reason) -> Transition<OnboardState> {
    let note = format!("failed at {}: {reason}", state.phase.name());
    state.phase = Phase::Failed {
        step: state.phase.name().to_owned(),
        reason,
    };
    advance(state, note)
}

/// Stops the workflow where it is, for a person.
pub(super) fn attention(
    mut state: OnboardState,
    reason: Reason,
    now: DateTime<Utc>,
) -> Transition<OnboardState> {
    let note = format!("needs attention at {}: {reason}", state.phase.name());
    let stuck = std::mem::replace(
        &mut state.phase,
        Phase::Failed {
            step: String::new(),
            reason: reason.clone(),
        },
    );
    state.phase = Phase::NeedsAttention {
        stuck: Box::new(stuck),
        reason,
        since: now,
    };
    advance(state, note)
}

/// The key of the operation of `step` (`occurrence` tells repeated ones apart).
pub(super) fn op_key(state: &OnboardState, step: Step, occurrence: usize) -> Option<OperationKey> {
    let occurrence = u32::try_from(occurrence).unwrap_or(u32::MAX);
    Some(OperationKey::derive(
        &state.workflow_id,
        step.as_str(),
        occurrence,
    ))
}

fn run(state: &OnboardState, step: Step, occurrence: usize) -> Run {
    Run::new(op_key(state, step, occurrence))
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
    let dead_end = dead_end(record);
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
fn dead_end(record: &BorrowerRecord) -> Option<Reason> {
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

/// The create body: the submitted one, with uploaded documents' ids as their `file`.
pub(super) fn create_body(state: &OnboardState) -> CreateBorrower {
    let mut body = state.request.body.clone();
    let docs = &mut body.authorised_signatory.documents;
    for uploaded in &state.borrower.documents {
        let id = uploaded.id.clone();
        match &uploaded.r#type {
            DocumentType::Ktp => docs.ktp.file = id,
            DocumentType::Selfie => docs.selfie.file = id,
            DocumentType::Npwp => match &mut docs.npwp {
                Some(npwp) => npwp.file = id,
                // Validation put the upload's number in the body; keep a consistent body
                // even if it did not.
                None => {
                    docs.npwp = Some(NpwpDocument {
                        number: String::new(),
                        file: id,
                    });
                }
            },
            DocumentType::SelfieWithKtp => set_file(&mut docs.selfie_with_ktp, id),
            DocumentType::StockImages => set_file(&mut docs.stock_images, id),
            DocumentType::FinanceReport => set_file(&mut docs.finance_report, id),
            DocumentType::Unknown(_) => {}
        }
    }
    body
}

fn set_file(slot: &mut Option<finfra_api::model::borrower::FileDocument>, id: String) {
    *slot = Some(finfra_api::model::borrower::FileDocument::new(id));
}

/// The current phase's own request.
pub(super) fn main_request(state: &OnboardState) -> Option<FinfraRequest> {
    let policy = &state.definition;
    Some(match &state.phase {
        Phase::EkycOcr { .. } => FinfraRequest::Ocr {
            body: OcrRequest {
                document_type: DocumentType::Ktp,
                file: state.request.ekyc.as_ref()?.ktp_image.clone(),
            },
            data_source: policy.onboarding.ekyc.data_source.clone(),
            kyc_id: None,
        },
        Phase::EkycBiometric { kyc_id, .. } => FinfraRequest::BiometricKyc {
            body: BiometricRequest {
                selfie: state.request.ekyc.as_ref()?.selfie.clone(),
            },
            kyc_id: kyc_id.clone(),
        },
        Phase::CreateDocument { index, .. } => {
            let doc = state.request.documents.get(*index)?;
            FinfraRequest::CreateDocument {
                body: CreateDocument {
                    r#type: doc.r#type.clone(),
                    description: doc.description.clone(),
                },
            }
        }
        Phase::UploadDocument {
            index, document, ..
        } => {
            let doc = state.request.documents.get(*index)?;
            FinfraRequest::UploadDocument {
                document_type: doc.r#type.clone(),
                presigned_url: document.presigned_url.clone(),
                source: doc.source.clone(),
                filename: doc.filename.clone(),
                content_type: doc.content_type.clone(),
            }
        }
        Phase::CreateBorrower {
            kyc_id: Some(kyc_id),
            ..
        } => FinfraRequest::CreateBorrowerForKyc {
            kyc_id: kyc_id.clone(),
            body: create_body(state),
        },
        Phase::CreateBorrower { kyc_id: None, .. } => FinfraRequest::CreateBorrower {
            body: create_body(state),
            kyc_id: None,
        },
        Phase::SubmitKyc { kyc_id, .. } => FinfraRequest::SubmitKyc {
            kyc_id: kyc_id.clone(),
        },
        Phase::HubCheck { user_id, index, .. } => FinfraRequest::HubStatus {
            user_id: user_id.clone(),
            provider: policy.onboarding.hub_checks.get(*index)?.clone(),
        },
        Phase::RdfBiometric { user_id, .. } => FinfraRequest::VerifyBiometricRdf {
            user_id: user_id.clone(),
        },
        Phase::CreditScore { user_id, .. } => FinfraRequest::ScoreReport {
            body: ScoreReportRequest {
                user_id: user_id.as_str().to_owned(),
            },
            sources: policy.credit.sources.clone(),
        },
        Phase::CreditHistory { .. } => FinfraRequest::CreditHistory {
            identity_number: state.request.nik.clone(),
        },
        Phase::ApproveBorrower { user_id, .. } => FinfraRequest::ApproveBorrower {
            user_id: user_id.clone(),
        },
        Phase::BlockBorrower { user_id, .. } => FinfraRequest::BlockBorrower {
            user_id: user_id.clone(),
            body: BlockBorrower {
                reason: Some(format!(
                    "declined by credit policy {}: {}",
                    policy.name,
                    state
                        .borrower
                        .decision
                        .as_ref()
                        .map(|d| d.reasons.join("; "))
                        .unwrap_or_default()
                )),
            },
        },
        Phase::AwaitUserCreated { .. }
        | Phase::AwaitUserVerified { .. }
        | Phase::AwaitUserApproved { .. }
        | Phase::NeedsAttention { .. }
        | Phase::Approved { .. }
        | Phase::Declined { .. }
        | Phase::Failed { .. }
        | Phase::Cancelled { .. } => return None,
    })
}

/// The read that tells whether the current phase's lost request was applied. For a plain
/// create, no read can (there is no search by NIK): the request itself is sent again,
/// which Finfra deduplicates on the NIK (`409` = it was applied).
pub(super) fn reconcile_request(state: &OnboardState) -> Option<FinfraRequest> {
    match &state.phase {
        Phase::CreateBorrower {
            kyc_id: Some(kyc_id),
            ..
        }
        | Phase::SubmitKyc { kyc_id, .. } => Some(FinfraRequest::GetKycSubmission {
            kyc_id: kyc_id.clone(),
        }),
        Phase::CreateBorrower { kyc_id: None, .. } => main_request(state),
        Phase::ApproveBorrower { user_id, .. } | Phase::BlockBorrower { user_id, .. } => {
            Some(FinfraRequest::GetBorrower {
                user_id: user_id.clone(),
            })
        }
        _ => None,
    }
}

/// The current wait's fallback poll.
pub(super) fn poll_request(state: &OnboardState) -> Option<FinfraRequest> {
    match &state.phase {
        Phase::AwaitUserCreated { poll, .. } => {
            poll.as_ref().map(|kyc_id| FinfraRequest::GetKycSubmission {
                kyc_id: kyc_id.clone(),
            })
        }
        Phase::AwaitUserVerified { user_id, .. } | Phase::AwaitUserApproved { user_id, .. } => {
            Some(FinfraRequest::GetBorrower {
                user_id: user_id.clone(),
            })
        }
        _ => None,
    }
}

/// The callbacks that end the current wait. Every user callback carries the NIK
/// (`identity_number`); once the id is known it is the key.
pub(super) fn expected(state: &OnboardState) -> Vec<Expected> {
    let by_nik = |title| {
        Expected::new(
            title,
            CorrelationKey::IdentityNumber,
            state.request.nik.as_str(),
        )
    };
    let by_id =
        |title, user_id: &UserId| Expected::new(title, CorrelationKey::UserId, user_id.as_str());
    match &state.phase {
        // `user_verified` or `user_rejected` may overtake a lost `user_created`.
        Phase::AwaitUserCreated { .. } => vec![
            by_nik(CallbackTitle::UserCreated),
            by_nik(CallbackTitle::UserVerified),
            by_nik(CallbackTitle::UserRejected),
        ],
        Phase::AwaitUserVerified { user_id, .. } => vec![
            by_id(CallbackTitle::UserVerified, user_id),
            by_id(CallbackTitle::UserRejected, user_id),
            by_id(CallbackTitle::UserBlocked, user_id),
            by_id(CallbackTitle::UserApproved, user_id),
        ],
        Phase::AwaitUserApproved { user_id, .. } => vec![
            by_id(CallbackTitle::UserApproved, user_id),
            by_id(CallbackTitle::UserRejected, user_id),
            by_id(CallbackTitle::UserBlocked, user_id),
        ],
        _ => Vec::new(),
    }
}

/// The action of a state: a function of the state alone.
pub(super) fn action(state: &OnboardState) -> Action {
    let phase = &state.phase;
    match phase {
        Phase::NeedsAttention { stuck, reason, .. } => Action::NeedsAttention {
            step: stuck.name().to_owned(),
            reason: reason.clone(),
        },
        Phase::Approved { user_id } => Action::Complete {
            outcome: Outcome::BorrowerApproved {
                user_id: user_id.clone(),
            },
        },
        Phase::Declined { user_id, reasons } => Action::Complete {
            outcome: Outcome::BorrowerDeclined {
                user_id: user_id.clone(),
                reasons: reasons.clone(),
            },
        },
        Phase::Failed { reason, .. } => Action::Fail {
            reason: reason.clone(),
        },
        Phase::Cancelled { by, reason, .. } => Action::Cancelled {
            by: by.clone(),
            reason: reason.clone(),
        },
        _ => match (phase.run(), phase.wait()) {
            (Some(run), _) => crate::run::call_action(
                phase.name(),
                run,
                || main_request(state),
                || reconcile_request(state),
                || inconsistent(state),
            ),
            (None, Some(wait)) => crate::run::wait_action(
                phase.name(),
                wait,
                || expected(state),
                poll_request(state),
                state.definition.onboarding.poll_interval,
                None,
            ),
            (None, None) => inconsistent(state),
        },
    }
}

/// A state our transitions never build (an index past the end of a list): stop for a
/// person rather than guess.
fn inconsistent(state: &OnboardState) -> Action {
    Action::NeedsAttention {
        step: state.phase.name().to_owned(),
        reason: Reason::new(
            "inconsistent_state",
            "the stored state does not name a request it can make (was it edited by hand?)",
        )
        .with_hint("cancel the workflow and submit it again"),
    }
}
