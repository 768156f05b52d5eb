//! The origination's route: which phase follows which, what each phase asks Finfra, and
//! the action derived from the state alone.
//!
//! ```text
//! [await_onboarding] → check_borrower → [await_borrower_approved] → create_loan
//!   → initiate_signing → await_signed → disburse_loan → await_disbursement
//!   → request_virtual_account → repaying → paid
//!                        await_signed ⇢ (signing timeout) reject_loan → rejected
//! ```
//!
//! Where a loan goes next is decided from the facts (`route_loan`), not from the step it
//! comes from: so a fact learnt early (a `loan_disbursed` overtaking `loan_signed`, a read
//! showing the loan further along) skips what is already done, and a disbursement Finfra
//! already accepted is never requested again.

use chrono::{DateTime, Utc};

use finfra_api::callback::{CallbackTitle, LoanEvent};
use finfra_api::model::borrower::{Borrower, BorrowerStatus};
use finfra_api::model::loan::{
    CreateBnplLoan, CreateSinglePaymentLoan, InitiateSigning, LoanStatus, RejectLoan,
};
use finfra_api::model::virtual_account::VirtualAccountRequest;

use crate::action::{Action, CorrelationKey, Expected, Outcome, Reason};
use crate::event::WorkflowFinished;
use crate::ids::{OperationKey, UserId};
use crate::machine::{Handled, Kind, Transition};
use crate::request::FinfraRequest;
use crate::run::{self, Run, Stage, Waiting};

use super::facts::overdue_at;
use super::state::{LoanTerms, OriginateState, Phase, RejectWhy, Step};

type T = Transition<OriginateState>;

/// A transition to `state`, which moved on.
pub(super) fn advance(state: OriginateState, note: impl Into<String>) -> T {
    Transition {
        action: action(&state),
        state,
        note: note.into(),
        handled: Handled::Advanced,
    }
}

/// A transition that changes nothing.
pub(super) fn ignore(state: &OriginateState, note: impl Into<String>) -> T {
    Transition {
        state: state.clone(),
        action: action(state),
        note: note.into(),
        handled: Handled::Ignored,
    }
}

/// Nothing changed, but the executor asked where the workflow stands: act on the action.
pub(super) fn resume(state: &OriginateState, note: impl Into<String>) -> T {
    Transition {
        state: state.clone(),
        action: action(state),
        note: note.into(),
        handled: Handled::Resumed,
    }
}

/// Ends the workflow `failed` at its current step.
pub(super) fn fail(mut state: OriginateState, reason: Reason) -> T {
    let note = format!("failed at {}: {reason}", state.phase.name());
    set_failed(&mut state, reason);
    advance(state, note)
}

pub(super) fn set_failed(state: &mut OriginateState, reason: Reason) {
    let step = state.phase.active().name().to_owned();
    state.phase = Phase::Failed { step, reason };
}

/// Stops the workflow where it is, for a person.
pub(super) fn attention(mut state: OriginateState, reason: Reason, now: DateTime<Utc>) -> T {
    let note = format!("needs attention at {}: {reason}", state.phase.name());
    set_attention(&mut state, reason, now);
    advance(state, note)
}

pub(super) fn set_attention(state: &mut OriginateState, reason: Reason, now: DateTime<Utc>) {
    let stuck = std::mem::replace(&mut state.phase, Phase::Paid);
    state.phase = Phase::NeedsAttention {
        stuck: Box::new(stuck),
        reason,
        since: now,
    };
}

/// The key of the operation of `step` (`occurrence` tells repeated ones apart: the second
/// disbursement after a refusal).
pub(super) fn op_key(state: &OriginateState, step: Step, occurrence: usize) -> OperationKey {
    let occurrence = u32::try_from(occurrence).unwrap_or(u32::MAX);
    OperationKey::derive(&state.workflow_id, step.as_str(), occurrence)
}

/// The create step's key, whose text is the loan's `unique_id`.
pub(super) fn create_key(workflow: &crate::ids::WorkflowId) -> OperationKey {
    OperationKey::derive(workflow, Step::CreateLoan.as_str(), 0)
}

/// The first phase of a new origination.
pub(super) fn begin(state: &mut OriginateState, now: DateTime<Utc>) {
    match state.request.borrower.clone() {
        super::state::BorrowerRef::UserId(user_id) => check_borrower(state, user_id),
        super::state::BorrowerRef::Onboarding(business_key) => {
            state.phase = Phase::AwaitOnboarding {
                business_key,
                wait: Waiting::new(now, state.policy.timeouts.onboarding, None),
            };
        }
    }
}

