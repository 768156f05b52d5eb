//! The kit's view of an onboarding asks Finfra ([`Machine`]): what each phase asks Finfra (its
//! own request, the read that tells whether it was applied, the poll of a wait, the
//! callbacks a wait expects), and where the kind's answers to the kit's questions live.

use std::time::Duration;

use chrono::{DateTime, Utc};
use finfra_api::callback::CallbackTitle;
use finfra_api::model::borrower::{BlockBorrower, CreateBorrower, NpwpDocument};
use finfra_api::model::credit::ScoreReportRequest;
use finfra_api::model::document::{CreateDocument, DocumentType};
use finfra_api::model::ekyc::{BiometricRequest, OcrRequest};
use finfra_api::retry::RetryPolicy;

use crate::action::{Action, CorrelationKey, Expected, Outcome, Reason};
use crate::event::CallbackEvent;
use crate::failure::CallFailure;
use crate::ids::{UserId, WorkflowId};
use crate::kit::{Machine, Phase as _, Run, Waiting};
use crate::machine::Transition;
use crate::request::FinfraRequest;
use crate::response::FinfraResponse;

use super::state::{OnboardState, Phase};
use super::{calls, commands, route, waits};

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

impl Machine for OnboardState {
    type Phase = Phase;

    fn phase(&self) -> &Phase {
        &self.phase
    }

    fn phase_mut(&mut self) -> &mut Phase {
        &mut self.phase
    }

    fn workflow_id(&self) -> &WorkflowId {
        &self.workflow_id
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.definition.retry.policy()
    }

    fn finished_action(&self) -> Action {
        match &self.phase {
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
            Phase::Cancelled { by, reason, .. } => Action::Cancelled {
                by: by.clone(),
                reason: reason.clone(),
            },
            Phase::Failed { reason, .. } => Action::Fail {
                reason: reason.clone(),
            },
            other => Action::Fail {
                reason: Reason::new(
                    "inconsistent_state",
                    format!("{} is not a finished state", other.name()),
                ),
            },
        }
    }

    fn inconsistent_hint(&self) -> &'static str {
        "cancel the workflow and submit it again"
    }

    /// The current call step's own request.
    fn request(&self) -> Option<FinfraRequest> {
        let policy = &self.definition;
        Some(match &self.phase {
            Phase::CheckReturningBorrower { user_id, .. } => FinfraRequest::GetBorrower {
                user_id: user_id.clone(),
            },
            Phase::EkycOcr { .. } => FinfraRequest::Ocr {
                body: OcrRequest {
                    document_type: DocumentType::Ktp,
                    file: self.request.ekyc.as_ref()?.ktp_image.clone(),
                },
                data_source: policy.onboarding.ekyc.data_source.clone(),
                kyc_id: None,
            },
            Phase::EkycBiometric { kyc_id, .. } => FinfraRequest::BiometricKyc {
                body: BiometricRequest {
                    selfie: self.request.ekyc.as_ref()?.selfie.clone(),
                },
                kyc_id: kyc_id.clone(),
            },
            Phase::CreateDocument { index, .. } => {
                let doc = self.request.documents.get(*index)?;
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
                let doc = self.request.documents.get(*index)?;
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
                body: create_body(self),
            },
            Phase::CreateBorrower { kyc_id: None, .. } => FinfraRequest::CreateBorrower {
                body: create_body(self),
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
                identity_number: self.request.nik.clone(),
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
                        self.borrower
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

    /// The read that tells whether the current call step's request was applied.
    fn reconcile_read(&self) -> Option<FinfraRequest> {
        match &self.phase {
            Phase::CreateBorrower {
                kyc_id: Some(kyc_id),
                ..
            }
            | Phase::SubmitKyc { kyc_id, .. } => Some(FinfraRequest::GetKycSubmission {
                kyc_id: kyc_id.clone(),
            }),
            Phase::CreateBorrower { kyc_id: None, .. } => self.request(),
            Phase::ApproveBorrower { user_id, .. } | Phase::BlockBorrower { user_id, .. } => {
                Some(FinfraRequest::GetBorrower {
                    user_id: user_id.clone(),
                })
            }
            _ => None,
        }
    }

    /// The callbacks that end (or feed) the current wait.
    fn expected(&self) -> Vec<Expected> {
        let by_nik = |title| {
            Expected::new(
                title,
                CorrelationKey::IdentityNumber,
                self.request.nik.as_str(),
            )
        };
        let by_id = |title, user_id: &UserId| {
            Expected::new(title, CorrelationKey::UserId, user_id.as_str())
        };
        match &self.phase {
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

    /// The current wait's fallback poll.
    fn poll_request(&self) -> Option<FinfraRequest> {
        match &self.phase {
            Phase::AwaitUserCreated { poll, .. } => {
                poll.as_ref().map(|kyc_id| FinfraRequest::GetKycSubmission {
                    kyc_id: kyc_id.clone(),
                })
            }
            // A rejection without its reason: the KYC submission gives the reason.
            Phase::AwaitUserVerified { .. } | Phase::AwaitUserApproved { .. }
                if let Some(kyc_id) = &self.borrower.kyc_id
                    && self.borrower.rejection_reason_due().is_some() =>
            {
                Some(FinfraRequest::GetKycSubmission {
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

    fn poll_every(&self) -> Duration {
        self.definition.onboarding.poll_interval
    }

    fn cancel(&self, by: &str, reason: &str) -> Transition<Self> {
        commands::cancel(self, by, reason)
    }

    fn restart(&mut self, now: DateTime<Utc>) {
        commands::restart(self, now);
    }

    fn resolve_user_id(
        &self,
        stuck: &Phase,
        user_id: UserId,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Transition<Self> {
        commands::resolve_user_id(self, stuck, user_id, by, reason, now)
    }

    fn succeeded(&self, response: &FinfraResponse, now: DateTime<Utc>) -> Transition<Self> {
        calls::succeeded(self, response, now)
    }

    fn reconciled(
        &self,
        run: &Run,
        request: &FinfraRequest,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self> {
        calls::reconciled(self, run, request, response, now)
    }

    fn own_failure(
        &self,
        run: &Run,
        _request: &FinfraRequest,
        failure: &CallFailure,
        now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        calls::own_failure(self, run, failure, now)
    }

    fn own_read_failure(
        &self,
        _run: &Run,
        _request: &FinfraRequest,
        failure: &CallFailure,
        now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        calls::own_read_failure(self, failure, now)
    }

    fn record(&mut self, callback: &CallbackEvent, now: DateTime<Utc>) -> Option<String> {
        waits::record(self, callback, now)
    }

    fn settle(&mut self, now: DateTime<Utc>) -> bool {
        route::settle(self, now)
    }

    fn polled(
        &self,
        wait: &Waiting,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self> {
        waits::polled(self, wait, response, now)
    }

    fn timed_out(&self, now: DateTime<Utc>) -> Transition<Self> {
        waits::timed_out(self, now)
    }
}
