//! Events in the phases that make a Finfra call: answers, failures, reconciliation. The
//! generic rules (retries, backoff, ambiguity) are the kit's; this module adds what
//! each answer means, the statuses some steps give a meaning of their own (`409`, a `404`
//! that proves a create was not applied), and the disbursement's stricter rule.
//!
//! # The disbursement rule
//!
//! Money leaves once per `200` to `POST .../disbursement`. So after the first request, the
//! next one is only ever sent from `Stage::Reconcile` once a read of the loan showed no
//! disbursement in progress (status `SIGNED`, or `DISBURSEMENT_FAILED` of an attempt already
//! known to have failed):
//!
//! | what happened to a disbursement request | next |
//! |---|---|
//! | `200` | wait for the bank |
//! | timeout or reset after sending, `5xx`, a `2xx` we could not decode, `409` | read the loan now |
//! | `429`, `503`, a timeout or refused connection before sending | back off, then read the loan (not send) |
//! | `CallInterrupted`, `Start`, `Wake`, a callback while it was outstanding | read the loan |
//! | a final 4xx | needs attention; `resolve` reads the loan first |
//!
//! The read then decides: `DISBURSING`, `DISBURSED` or `PAID` → accepted, wait; `SIGNED` →
//! send again (as the next attempt, within the retry policy); `DISBURSEMENT_FAILED` →
//! send again only if that failure is one already known, else it is this request's failure.

use chrono::{DateTime, Utc};

use finfra_api::model::loan::{Loan, LoanStatus};

use crate::action::Reason;
use crate::failure::CallFailure;
use crate::ids::UserId;
use crate::kit::call::resend;
use crate::kit::{Phase as _, Run, advance, attention, fail, ignore, unexpected};
use crate::machine::Transition;
use crate::request::FinfraRequest;
use crate::response::FinfraResponse;

use super::facts::Source;
use super::route;
use super::state::{OriginateState, Phase, RejectWhy, Step};

type T = Transition<OriginateState>;

/// The statuses of the step's request that mean something of their own here, before the
/// kit's rules (which read the loan after a `409`).
pub(super) fn own_failure(state: &OriginateState, failure: &CallFailure) -> Option<T> {
    match &state.phase {
        Phase::CheckBorrower { user_id, .. } if failure.status == Some(404) => Some(fail(
            state.clone(),
            Reason::new(
                "borrower_not_found",
                format!("Finfra has no borrower {user_id}"),
            ),
        )),
        Phase::RejectLoan {
            why: RejectWhy::Cancel { .. },
            ..
        } if failure.status == Some(404) && !state.loan.created => {
            // The create never reached Finfra: there is nothing to reject.
            Some(cancelled(
                state,
                "404: Finfra has no such loan; nothing to reject",
            ))
        }
        _ => None,
    }
}

