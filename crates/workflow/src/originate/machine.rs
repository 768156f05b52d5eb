//! The kit's view of an origination asks Finfra ([`Machine`]): what each phase asks Finfra (its
//! own request, the read that tells whether it was applied, the poll of a wait, the
//! callbacks a wait expects), and where the kind's answers to the kit's questions live.

use std::time::Duration;

use chrono::{DateTime, Utc};
use finfra_api::callback::{CallbackTitle, LoanEvent};
use finfra_api::model::loan::{
    CreateBnplLoan, CreateSinglePaymentLoan, InitiateSigning, RejectLoan,
};
use finfra_api::model::virtual_account::VirtualAccountRequest;
use finfra_api::retry::RetryPolicy;

use crate::action::{Action, CorrelationKey, Expected, Outcome, Reason};
use crate::event::{CallbackEvent, WorkflowFinished};
use crate::failure::CallFailure;
use crate::ids::{UserId, WorkflowId};
use crate::kit::{Machine, Run, Waiting};
use crate::machine::{Kind, Transition};
use crate::request::FinfraRequest;
use crate::response::FinfraResponse;

use super::state::{LoanTerms, OriginateState, Phase, RejectWhy};
use super::{calls, commands, route, waits};

/// The title of a loan event for this loan's type.
pub(super) fn loan_title(state: &OriginateState, event: LoanEvent) -> CallbackTitle {
    let bnpl = state.request.terms.is_bnpl();
    match (event, bnpl) {
        (LoanEvent::Created, false) => CallbackTitle::LoanCreated,
        (LoanEvent::Signed, false) => CallbackTitle::LoanSigned,
        (LoanEvent::Disbursed, false) => CallbackTitle::LoanDisbursed,
        (LoanEvent::DisbursementFailed, false) => CallbackTitle::LoanDisbursementFailed,
        (LoanEvent::Rejected, false) => CallbackTitle::LoanRejected,
        (LoanEvent::Paid, false) => CallbackTitle::LoanPaid,
        (LoanEvent::Created, true) => CallbackTitle::BnplCreated,
        (LoanEvent::Signed, true) => CallbackTitle::BnplSigned,
        (LoanEvent::Disbursed, true) => CallbackTitle::BnplDisbursed,
        (LoanEvent::DisbursementFailed, true) => CallbackTitle::BnplDisbursementFailed,
        (LoanEvent::Rejected, true) => CallbackTitle::BnplRejected,
        (LoanEvent::Paid, true) => CallbackTitle::BnplPaid,
    }
}

/// The title the receiver gives a virtual-account payment (it has no `callback_title`).
pub const PAYMENT_TITLE: &str = "payment";

fn get_loan(state: &OriginateState) -> FinfraRequest {
    FinfraRequest::GetLoan {
        unique_id: state.loan.unique_id.as_str().to_owned(),
    }
}

/// The reason sent with a rejection.
pub(super) fn reject_reason(state: &OriginateState, why: &RejectWhy) -> String {
    match why {
        RejectWhy::SigningTimeout { since } => format!(
            "not signed within {} of {since} (policy {})",
            route::human(state.policy.timeouts.signing),
            state.definition.name
        ),
        RejectWhy::Cancel { by, reason } => format!("cancelled by {by}: {reason}"),
    }
}

