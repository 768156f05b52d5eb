//! Events in the phases that make a Finfra call: answers, failures, reconciliation. The
//! generic rules (retries, backoff, ambiguity) are `crate::run`'s; this module adds what
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
use crate::event::Event;
use crate::failure::CallFailure;
use crate::ids::UserId;
use crate::machine::{Handled, Transition};
use crate::request::FinfraRequest;
use crate::response::FinfraResponse;
use crate::run::{self, GiveUp, Run, Stage, StepCtx};

use super::facts::Source;
use super::flow::{self, advance, attention, fail, ignore, resume};
use super::state::{OriginateState, Phase, RejectWhy, Step};
use super::waits;

type T = Transition<OriginateState>;

/// An event in a phase that makes a call.
pub(super) fn on_event(state: &OriginateState, event: &Event, now: DateTime<Utc>) -> T {
    let (Some(run), Some(request)) = (state.phase.run(), flow::main_request(state)) else {
        return ignore(state, "no call to make in this state");
    };
    match (event, &run.stage) {
        (Event::CallSucceeded(response), Stage::Send) if response.answers(&request) => {
            succeeded(state, response, now)
        }
        (Event::CallFailed(failure), Stage::Send) => failed(state, run, &request, failure, now),
        (Event::CallSucceeded(response), Stage::Reconcile) => {
            match (flow::reconcile_request(state), response) {
                (Some(read), FinfraResponse::GetLoan(loan)) if response.answers(&read) => {
                    reconciled(state, run, &request, loan, now)
                }
                _ => ignore(
                    state,
                    format!(
                        "a stale {} answer ignored while reconciling",
                        response.name()
                    ),
                ),
            }
        }
        (Event::CallFailed(failure), Stage::Reconcile) => {
            reconcile_failed(state, run, &request, failure, now)
        }
        (Event::Wake, Stage::Backoff { .. } | Stage::ReconcileBackoff { .. }) => {
            match run::woken(run, now) {
                Some(next) => {
                    let what = if next.stage == Stage::Reconcile {
                        "backoff over: reading the loan first"
                    } else {
                        "backoff over: sending again"
                    };
                    with_run(state, next, what)
                }
                None => ignore(state, "woken before the backoff is over"),
            }
        }
        // Anything else while our request is outstanding means the executor no longer knows
        // what became of it (a crash, a lost lease): never assume it was not sent.
        (
            Event::CallInterrupted
            | Event::Start
            | Event::Wake
            | Event::Callback(_)
            | Event::CallSucceeded(_),
            Stage::Send,
        ) => outstanding(state, run, &request, event, now),
        // A reconcile read is a read, and a backoff a timer: re-issue them as they are.
        (Event::CallInterrupted | Event::Start, _) => {
            resume(state, format!("resumed in {}", state.phase.name()))
        }
        (Event::Callback(_), _) => waits::recorded_in_call(state, event, now),
        _ => ignore(
            state,
            format!("{} ignored in {}", event.name(), state.phase.name()),
        ),
    }
}

/// An event other than the answer while the request is outstanding.
fn outstanding(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    event: &Event,
    now: DateTime<Utc>,
) -> T {
    if let Event::Callback(_) = event {
        // What the callback says first: it may settle the step (a loan_disbursed while the
        // disbursement's answer is lost); else the request is treated as interrupted.
        // A duplicate or someone else's is ignored like anywhere else.
        let recorded = waits::recorded_in_call(state, event, now);
        if recorded.handled == Handled::Ignored
            || recorded.state.phase.step() != state.phase.step()
            || !request.effect().needs_reconcile()
        {
            return recorded;
        }
        let next = recorded.state;
        return with_run(
            &next,
            run::interrupted(run, request),
            format!(
                "callback while {} was outstanding: its outcome is unknown, reading the loan",
                request.name()
            ),
        );
    }
    if request.effect().needs_reconcile() {
        return with_run(
            state,
            run::interrupted(run, request),
            format!(
                "{} while {} was outstanding: its outcome is unknown, reconciling before sending again",
                event.name(),
                request.name()
            ),
        );
    }
    match event {
        Event::CallInterrupted | Event::Start | Event::Wake => with_run(
            state,
            run::interrupted(run, request),
            format!(
                "{} may not have been sent: sending it again (safe to repeat)",
                request.name()
            ),
        ),
        _ => ignore(
            state,
            format!(
                "{} ignored: {} is outstanding",
                event.name(),
                request.name()
            ),
        ),
    }
}

fn with_run(state: &OriginateState, run: Run, note: impl Into<String>) -> T {
    let mut next = state.clone();
    if let Some(slot) = next.phase.run_mut() {
        *slot = run;
    }
    advance(next, note)
}

fn ctx<'a>(
    state: &'a OriginateState,
    policy: &'a finfra_api::retry::RetryPolicy,
    now: DateTime<Utc>,
) -> StepCtx<'a> {
    StepCtx {
        workflow: &state.workflow_id,
        step: state.phase.name(),
        policy,
        now,
    }
}

fn give_up(state: &OriginateState, outcome: GiveUp, now: DateTime<Utc>) -> T {
    match outcome {
        GiveUp::Fail(reason) => fail(state.clone(), reason),
        GiveUp::Attention(reason) => attention(state.clone(), reason, now),
    }
}

