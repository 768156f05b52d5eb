//! The onboarding state: what was asked (`request`), what is known about the borrower
//! (`borrower`, the facts SQL reads), and where the workflow is (`phase`).
//!
//! Phases carry what their requests need (a phase after creation holds the `UserId`, the
//! KYC phases the `KycId`), so a state that would call Finfra without an id cannot be
//! built.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use finfra_api::model::borrower::{BorrowerStatus, BorrowerType};
use finfra_api::model::credit::{CreditGrade, CreditSource};
use finfra_api::model::document::{CreatedDocument, DocumentType};
use finfra_api::model::ekyc::{HubCheckStatus, HubProvider, Liveness, RdfBiometricStatus};

use crate::action::Reason;
use crate::definition::Definition;
use crate::ids::{KycId, UserId, WorkflowId};
use crate::kit::{self, Run, Waiting};
use crate::machine::Status;

use super::input::OnboardRequest;

/// The whole state of one onboarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardState {
    /// The engine's id of this workflow (seeds operation keys and jitter).
    pub workflow_id: WorkflowId,
    /// The definition pinned at start: decisions never read the registry (stored once, by
    /// pin: `crate::stored`).
    pub definition: Definition,
    /// When the workflow started.
    pub started_at: DateTime<Utc>,
    /// What was submitted.
    pub request: OnboardRequest,
    /// What is known about the borrower: `$.borrower` in SQL.
    pub borrower: BorrowerRecord,
    /// Where the workflow is: `$.phase.state` is the state name.
    pub phase: Phase,
}

/// Where a fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A callback.
    Callback,
    /// A poll while a callback was late.
    Poll,
    /// The answer to one of our calls.
    Response,
    /// An operator's `resolve`.
    Operator,
}

/// A borrower status the workflow saw, once each, in the order seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReached {
    /// The status.
    pub status: BorrowerStatus,
    /// When the workflow learnt it.
    pub at: DateTime<Utc>,
    /// How.
    pub source: Source,
}

/// What the workflow knows about the borrower: `$.borrower` in the stored context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BorrowerRecord {
    /// PERSONAL or BUSINESS.
    pub r#type: BorrowerType,
    /// Finfra's id, once known.
    pub user_id: Option<UserId>,
    /// The e-KYC session.
    pub kyc_id: Option<KycId>,
    /// Whether the create request was accepted (or found applied).
    pub create_accepted: bool,
    /// Whether the KYC session was submitted.
    pub kyc_submitted: bool,
    /// The most advanced status known.
    pub status: Option<BorrowerStatus>,
    /// Every status seen.
    pub statuses: Vec<StatusReached>,
    /// Finfra's reason, when KYC was rejected.
    pub rejection_reason: Option<String>,
    /// Documents uploaded, with Finfra's ids.
    pub documents: Vec<UploadedDocument>,
    /// e-KYC results.
    pub ekyc: Option<EkycFacts>,
    /// Hub check results, in order.
    pub hub_checks: Vec<HubFact>,
    /// The RDF biometric result.
    pub rdf: Option<RdfBiometricStatus>,
    /// The credit facts the policy decided on.
    pub credit: Option<CreditFacts>,
    /// The policy decision.
    pub decision: Option<PolicyDecision>,
}

impl BorrowerRecord {
    pub(crate) fn new(kind: BorrowerType) -> Self {
        Self {
            r#type: kind,
            user_id: None,
            kyc_id: None,
            create_accepted: false,
            kyc_submitted: false,
            status: None,
            statuses: Vec::new(),
            rejection_reason: None,
            documents: Vec::new(),
            ekyc: None,
            hub_checks: Vec::new(),
            rdf: None,
            credit: None,
            decision: None,
        }
    }

    /// Records that the borrower reached `status`; whether that is news. Statuses arrive
    /// out of order (callbacks are unordered), so `status` keeps the most advanced one.
    pub(crate) fn reach(
        &mut self,
        status: BorrowerStatus,
        at: DateTime<Utc>,
        source: Source,
    ) -> bool {
        if self.statuses.iter().any(|s| s.status == status) {
            return false;
        }
        if rank(&status) >= self.status.as_ref().map_or(0, rank) {
            self.status = Some(status.clone());
        }
        self.statuses.push(StatusReached { status, at, source });
        true
    }

    /// Records Finfra's id for the borrower; whether that is news.
    pub(crate) fn learn_user_id(&mut self, user_id: UserId) -> bool {
        if self.user_id.is_some() {
            return false;
        }
        self.user_id = Some(user_id);
        true
    }