impl Machine for OriginateState {
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
        match (&self.phase, &self.loan.user_id) {
            (Phase::Paid, Some(user_id)) => Action::Complete {
                outcome: Outcome::LoanPaid {
                    unique_id: self.loan.unique_id.clone(),
                    user_id: user_id.clone(),
                    total_paid: self.loan.paid(),
                },
            },
            (Phase::Rejected { reason, .. } | Phase::Failed { reason, .. }, _) => Action::Fail {
                reason: reason.clone(),
            },
            (Phase::Cancelled { by, reason, .. }, _) => Action::Cancelled {
                by: by.clone(),
                reason: reason.clone(),
            },
            _ => Action::Fail {
                reason: Reason::new(
                    "inconsistent_state",
                    "the loan is paid, but the state names no borrower",
                ),
            },
        }
    }

    fn inconsistent_hint(&self) -> &'static str {
        "inspect the loan at Finfra before doing anything"
    }

    /// The current call step's own request.
    fn request(&self) -> Option<FinfraRequest> {
        let unique_id = self.loan.unique_id.as_str().to_owned();
        Some(match &self.phase {
            Phase::CheckBorrower { user_id, .. } => FinfraRequest::GetBorrower {
                user_id: user_id.clone(),
            },
            Phase::CreateLoan { user_id, .. } => {
                let account = self.request.disbursement_account.clone();
                match &self.request.terms {
                    LoanTerms::SinglePayment {
                        principal_amount,
                        interest_amount,
                        fee_amount,
                        due_date,
                        purpose,
                    } => FinfraRequest::CreateSinglePaymentLoan {
                        user_id: user_id.clone(),
                        body: CreateSinglePaymentLoan {
                            unique_id,
                            principal_amount: *principal_amount,
                            interest_amount: *interest_amount,
                            fee_amount: *fee_amount,
                            due_date: *due_date,
                            purpose: purpose.clone(),
                            disbursement_account: account,
                        },
                    },
                    LoanTerms::Bnpl {
                        principal_amount,
                        tenor,
                        frequency,
                        interest_rate,
                        first_due_date,
                        merchant_name,
                    } => FinfraRequest::CreateBnplLoan {
                        user_id: user_id.clone(),
                        body: CreateBnplLoan {
                            unique_id,
                            principal_amount: *principal_amount,
                            tenor: *tenor,
                            frequency: frequency.clone(),
                            interest_rate: *interest_rate,
                            first_due_date: *first_due_date,
                            merchant_name: merchant_name.clone(),
                            disbursement_account: account,
                        },
                    },
                }
            }
            Phase::InitiateSigning { .. } => FinfraRequest::InitiateSigning {
                body: InitiateSigning { unique_id },
            },
            Phase::RejectLoan { why, .. } => FinfraRequest::RejectLoan {
                unique_id,
                body: RejectLoan {
                    reason: reject_reason(self, why),
                },
            },
            Phase::DisburseLoan { .. } => FinfraRequest::DisburseLoan { unique_id },
            Phase::RequestVirtualAccount { .. } => FinfraRequest::RequestVirtualAccount {
                body: VirtualAccountRequest {
                    loan_unique_id: unique_id,
                    bank_code: self.request.virtual_account_bank.clone(),
                },
            },
            Phase::AwaitOnboarding { .. }
            | Phase::AwaitBorrowerApproved { .. }
            | Phase::AwaitSigned { .. }
            | Phase::AwaitDisbursement { .. }
            | Phase::Repaying { .. }
            | Phase::NeedsAttention { .. }
            | Phase::Paid
            | Phase::Rejected { .. }
            | Phase::Failed { .. }
            | Phase::Cancelled { .. } => return None,
        })
    }

    /// The read that tells whether the current call step's request was applied.
    fn reconcile_read(&self) -> Option<FinfraRequest> {
        match &self.phase {
            Phase::CreateLoan { .. }
            | Phase::InitiateSigning { .. }
            | Phase::RejectLoan { .. }
            | Phase::DisburseLoan { .. }
            | Phase::RequestVirtualAccount { .. } => Some(get_loan(self)),
            _ => None,
        }
    }

    /// The callbacks that end (or feed) the current wait.
    fn expected(&self) -> Vec<Expected> {
        let loan_id = self.loan.unique_id.as_str();
        let by_loan = |event| {
            Expected::new(
                loan_title(self, event),
                CorrelationKey::LoanUniqueId,
                loan_id,
            )
        };
        match &self.phase {
            Phase::AwaitOnboarding { business_key, .. } => {
                vec![WorkflowFinished::expected(
                    Kind::OnboardBorrower,
                    business_key,
                )]
            }
            Phase::AwaitBorrowerApproved { user_id, .. } => [
                CallbackTitle::UserApproved,
                CallbackTitle::UserRejected,
                CallbackTitle::UserBlocked,
            ]
            .into_iter()
            .map(|title| Expected::new(title, CorrelationKey::UserId, user_id.as_str()))
            .collect(),
            Phase::AwaitSigned { .. } => {
                vec![by_loan(LoanEvent::Signed), by_loan(LoanEvent::Rejected)]
            }
            Phase::AwaitDisbursement { .. } => vec![
                by_loan(LoanEvent::Disbursed),
                by_loan(LoanEvent::DisbursementFailed),
            ],
            Phase::Repaying { .. } => {
                let mut events = vec![by_loan(LoanEvent::Paid)];
                if let Some(va) = &self.loan.virtual_account {
                    events.push(Expected::new(
                        CallbackTitle::from(PAYMENT_TITLE),
                        CorrelationKey::ExternalId,
                        va.external_id.clone(),
                    ));
                }
                events
            }
            _ => Vec::new(),
        }
    }

    /// The current wait's fallback poll.
    fn poll_request(&self) -> Option<FinfraRequest> {
        match &self.phase {
            Phase::AwaitBorrowerApproved { user_id, .. } => Some(FinfraRequest::GetBorrower {
                user_id: user_id.clone(),
            }),
            Phase::AwaitSigned { .. }
            | Phase::AwaitDisbursement { .. }
            | Phase::Repaying { .. } => Some(get_loan(self)),
            _ => None,
        }
    }

    fn poll_every(&self) -> Duration {
        match &self.phase {
            Phase::Repaying { .. } => route::repayment_poll_every(self),
            _ => self.policy.poll_interval,
        }
    }

    fn also_wake_at(&self) -> Option<DateTime<Utc>> {
        match &self.phase {
            Phase::Repaying {
                next_check: Some(check),
                ..
            } => Some(*check),
            _ => None,
        }
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
        _now: DateTime<Utc>,
    ) -> Transition<Self> {
        commands::resolve_user_id(self, stuck, user_id, by, reason)
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
        _run: &Run,
        _request: &FinfraRequest,
        failure: &CallFailure,
        _now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        calls::own_failure(self, failure)
    }

    fn own_read_failure(
        &self,
        run: &Run,
        request: &FinfraRequest,
        failure: &CallFailure,
        now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        calls::own_read_failure(self, run, request, failure, now)
    }

    fn callback_in_call(&self, callback: &CallbackEvent, now: DateTime<Utc>) -> Transition<Self> {
        waits::callback_in_call(self, callback, now)
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
        waits::timed_out(self.clone(), now)
    }

    fn callback_in_wait(&self, callback: &CallbackEvent, now: DateTime<Utc>) -> Transition<Self> {
        waits::callback_in_wait(self, callback, now)
    }

    fn woken_in_wait(&self, wait: &Waiting, now: DateTime<Utc>) -> Transition<Self> {
        waits::woken(self, wait, now)
    }
}
