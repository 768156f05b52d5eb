//! The origination's route: which phase follows which.
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

use finfra_api::model::borrower::{Borrower, BorrowerStatus};
use finfra_api::model::loan::LoanStatus;

use crate::action::Reason;
use crate::ids::{OperationKey, UserId};
use crate::kit::{self, Machine, Phase as _, Run, Stage, Waiting, set_attention, set_failed};

use super::facts::overdue_at;
use super::state::{OriginateState, Phase, Step};

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
    if loan.is_paid() && loan.virtual_account.is_some() && loan.is_disbursed() {
        // Finfra's PAID can overtake the payment webhooks: repayment waits for the payments
        // it has not seen, up to the settlement grace.
        start_repaying(state, now);
    } else if loan.is_paid() {
        state.phase = Phase::Paid;
    } else if loan.is_rejected() {
        let reason = loan_rejected(state);
        let step = state.phase.active().name().to_owned();
        state.phase = Phase::Rejected { step, reason };
    } else if loan.is_disbursed() && loan.virtual_account.is_some() {
        start_repaying(state, now);
    } else if loan.is_disbursed() {
        state.phase = Phase::RequestVirtualAccount {
            run: Run::new(Some(state.op_key(Step::RequestVirtualAccount.as_str(), 0))),
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
            run: Run::new(Some(state.op_key(Step::InitiateSigning.as_str(), 0))),
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
    let mut run = Run::new(Some(state.op_key(Step::DisburseLoan.as_str(), occurrence)));
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
    let deadline = kit::after(last_overdue.max(now), policy.timeouts.collection);
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
        Phase::Repaying { .. } if loan.is_paid() => {
            let all_seen = loan.virtual_account.is_none() || loan.payments_cover_total();
            let grace_over = loan
                .paid_at()
                .is_none_or(|at| kit::after(at, SETTLEMENT_GRACE) <= now);
            if all_seen || grace_over {
                state.phase = Phase::Paid;
            } else {
                // Finfra's `PAID` can overtake the payment webhooks (each is delivered on
                // its own, out of order): wait for them, up to the grace.
                let until = loan.paid_at().map(|at| kit::after(at, SETTLEMENT_GRACE));
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