/// Reads the borrower.
pub(super) fn check_borrower(state: &mut OriginateState, user_id: UserId) {
    state.loan.user_id = Some(user_id.clone());
    state.phase = Phase::CheckBorrower {
        user_id,
        run: Run::new(None),
    };
}

/// What a read of the borrower means: create the loan or wait for `APPROVED` (`Ok`), or
/// the reason the loan cannot be made (`Err`: the workflow fails with it).
pub(super) fn after_borrower(
    state: &mut OriginateState,
    borrower: &Borrower,
    user_id: &UserId,
    now: DateTime<Utc>,
) -> Result<(), Reason> {
    state.loan.borrower_status = Some(borrower.status.clone());
    let wanted = &state.definition.onboarding.borrower_type;
    if &borrower.r#type != wanted {
        return Err(Reason::new(
            "borrower_type_mismatch",
            format!(
                "borrower {user_id} is {}; definition {} lends to {wanted} borrowers",
                borrower.r#type, state.definition.name
            ),
        ));
    }
    match &borrower.status {
        BorrowerStatus::Approved => {
            create_loan(state, user_id.clone());
            Ok(())
        }
        BorrowerStatus::ApprovedByPartner => {
            if !matches!(state.phase, Phase::AwaitBorrowerApproved { .. }) {
                state.phase = Phase::AwaitBorrowerApproved {
                    user_id: user_id.clone(),
                    wait: Waiting::new(
                        now,
                        state.policy.timeouts.borrower_approved,
                        Some(state.policy.poll_interval),
                    ),
                };
            }
            Ok(())
        }
        other => Err(Reason::new(
            "borrower_not_approved",
            format!("borrower {user_id} is {other}: loans need APPROVED"),
        )),
    }
}

/// The create call.
pub(super) fn create_loan(state: &mut OriginateState, user_id: UserId) {
    state.loan.user_id = Some(user_id.clone());
    state.phase = Phase::CreateLoan {
        user_id,
        run: Run::new(Some(create_key(&state.workflow_id))),
    };
}

/// Puts the loan where its facts say it is. Never straight to a disbursement request once
/// one was sent (or may have been): that goes through a read first.
pub(super) fn route_loan(state: &mut OriginateState, now: DateTime<Utc>) {
    let loan = &state.loan;
    let signing_started = loan.has_reached(&LoanStatus::Signing);
    if loan.is_paid() {
        state.phase = Phase::Paid;
    } else if loan.is_rejected() {
        let reason = loan_rejected(state);
        let step = state.phase.active().name().to_owned();
        state.phase = Phase::Rejected { step, reason };
    } else if loan.is_disbursed() && loan.virtual_account.is_some() {
        start_repaying(state, now);
    } else if loan.is_disbursed() {
        state.phase = Phase::RequestVirtualAccount {
            run: Run::new(Some(op_key(state, Step::RequestVirtualAccount, 0))),
        };
    } else if loan.disbursement_in_progress() || loan.disbursement_failed() {
        await_disbursement(state, now);
    } else if loan.is_signed() {
        disburse(state);
    } else if signing_started {
        if !matches!(state.phase, Phase::AwaitSigned { .. }) {
            state.phase = Phase::AwaitSigned {
                wait: Waiting::new(
                    now,
                    state.policy.timeouts.signing,
                    Some(state.policy.poll_interval),
                ),
            };
        }
    } else if loan.created {
        state.phase = Phase::InitiateSigning {
            run: Run::new(Some(op_key(state, Step::InitiateSigning, 0))),
        };
    } else if let Some(user_id) = loan.user_id.clone() {
        create_loan(state, user_id);
    }
}

fn loan_rejected(state: &OriginateState) -> Reason {
    let why = state
        .loan
        .rejection_reason
        .clone()
        .unwrap_or_else(|| "no reason given".to_owned());
    Reason::new(
        "loan_rejected",
        format!(
            "loan {} was rejected at Finfra: {why}",
            state.loan.unique_id
        ),
    )
}

/// The disbursement step: the first request is sent at once (nothing was sent before);
/// any later one only after a read showed no disbursement in progress.
pub(super) fn disburse(state: &mut OriginateState) {
    let occurrence = state.loan.disbursement.failures.len();
    let mut run = Run::new(Some(op_key(state, Step::DisburseLoan, occurrence)));
    if state.loan.disbursement.requested {
        run.stage = Stage::Reconcile;
    }
    state.loan.disbursement.requested = true;
    state.phase = Phase::DisburseLoan { run };
}

/// Waits for the bank's answer (unless it is known).
pub(super) fn await_disbursement(state: &mut OriginateState, now: DateTime<Utc>) {
    state.phase = Phase::AwaitDisbursement {
        wait: Waiting::new(
            now,
            state.policy.timeouts.disbursement,
            Some(state.policy.poll_interval),
        ),
    };
    settle(state, now);
}

