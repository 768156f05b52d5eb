//! [`FinfraResponse`]: the typed answer to a [`FinfraRequest`], one variant per request
//! variant, with the same name, holding what the `finfra_api` client method returned.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use finfra_api::model::Accepted;
use finfra_api::model::borrower::Borrower;
use finfra_api::model::credit::{ClikCreditReport, CreditHistory, ScoreReport};
use finfra_api::model::document::CreatedDocument;
use finfra_api::model::ekyc::{
    BiometricResponse, HubCheckResult, KycSubmission, KycSubmitted, OcrResponse, RdfBiometricResult,
};
use finfra_api::model::loan::{DisbursementAccepted, Loan, LoanPage, SigningSession};
use finfra_api::model::virtual_account::VirtualAccount;

use crate::reconcile::KnownLoans;
use crate::request::FinfraRequest;

/// The answer to a [`FinfraRequest`] of the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", content = "response", rename_all = "snake_case")]
pub enum FinfraResponse {
    Ocr(OcrResponse),
    BiometricKyc(BiometricResponse),
    CreateBorrower(Accepted),
    CreateBorrowerForKyc(Accepted),
    SubmitKyc(KycSubmitted),
    GetKycSubmission(KycSubmission),
    CreateDocument(CreatedDocument),
    /// The presigned upload answers `200` with nothing the engine uses.
    UploadDocument,
    GetBorrower(Borrower),
    ApproveBorrower(Borrower),
    BlockBorrower(Borrower),
    VerifyBiometricRdf(RdfBiometricResult),
    HubStatus(HubCheckResult),
    ScoreReport(ScoreReport),
    CreditHistory(CreditHistory),
    ClikCreditReport(ClikCreditReport),
    CreateSinglePaymentLoan(Loan),
    CreateBnplLoan(Loan),
    GetLoan(Loan),
    /// A page of Finfra's loans, with finflow's own records of them (joined by the
    /// executor; empty until it does).
    ListLoans(LoanPage, #[serde(default)] KnownLoans),
    InitiateSigning(SigningSession),
    DisburseLoan(DisbursementAccepted),
    RejectLoan(Loan),
    RequestVirtualAccount(VirtualAccount),
}

impl FinfraResponse {
    /// The variant's name: the name of the request it answers.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ocr(_) => "ocr",
            Self::BiometricKyc(_) => "biometric_kyc",
            Self::CreateBorrower(_) => "create_borrower",
            Self::CreateBorrowerForKyc(_) => "create_borrower_for_kyc",
            Self::SubmitKyc(_) => "submit_kyc",
            Self::GetKycSubmission(_) => "get_kyc_submission",
            Self::CreateDocument(_) => "create_document",
            Self::UploadDocument => "upload_document",
            Self::GetBorrower(_) => "get_borrower",
            Self::ApproveBorrower(_) => "approve_borrower",
            Self::BlockBorrower(_) => "block_borrower",
            Self::VerifyBiometricRdf(_) => "verify_biometric_rdf",
            Self::HubStatus(_) => "hub_status",
            Self::ScoreReport(_) => "score_report",
            Self::CreditHistory(_) => "credit_history",
            Self::ClikCreditReport(_) => "clik_credit_report",
            Self::CreateSinglePaymentLoan(_) => "create_single_payment_loan",
            Self::CreateBnplLoan(_) => "create_bnpl_loan",
            Self::GetLoan(_) => "get_loan",
            Self::ListLoans(..) => "list_loans",
            Self::InitiateSigning(_) => "initiate_signing",
            Self::DisburseLoan(_) => "disburse_loan",
            Self::RejectLoan(_) => "reject_loan",
            Self::RequestVirtualAccount(_) => "request_virtual_account",
        }
    }

    /// Whether this is the kind of answer `request` gets.
    #[must_use]
    pub fn answers(&self, request: &FinfraRequest) -> bool {
        self.name() == request.name()
    }

    /// A summary for the journal: statuses and ids, no personal data (a borrower's data,
    /// OCR extractions, signing and presigned URLs are left out). The call it answers is the
    /// journal row's `action`, not repeated here.
    #[must_use]
    pub fn summary(&self) -> Value {
        let detail = match self {
            Self::Ocr(r) => json!({"confidence": r.confidence, "data_source": r.data_source}),
            Self::BiometricKyc(r) => {
                json!({"liveness": r.liveness, "face_match_score": r.face_match_score})
            }
            Self::CreateBorrower(a) | Self::CreateBorrowerForKyc(a) => json!({"status": a.status}),
            Self::SubmitKyc(s) => json!({"status": s.status}),
            Self::GetKycSubmission(s) => {
                json!({"status": s.status, "user_id": s.user_id, "reasons": s.reasons.len()})
            }
            Self::CreateDocument(d) => json!({"id": d.id, "type": d.r#type}),
            Self::UploadDocument => json!({}),
            Self::GetBorrower(b) | Self::ApproveBorrower(b) | Self::BlockBorrower(b) => {
                json!({"user_id": b.id, "status": b.status})
            }
            Self::VerifyBiometricRdf(r) => json!({"user_id": r.user_id, "status": r.status}),
            Self::HubStatus(h) => json!({"provider": h.provider, "status": h.status}),
            Self::ScoreReport(s) => json!({"score": s.score, "grade": s.grade}),
            Self::CreditHistory(h) => json!({"records": h.records.len()}),
            Self::ClikCreditReport(c) => json!({"report_type": c.report_type}),
            Self::CreateSinglePaymentLoan(l)
            | Self::CreateBnplLoan(l)
            | Self::GetLoan(l)
            | Self::RejectLoan(l) => json!({"unique_id": l.unique_id, "status": l.status}),
            Self::ListLoans(p, _) => json!({"items": p.data.len(), "total": p.total_items}),
            Self::InitiateSigning(s) => json!({"unique_id": s.unique_id, "status": s.status}),
            Self::DisburseLoan(d) => json!({"unique_id": d.unique_id, "status": d.status}),
            Self::RequestVirtualAccount(v) => {
                json!({"external_id": v.external_id, "bank_code": v.bank_code})
            }
        };
        json!({ "response": detail })
    }
}
