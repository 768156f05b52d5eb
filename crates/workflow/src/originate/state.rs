//! The origination state: what was asked (`request`), what is known about the loan
//! (`loan`, the facts SQL reads, in `facts`), and where the workflow is (`phase`).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use finfra_api::model::common::BankAccount;
use finfra_api::model::loan::{Frequency, LoanType};
use finfra_api::model::virtual_account::BankCode;

use crate::action::Reason;
use crate::definition::{Definition, OriginationPolicy};
use crate::ids::{UserId, WorkflowId};
use crate::kit::{self, Run, Waiting};
use crate::machine::Status;

use super::facts::LoanRecord;

/// The whole state of one origination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginateState {
    /// The engine's id of this workflow (seeds operation keys, the loan's `unique_id` and
    /// jitter).
    pub workflow_id: WorkflowId,
    /// The definition pinned at start: decisions never read the registry (stored once, by
    /// pin: `crate::stored`).
    pub definition: Definition,
    /// Its `[origination]` section (validated present at submit), at hand.
    pub policy: OriginationPolicy,
    /// When the workflow started.
    pub started_at: DateTime<Utc>,
    /// What was submitted.
    pub request: LoanRequest,
    /// What is known about the borrower and the loan: `$.loan` in SQL.
    pub loan: LoanRecord,
    /// Where the workflow is: `$.phase.state` is the state name.
    pub phase: Phase,
}

impl OriginateState {
    /// The facts SQL sees (`workflows.facts`, the `loans` view): the loan's, and
    /// `onboarding_business_key`, the onboarding whose borrower the loan awaits (`null` when
    /// the input names a Finfra user id). The views read it here, never in the input, which
    /// holds personal data (the disbursement account) and is not for SQL readers.
    #[must_use]
    pub fn facts(&self) -> Value {
        let mut facts = self.loan.facts();
        if let Value::Object(map) = &mut facts {
            let onboarding = match &self.request.borrower {
                BorrowerRef::Onboarding(key) => Value::String(key.clone()),
                BorrowerRef::UserId(_) => Value::Null,
            };
            map.insert("onboarding_business_key".to_owned(), onboarding);
        }
        facts
    }
}

/// The validated input, minus the definition (which sits beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanRequest {
    /// Who borrows.
    pub borrower: BorrowerRef,
    /// What is borrowed.
    pub terms: LoanTerms,
    /// Where the money goes.
    pub disbursement_account: BankAccount,
    /// The repayment virtual account's bank.
    pub virtual_account_bank: BankCode,
}

/// The borrower, as the input names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BorrowerRef {
    /// A Finfra borrower id: `{"user_id": "<24 hex>"}`.
    UserId(UserId),
    /// The business key of an `onboard-borrower` workflow whose end is awaited:
    /// `{"onboarding": "<business key>"}`.
    Onboarding(String),
}

/// The product and its terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoanTerms {
    /// One repayment at `due_date`.
    SinglePayment {
        principal_amount: Decimal,
        interest_amount: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fee_amount: Option<Decimal>,
        due_date: NaiveDate,
        purpose: String,
    },
    /// `tenor` installments.
    Bnpl {
        principal_amount: Decimal,
        tenor: u32,
        frequency: Frequency,
        interest_rate: Decimal,
        first_due_date: NaiveDate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merchant_name: Option<String>,
    },
}

impl LoanTerms {
    /// Finfra's loan type.
    #[must_use]
    pub fn loan_type(&self) -> LoanType {
        match self {
            Self::SinglePayment { .. } => LoanType::SinglePayment,
            Self::Bnpl { .. } => LoanType::Bnpl,
        }
    }

    /// Whether Finfra announces this loan's events as `bnpl_*`.
    #[must_use]
    pub fn is_bnpl(&self) -> bool {
        matches!(self, Self::Bnpl { .. })
    }

