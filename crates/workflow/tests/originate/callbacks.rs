//! Callbacks are at least once and unordered: duplicates change nothing, late ones are
//! recorded without going back, early ones skip what is already done, other loans' are
//! not ours.

use finfra_api::callback::{CallbackData, CallbackTitle, StatusCallback};
use finfra_api::model::loan::LoanStatus;
use workflow::ActionKind::{Call, Wait};
use workflow::{Action, CallbackEvent, Event};

use crate::fixtures::*;
use crate::table::{Row, row, run};

fn other_loans(title: CallbackTitle) -> Event {
    let Event::Callback(CallbackEvent::Status(mut callback)) = cb(title) else {
        unreachable!()
    };
    callback.loan_unique_id = Some("op-someoneelse0000000000000000000".to_owned());
    callback.event_id = "evt-other".to_owned();
    Event::Callback(CallbackEvent::Status(callback))
}

fn same_event_new_id(event: &Event, id: &str) -> Event {
    let Event::Callback(CallbackEvent::Status(callback)) = event else {
        unreachable!()
    };
    Event::Callback(CallbackEvent::Status(StatusCallback {
        event_id: id.to_owned(),
        ..callback.clone()
    }))
}

pub fn rows() -> Vec<Row> {
    vec![
        row(
            "loan_signed twice",
            s_disburse(),
            cb(CallbackTitle::LoanSigned),
            "disburse_loan",
            Call,
        )
        .ignored(),
        row(
            "loan_signed again under a new event id: a known fact",
            s_await_disbursement(),
            same_event_new_id(&cb(CallbackTitle::LoanSigned), "evt-again"),
            "await_disbursement",
            Wait,
        )
        .ignored(),
        row(
            "loan_disbursed twice",
            s_va(),
            disbursed_cb("DISB-1"),
            "request_virtual_account",
            Call,
        )
        .ignored(),
        row(
            "loan_disbursed before loan_signed: it proves both, nothing is sent",
            s_await_signed(),
            disbursed_cb("DISB-1"),
            "request_virtual_account",
            Call,
        )
        .request("request_virtual_account")
        .check(|t| {
            assert!(t.state.loan.is_signed());
            assert!(!t.state.loan.disbursement.requested, "finflow never asked");
        }),
        row(
            "the late loan_signed after loan_disbursed: ignored",
            drive(&s_await_signed(), &[disbursed_cb("DISB-1")]),
            cb(CallbackTitle::LoanSigned),
            "request_virtual_account",
            Call,
        )
        .ignored(),
        row(
            "late loan_signed while repaying",
            s_repaying(),
            cb(CallbackTitle::LoanSigned),
            "repaying",
            Wait,
        )
        .ignored(),
        row(
            "late loan_created while waiting for the bank",
            s_await_disbursement(),
            cb(CallbackTitle::LoanCreated),
            "await_disbursement",
            Wait,
        )
        .ignored(),
        row(
            "another loan's loan_signed",
            s_await_signed(),
            other_loans(CallbackTitle::LoanSigned),
            "await_signed",
            Wait,
        )
        .ignored(),
        row(
            "a BNPL title for a single-payment loan still counts (same event)",
            s_await_signed(),
            cb(CallbackTitle::BnplSigned),
            "disburse_loan",
            Call,
        ),
        row(
            "loan_disbursement_failed twice",
            s_refused(),
            disbursement_failed_cb("DISB-1", "Account closed"),
            "needs_attention",
            workflow::ActionKind::NeedsAttention,
        )
        .ignored(),
        row(
            "loan_disbursed early, while disbursing",
            s_disburse(),
            disbursed_cb("DISB-1"),
            "request_virtual_account",
            Call,
        ),
        row(
            "loan_paid before the payment callback: wait for the payment",
            s_repaying(),
            cb(CallbackTitle::LoanPaid),
            "repaying",
            Wait,
        )
        .check(|t| {
            assert!(t.state.loan.has_reached(&LoanStatus::Paid));
            let Action::Wait { deadline, .. } = &t.action else {
                panic!("a wait")
            };
            assert!(*deadline <= crate::common::t0() + workflow::originate::SETTLEMENT_GRACE);
        }),
        row(
            "the payment after loan_paid: complete",
            drive(&s_repaying(), &[cb(CallbackTitle::LoanPaid)]),
            payment("pay-1", "5150000.00"),
            "paid",
            workflow::ActionKind::Complete,
        )
        .check(|t| assert_eq!(t.state.loan.repayment.payments.len(), 1)),
        row(
            "a rejection reason is kept",
            s_await_signed(),
            loan_callback(
                CallbackTitle::LoanRejected,
                "evt-r",
                CallbackData {
                    reason: Some("duplicate application".into()),
                    ..CallbackData::default()
                },
            ),
            "rejected",
            workflow::ActionKind::Fail,
        )
        .check(|t| {
            assert_eq!(
                t.state.loan.rejection_reason.as_deref(),
                Some("duplicate application")
            )
        }),
    ]
}

#[test]
fn callback_branches() {
    run(&rows());
}
