//! Every request of `originate-loan`, repeated after an unknown outcome (its answer lost, a
//! worker that died mid-call), against each answer its repeat can meet: the `2xx`, the
//! `4xx` its own first send causes (Finfra's state moved on), `409`, `404`. Where Finfra's
//! state shows the work was done, the loan carries on, never to `needs_attention`.

use serde_json::json;

use finfra_api::callback::CallbackTitle;
use workflow::ActionKind::{Call, Fail, NeedsAttention, Wait};
use workflow::originate::OriginateState;
use workflow::{CallFailure, CallPurpose, Event, Status};

use crate::fixtures::*;
use crate::table::{Row, row, run};

/// The state after the step's call was interrupted (its worker died mid-call): the next
/// send is a repeat whose first send may have been applied.
fn repeat(state: &OriginateState) -> OriginateState {
    drive(state, &[Event::CallInterrupted])
}

/// The step's answer was lost after the request left (a dropped connection).
fn lost(state: &OriginateState) -> OriginateState {
    drive(state, &[err(CallFailure::timeout(true, false))])
}

/// The same, then the backoff is over: the repeat is due.
fn lost_then_due(state: &OriginateState) -> OriginateState {
    drive_at(&lost(state), Event::Wake, after_days(1))
}

/// A loan that has its repayment account, in `status`, with `paid` paid.
fn loan_with_account(status: &str, paid: &str) -> workflow::FinfraResponse {
    let mut v = loan_json(false, status);
    v["disbursement"] = json!({"status": "DISBURSED", "reference": "DISB-1"});
    v["schedule"][0]["paid_amount"] = json!(paid);
    v["virtual_account"] = json!({
        "external_id": VA, "loan_unique_id": uid(), "bank_code": "BNI",
        "account_number": "88081234567890", "name": "BUDI SANTOSO",
        "expected_amount": "5150000.00", "expiration_date": "2027-01-05T08:00:00Z"
    });
    get_loan(to_loan(v))
}