/// A `404` to the read of the loan answers the question for a create (not applied: send it
/// again) and for a cancel's rejection (no loan: cancelled).
pub(super) fn own_read_failure(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> Option<T> {
    if failure.status != Some(404) {
        return None;
    }
    match &state.phase {
        Phase::CreateLoan { .. } => Some(resend(
            state,
            run,
            request,
            now,
            "404: the loan was not created",
        )),
        Phase::RejectLoan {
            why: RejectWhy::Cancel { .. },
            ..
        } if !state.loan.created => Some(cancelled(
            state,
            "404: Finfra has no such loan; nothing to reject",
        )),
        _ => None,
    }
}

fn cancelled(state: &OriginateState, note: &str) -> T {
    let Phase::RejectLoan {
        why: RejectWhy::Cancel { by, reason },
        ..
    } = &state.phase
    else {
        return ignore(state, "not cancelling");
    };
    let mut next = state.clone();
    next.phase = Phase::Cancelled {
        step: Step::RejectLoan.as_str().to_owned(),
        by: by.clone(),
        reason: reason.clone(),
    };
    advance(next, format!("{note}: cancelled by {by}"))
}

/// What the loan detail says about the lost (or `409`-refused) request.
pub(super) fn reconciled(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    response: &FinfraResponse,
    now: DateTime<Utc>,
) -> T {
    let FinfraResponse::GetLoan(loan) = response else {
        return unexpected(state, response, now);
    };
    if state.loan.user_id.as_ref().map(UserId::as_str) != Some(loan.user_id.as_str()) {
        return attention(
            state.clone(),
            Reason::new(
                "loan_conflict",
                format!(
                    "Finfra's loan {} belongs to borrower {}, not this workflow's",
                    loan.unique_id, loan.user_id
                ),
            )
            .with_hint("inspect the loan at Finfra; cancel this workflow"),
            now,
        );
    }
    // Whether the loan shows a refused disbursement finflow already knew of, before this
    // read is recorded.
    let known_failure = state.loan.disbursement.is_failed_reference(
        loan.disbursement
            .as_ref()
            .and_then(|d| d.reference.as_deref()),
    );
    let mut next = state.clone();
    next.loan.observe(loan, now, Source::Read);
    let status = &loan.status;
    match &state.phase {
        Phase::CreateLoan { .. } | Phase::InitiateSigning { .. } => {
            if matches!(state.phase, Phase::InitiateSigning { .. })
                && *status == LoanStatus::Pending
            {
                return resend(state, run, request, now, "the loan is still PENDING");
            }
            route::route_loan(&mut next, now);
            let to = next.phase.name();
            advance(next, format!("the loan is {status}: on to {to}"))
        }
        Phase::RejectLoan { why, .. } => match status {
            LoanStatus::Rejected => rejected(next, why),
            LoanStatus::Pending | LoanStatus::Signing | LoanStatus::Signed => resend(
                state,
                run,
                request,
                now,
                &format!("the loan is still {status}"),
            ),
            other => attention(
                next,
                Reason::new(
                    "reject_refused",
                    format!("the loan is {other}: it can no longer be rejected"),
                )
                .with_hint("inspect the loan at Finfra"),
                now,
            ),
        },
        Phase::DisburseLoan { .. } => {
            disbursement_reconciled(state, next, run, request, loan, known_failure, now)
        }
        Phase::RequestVirtualAccount { .. } => {
            if next.loan.virtual_account.is_some() || next.loan.is_paid() {
                route::route_loan(&mut next, now);
                let to = next.phase.name();
                return advance(
                    next,
                    format!("the loan is {status} and has its account: on to {to}"),
                );
            }
            match status {
                LoanStatus::Disbursed => resend(
                    state,
                    run,
                    request,
                    now,
                    "the loan is DISBURSED without an account",
                ),
                other => attention(
                    next,
                    Reason::new(
                        "unexpected_status",
                        format!("the loan is {other} without a repayment account"),
                    )
                    .with_hint("inspect the loan at Finfra, then resolve with {\"retry\": true}"),
                    now,
                ),
            }
        }
        _ => ignore(state, "no reconcile in this state"),
    }
}

/// The disbursement rule's read (see the module docs).
fn disbursement_reconciled(
    state: &OriginateState,
    mut next: OriginateState,
    run: &Run,
    request: &FinfraRequest,
    loan: &Loan,
    known_failure: bool,
    now: DateTime<Utc>,
) -> T {
    let status = &loan.status;
    match status {
        LoanStatus::Disbursing | LoanStatus::Disbursed | LoanStatus::Paid => {
            route::route_loan(&mut next, now);
            let to = next.phase.name();
            advance(
                next,
                format!("the loan is {status}: the disbursement was accepted; on to {to}"),
            )
        }
        LoanStatus::Signed => resend(
            state,
            run,
            request,
            now,
            "the loan is SIGNED with no disbursement in progress",
        ),
        LoanStatus::DisbursementFailed if known_failure => resend(
            state,
            run,
            request,
            now,
            "the loan shows only the refusal already known",
        ),
        LoanStatus::DisbursementFailed => {
            // This request was applied and the bank refused it: its own failure.
            route::route_loan(&mut next, now);
            advance(next, "the disbursement was accepted and refused by the bank")
        }
        LoanStatus::Rejected => {
            route::route_loan(&mut next, now);
            advance(next, "the loan was rejected at Finfra")
        }
        LoanStatus::Pending | LoanStatus::Signing | LoanStatus::Unknown(_) => attention(
            next,
            Reason::new(
                "unexpected_status",
                format!("the loan is {status} although it was seen signed: nothing is sent"),
            )
            .with_hint("inspect the loan at Finfra, then resolve with {\"retry\": true} (the loan is read first)"),
            now,
        ),
    }
}

fn rejected(mut state: OriginateState, why: &RejectWhy) -> T {
    let unique_id = state.loan.unique_id.clone();
    match why {
        RejectWhy::SigningTimeout { since } => {
            let reason = Reason::new(
                "signing_timeout",
                format!(
                    "loan {unique_id} was not signed within {} of {since}: rejected at Finfra",
                    route::human(state.policy.timeouts.signing)
                ),
            );
            state.phase = Phase::Rejected {
                step: Step::AwaitSigned.as_str().to_owned(),
                reason,
            };
            advance(
                state,
                format!("loan {unique_id} rejected: signing timed out"),
            )
        }
        RejectWhy::Cancel { by, reason } => {
            state.phase = Phase::Cancelled {
                step: Step::RejectLoan.as_str().to_owned(),
                by: by.clone(),
                reason: reason.clone(),
            };
            advance(
                state,
                format!("loan {unique_id} rejected: cancelled by {by}"),
            )
        }
    }
}

/// The step's request succeeded.
pub(super) fn succeeded(
    state: &OriginateState,
    response: &FinfraResponse,
    now: DateTime<Utc>,
) -> T {
    let mut next = state.clone();
    match (&state.phase, response) {
        (Phase::CheckBorrower { user_id, .. }, FinfraResponse::GetBorrower(borrower)) => {
            match route::after_borrower(&mut next, borrower, user_id, now) {
                Ok(()) => {
                    let to = next.phase.name();
                    advance(next, format!("the borrower is {}: {to}", borrower.status))
                }
                Err(reason) => fail(next, reason),
            }
        }
        (
            Phase::CreateLoan { .. },
            FinfraResponse::CreateSinglePaymentLoan(loan) | FinfraResponse::CreateBnplLoan(loan),
        ) => {
            next.loan.observe(loan, now, Source::Response);
            route::route_loan(&mut next, now);
            advance(
                next,
                format!(
                    "loan {} created: {} due in total",
                    loan.unique_id, loan.total_amount
                ),
            )
        }
        (Phase::InitiateSigning { .. }, FinfraResponse::InitiateSigning(session)) => {
            next.loan.reach(LoanStatus::Signing, now, Source::Response);
            next.loan.signing = Some(super::facts::SigningFacts {
                signing_url: Some(session.signing_url.clone()),
                expires_at: Some(session.expires_at),
            });
            route::route_loan(&mut next, now);
            advance(
                next,
                format!("signing session open until {}", session.expires_at),
            )
        }
        (Phase::RejectLoan { why, .. }, FinfraResponse::RejectLoan(loan)) => {
            next.loan.observe(loan, now, Source::Response);
            next.loan.reach(LoanStatus::Rejected, now, Source::Response);
            rejected(next, why)
        }
        (Phase::DisburseLoan { .. }, FinfraResponse::DisburseLoan(accepted)) => {
            next.loan.disbursement_accepted(accepted.reference.clone());
            next.loan
                .reach(LoanStatus::Disbursing, now, Source::Response);
            route::route_loan(&mut next, now);
            advance(
                next,
                format!(
                    "disbursement accepted (reference {}): waiting for the bank",
                    accepted.reference.as_deref().unwrap_or("none")
                ),
            )
        }
        (Phase::RequestVirtualAccount { .. }, FinfraResponse::RequestVirtualAccount(va)) => {
            next.loan.learn_virtual_account(va);
            route::start_repaying(&mut next, now);
            advance(
                next,
                format!(
                    "virtual account {} at {} opened for repayment",
                    va.external_id, va.bank_code
                ),
            )
        }
        _ => unexpected(state, response, now),
    }
}
