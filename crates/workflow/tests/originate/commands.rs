//! Operator commands: cancel before the disbursement (rejecting the loan at Finfra when it
//! may exist), refused from the disbursement on; resolve from `needs_attention`.

use finfra_api::callback::CallbackTitle;
use serde_json::json;
use workflow::ActionKind::{Call, Cancelled, Complete, NeedsAttention, Wait};
use workflow::kit::Phase as _;
use workflow::originate::Phase;
use workflow::{
    CallFailure, CallPurpose, Engine, EngineError, Event, OriginateLoan, Stored, Workflow,
};

use crate::common::{USER, registry, t0};
use crate::failures::{s_create_ambiguous, s_rejecting};
use crate::fixtures::*;
use crate::table::{Row, row, run};

fn refused(t: &crate::table::T) {
    assert!(
        t.note.contains("cancel refused") && t.note.contains("irreversible"),
        "{}",
        t.note
    );
}

fn cancelled_at(t: &crate::table::T, at: &str) {
    assert!(
        matches!(&t.state.phase, Phase::Cancelled { step, .. } if step == at),
        "{:?}",
        t.state.phase
    );
}

pub fn rows() -> Vec<Row> {
    vec![
        // Before any loan can exist.
        row(
            "cancel while waiting for the onboarding",
            b_await_onboarding(),
            cancel(),
            "cancelled",
            Cancelled,
        )
        .check(|t| cancelled_at(t, "await_onboarding")),
        row(
            "cancel while reading the borrower",
            s_check(),
            cancel(),
            "cancelled",
            Cancelled,
        ),
        // Once it may exist: rejected at Finfra first.
        row(
            "cancel at create: reject whatever may exist",
            s_create(),
            cancel(),
            "reject_loan",
            Call,
        )
        .request("reject_loan")
        .check(|t| assert!(t.note.contains("rejecting the loan"))),
        row(
            "cancel while the create's outcome is unknown",
            s_create_ambiguous(),
            cancel(),
            "reject_loan",
            Call,
        )
        .check(|t| assert!(t.note.contains("unknown"))),
        row(
            "cancel while waiting for the signature",
            s_await_signed(),
            cancel(),
            "reject_loan",
            Call,
        )
        .request("reject_loan")
        .check(|t| {
            let Some(workflow::FinfraRequest::RejectLoan { body, .. }) = t.action.request() else {
                panic!()
            };
            assert_eq!(body.reason, "cancelled by ops@lender: customer withdrew");
        }),
        row(
            "the cancel's rejection applied: cancelled",
            drive(&s_await_signed(), &[cancel()]),
            ok(rejected_loan()),
            "cancelled",
            Cancelled,
        )
        .check(|t| cancelled_at(t, "reject_loan")),
        row(
            "no loan at Finfra (404): cancelled",
            drive(&s_create(), &[cancel()]),
            err(CallFailure::rejected(404, "Loan not found")),
            "cancelled",
            Cancelled,
        ),
        row(
            "the cancel's rejection lost: read the loan",
            drive(&s_await_signed(), &[cancel()]),
            err(CallFailure::timeout(true, false)),
            "reject_loan",
            Call,
        )
        .request("get_loan")
        .purpose(CallPurpose::Reconcile),
        row(
            "cancel while rejecting for the signing timeout: ends cancelled",
            s_rejecting(),
            cancel(),
            "reject_loan",
            Call,
        ),
        row(
            "cancel twice",
            drive(&s_await_signed(), &[cancel()]),
            cancel(),
            "reject_loan",
            Call,
        )
        .ignored(),
        // From the decision to disburse on: refused.
        row(
            "cancel at disburse: refused",
            s_disburse(),
            cancel(),
            "disburse_loan",
            Call,
        )
        .ignored()
        .check(refused),
        row(
            "cancel while the bank answers: refused",
            s_await_disbursement(),
            cancel(),
            "await_disbursement",
            Wait,
        )
        .ignored()
        .check(refused),
        row(
            "cancel after a refused disbursement: refused",
            s_refused(),
            cancel(),
            "needs_attention",
            NeedsAttention,
        )
        .ignored()
        .check(refused),
        row(
            "cancel while repaying: refused",
            s_repaying(),
            cancel(),
            "repaying",
            Wait,
        )
        .ignored()
        .check(refused),
        row(
            "cancel when paid: refused",
            drive(
                &s_repaying(),
                &[payment("pay-1", "5150000.00"), cb(CallbackTitle::LoanPaid)],
            ),
            cancel(),
            "paid",
            Complete,
        )
        .ignored(),
        // Resolve.
        row(
            "resolve outside needs_attention: refused",
            s_await_signed(),
            resolve(json!({"retry": true})),
            "await_signed",
            Wait,
        )
        .ignored(),
        row(
            "resolve with an unknown field: refused",
            s_refused(),
            resolve(json!({"force": true})),
            "needs_attention",
            NeedsAttention,
        )
        .ignored()
        .check(|t| assert!(t.note.contains("unknown field"))),
        row(
            "resolve with a user id outside the onboarding wait: refused",
            s_refused(),
            resolve(json!({"user_id": USER})),
            "needs_attention",
            NeedsAttention,
        )
        .ignored(),
        row(
            "resolve the stuck create (read 404... exhausted)",
            drive(
                &s_create_ambiguous(),
                &[err(CallFailure::rejected(403, "Forbidden"))],
            ),
            resolve(json!({"retry": true})),
            "create_loan",
            Call,
        )
        .request("get_loan")
        .purpose(CallPurpose::Reconcile),
    ]
}

