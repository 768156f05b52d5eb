//! Failure branches before the money moves: the borrower's checks, the create call and its
//! reconciliation, signing, the signing timeout and the rejection.

use std::time::Duration;

use finfra_api::callback::{CallbackData, CallbackTitle};
use finfra_api::model::borrower::BorrowerStatus;
use workflow::ActionKind::{Call, Fail, NeedsAttention, SleepUntil, Wait};
use workflow::{Action, CallFailure, CallPurpose, Event, FinfraRequest, SleepReason, Status};

use crate::common::{OTHER_USER, at};
use crate::fixtures::*;
use crate::table::{Row, row, run};

/// The create whose answer was lost: reading the loan.
pub fn s_create_ambiguous() -> workflow::originate::OriginateState {
    drive(&s_create(), &[err(CallFailure::timeout(true, false))])
}

/// Past the signing deadline: rejecting.
pub fn s_rejecting() -> workflow::originate::OriginateState {
    drive_at(&s_await_signed(), Event::Wake, after_days(3))
}

fn approved_by_partner() -> workflow::originate::OriginateState {
    drive(
        &s_check(),
        &[ok(borrower(BorrowerStatus::ApprovedByPartner, "PERSONAL"))],
    )
}

pub fn rows() -> Vec<Row> {
    vec![
        // The borrower.
        row("borrower VERIFIED: not approved", s_check(), ok(borrower(BorrowerStatus::Verified, "PERSONAL")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "borrower_not_approved")),
        row("borrower BLOCKED", s_check(), ok(borrower(BorrowerStatus::Blocked, "PERSONAL")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "borrower_not_approved")),
        row("a BUSINESS borrower on a personal product", s_check(), ok(borrower(BorrowerStatus::Approved, "BUSINESS")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "borrower_type_mismatch")),
        row("unknown borrower", s_check(), err(CallFailure::rejected(404, "Borrower not found")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "borrower_not_found")),
        row("500 reading the borrower: retry", s_check(), err(CallFailure::server(500, true)), "check_borrower", SleepUntil)
            .status(Status::Retrying),
        row("APPROVED_BY_PARTNER: wait for APPROVED, polling", s_check(), ok(borrower(BorrowerStatus::ApprovedByPartner, "PERSONAL")), "await_borrower_approved", Wait)
            .check(|t| {
                let Action::Wait { events, poll, .. } = &t.action else { panic!() };
                assert_eq!(events[0].title, CallbackTitle::UserApproved);
                assert!(matches!(poll.as_ref().map(|p| &p.request), Some(FinfraRequest::GetBorrower { .. })));
            }),
        row("user_approved: create", approved_by_partner(), user_callback(CallbackTitle::UserApproved), "create_loan", Call)
            .request("create_single_payment_loan"),
        row("user_blocked while waiting: failed", approved_by_partner(), user_callback(CallbackTitle::UserBlocked), "failed", Fail),
        row("the poll finds APPROVED", drive_at(&approved_by_partner(), Event::Wake, at(30)), ok(approved()), "create_loan", Call),
        row("APPROVED never comes: attention", approved_by_partner(), Event::Wake, "needs_attention", NeedsAttention)
            .at(at(2 * 3600))
            .check(|t| assert_eq!(reason_code(t), "borrower_approval_timeout")),
        // The create.
        row("create 400 (input refused): failed", s_create(), err(CallFailure::rejected(400, "Borrower is not approved")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "finfra_rejected")),
        row("create 409: read the loan", s_create(), err(CallFailure::conflict("Loan with unique_id already exists")), "create_loan", Call)
            .request("get_loan")
            .purpose(CallPurpose::Reconcile),
        row("create timed out after sending: read the loan", s_create(), err(CallFailure::timeout(true, false)), "create_loan", Call)
            .status(Status::Ambiguous)
            .request("get_loan")
            .purpose(CallPurpose::Reconcile),
        row("create 500: read the loan", s_create(), err(CallFailure::server(500, false)), "create_loan", Call)
            .request("get_loan"),
        row("the read finds the loan: carry on with it", s_create_ambiguous(), ok(get_loan(loan("PENDING"))), "initiate_signing", Call)
            .check(|t| assert!(t.state.loan.created)),
        row("the read finds it already SIGNING: wait", s_create_ambiguous(), ok(get_loan(loan("SIGNING"))), "await_signed", Wait),
        row("the read says 404: send the same create again", s_create_ambiguous(), err(CallFailure::rejected(404, "Loan not found")), "create_loan", Call)
            .request("create_single_payment_loan")
            .purpose(CallPurpose::Perform)
            .check(|t| {
                assert_eq!(attempt(t), 2);
                let Some(FinfraRequest::CreateSinglePaymentLoan { body, .. }) = t.action.request() else { panic!() };
                assert_eq!(body.unique_id, uid(), "the same unique_id: a repeat answers 409");
            }),
        row("the resent create answers 409: read, carry on", drive(&s_create_ambiguous(), &[err(CallFailure::rejected(404, "Loan not found"))]), err(CallFailure::conflict("exists")), "create_loan", Call)
            .request("get_loan"),
        row("a loan of another borrower under our id: attention", s_create_ambiguous(), ok(get_loan(to_loan({
            let mut v = loan_json(false, "PENDING");
            v["user_id"] = serde_json::json!(OTHER_USER);
            v
        }))), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "loan_conflict")),
        row("429 on create: sleep Retry-After", s_create(), err(CallFailure::rate_limited(Some(Duration::from_secs(4)))), "create_loan", SleepUntil)
            .check(|t| assert!(matches!(&t.action, Action::SleepUntil { at: when, reason: SleepReason::RateLimited, .. } if *when == at(4)))),
        // Signing.
        row("signing 409: read the loan", s_signing(), err(CallFailure::conflict("Loan agreement is already signed")), "initiate_signing", Call)
            .request("get_loan"),
        row("signing 409, the loan is SIGNED: disburse", drive(&s_signing(), &[err(CallFailure::conflict("signed"))]), ok(get_loan(loan("SIGNED"))), "disburse_loan", Call)
            .request("disburse_loan"),
        row("signing 409, the loan is REJECTED", drive(&s_signing(), &[err(CallFailure::conflict("rejected"))]), ok(get_loan(loan("REJECTED"))), "rejected", Fail)
            .check(|t| assert_eq!(reason_code(t), "loan_rejected")),
        row("signing 500 (repeatable): retry", s_signing(), err(CallFailure::server(500, false)), "initiate_signing", SleepUntil),
        row("poll while signing is late: still SIGNING", drive_at(&s_await_signed(), Event::Wake, at(30)), ok(get_loan(loan("SIGNING"))), "await_signed", Wait),
        row("poll finds SIGNED: disburse", drive_at(&s_await_signed(), Event::Wake, at(30)), ok(get_loan(loan("SIGNED"))), "disburse_loan", Call),
        row("loan_rejected while signing", s_await_signed(), loan_callback(CallbackTitle::LoanRejected, "evt-rej", CallbackData { reason: Some("fraud".into()), ..CallbackData::default() }), "rejected", Fail)
            .check(|t| {
                assert_eq!(reason_code(t), "loan_rejected");
                assert!(matches!(&t.action, Action::Fail { reason } if reason.message.contains("fraud")));
            }),
        // The signing timeout.
        row("not signed in time: reject the loan", s_await_signed(), Event::Wake, "reject_loan", Call)
            .at(after_days(3))
            .request("reject_loan")
            .check(|t| {
                let Some(FinfraRequest::RejectLoan { body, unique_id }) = t.action.request() else { panic!() };
                assert_eq!(unique_id, &uid());
                assert!(body.reason.contains("not signed"), "{}", body.reason);
            }),
        row("rejected: the workflow fails `rejected`", s_rejecting(), ok(rejected_loan()), "rejected", Fail)
            .status(Status::Failed)
            .check(|t| assert_eq!(reason_code(t), "signing_timeout")),
        row("reject lost: read the loan, never re-send blindly", s_rejecting(), err(CallFailure::timeout(true, false)), "reject_loan", Call)
            .status(Status::Ambiguous)
            .request("get_loan"),
        row("reject read shows REJECTED: done", drive(&s_rejecting(), &[err(CallFailure::timeout(true, false))]), ok(get_loan(loan("REJECTED"))), "rejected", Fail),
        row("reject read shows SIGNING: reject again", drive(&s_rejecting(), &[err(CallFailure::timeout(true, false))]), ok(get_loan(loan("SIGNING"))), "reject_loan", Call)
            .request("reject_loan")
            .purpose(CallPurpose::Perform),
        row("reject 409 (already rejected): read", s_rejecting(), err(CallFailure::conflict("Loan is already rejected")), "reject_loan", Call)
            .request("get_loan"),
        row("loan_rejected while rejecting: done", s_rejecting(), cb(CallbackTitle::LoanRejected), "rejected", Fail),
    ]
}

#[test]
fn failure_branches() {
    run(&rows());
}