/// Repayments: the wait lasts until the collection timeout after the last installment
/// became overdue.
pub(super) fn start_repaying(state: &mut OriginateState, now: DateTime<Utc>) {
    let policy = &state.policy;
    let last_overdue = state
        .loan
        .schedule
        .iter()
        .map(|i| overdue_at(i.due_date, policy.overdue_grace))
        .max()
        .unwrap_or(now);
    let deadline = run::after(last_overdue.max(now), policy.timeouts.collection);
    let every = repayment_poll_every(state);
    let (_, next_check) = state.loan.review_overdue(now, state.policy.overdue_grace);
    let mut wait = Waiting::new(now, std::time::Duration::ZERO, Some(every));
    wait.deadline = deadline;
    state.phase = Phase::Repaying { wait, next_check };
    settle(state, now);
}

/// How often to read the loan while repaying: often once the payments cover the total
/// (only `PAID` is missing), else the definition's repayment interval.
pub(super) fn repayment_poll_every(state: &OriginateState) -> std::time::Duration {
    if state.loan.covered() {
        state.policy.poll_interval
    } else {
        state.policy.repayment_poll_interval
    }
}

/// Once Finfra says a loan is `PAID`, how long repayment still waits for the payment
/// webhooks it has not seen, so that every payment is on the loan's record; after it, the
/// workflow completes on Finfra's word (the missing payments stay in the inbox, unmatched).
pub const SETTLEMENT_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// If what the current phase waits for is already known, moves on. Whether it moved.
pub(super) fn settle(state: &mut OriginateState, now: DateTime<Utc>) -> bool {
    let loan = &state.loan;
    match &state.phase {
        Phase::AwaitBorrowerApproved { user_id, .. } => {
            let user_id = user_id.clone();
            match &loan.borrower_status {
                Some(BorrowerStatus::Approved) => create_loan(state, user_id),
                Some(BorrowerStatus::Rejected | BorrowerStatus::Blocked) => {
                    let status = loan
                        .borrower_status
                        .clone()
                        .unwrap_or(BorrowerStatus::Blocked);
                    set_failed(
                        state,
                        Reason::new(
                            "borrower_not_approved",
                            format!("borrower {user_id} is {status}: loans need APPROVED"),
                        ),
                    );
                }
                _ => return false,
            }
        }
        Phase::AwaitSigned { .. } if loan.is_rejected() || loan.is_signed() => {
            route_loan(state, now);
        }
        Phase::AwaitDisbursement { .. } if loan.disbursement_failed() => {
            let failure = loan.disbursement.failures.last();
            let why = failure.map_or("no reason given", |f| f.reason.as_str());
            let reference = failure
                .and_then(|f| f.reference.as_deref())
                .unwrap_or("unknown");
            let reason = Reason::new(
                "disbursement_failed",
                format!(
                    "the bank refused disbursement {reference} of loan {}: {why}",
                    loan.unique_id
                ),
            )
            .with_hint(
                "check the disbursement account with the borrower and the bank, then resolve with \
                 {\"retry\": true} to disburse again (the loan is read first; Finfra allows a new \
                 disbursement from DISBURSEMENT_FAILED)",
            );
            set_attention(state, reason, now);
        }
        Phase::AwaitDisbursement { .. } if loan.is_disbursed() || loan.is_paid() => {
            route_loan(state, now);
        }
        Phase::RequestVirtualAccount { .. } if loan.is_paid() => {
            state.phase = Phase::Paid;
        }
        Phase::Repaying { .. } if loan.is_paid() => {
            let all_seen = loan.virtual_account.is_none() || loan.payments_cover_total();
            let grace_over = loan
                .paid_at()
                .is_none_or(|at| run::after(at, SETTLEMENT_GRACE) <= now);
            if all_seen || grace_over {
                state.phase = Phase::Paid;
            } else {
                // Finfra's `PAID` can overtake the payment webhooks (each is delivered on
                // its own, out of order): wait for them, up to the grace.
                let until = loan.paid_at().map(|at| run::after(at, SETTLEMENT_GRACE));
                if let (Some(until), Some(wait)) = (until, state.phase.wait_mut()) {
                    wait.deadline = wait.deadline.min(until);
                }
                return false;
            }
        }
        _ => return false,
    }
    true
}

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