    /// The principal.
    #[must_use]
    pub fn principal(&self) -> Decimal {
        match self {
            Self::SinglePayment {
                principal_amount, ..
            }
            | Self::Bnpl {
                principal_amount, ..
            } => *principal_amount,
        }
    }
}

/// The steps of an origination; their names are state names (a contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    AwaitOnboarding,
    CheckBorrower,
    AwaitBorrowerApproved,
    CreateLoan,
    InitiateSigning,
    AwaitSigned,
    RejectLoan,
    DisburseLoan,
    AwaitDisbursement,
    RequestVirtualAccount,
    Repaying,
}

impl Step {
    /// Every step, in route order.
    pub const ALL: &'static [Step] = &[
        Step::AwaitOnboarding,
        Step::CheckBorrower,
        Step::AwaitBorrowerApproved,
        Step::CreateLoan,
        Step::InitiateSigning,
        Step::AwaitSigned,
        Step::RejectLoan,
        Step::DisburseLoan,
        Step::AwaitDisbursement,
        Step::RequestVirtualAccount,
        Step::Repaying,
    ];

    /// The state name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitOnboarding => "await_onboarding",
            Self::CheckBorrower => "check_borrower",
            Self::AwaitBorrowerApproved => "await_borrower_approved",
            Self::CreateLoan => "create_loan",
            Self::InitiateSigning => "initiate_signing",
            Self::AwaitSigned => "await_signed",
            Self::RejectLoan => "reject_loan",
            Self::DisburseLoan => "disburse_loan",
            Self::AwaitDisbursement => "await_disbursement",
            Self::RequestVirtualAccount => "request_virtual_account",
            Self::Repaying => "repaying",
        }
    }

    /// Whether a loan may exist at Finfra from this step on, so that a cancel must reject
    /// it there.
    #[must_use]
    pub fn loan_may_exist(self) -> bool {
        !matches!(
            self,
            Self::AwaitOnboarding | Self::CheckBorrower | Self::AwaitBorrowerApproved
        )
    }
}

/// Stuck until an operator resolves or cancels.
pub const NEEDS_ATTENTION: &str = "needs_attention";
/// Repaid in full: `PAID` at Finfra.
pub const PAID: &str = "paid";
/// The loan was rejected at Finfra (signing timeout, or by someone else).
pub const REJECTED: &str = "rejected";
/// Failed (policy, borrower not approved, Finfra refused the loan).
pub const FAILED: &str = "failed";
/// Cancelled by an operator (the loan, if any, rejected at Finfra first).
pub const CANCELLED: &str = "cancelled";

/// Why a loan is being rejected at Finfra.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum RejectWhy {
    /// The borrower did not sign within the definition's signing timeout.
    SigningTimeout {
        /// Since when signing was awaited.
        since: DateTime<Utc>,
    },
    /// An operator cancelled the workflow before the disbursement.
    Cancel {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
}

