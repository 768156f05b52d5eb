//! [`FinfraRequest`]: one Finfra call a workflow asks the executor to make, naming the
//! `finfra_api::FinfraClient` method and its typed arguments.
//!
//! Each variant maps to exactly one client method and one [`crate::FinfraResponse`]
//! variant of the same name (the executor's table, in the crate docs). Each also says what
//! sending it twice does ([`Effect`]): the generic retry logic in `crate::kit` decides from
//! that, not from the HTTP method, whether a lost answer must be reconciled before sending
//! again.
//!
//! Requests carry personal data (a create-borrower body is a person's KYC file). `Serialize`
//! writes it all, because the action is persisted for the executor; the journal stores
//! [`FinfraRequest::summary`] instead, which masks it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use finfra_api::model::borrower::{BlockBorrower, CreateBorrower};
use finfra_api::model::credit::{ClikCreditReportRequest, CreditSource, ScoreReportRequest};
use finfra_api::model::document::{CreateDocument, DocumentType};
use finfra_api::model::ekyc::{BiometricRequest, DataSource, HubProvider, OcrRequest};
use finfra_api::model::loan::{
    CreateBnplLoan, CreateSinglePaymentLoan, InitiateSigning, ListLoansQuery, RejectLoan,
};
use finfra_api::model::mask;
use finfra_api::model::virtual_account::VirtualAccountRequest;

use crate::ids::{KycId, Nik, UserId};

/// Where the bytes of a document to upload come from. The workflow never reads files (it
/// does no I/O); the executor does, when it runs [`FinfraRequest::UploadDocument`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSource {
    /// A path on the worker's file system, as given in the workflow's input.
    Path(String),
    /// The content, base64-encoded (standard alphabet, padded).
    Base64(String),
}

impl fmt::Debug for FileSource {
    // A base64 KTP scan is megabytes of personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Base64(data) => write!(f, "Base64(<{} chars>)", data.len()),
        }
    }
}

/// What sending a request twice does. Decides what a lost answer costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Changes nothing: send again freely.
    Read,
    /// Changes something, but a second send is harmless (the same result, or an orphan
    /// nobody refers to): send again after a lost answer, like a read.
    Repeatable,
    /// Creates something that Finfra deduplicates on a key we chose (the NIK, the loan's
    /// `unique_id`): a second send of an applied request answers `409`. After a lost answer
    /// the workflow reads Finfra's state when a read can tell, else sends again and takes
    /// `409` as "it was applied".
    Deduplicated,
    /// Must not happen twice (approve, block, disburse, reject): after a lost answer the
    /// workflow reads Finfra's state before deciding to send again, never sends blindly.
    Unique,
}

impl Effect {
    /// Whether a lost answer must be reconciled before the request is sent again.
    #[must_use]
    pub fn needs_reconcile(self) -> bool {
        match self {
            Self::Read | Self::Repeatable => false,
            Self::Deduplicated | Self::Unique => true,
        }
    }
}