    /// Whether the borrower has been seen in `status`.
    pub(crate) fn has_reached(&self, status: &BorrowerStatus) -> bool {
        self.statuses.iter().any(|s| &s.status == status)
    }

    /// When a rejection seen by a poll, with no reason yet, stops waiting for the
    /// `user_rejected` callback that carries Finfra's reason (the one place it gives the
    /// reason of a borrower created without e-KYC); `None` when nothing waits for one.
    pub(crate) fn rejection_reason_due(&self) -> Option<DateTime<Utc>> {
        if self.rejection_reason.is_some() {
            return None;
        }
        let seen = self
            .statuses
            .iter()
            .find(|s| s.status == BorrowerStatus::Rejected)?;
        (seen.source == Source::Poll).then(|| seen.at + CALLBACK_RETRY_HORIZON)
    }

    /// Whether KYC verification is done (`VERIFIED` or any later approval status).
    pub(crate) fn is_verified(&self) -> bool {
        self.has_reached(&BorrowerStatus::Verified)
            || self.has_reached(&BorrowerStatus::ApprovedByPartner)
            || self.has_reached(&BorrowerStatus::Approved)
    }
}

/// How long Finfra goes on delivering a callback that is not answered `2xx` (CONTRACT §7:
/// 10 tries, from 1 s doubling): a callback that has not come by then will not.
pub(crate) const CALLBACK_RETRY_HORIZON: TimeDelta = TimeDelta::minutes(17);

/// How far along the lifecycle a status is (CONTRACT §3); the two dead ends rank last so
/// that nothing overrides them.
fn rank(status: &BorrowerStatus) -> u8 {
    match status {
        BorrowerStatus::Unknown(_) => 0,
        BorrowerStatus::Pending => 1,
        BorrowerStatus::Verified => 2,
        BorrowerStatus::ApprovedByPartner => 3,
        BorrowerStatus::Approved => 4,
        BorrowerStatus::Rejected => 5,
        BorrowerStatus::Blocked => 6,
    }
}

/// A document uploaded through the two-step flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedDocument {
    /// Its type.
    pub r#type: DocumentType,
    /// Finfra's document id, used as the `file` of the create body.
    pub id: String,
}

/// e-KYC results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EkycFacts {
    /// OCR confidence.
    pub ocr_confidence: f64,
    /// Whether the OCR'd NIK equals the body's (`None` when the OCR read none).
    pub nik_matches: Option<bool>,
    /// Liveness, once checked.
    pub liveness: Option<Liveness>,
    /// Face match score, once checked.
    pub face_match_score: Option<f64>,
}

/// A hub check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubFact {
    /// The hub.
    pub provider: HubProvider,
    /// Its last answer.
    pub status: HubCheckStatus,
    /// When it answered.
    pub at: DateTime<Utc>,
}

/// What the credit bureaus said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditFacts {
    /// The score, 300 to 900.
    pub score: u32,
    /// Its grade.
    pub grade: CreditGrade,
    /// The bureaus that answered.
    pub sources: Vec<CreditSource>,
    /// Overdue loans per the score report (summed over bureaus).
    pub overdue_loans: u32,
    /// Worst days past due per the score report.
    pub max_days_past_due: u32,
    /// From the credit history, when read: records `LATE` or `WRITTEN_OFF`.
    pub history_bad_records: Option<u32>,
    /// From the credit history, when read: the worst days past due.
    pub history_max_days_past_due: Option<u32>,
}

/// The credit policy's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// Approve or decline.
    pub approved: bool,
    /// Each rule failed (empty when approved).
    pub reasons: Vec<String>,
    /// When decided.
    pub at: DateTime<Utc>,
}

/// The steps of an onboarding; their names are state names (a contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    CheckReturningBorrower,
    EkycOcr,
    EkycBiometric,
    CreateDocument,
    UploadDocument,
    CreateBorrower,
    SubmitKyc,
    AwaitUserCreated,
    HubCheck,
    RdfBiometric,
    AwaitUserVerified,
    CreditScore,
    CreditHistory,
    ApproveBorrower,
    AwaitUserApproved,
    BlockBorrower,
}

