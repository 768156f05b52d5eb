//! The onboarding's call steps: what each answer means, what a reconcile read says about
//! a lost request, and the statuses some steps give a meaning of their own. What is common
//! to all steps (retries, backoff, ambiguity, interruptions) is the kit's.

use chrono::{DateTime, Utc};

use finfra_api::model::borrower::{Borrower, BorrowerStatus};
use finfra_api::model::ekyc::{HubCheckStatus, KycSubmissionStatus, Liveness, RdfBiometricStatus};

use crate::action::Reason;
use crate::failure::CallFailure;
use crate::ids::{KycId, UserId};
use crate::kit::call::resend;
use crate::kit::{self, Machine, Phase as _, Run, Stage, advance, attention, fail, unexpected};
use crate::machine::Transition;
use crate::request::FinfraRequest;
use crate::response::FinfraResponse;

use super::policy;
use super::route;
use super::state::{EkycFacts, HubFact, OnboardState, Phase, Source, Step, UploadedDocument};

type T = Transition<OnboardState>;

/// The statuses of the step's request that mean something of their own here, before the
/// kit's rules (which read Finfra's state after a `409`).
pub(super) fn own_failure(
    state: &OnboardState,
    run: &Run,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> Option<T> {
    let status = failure.status;
    let mut next = state.clone();
    match &state.phase {
        // Finfra deduplicates creates on the NIK: after an unknown outcome of our own
        // create, 409 means it was applied.
        Phase::CreateBorrower { .. } if failure.conflict && run.uncertain => {
            route::after_create(&mut next, now);
            Some(advance(
                next,
                "409 after an unknown outcome of our own create: it was applied",
            ))
        }
        // On a first send it means someone else registered this NIK: never carry on with a
        // borrower this workflow did not create.
        Phase::CreateBorrower { .. } if failure.conflict => Some(attention(
            next,
            Reason::new(
                "borrower_exists_at_finfra",
                format!(
                    "Finfra already has a borrower with NIK {} that this workflow did not create ({})",
                    state.request.nik,
                    failure.describe()
                ),
            )
            .with_hint(
                "find the borrower at Finfra and resolve with {\"user_id\": \"<24 hex>\"} to onboard it, or cancel",
            ),
            now,
        )),
        Phase::CheckReturningBorrower { user_id, .. } if status == Some(404) => Some(attention(
            next,
            Reason::new(
                "returning_borrower_not_found",
                format!(
                    "Finfra has no borrower {user_id}, which an earlier onboarding of this NIK approved"
                ),
            )
            .with_hint("check the earlier onboarding's record at Finfra; cancel this workflow"),
            now,
        )),
        Phase::UploadDocument { index, .. } if status == Some(403) => {
            let index = *index;
            next.phase = Phase::CreateDocument {
                index,
                run: Run::new(Some(state.op_key(Step::CreateDocument.as_str(), index))),
            };
            Some(advance(
                next,
                "403: the presigned upload URL expired; creating the document again",
            ))
        }
        // No borrower on the session although our create was accepted: Finfra contradicts
        // itself. Waiting for a user_created by NIK could adopt someone else's borrower.
        Phase::SubmitKyc { .. } if status == Some(400) && !run.uncertain => Some(attention(
            next,
            Reason::new(
                "kyc_session_without_borrower",
                format!(
                    "Finfra has no borrower on this KYC session although the create was accepted ({})",
                    failure.describe()
                ),
            )
            .with_hint(
                "find the borrower at Finfra and resolve with {\"user_id\": \"<24 hex>\"}, or cancel",
            ),
            now,
        )),
        _ => None,
    }
}

/// The reconcile read failed. For a plain create, the "read" is the create sent again:
/// `409` then means the first one was applied.
pub(super) fn own_read_failure(
    state: &OnboardState,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> Option<T> {
    if let Phase::CreateBorrower { kyc_id: None, .. } = state.phase
        && failure.conflict
    {
        let mut next = state.clone();
        route::after_create(&mut next, now);
        return Some(advance(
            next,
            "409 on the resent create: the first one was applied",
        ));
    }
    None
}

/// What a reconcile read says about the lost request.
pub(super) fn reconciled(
    state: &OnboardState,
    run: &Run,
    request: &FinfraRequest,
    response: &FinfraResponse,
    now: DateTime<Utc>,
) -> T {
    let mut next = state.clone();
    match (&state.phase, response) {
        (Phase::CreateBorrower { .. }, FinfraResponse::CreateBorrower(_)) => {
            route::after_create(&mut next, now);
            advance(next, "the resent create was accepted")
        }
        (
            Phase::CreateBorrower { .. } | Phase::SubmitKyc { .. },
            FinfraResponse::GetKycSubmission(submission),
        ) => {
            // Learnt first: a rejected borrower exists at Finfra too, and SQL must say which.
            if let Some(user_id) = submission
                .user_id
                .clone()
                .and_then(|id| UserId::new(id).ok())
            {
                next.borrower.learn_user_id(user_id);
                next.borrower
                    .reach(BorrowerStatus::Pending, now, Source::Poll);
            }
            if submission.status == KycSubmissionStatus::Rejected {
                return kyc_rejected(next, &submission.reasons, now);
            }
            let applied = match &state.phase {
                Phase::SubmitKyc { .. } => submission.status != KycSubmissionStatus::Draft,
                _ => submission.user_id.is_some(),
            };
            if submission.status != KycSubmissionStatus::Draft {
                next.borrower.kyc_submitted = true;
            }
            if !applied {
                return resend(
                    state,
                    run,
                    request,
                    now,
                    "the KYC submission shows it was not applied",
                );
            }
            if let Phase::SubmitKyc { kyc_id, .. } = &state.phase {
                next.borrower.kyc_submitted = true;
                let kyc_id = kyc_id.clone();
                route::await_user_created(&mut next, Some(kyc_id), now);
                return advance(next, "the KYC submission shows it was submitted");
            }
            route::after_create(&mut next, now);
            advance(next, "the KYC submission shows the borrower was created")
        }
        (Phase::ApproveBorrower { user_id, .. }, FinfraResponse::GetBorrower(borrower)) => {
            let user_id = user_id.clone();
            next.borrower
                .reach(borrower.status.clone(), now, Source::Poll);
            match &borrower.status {
                BorrowerStatus::ApprovedByPartner | BorrowerStatus::Approved => {
                    route::after_approve(&mut next, user_id, now);
                    advance(next, format!("the borrower is {}: the approval was applied", borrower.status))
                }
                BorrowerStatus::Verified => resend(state, run, request, now, "the borrower is still VERIFIED"),
                // We only approve after VERIFIED was seen: Finfra contradicts itself, and
                // going back to wait could loop (the wait would settle on the old fact).
                BorrowerStatus::Pending => attention(
                    next,
                    Reason::new(
                        "unexpected_status",
                        "Finfra reports the borrower PENDING although VERIFIED was seen; approve refused",
                    )
                    .with_hint(kit::RETRY_HINT),
                    now,
                ),
                BorrowerStatus::Rejected | BorrowerStatus::Blocked => {
                    route::settle_dead_end(&mut next);
                    advance(next, format!("the borrower is {}", borrower.status))
                }
                BorrowerStatus::Unknown(other) => unknown_status(next, other, now),
            }
        }
        (Phase::BlockBorrower { user_id, .. }, FinfraResponse::GetBorrower(borrower)) => {
            let user_id = user_id.clone();
            next.borrower
                .reach(borrower.status.clone(), now, Source::Poll);
            match &borrower.status {
                // A rejected borrower cannot be blocked, and cannot borrow either.
                BorrowerStatus::Blocked | BorrowerStatus::Rejected => {
                    route::declined(&mut next, user_id);
                    advance(
                        next,
                        format!("the borrower is {}: declined", borrower.status),
                    )
                }
                _ => resend(state, run, request, now, "the borrower is not blocked"),
            }
        }
        _ => unexpected(state, response, now),
    }
}

fn kyc_rejected(mut state: OnboardState, reasons: &[String], now: DateTime<Utc>) -> T {
    if state.borrower.rejection_reason.is_none() && !reasons.is_empty() {
        state.borrower.rejection_reason = Some(reasons.join("; "));
    }
    state
        .borrower
        .reach(BorrowerStatus::Rejected, now, Source::Poll);
    route::settle_dead_end(&mut state);
    advance(state, "the KYC submission was rejected")
}

fn unknown_status(state: OnboardState, status: &str, now: DateTime<Utc>) -> T {
    attention(
        state,
        Reason::new(
            "unexpected_status",
            format!("Finfra answered an undocumented status {status:?}"),
        )
        .with_hint(kit::RETRY_HINT),
        now,
    )
}

/// The step's request succeeded.
pub(super) fn succeeded(state: &OnboardState, response: &FinfraResponse, now: DateTime<Utc>) -> T {
    let mut next = state.clone();
    let ekyc = &state.definition.onboarding.ekyc;
    match (&state.phase, response) {
        (Phase::CheckReturningBorrower { user_id, .. }, FinfraResponse::GetBorrower(borrower)) => {
            let user_id = user_id.clone();
            next.borrower
                .reach(borrower.status.clone(), now, Source::Response);
            route::returning(&mut next, user_id, &borrower.status, now);
            let to = next.phase.name();
            advance(
                next,
                format!("the returning borrower is {}: {to}", borrower.status),
            )
        }
        (Phase::EkycOcr { .. }, FinfraResponse::Ocr(ocr)) => {
            let Ok(kyc_id) = KycId::new(ocr.kyc_id.clone()) else {
                return unknown_status(next, "empty kyc_id", now);
            };
            let nik_matches = ocr
                .extracted
                .nik
                .as_ref()
                .map(|nik| nik == state.request.nik.as_str());
            next.borrower.kyc_id = Some(kyc_id.clone());
            next.borrower.ekyc = Some(EkycFacts {
                ocr_confidence: ocr.confidence,
                nik_matches,
                liveness: None,
                face_match_score: None,
            });
            if ocr.confidence < ekyc.min_ocr_confidence {
                return fail(
                    next,
                    Reason::new(
                        "ocr_rejected",
                        format!(
                            "OCR confidence {:.2} is below {:.2}",
                            ocr.confidence, ekyc.min_ocr_confidence
                        ),
                    ),
                );
            }
            if ekyc.require_nik_match && nik_matches != Some(true) {
                return fail(
                    next,
                    Reason::new(
                        "ocr_rejected",
                        "the NIK read from the KTP image does not match documents.ktp.number",
                    ),
                );
            }
            next.phase = Phase::EkycBiometric {
                kyc_id,
                run: Run::new(Some(state.op_key(Step::EkycBiometric.as_str(), 0))),
            };
            advance(
                next,
                format!(
                    "KTP read with confidence {:.2}; KYC session opened",
                    ocr.confidence
                ),
            )
        }
        (Phase::EkycBiometric { .. }, FinfraResponse::BiometricKyc(bio)) => {
            if let Some(facts) = next.borrower.ekyc.as_mut() {
                facts.liveness = Some(bio.liveness.clone());
                facts.face_match_score = Some(bio.face_match_score);
            }
            if bio.liveness != Liveness::Passed {
                return fail(
                    next,
                    Reason::new(
                        "liveness_failed",
                        format!("liveness check: {}", bio.liveness),
                    ),
                );
            }
            if bio.face_match_score < ekyc.min_face_match {
                return fail(
                    next,
                    Reason::new(
                        "face_mismatch",
                        format!(
                            "face match {:.2} is below {:.2}",
                            bio.face_match_score, ekyc.min_face_match
                        ),
                    ),
                );
            }
            route::after_ekyc(&mut next);
            advance(
                next,
                format!("liveness passed, face match {:.2}", bio.face_match_score),
            )
        }
        (Phase::CreateDocument { index, run }, FinfraResponse::CreateDocument(document)) => {
            next.phase = Phase::UploadDocument {
                index: *index,
                document: document.clone(),
                run: Run::new(run.operation_key.clone()),
            };
            advance(
                next,
                format!("document {} created: uploading its file", document.id),
            )
        }
        (
            Phase::UploadDocument {
                index, document, ..
            },
            FinfraResponse::UploadDocument,
        ) => {
            next.borrower.documents.push(UploadedDocument {
                r#type: document.r#type.clone(),
                id: document.id.clone(),
            });
            route::next_document(&mut next, index + 1);
            advance(next, format!("document {} uploaded", document.id))
        }
        (
            Phase::CreateBorrower { .. },
            FinfraResponse::CreateBorrower(_) | FinfraResponse::CreateBorrowerForKyc(_),
        ) => {
            route::after_create(&mut next, now);
            advance(
                next,
                "borrower creation accepted; its id comes with user_created",
            )
        }
        (Phase::SubmitKyc { kyc_id, .. }, FinfraResponse::SubmitKyc(_)) => {
            next.borrower.kyc_submitted = true;
            let kyc_id = kyc_id.clone();
            route::await_user_created(&mut next, Some(kyc_id), now);
            advance(next, "KYC submitted")
        }
        (
            Phase::HubCheck {
                user_id,
                index,
                pending_since,
                ..
            },
            FinfraResponse::HubStatus(hub),
        ) => {
            next.borrower.hub_checks.push(HubFact {
                provider: hub.provider.clone(),
                status: hub.status.clone(),
                at: now,
            });
            match &hub.status {
                HubCheckStatus::Passed => {
                    route::next_check(&mut next, user_id.clone(), index + 1, now);
                    advance(next, format!("hub check {} passed", hub.provider))
                }
                HubCheckStatus::Failed => fail(
                    next,
                    Reason::new(
                        "hub_check_failed",
                        format!("hub check {} failed", hub.provider),
                    ),
                ),
                HubCheckStatus::Pending => pending(
                    next,
                    *pending_since,
                    now,
                    &format!("hub check {}", hub.provider),
                ),
                HubCheckStatus::Unknown(other) => unknown_status(next, other, now),
            }
        }
        (
            Phase::RdfBiometric {
                user_id,
                pending_since,
                ..
            },
            FinfraResponse::VerifyBiometricRdf(rdf),
        ) => {
            next.borrower.rdf = Some(rdf.status.clone());
            match &rdf.status {
                RdfBiometricStatus::Verified => {
                    route::await_verified(&mut next, user_id.clone(), now);
                    advance(next, "RDF biometric verified")
                }
                RdfBiometricStatus::Failed => fail(
                    next,
                    Reason::new("rdf_biometric_failed", "RDF biometric verification failed"),
                ),
                RdfBiometricStatus::Pending => pending(next, *pending_since, now, "RDF biometric"),
                RdfBiometricStatus::Unknown(other) => unknown_status(next, other, now),
            }
        }
        (Phase::CreditScore { user_id, .. }, FinfraResponse::ScoreReport(report)) => {
            next.borrower.credit = Some(policy::from_score_report(report));
            let user_id = user_id.clone();
            if state.definition.credit.history {
                next.phase = Phase::CreditHistory {
                    user_id,
                    run: Run::new(None),
                };
            } else {
                route::decide_policy(&mut next, user_id, now);
            }
            advance(
                next,
                format!("credit score {} ({})", report.score, report.grade),
            )
        }
        (Phase::CreditHistory { user_id, .. }, FinfraResponse::CreditHistory(history)) => {
            if let Some(facts) = next.borrower.credit.as_mut() {
                policy::add_history(facts, history);
            }
            route::decide_policy(&mut next, user_id.clone(), now);
            let verdict = decision_note(&next);
            advance(
                next,
                format!("{} credit records read; {verdict}", history.records.len()),
            )
        }
        (Phase::ApproveBorrower { user_id, .. }, FinfraResponse::ApproveBorrower(borrower)) => {
            approved(next, user_id.clone(), borrower, now)
        }
        (Phase::BlockBorrower { user_id, .. }, FinfraResponse::BlockBorrower(borrower)) => {
            next.borrower
                .reach(borrower.status.clone(), now, Source::Response);
            route::declined(&mut next, user_id.clone());
            advance(next, "borrower blocked: declined by the credit policy")
        }
        _ => unexpected(state, response, now),
    }
}

fn approved(
    mut state: OnboardState,
    user_id: UserId,
    borrower: &Borrower,
    now: DateTime<Utc>,
) -> T {
    state
        .borrower
        .reach(borrower.status.clone(), now, Source::Response);
    route::after_approve(&mut state, user_id, now);
    advance(
        state,
        format!("approved by the partner; Finfra says {}", borrower.status),
    )
}

fn decision_note(state: &OnboardState) -> String {
    match &state.borrower.decision {
        Some(d) if d.approved => "the credit policy approves".to_owned(),
        Some(d) => format!("the credit policy declines: {}", d.reasons.join("; ")),
        None => "no decision".to_owned(),
    }
}

/// A check answered `PENDING`: ask again after the poll interval, until the checks
/// timeout.
fn pending(
    mut state: OnboardState,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    what: &str,
) -> T {
    let since = since.unwrap_or(now);
    let policy = &state.definition.onboarding;
    if now >= kit::after(since, policy.timeouts.checks) {
        return attention(
            state,
            Reason::new(
                "check_pending",
                format!("{what} still PENDING since {since}"),
            )
            .with_hint("resolve with {\"retry\": true} to check again"),
            now,
        );
    }
    let at = kit::after(now, policy.poll_interval);
    match &mut state.phase {
        Phase::HubCheck {
            pending_since, run, ..
        }
        | Phase::RdfBiometric {
            pending_since, run, ..
        } => {
            *pending_since = Some(since);
            let mut recheck = Run::new(run.operation_key.clone());
            recheck.attempt = run.attempt + 1;
            recheck.stage = Stage::Backoff {
                at,
                reason: crate::action::SleepReason::Recheck,
            };
            *run = recheck;
        }
        _ => {}
    }
    advance(state, format!("{what} PENDING: checking again at {at}"))
}