/// One Finfra call, with its typed arguments (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum FinfraRequest {
    /// `ocr(body, data_source, kyc_id)`: `POST /api/core/users/ocr`.
    Ocr {
        body: OcrRequest,
        data_source: Option<DataSource>,
        kyc_id: Option<KycId>,
    },
    /// `biometric_kyc(body, Some(kyc_id))`: `POST /api/core/users/biometric`.
    BiometricKyc {
        body: BiometricRequest,
        kyc_id: KycId,
    },
    /// `create_borrower(body, kyc_id)`: `POST /api/core/users` (the `kyc-id` header when given).
    CreateBorrower {
        body: CreateBorrower,
        kyc_id: Option<KycId>,
    },
    /// `create_borrower_for_kyc(kyc_id, body)`: `POST /api/core/{kycIdPath}/users`.
    CreateBorrowerForKyc { kyc_id: KycId, body: CreateBorrower },
    /// `submit_kyc(kyc_id)`: `POST /api/core/kyc/{kycIdPath}/submit`.
    SubmitKyc { kyc_id: KycId },
    /// `get_kyc_submission(kyc_id)`: `GET /api/core/kyc/{kycIdPath}/submission`.
    GetKycSubmission { kyc_id: KycId },
    /// `create_document(body, None)`: `POST /api/documents` (step 1 of the upload).
    CreateDocument { body: CreateDocument },
    /// `upload_to_presigned_url(presigned_url, file)`: `PUT <presigned_url>` (step 2). The
    /// executor builds the `FileUpload` from `source`, `filename` and `content_type`.
    UploadDocument {
        document_type: DocumentType,
        presigned_url: String,
        source: FileSource,
        filename: String,
        content_type: String,
    },
    /// `get_borrower(user_id)`: `GET /api/core/users/{userId}`.
    GetBorrower { user_id: UserId },
    /// `approve_borrower(user_id)`: `POST /api/core/users/{userId}/approve`.
    ApproveBorrower { user_id: UserId },
    /// `block_borrower(user_id, Some(body))`: `POST /api/core/users/{userId}/block`.
    BlockBorrower {
        user_id: UserId,
        body: BlockBorrower,
    },
    /// `verify_biometric_rdf(user_id)`: `POST /api/core/users/{userId}/rdf/verify-biometric`.
    VerifyBiometricRdf { user_id: UserId },
    /// `hub_status(user_id, provider)`: `GET /api/core/users/{userId}/status/{callbackTitle}`.
    HubStatus {
        user_id: UserId,
        provider: HubProvider,
    },
    /// `score_report(body, sources)`: `POST /api/core/users/score-report`.
    ScoreReport {
        body: ScoreReportRequest,
        sources: Vec<CreditSource>,
    },
    /// `credit_history(identity_number)`: `GET /api/core/users/{identityNumber}/credit-history`.
    CreditHistory { identity_number: Nik },
    /// `clik_credit_report(body)`: `POST /api/core/users/clik/credit-report`.
    ClikCreditReport { body: ClikCreditReportRequest },
    // Loans: used by `originate-loan` (issue 4); the executor can implement them now.
    /// `create_single_payment_loan(user_id, body)`: `POST /api/core/loans/{userId}`.
    CreateSinglePaymentLoan {
        user_id: UserId,
        body: CreateSinglePaymentLoan,
    },
    /// `create_bnpl_loan(user_id, body)`: `POST /api/core/loans/{userId}/bnpl`.
    CreateBnplLoan {
        user_id: UserId,
        body: CreateBnplLoan,
    },
    /// `get_loan(unique_id)`: `GET /api/core/loans/details/{uniqueId}`.
    GetLoan { unique_id: String },
    /// `list_loans(query)`: `GET /api/core/loans`.
    ListLoans { query: ListLoansQuery },
    /// `initiate_signing(body)`: `POST /api/core/loans/signing/initiate`.
    InitiateSigning { body: InitiateSigning },
    /// `disburse_loan(unique_id)`: `POST /api/core/loans/{loanUniqueId}/disbursement`.
    DisburseLoan { unique_id: String },
    /// `reject_loan(unique_id, body)`: `POST /api/core/loans/{loanUniqueId}/reject`.
    RejectLoan { unique_id: String, body: RejectLoan },
    /// `request_virtual_account(body)`: `POST /api/core/virtual-account/request`.
    RequestVirtualAccount { body: VirtualAccountRequest },
}