pub fn rows() -> Vec<Row> {
    vec![
        // check_borrower: a read; its repeat is a read.
        row("check_borrower repeated: read again", s_check(), Event::CallInterrupted, "check_borrower", Call)
            .request("get_borrower"),
        row("check_borrower repeated, 2xx", repeat(&s_check()), ok(approved()), "create_loan", Call),
        row("check_borrower repeated, 404: no such borrower", repeat(&s_check()), err(CallFailure::rejected(404, "Borrower not found")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "borrower_not_found")),
        // create_loan: deduplicated on our unique_id; a lost answer reads the loan.
        row("create_loan repeated: the loan is read first", s_create(), Event::CallInterrupted, "create_loan", Call)
            .request("get_loan")
            .status(Status::Ambiguous),
        row("create_loan repeated, the loan exists: applied", repeat(&s_create()), ok(get_loan(loan("PENDING"))), "initiate_signing", Call),
        row("create_loan repeated, 404: not applied, sent again", repeat(&s_create()), err(CallFailure::rejected(404, "Loan not found")), "create_loan", Call)
            .request("create_single_payment_loan")
            .purpose(CallPurpose::Perform),
        row("create_loan sent again, 2xx", drive(&repeat(&s_create()), &[err(CallFailure::rejected(404, "Loan not found"))]), ok(created(false)), "initiate_signing", Call),
        row("create_loan sent again, 409: read before believing", drive(&repeat(&s_create()), &[err(CallFailure::rejected(404, "Loan not found"))]), err(CallFailure::conflict("Loan with unique_id already exists")), "create_loan", Call)
            .request("get_loan"),
        row("create_loan sent again, 409, the read shows it: applied", drive(&repeat(&s_create()), &[err(CallFailure::rejected(404, "Loan not found")), err(CallFailure::conflict("Loan with unique_id already exists"))]), ok(get_loan(loan("SIGNING"))), "await_signed", Wait),
        row("create_loan sent again, 400 after the borrower changed: read, then the refusal stands", drive(&repeat(&s_create()), &[err(CallFailure::rejected(404, "Loan not found")), err(CallFailure::rejected(400, "Borrower is not approved"))]), err(CallFailure::rejected(404, "Loan not found")), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "finfra_rejected")),
        // initiate_signing: repeatable (the same session while SIGNING).
        row("initiate_signing repeated: sent again", s_signing(), Event::CallInterrupted, "initiate_signing", Call)
            .request("initiate_signing"),
        row("initiate_signing repeated, 2xx (the same session)", repeat(&s_signing()), ok(signing()), "await_signed", Wait),
        row("initiate_signing repeated, 409 (signed meanwhile): read", repeat(&s_signing()), err(CallFailure::conflict("Loan is already SIGNED")), "initiate_signing", Call)
            .request("get_loan"),
        row("initiate_signing repeated, 409, the loan is SIGNED: on to the disbursement", drive(&repeat(&s_signing()), &[err(CallFailure::conflict("Loan is already SIGNED"))]), ok(get_loan(loan("SIGNED"))), "disburse_loan", Call),
        row("initiate_signing repeated, 404: read before believing", repeat(&s_signing()), err(CallFailure::rejected(404, "Loan not found")), "initiate_signing", Call)
            .request("get_loan"),
        // disburse_loan: never sent again without a read.
        row("disburse_loan repeated: the loan is read first", s_disburse(), Event::CallInterrupted, "disburse_loan", Call)
            .request("get_loan"),
        row("disburse_loan repeated, DISBURSING: accepted", repeat(&s_disburse()), ok(get_loan(loan_disbursement("DISBURSING", "DISBURSING", "DISB-1"))), "await_disbursement", Wait),
        row("disburse_loan repeated, DISBURSED: on to the account", repeat(&s_disburse()), ok(get_loan(loan_disbursement("DISBURSED", "DISBURSED", "DISB-1"))), "request_virtual_account", Call),
        row("disburse_loan repeated, SIGNED: sent again", repeat(&s_disburse()), ok(get_loan(loan("SIGNED"))), "disburse_loan", Call)
            .request("disburse_loan"),
        row("disburse_loan sent again, 409: read, never a third send", drive(&repeat(&s_disburse()), &[ok(get_loan(loan("SIGNED")))]), err(CallFailure::conflict("Loan is already DISBURSING")), "disburse_loan", Call)
            .request("get_loan"),
        row("disburse_loan sent again, 400 (not signed?): read before believing", drive(&repeat(&s_disburse()), &[ok(get_loan(loan("SIGNED")))]), err(CallFailure::rejected(400, "Loan agreement is not signed")), "disburse_loan", Call)
            .request("get_loan"),
        // reject_loan (a cancel): a lost answer reads the loan.
        row("reject_loan repeated: the loan is read first", drive(&s_await_signed(), &[cancel()]), Event::CallInterrupted, "reject_loan", Call)
            .request("get_loan"),
        row("reject_loan repeated, REJECTED: applied, cancelled", repeat(&drive(&s_await_signed(), &[cancel()])), ok(get_loan(loan("REJECTED"))), "cancelled", workflow::ActionKind::Cancelled),
        row("reject_loan repeated, 404 before any create: nothing to reject", repeat(&drive(&s_create(), &[cancel()])), err(CallFailure::rejected(404, "Loan not found")), "cancelled", workflow::ActionKind::Cancelled),
        row("reject_loan repeated, DISBURSING: no longer rejectable, for a person", repeat(&drive(&s_await_signed(), &[cancel()])), ok(get_loan(loan_disbursement("DISBURSING", "DISBURSING", "DISB-1"))), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "reject_refused")),
        // request_virtual_account: repeatable (the same account), but the loan moves on.
        row("request_virtual_account repeated: sent again", s_va(), Event::CallInterrupted, "request_virtual_account", Call)
            .request("request_virtual_account"),
        row("request_virtual_account repeated, 2xx: repaying", repeat(&s_va()), ok(virtual_account()), "repaying", Wait),
        row("request_virtual_account repeated, 400 (the loan is PAID): read before believing", lost_then_due(&s_va()), err(CallFailure::rejected(400, "Loan is PAID, not DISBURSED")), "request_virtual_account", Call)
            .request("get_loan")
            .status(Status::Ambiguous),
        row("request_virtual_account repeated, 400, the loan is PAID with its account: waits for the payments not seen", drive(&lost_then_due(&s_va()), &[err(CallFailure::rejected(400, "Loan is PAID, not DISBURSED"))]), ok(loan_with_account("PAID", "5150000.00")), "repaying", Wait)
            .check(|t| assert!(t.state.loan.virtual_account.is_some())),
        row("request_virtual_account repeated, 400, PAID, then the payment arrives: paid", drive(&lost_then_due(&s_va()), &[err(CallFailure::rejected(400, "Loan is PAID, not DISBURSED")), ok(loan_with_account("PAID", "5150000.00"))]), payment("PAY-1", "5150000.00"), "paid", workflow::ActionKind::Complete),
        row("request_virtual_account repeated, 400, the loan is DISBURSED without an account: the refusal stands", drive(&lost_then_due(&s_va()), &[err(CallFailure::rejected(400, "Loan is PAID, not DISBURSED"))]), ok(get_loan(loan_disbursement("DISBURSED", "DISBURSED", "DISB-1"))), "needs_attention", NeedsAttention),
        row("request_virtual_account repeated, 404: read before believing", lost_then_due(&s_va()), err(CallFailure::rejected(404, "Loan not found")), "request_virtual_account", Call)
            .request("get_loan"),
        row("request_virtual_account's answer lost, then loan_paid: the loan is read for its account", lost(&s_va()), cb(CallbackTitle::LoanPaid), "request_virtual_account", Call)
            .request("get_loan"),
        row("a first send's 400 is not read first: nothing was lost", s_va(), err(CallFailure::rejected(400, "Loan is DISBURSING, not DISBURSED")), "needs_attention", NeedsAttention),
    ]
}

#[test]
fn repeats_after_an_unknown_outcome() {
    run(&rows());
}