impl Step {
    /// Every step, in the order an onboarding may go through them.
    pub const ALL: &'static [Step] = &[
        Step::CheckReturningBorrower,
        Step::EkycOcr,
        Step::EkycBiometric,
        Step::CreateDocument,
        Step::UploadDocument,
        Step::CreateBorrower,
        Step::SubmitKyc,
        Step::AwaitUserCreated,
        Step::HubCheck,
        Step::RdfBiometric,
        Step::AwaitUserVerified,
        Step::CreditScore,
        Step::CreditHistory,
        Step::ApproveBorrower,
        Step::AwaitUserApproved,
        Step::BlockBorrower,
    ];

    /// The state name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CheckReturningBorrower => "check_returning_borrower",
            Self::EkycOcr => "ekyc_ocr",
            Self::EkycBiometric => "ekyc_biometric",
            Self::CreateDocument => "create_document",
            Self::UploadDocument => "upload_document",
            Self::CreateBorrower => "create_borrower",
            Self::SubmitKyc => "submit_kyc",
            Self::AwaitUserCreated => "await_user_created",
            Self::HubCheck => "hub_check",
            Self::RdfBiometric => "rdf_biometric",
            Self::AwaitUserVerified => "await_user_verified",
            Self::CreditScore => "credit_score",
            Self::CreditHistory => "credit_history",
            Self::ApproveBorrower => "approve_borrower",
            Self::AwaitUserApproved => "await_user_approved",
            Self::BlockBorrower => "block_borrower",
        }
    }
}

/// The names of the phases that are not steps.
pub const NEEDS_ATTENTION: &str = "needs_attention";
/// The borrower is `APPROVED`.
pub const APPROVED: &str = "approved";
/// The credit policy declined; the borrower was blocked.
pub const DECLINED: &str = "declined";
/// Failed.
pub const FAILED: &str = "failed";
/// Cancelled.
pub const CANCELLED: &str = "cancelled";

/// Where an onboarding is, with what the step needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// A returning borrower (an earlier onboarding of this NIK completed): reading the
    /// borrower it created, to carry on from its status instead of creating another.
    CheckReturningBorrower { user_id: UserId, run: Run },
    /// OCR of the KTP image; opens the KYC session.
    EkycOcr { run: Run },
    /// Liveness and face match on the session.
    EkycBiometric { kyc_id: KycId, run: Run },
    /// Step 1 of uploading document `index`.
    CreateDocument { index: usize, run: Run },
    /// Step 2: the bytes to the presigned URL.
    UploadDocument {
        index: usize,
        document: CreatedDocument,
        run: Run,
    },
    /// The create call (on the KYC session when there is one).
    CreateBorrower { kyc_id: Option<KycId>, run: Run },
    /// Submitting the KYC session.
    SubmitKyc { kyc_id: KycId, run: Run },
    /// Waiting for the borrower's id (`user_created`), polling the KYC submission when
    /// `poll` names it.
    AwaitUserCreated { poll: Option<KycId>, wait: Waiting },
    /// Hub check `index` of the definition's list.
    HubCheck {
        user_id: UserId,
        index: usize,
        /// Since when it answers `PENDING`.
        pending_since: Option<DateTime<Utc>>,
        run: Run,
    },
    /// The RDF biometric verification.
    RdfBiometric {
        user_id: UserId,
        pending_since: Option<DateTime<Utc>>,
        run: Run,
    },
    /// Waiting for `user_verified`, polling the borrower.
    AwaitUserVerified { user_id: UserId, wait: Waiting },
    /// The score report.
    CreditScore { user_id: UserId, run: Run },
    /// The credit history by NIK.
    CreditHistory { user_id: UserId, run: Run },
    /// The policy approved: approving at Finfra.
    ApproveBorrower { user_id: UserId, run: Run },
    /// Waiting for `user_approved`, polling the borrower.
    AwaitUserApproved { user_id: UserId, wait: Waiting },
    /// The policy declined: blocking at Finfra with the reasons.
    BlockBorrower { user_id: UserId, run: Run },
    /// Stuck in `stuck` until an operator resolves or cancels.
    NeedsAttention {
        stuck: Box<Phase>,
        reason: Reason,
        since: DateTime<Utc>,
    },
    /// Done: the borrower is `APPROVED`.
    Approved { user_id: UserId },
    /// Done: declined by the credit policy and blocked.
    Declined {
        user_id: UserId,
        reasons: Vec<String>,
    },
    /// Failed at `step`.
    Failed { step: String, reason: Reason },
    /// Cancelled at `step`.
    Cancelled {
        step: String,
        by: String,
        reason: String,
    },
}