fn unexpected(state: &OriginateState, response: &FinfraResponse, now: DateTime<Utc>) -> T {
    let expected = flow::action(state)
        .request()
        .map_or("nothing", FinfraRequest::name);
    attention(
        state.clone(),
        Reason::new(
            "unexpected_response",
            format!("the executor answered {} to {expected}", response.name()),
        )
        .with_hint(run::RETRY_HINT),
        now,
    )
}

fn to_reconcile(run: &Run, failure: &CallFailure) -> Run {
    let mut run = run.clone();
    run.stage = Stage::Reconcile;
    run.reads = 0;
    run.last_failure = Some(failure.clone());
    run
}

/// The step's request failed: the steps' own statuses first, then the generic rules.
fn failed(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> T {
    let is_disburse = matches!(state.phase, Phase::DisburseLoan { .. });
    match &state.phase {
        Phase::CheckBorrower { user_id, .. } if failure.status == Some(404) => {
            return fail(
                state.clone(),
                Reason::new(
                    "borrower_not_found",
                    format!("Finfra has no borrower {user_id}"),
                ),
            );
        }
        Phase::RejectLoan {
            why: RejectWhy::Cancel { .. },
            ..
        } if failure.status == Some(404) && !state.loan.created => {
            // The create never reached Finfra: there is nothing to reject.
            return cancelled(state, "404: Finfra has no such loan; nothing to reject");
        }
        Phase::CreateLoan { .. }
        | Phase::InitiateSigning { .. }
        | Phase::RejectLoan { .. }
        | Phase::DisburseLoan { .. }
            if failure.conflict =>
        {
            // 409 on a disbursement: Finfra already has one (or the loan is rejected). Not a
            // failure of ours: it uses up no attempt.
            let run = to_reconcile(run, failure);
            return with_run(
                state,
                run,
                format!("409 on {}: reading the loan to learn why", request.name()),
            );
        }
        _ => {}
    }
    let policy = state.definition.retry.policy();
    match run::send_failed(run, request, failure, ctx(state, &policy, now)) {
        Ok(mut next) => {
            if is_disburse && let Stage::Backoff { at, .. } = next.stage {
                // Even a failure that proves nothing was applied (429, 503, no connection)
                // is followed by a read, never by a blind re-send: the rule is simpler to
                // trust than a classification.
                next.stage = Stage::ReconcileBackoff { at };
                next.reads = 0;
            }
            let note = match &next.stage {
                Stage::Reconcile => format!(
                    "{} outcome unknown ({}): reading the loan",
                    request.name(),
                    failure.describe()
                ),
                Stage::Backoff { at, .. } => format!(
                    "{} failed ({}): again at {at}",
                    request.name(),
                    failure.describe()
                ),
                Stage::ReconcileBackoff { at } => format!(
                    "{} failed ({}): reading the loan at {at} before any new request",
                    request.name(),
                    failure.describe()
                ),
                Stage::Send => format!("{} failed ({})", request.name(), failure.describe()),
            };
            with_run(state, next, note)
        }
        Err(outcome) => give_up(state, outcome, now),
    }
}

/// The reconcile read (the loan detail) failed. `404` answers the question for a create
/// (not applied: send it again) and for a cancel's rejection (no loan: cancelled).
fn reconcile_failed(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    now: DateTime<Utc>,
) -> T {
    if failure.status == Some(404) {
        match &state.phase {
            Phase::CreateLoan { .. } => {
                return resend(state, run, request, now, "404: the loan was not created");
            }
            Phase::RejectLoan {
                why: RejectWhy::Cancel { .. },
                ..
            } if !state.loan.created => {
                return cancelled(state, "404: Finfra has no such loan; nothing to reject");
            }
            _ => {}
        }
    }
    let Some(read) = flow::reconcile_request(state) else {
        return ignore(state, "no reconcile read in this state");
    };
    let policy = state.definition.retry.policy();
    match run::read_failed(run, &read, failure, ctx(state, &policy, now)) {
        Ok(run) => with_run(
            state,
            run,
            format!(
                "{} failed ({}): reading again later",
                read.name(),
                failure.describe()
            ),
        ),
        Err(outcome) => give_up(state, outcome, now),
    }
}

/// Sends the step's request again after a read showed it was not applied.
fn resend(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    now: DateTime<Utc>,
    why: &str,
) -> T {
    let policy = state.definition.retry.policy();
    match run::resend(run, request, ctx(state, &policy, now)) {
        Ok(run) => with_run(
            state,
            run,
            format!("{why}: sending {} again", request.name()),
        ),
        Err(outcome) => give_up(state, outcome, now),
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
fn reconciled(
    state: &OriginateState,
    run: &Run,
    request: &FinfraRequest,
    loan: &Loan,
    now: DateTime<Utc>,
) -> T {
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
            flow::route_loan(&mut next, now);
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
            flow::route_loan(&mut next, now);
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
            flow::route_loan(&mut next, now);
            advance(next, "the disbursement was accepted and refused by the bank")
        }
        LoanStatus::Rejected => {
            flow::route_loan(&mut next, now);
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
                    flow::human(state.policy.timeouts.signing)
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
fn succeeded(state: &OriginateState, response: &FinfraResponse, now: DateTime<Utc>) -> T {
    let mut next = state.clone();
    match (&state.phase, response) {
        (Phase::CheckBorrower { user_id, .. }, FinfraResponse::GetBorrower(borrower)) => {
            match flow::after_borrower(&mut next, borrower, user_id, now) {
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
            flow::route_loan(&mut next, now);
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
            flow::route_loan(&mut next, now);
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
            flow::route_loan(&mut next, now);
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
            flow::start_repaying(&mut next, now);
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