impl FinfraRequest {
    /// The variant's name, snake_case, as serialized in `call` (and as the matching
    /// `FinfraResponse` variant is named).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.endpoint().0
    }

    /// `(name, method, path template)`, e.g. `("create_borrower", "POST", "/api/core/users")`:
    /// an endpoint named without ids in it. The name is a journal row's `action`; the method
    /// and path are what that name stands for (the journal does not repeat them).
    #[must_use]
    pub fn endpoint(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Ocr { .. } => ("ocr", "POST", "/api/core/users/ocr"),
            Self::BiometricKyc { .. } => ("biometric_kyc", "POST", "/api/core/users/biometric"),
            Self::CreateBorrower { .. } => ("create_borrower", "POST", "/api/core/users"),
            Self::CreateBorrowerForKyc { .. } => (
                "create_borrower_for_kyc",
                "POST",
                "/api/core/{kycIdPath}/users",
            ),
            Self::SubmitKyc { .. } => ("submit_kyc", "POST", "/api/core/kyc/{kycIdPath}/submit"),
            Self::GetKycSubmission { .. } => (
                "get_kyc_submission",
                "GET",
                "/api/core/kyc/{kycIdPath}/submission",
            ),
            Self::CreateDocument { .. } => ("create_document", "POST", "/api/documents"),
            Self::UploadDocument { .. } => ("upload_document", "PUT", "{presigned_url}"),
            Self::GetBorrower { .. } => ("get_borrower", "GET", "/api/core/users/{userId}"),
            Self::ApproveBorrower { .. } => (
                "approve_borrower",
                "POST",
                "/api/core/users/{userId}/approve",
            ),
            Self::BlockBorrower { .. } => {
                ("block_borrower", "POST", "/api/core/users/{userId}/block")
            }
            Self::VerifyBiometricRdf { .. } => (
                "verify_biometric_rdf",
                "POST",
                "/api/core/users/{userId}/rdf/verify-biometric",
            ),
            Self::HubStatus { .. } => (
                "hub_status",
                "GET",
                "/api/core/users/{userId}/status/{callbackTitle}",
            ),
            Self::ScoreReport { .. } => ("score_report", "POST", "/api/core/users/score-report"),
            Self::CreditHistory { .. } => (
                "credit_history",
                "GET",
                "/api/core/users/{identityNumber}/credit-history",
            ),
            Self::ClikCreditReport { .. } => (
                "clik_credit_report",
                "POST",
                "/api/core/users/clik/credit-report",
            ),
            Self::CreateSinglePaymentLoan { .. } => (
                "create_single_payment_loan",
                "POST",
                "/api/core/loans/{userId}",
            ),
            Self::CreateBnplLoan { .. } => {
                ("create_bnpl_loan", "POST", "/api/core/loans/{userId}/bnpl")
            }
            Self::GetLoan { .. } => ("get_loan", "GET", "/api/core/loans/details/{uniqueId}"),
            Self::ListLoans { .. } => ("list_loans", "GET", "/api/core/loans"),
            Self::InitiateSigning { .. } => (
                "initiate_signing",
                "POST",
                "/api/core/loans/signing/initiate",
            ),
            Self::DisburseLoan { .. } => (
                "disburse_loan",
                "POST",
                "/api/core/loans/{loanUniqueId}/disbursement",
            ),
            Self::RejectLoan { .. } => (
                "reject_loan",
                "POST",
                "/api/core/loans/{loanUniqueId}/reject",
            ),
            Self::RequestVirtualAccount { .. } => (
                "request_virtual_account",
                "POST",
                "/api/core/virtual-account/request",
            ),
        }
    }

    /// Whether a failed send of this request is always followed by a read of Finfra's
    /// state before any new send, even when the failure proves nothing was applied: money
    /// leaves once per `200` of a disbursement, and a simple rule is easier to trust than a
    /// classification of failures.
    #[must_use]
    pub fn reads_before_every_resend(&self) -> bool {
        matches!(self, Self::DisburseLoan { .. })
    }

    /// What sending this request twice does (see [`Effect`]).
    #[must_use]
    pub fn effect(&self) -> Effect {
        match self {
            // A new KYC session, or the same one read again: an orphan session is harmless.
            Self::Ocr { .. } => Effect::Repeatable,
            // Liveness and face match computed again on the same session.
            Self::BiometricKyc { .. } => Effect::Repeatable,
            // Finfra answers 409 to a second borrower with the same KTP NIK (CONTRACT §3).
            Self::CreateBorrower { .. } => Effect::Deduplicated,
            // As above, and a KYC session takes one borrower only.
            Self::CreateBorrowerForKyc { .. } => Effect::Deduplicated,
            // The contract does not say a second submit is harmless: read the submission first.
            Self::SubmitKyc { .. } => Effect::Unique,
            Self::GetKycSubmission { .. } => Effect::Read,
            // A second document object is an orphan nobody refers to (its id is only used
            // once the upload succeeded).
            Self::CreateDocument { .. } => Effect::Repeatable,
            // PUT: the same bytes to the same URL.
            Self::UploadDocument { .. } => Effect::Repeatable,
            Self::GetBorrower { .. } => Effect::Read,
            // CONTRACT §3 calls a second approve a no-op, but approval is the decision the
            // whole workflow exists for: confirm with a read rather than trust that.
            Self::ApproveBorrower { .. } => Effect::Unique,
            Self::BlockBorrower { .. } => Effect::Unique,
            // A second verification of the same borrower; nothing accumulates.
            Self::VerifyBiometricRdf { .. } => Effect::Repeatable,
            Self::HubStatus { .. } => Effect::Read,
            // Another report on the same borrower; we use the last one we read.
            Self::ScoreReport { .. } => Effect::Repeatable,
            Self::CreditHistory { .. } => Effect::Read,
            // Another report on the same borrower.
            Self::ClikCreditReport { .. } => Effect::Repeatable,
            // `unique_id` is ours: a second create answers 409 (CONTRACT §5).
            Self::CreateSinglePaymentLoan { .. } => Effect::Deduplicated,
            Self::CreateBnplLoan { .. } => Effect::Deduplicated,
            Self::GetLoan { .. } => Effect::Read,
            Self::ListLoans { .. } => Effect::Read,
            // Asking again while SIGNING returns the same session (CONTRACT §5).
            Self::InitiateSigning { .. } => Effect::Repeatable,
            // Money leaves once per 200: never without reading the loan first.
            Self::DisburseLoan { .. } => Effect::Unique,
            Self::RejectLoan { .. } => Effect::Unique,
            // Asking again returns the same account (CONTRACT §5).
            Self::RequestVirtualAccount { .. } => Effect::Repeatable,
        }
    }

    /// Whether the request is built from what the submitter gave (a borrower's data, a
    /// document), so that Finfra refusing it with a 4xx is the input's fault: the
    /// workflow fails with Finfra's message instead of waiting for a person.
    #[must_use]
    pub fn carries_input(&self) -> bool {
        match self {
            Self::Ocr { .. }
            | Self::BiometricKyc { .. }
            | Self::CreateBorrower { .. }
            | Self::CreateBorrowerForKyc { .. }
            | Self::CreateDocument { .. }
            | Self::UploadDocument { .. }
            | Self::CreateSinglePaymentLoan { .. }
            | Self::CreateBnplLoan { .. } => true,
            Self::SubmitKyc { .. }
            | Self::GetKycSubmission { .. }
            | Self::GetBorrower { .. }
            | Self::ApproveBorrower { .. }
            | Self::BlockBorrower { .. }
            | Self::VerifyBiometricRdf { .. }
            | Self::HubStatus { .. }
            | Self::ScoreReport { .. }
            | Self::CreditHistory { .. }
            | Self::ClikCreditReport { .. }
            | Self::GetLoan { .. }
            | Self::ListLoans { .. }
            | Self::InitiateSigning { .. }
            | Self::DisburseLoan { .. }
            | Self::RejectLoan { .. }
            | Self::RequestVirtualAccount { .. } => false,
        }
    }

    /// A summary for the journal: the arguments that tell calls of one endpoint apart, with
    /// personal data masked (NIKs keep their last 4 digits, KYC tokens and presigned URLs
    /// are dropped, bodies are reduced to what identifies them). The endpoint is not in it:
    /// the journal row's `action` is its [`name`](Self::name), and the name gives its
    /// method and path ([`endpoint`](Self::endpoint)), so no row repeats them.
    #[must_use]
    pub fn summary(&self) -> Value {
        match self {
            Self::Ocr {
                body, data_source, ..
            } => json!({
                "document_type": body.document_type,
                "data_source": data_source,
                "file_chars": body.file.len(),
            }),
            Self::BiometricKyc { body, .. } => json!({"selfie_chars": body.selfie.len()}),
            Self::CreateBorrower { body, kyc_id } => json!({
                "type": body.r#type,
                "nik": mask(&body.authorised_signatory.documents.ktp.number),
                "kyc_header": kyc_id.is_some(),
            }),
            Self::CreateBorrowerForKyc { body, .. } => json!({
                "type": body.r#type,
                "nik": mask(&body.authorised_signatory.documents.ktp.number),
            }),
            Self::SubmitKyc { .. } | Self::GetKycSubmission { .. } => json!({}),
            Self::CreateDocument { body } => json!({"type": body.r#type}),
            Self::UploadDocument {
                document_type,
                source,
                content_type,
                ..
            } => json!({
                "type": document_type,
                "content_type": content_type,
                "source": match source {
                    FileSource::Path(_) => "path",
                    FileSource::Base64(_) => "base64",
                },
            }),
            Self::GetBorrower { user_id }
            | Self::ApproveBorrower { user_id }
            | Self::VerifyBiometricRdf { user_id } => json!({"user_id": user_id}),
            Self::BlockBorrower { user_id, .. } => json!({"user_id": user_id}),
            Self::HubStatus { user_id, provider } => {
                json!({"user_id": user_id, "provider": provider})
            }
            Self::ScoreReport { body, sources } => {
                json!({"user_id": body.user_id, "sources": sources})
            }
            Self::CreditHistory { identity_number } => {
                json!({"nik": mask(identity_number.as_str())})
            }
            Self::ClikCreditReport { body } => json!({"user_id": body.user_id}),
            Self::CreateSinglePaymentLoan { user_id, body } => json!({
                "user_id": user_id,
                "unique_id": body.unique_id,
                "principal_amount": body.principal_amount.to_string(),
            }),
            Self::CreateBnplLoan { user_id, body } => json!({
                "user_id": user_id,
                "unique_id": body.unique_id,
                "principal_amount": body.principal_amount.to_string(),
                "tenor": body.tenor,
            }),
            Self::GetLoan { unique_id } | Self::DisburseLoan { unique_id } => {
                json!({"unique_id": unique_id})
            }
            Self::RejectLoan { unique_id, .. } => json!({"unique_id": unique_id}),
            Self::ListLoans { query } => json!({
                "user_id": query.user_id,
                "unique_id": query.unique_id,
                "page_number": query.page_number,
            }),
            Self::InitiateSigning { body } => json!({"unique_id": body.unique_id}),
            Self::RequestVirtualAccount { body } => {
                json!({"loan_unique_id": body.loan_unique_id, "bank_code": body.bank_code})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_follow_the_contract() {
        let user_id = UserId::new("6a41ff87dda4eefd0b7b0300").unwrap();
        assert_eq!(
            FinfraRequest::GetBorrower {
                user_id: user_id.clone()
            }
            .effect(),
            Effect::Read
        );
        assert!(
            FinfraRequest::ApproveBorrower {
                user_id: user_id.clone()
            }
            .effect()
            .needs_reconcile()
        );
        assert!(
            FinfraRequest::DisburseLoan {
                unique_id: "op-1234".into()
            }
            .effect()
            .needs_reconcile()
        );
        assert!(
            !FinfraRequest::VerifyBiometricRdf { user_id }
                .effect()
                .needs_reconcile()
        );
    }

    #[test]
    fn summaries_mask_personal_data() {
        let request = FinfraRequest::CreditHistory {
            identity_number: Nik::new("3275062009921981").unwrap(),
        };
        let summary = request.summary().to_string();
        assert!(!summary.contains("327506200992"), "{summary}");
        assert!(summary.contains("1981"));
        assert_eq!(
            summary, r#"{"nik":"************1981"}"#,
            "the arguments alone"
        );
        let upload = FinfraRequest::UploadDocument {
            document_type: DocumentType::Npwp,
            presigned_url: "https://storage/x?token=secret".into(),
            source: FileSource::Base64("AAAA".repeat(100)),
            filename: "npwp.pdf".into(),
            content_type: "application/pdf".into(),
        };
        let summary = upload.summary().to_string();
        assert!(
            !summary.contains("secret") && !summary.contains("AAAA"),
            "{summary}"
        );
        assert!(!format!("{upload:?}").contains("AAAA"));
    }

    #[test]
    fn serializes_with_the_call_name() {
        let request = FinfraRequest::SubmitKyc {
            kyc_id: KycId::new("eyJk.e30.x").unwrap(),
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["call"], request.name());
        let back: FinfraRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, request);
    }
}