impl Phase {
    /// The step, for phases that are steps.
    #[must_use]
    pub fn step(&self) -> Option<Step> {
        Some(match self {
            Self::CheckReturningBorrower { .. } => Step::CheckReturningBorrower,
            Self::EkycOcr { .. } => Step::EkycOcr,
            Self::EkycBiometric { .. } => Step::EkycBiometric,
            Self::CreateDocument { .. } => Step::CreateDocument,
            Self::UploadDocument { .. } => Step::UploadDocument,
            Self::CreateBorrower { .. } => Step::CreateBorrower,
            Self::SubmitKyc { .. } => Step::SubmitKyc,
            Self::AwaitUserCreated { .. } => Step::AwaitUserCreated,
            Self::HubCheck { .. } => Step::HubCheck,
            Self::RdfBiometric { .. } => Step::RdfBiometric,
            Self::AwaitUserVerified { .. } => Step::AwaitUserVerified,
            Self::CreditScore { .. } => Step::CreditScore,
            Self::CreditHistory { .. } => Step::CreditHistory,
            Self::ApproveBorrower { .. } => Step::ApproveBorrower,
            Self::AwaitUserApproved { .. } => Step::AwaitUserApproved,
            Self::BlockBorrower { .. } => Step::BlockBorrower,
            Self::NeedsAttention { .. }
            | Self::Approved { .. }
            | Self::Declined { .. }
            | Self::Failed { .. }
            | Self::Cancelled { .. } => return None,
        })
    }
}

impl kit::Phase for Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::NeedsAttention { .. } => NEEDS_ATTENTION,
            Self::Approved { .. } => APPROVED,
            Self::Declined { .. } => DECLINED,
            Self::Failed { .. } => FAILED,
            Self::Cancelled { .. } => CANCELLED,
            other => other.step().map_or(FAILED, Step::as_str),
        }
    }

    fn finished(&self) -> Option<Status> {
        match self {
            Self::Approved { .. } | Self::Declined { .. } => Some(Status::Completed),
            Self::Failed { .. } => Some(Status::Failed),
            Self::Cancelled { .. } => Some(Status::Cancelled),
            _ => None,
        }
    }

    fn run(&self) -> Option<&Run> {
        match self {
            Self::EkycOcr { run }
            | Self::CheckReturningBorrower { run, .. }
            | Self::EkycBiometric { run, .. }
            | Self::CreateDocument { run, .. }
            | Self::UploadDocument { run, .. }
            | Self::CreateBorrower { run, .. }
            | Self::SubmitKyc { run, .. }
            | Self::HubCheck { run, .. }
            | Self::RdfBiometric { run, .. }
            | Self::CreditScore { run, .. }
            | Self::CreditHistory { run, .. }
            | Self::ApproveBorrower { run, .. }
            | Self::BlockBorrower { run, .. } => Some(run),
            _ => None,
        }
    }

    fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            Self::EkycOcr { run }
            | Self::CheckReturningBorrower { run, .. }
            | Self::EkycBiometric { run, .. }
            | Self::CreateDocument { run, .. }
            | Self::UploadDocument { run, .. }
            | Self::CreateBorrower { run, .. }
            | Self::SubmitKyc { run, .. }
            | Self::HubCheck { run, .. }
            | Self::RdfBiometric { run, .. }
            | Self::CreditScore { run, .. }
            | Self::CreditHistory { run, .. }
            | Self::ApproveBorrower { run, .. }
            | Self::BlockBorrower { run, .. } => Some(run),
            _ => None,
        }
    }

    fn wait(&self) -> Option<&Waiting> {
        match self {
            Self::AwaitUserCreated { wait, .. }
            | Self::AwaitUserVerified { wait, .. }
            | Self::AwaitUserApproved { wait, .. } => Some(wait),
            _ => None,
        }
    }

    fn wait_mut(&mut self) -> Option<&mut Waiting> {
        match self {
            Self::AwaitUserCreated { wait, .. }
            | Self::AwaitUserVerified { wait, .. }
            | Self::AwaitUserApproved { wait, .. } => Some(wait),
            _ => None,
        }
    }

    fn stuck(&self) -> Option<(&Self, &Reason)> {
        match self {
            Self::NeedsAttention { stuck, reason, .. } => Some((stuck, reason)),
            _ => None,
        }
    }

    fn stuck_mut(&mut self) -> Option<&mut Self> {
        match self {
            Self::NeedsAttention { stuck, .. } => Some(stuck),
            _ => None,
        }
    }

    fn needs_attention(stuck: Self, reason: Reason, since: DateTime<Utc>) -> Self {
        Self::NeedsAttention {
            stuck: Box::new(stuck),
            reason,
            since,
        }
    }

    fn failed(step: String, reason: Reason) -> Self {
        Self::Failed { step, reason }
    }
}