#[test]
fn command_branches() {
    run(&rows());
}

#[test]
fn check_command_tells_the_cli_why_a_cancel_is_refused() {
    let engine = Engine::new(registry());
    let stored = serde_json::to_value(s_await_disbursement()).unwrap();
    let refused = engine
        .check_command(
            "originate-loan",
            Stored::new(&stored, &json!({})),
            &cancel(),
            t0(),
        )
        .unwrap_err();
    let EngineError::Refused(reason) = refused else {
        panic!("a refusal");
    };
    assert!(
        reason.0.contains("disbursement") && reason.0.contains("irreversible"),
        "{reason}"
    );
    let before = serde_json::to_value(s_await_signed()).unwrap();
    engine
        .check_command(
            "originate-loan",
            Stored::new(&before, &json!({})),
            &cancel(),
            t0(),
        )
        .unwrap();
    assert!(
        OriginateLoan::check_command(&s_repaying(), &resolve(json!({})), t0()).is_err(),
        "nothing to resolve"
    );
    // A cancel is never refused for a state it would accept.
    let t = OriginateLoan::decide(
        &s_await_signed(),
        &Event::Cancel {
            by: "a".into(),
            reason: "b".into(),
        },
        t0(),
    );
    assert_eq!(t.state.phase.name(), "reject_loan");
}

/// The four-eyes rule: which commands to a loan wait for a second person.
#[test]
fn money_commands_need_approval() {
    let engine = Engine::new(registry());
    let needs = |state: &workflow::originate::OriginateState, command: &Event| {
        let stored = serde_json::to_value(state).unwrap();
        engine
            .needs_approval("originate-loan", Stored::new(&stored, &json!({})), command)
            .unwrap()
    };
    // A retry after the bank refused the disbursement: it re-disburses.
    let why = needs(&s_refused(), &resolve(json!({"retry": true}))).expect("approval");
    assert!(
        why.contains("retry") && why.contains("refused disbursement"),
        "{why}"
    );
    // Any resolve of a loan, even before the money.
    assert!(needs(&s_await_signed(), &resolve(json!({}))).is_some());
    // A cancel of a signed loan (about to disburse) stops money; before signing it does not.
    assert!(needs(&s_disburse(), &cancel()).is_some());
    assert!(needs(&s_await_disbursement(), &cancel()).is_some());
    assert_eq!(needs(&s_await_signed(), &cancel()), None);
    assert_eq!(needs(&b_await_onboarding(), &cancel()), None);
    // An onboarding moves no money: one person decides.
    let onboarding = json!({"anything": "is not read"});
    assert_eq!(
        engine
            .needs_approval(
                "onboard-borrower",
                Stored::new(&onboarding, &json!({})),
                &cancel()
            )
            .unwrap(),
        None
    );
}