/// A duration as people write it in definitions: `3d`, `2h`, `15m`, `30s`.
pub(super) fn human(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The reason sent with a rejection.
pub(super) fn reject_reason(state: &OriginateState, why: &RejectWhy) -> String {
    match why {
        RejectWhy::SigningTimeout { since } => format!(
            "not signed within {} of {since} (policy {})",
            human(state.policy.timeouts.signing),
            state.definition.name
        ),
        RejectWhy::Cancel { by, reason } => format!("cancelled by {by}: {reason}"),
    }
}

/// The current phase's own request.
pub(super) fn main_request(state: &OriginateState) -> Option<FinfraRequest> {
    let unique_id = state.loan.unique_id.as_str().to_owned();
    Some(match &state.phase {
        Phase::CheckBorrower { user_id, .. } => FinfraRequest::GetBorrower {
            user_id: user_id.clone(),
        },
        Phase::CreateLoan { user_id, .. } => {
            let account = state.request.disbursement_account.clone();
            match &state.request.terms {
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
                reason: reject_reason(state, why),
            },
        },
        Phase::DisburseLoan { .. } => FinfraRequest::DisburseLoan { unique_id },
        Phase::RequestVirtualAccount { .. } => FinfraRequest::RequestVirtualAccount {
            body: VirtualAccountRequest {
                loan_unique_id: unique_id,
                bank_code: state.request.virtual_account_bank.clone(),
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

/// The read that tells whether the current phase's lost (or refused with `409`) request
/// was applied: the loan detail, for every loan request.
pub(super) fn reconcile_request(state: &OriginateState) -> Option<FinfraRequest> {
    match &state.phase {
        Phase::CreateLoan { .. }
        | Phase::InitiateSigning { .. }
        | Phase::RejectLoan { .. }
        | Phase::DisburseLoan { .. } => Some(get_loan(state)),
        _ => None,
    }
}

/// The current wait's fallback poll.
pub(super) fn poll_request(state: &OriginateState) -> Option<FinfraRequest> {
    match &state.phase {
        Phase::AwaitBorrowerApproved { user_id, .. } => Some(FinfraRequest::GetBorrower {
            user_id: user_id.clone(),
        }),
        Phase::AwaitSigned { .. } | Phase::AwaitDisbursement { .. } | Phase::Repaying { .. } => {
            Some(get_loan(state))
        }
        _ => None,
    }
}

fn poll_every(state: &OriginateState) -> std::time::Duration {
    match &state.phase {
        Phase::Repaying { .. } => repayment_poll_every(state),
        _ => state.policy.poll_interval,
    }
}

/// The callbacks that end (or feed) the current wait.
pub(super) fn expected(state: &OriginateState) -> Vec<Expected> {
    let loan_id = state.loan.unique_id.as_str();
    let by_loan = |event| {
        Expected::new(
            loan_title(state, event),
            CorrelationKey::LoanUniqueId,
            loan_id,
        )
    };
    match &state.phase {
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
        Phase::AwaitSigned { .. } => vec![by_loan(LoanEvent::Signed), by_loan(LoanEvent::Rejected)],
        Phase::AwaitDisbursement { .. } => vec![
            by_loan(LoanEvent::Disbursed),
            by_loan(LoanEvent::DisbursementFailed),
        ],
        Phase::Repaying { .. } => {
            let mut events = vec![by_loan(LoanEvent::Paid)];
            if let Some(va) = &state.loan.virtual_account {
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

/// The action of a state: a function of the state alone.
pub(super) fn action(state: &OriginateState) -> Action {
    let phase = &state.phase;
    match phase {
        Phase::NeedsAttention { stuck, reason, .. } => Action::NeedsAttention {
            step: stuck.name().to_owned(),
            reason: reason.clone(),
        },
        Phase::Paid => match &state.loan.user_id {
            Some(user_id) => Action::Complete {
                outcome: Outcome::LoanPaid {
                    unique_id: state.loan.unique_id.clone(),
                    user_id: user_id.clone(),
                    total_paid: state.loan.paid(),
                },
            },
            None => inconsistent(state),
        },
        Phase::Rejected { reason, .. } | Phase::Failed { reason, .. } => Action::Fail {
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
                poll_every(state),
                match &state.phase {
                    Phase::Repaying {
                        next_check: Some(check),
                        ..
                    } => Some(*check),
                    _ => None,
                },
            ),
            (None, None) => inconsistent(state),
        },
    }
}

/// A state our transitions never build: stop for a person rather than guess.
fn inconsistent(state: &OriginateState) -> Action {
    Action::NeedsAttention {
        step: state.phase.name().to_owned(),
        reason: Reason::new(
            "inconsistent_state",
            "the stored state does not name a request it can make (was it edited by hand?)",
        )
        .with_hint("inspect the loan at Finfra before doing anything"),
    }
}