/// Where an origination is, with what the step needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for the `onboard-borrower` workflow with this business key to finish.
    AwaitOnboarding { business_key: String, wait: Waiting },
    /// Reading the borrower: loans need `APPROVED`.
    CheckBorrower { user_id: UserId, run: Run },
    /// The borrower is `APPROVED_BY_PARTNER`: waiting for `APPROVED`, polling.
    AwaitBorrowerApproved { user_id: UserId, wait: Waiting },
    /// Creating the loan (its `unique_id` makes a repeat answer `409`).
    CreateLoan { user_id: UserId, run: Run },
    /// Asking Finfra for the borrower's signing session.
    InitiateSigning { run: Run },
    /// Waiting for `loan_signed` (`bnpl_signed`), polling the loan.
    AwaitSigned { wait: Waiting },
    /// Rejecting the loan at Finfra.
    RejectLoan { why: RejectWhy, run: Run },
    /// Disbursing: never sent again without reading the loan first.
    DisburseLoan { run: Run },
    /// Waiting for `loan_disbursed` or `loan_disbursement_failed`, polling the loan.
    AwaitDisbursement { wait: Waiting },
    /// Asking for the repayment virtual account.
    RequestVirtualAccount { run: Run },
    /// Applying repayments, flagging overdue installments, until `PAID`.
    Repaying {
        wait: Waiting,
        /// The next time an installment becomes overdue, if any is left to check.
        next_check: Option<DateTime<Utc>>,
    },
    /// Stuck in `stuck` until an operator resolves or cancels.
    NeedsAttention {
        stuck: Box<Phase>,
        reason: Reason,
        since: DateTime<Utc>,
    },
    /// Done: repaid in full.
    Paid,
    /// The loan was rejected at Finfra at `step`.
    Rejected { step: String, reason: Reason },
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
            Self::AwaitOnboarding { .. } => Step::AwaitOnboarding,
            Self::CheckBorrower { .. } => Step::CheckBorrower,
            Self::AwaitBorrowerApproved { .. } => Step::AwaitBorrowerApproved,
            Self::CreateLoan { .. } => Step::CreateLoan,
            Self::InitiateSigning { .. } => Step::InitiateSigning,
            Self::AwaitSigned { .. } => Step::AwaitSigned,
            Self::RejectLoan { .. } => Step::RejectLoan,
            Self::DisburseLoan { .. } => Step::DisburseLoan,
            Self::AwaitDisbursement { .. } => Step::AwaitDisbursement,
            Self::RequestVirtualAccount { .. } => Step::RequestVirtualAccount,
            Self::Repaying { .. } => Step::Repaying,
            Self::NeedsAttention { .. }
            | Self::Paid
            | Self::Rejected { .. }
            | Self::Failed { .. }
            | Self::Cancelled { .. } => return None,
        })
    }
}

impl kit::Phase for Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::NeedsAttention { .. } => NEEDS_ATTENTION,
            Self::Paid => PAID,
            Self::Rejected { .. } => REJECTED,
            Self::Failed { .. } => FAILED,
            Self::Cancelled { .. } => CANCELLED,
            other => other.step().map_or(FAILED, Step::as_str),
        }
    }

    fn finished(&self) -> Option<Status> {
        match self {
            Self::Paid => Some(Status::Completed),
            Self::Rejected { .. } | Self::Failed { .. } => Some(Status::Failed),
            Self::Cancelled { .. } => Some(Status::Cancelled),
            _ => None,
        }
    }

    fn run(&self) -> Option<&Run> {
        match self {
            Self::CheckBorrower { run, .. }
            | Self::CreateLoan { run, .. }
            | Self::InitiateSigning { run }
            | Self::RejectLoan { run, .. }
            | Self::DisburseLoan { run }
            | Self::RequestVirtualAccount { run } => Some(run),
            _ => None,
        }
    }

    fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            Self::CheckBorrower { run, .. }
            | Self::CreateLoan { run, .. }
            | Self::InitiateSigning { run }
            | Self::RejectLoan { run, .. }
            | Self::DisburseLoan { run }
            | Self::RequestVirtualAccount { run } => Some(run),
            _ => None,
        }
    }

    fn wait(&self) -> Option<&Waiting> {
        match self {
            Self::AwaitOnboarding { wait, .. }
            | Self::AwaitBorrowerApproved { wait, .. }
            | Self::AwaitSigned { wait }
            | Self::AwaitDisbursement { wait }
            | Self::Repaying { wait, .. } => Some(wait),
            _ => None,
        }
    }

    fn wait_mut(&mut self) -> Option<&mut Waiting> {
        match self {
            Self::AwaitOnboarding { wait, .. }
            | Self::AwaitBorrowerApproved { wait, .. }
            | Self::AwaitSigned { wait }
            | Self::AwaitDisbursement { wait }
            | Self::Repaying { wait, .. } => Some(wait),
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
