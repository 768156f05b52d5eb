//! The paths that end `paid`: a single-payment loan for a borrower given by id, and a BNPL
//! loan for a borrower from an onboarding, step by step.

use finfra_api::callback::CallbackTitle;
use finfra_api::model::loan::LoanStatus;
use workflow::ActionKind::{Call, Complete, Wait};
use workflow::{Action, CorrelationKey, FinfraRequest, OriginateLoan, Outcome, Stored, Workflow};

use crate::common::{USER, WORKFLOW, registry, t0};
use crate::fixtures::*;
use crate::table::{Row, T, row, run};

pub fn rows() -> Vec<Row> {
    vec![
        row(
            "start with a user id: read the borrower",
            s_check(),
            workflow::Event::Start,
            "check_borrower",
            Call,
        )
        .request("get_borrower"),
        row(
            "borrower APPROVED: create the loan",
            s_check(),
            ok(approved()),
            "create_loan",
            Call,
        )
        .request("create_single_payment_loan")
        .check(creates_with_the_workflows_unique_id),
        row(
            "created: initiate signing",
            s_create(),
            ok(created(false)),
            "initiate_signing",
            Call,
        )
        .request("initiate_signing")
        .check(|t| {
            assert!(t.state.loan.created);
            assert_eq!(t.state.loan.total_amount, Some(d("5150000.00")));
            assert_eq!(t.state.loan.schedule.len(), 1);
        }),
        row(
            "signing session open: wait for loan_signed",
            s_signing(),
            ok(signing()),
            "await_signed",
            Wait,
        )
        .check(|t| {
            waits_for(t, &[CallbackTitle::LoanSigned, CallbackTitle::LoanRejected]);
            assert_eq!(
                t.state
                    .loan
                    .signing
                    .as_ref()
                    .and_then(|s| s.signing_url.as_deref()),
                Some("https://sign.example/s/123")
            );
            let Action::Wait { poll, deadline, .. } = &t.action else {
                panic!()
            };
            assert!(matches!(
                poll.as_ref().map(|p| &p.request),
                Some(FinfraRequest::GetLoan { .. })
            ));
            assert_eq!(
                *deadline,
                after_days(3),
                "personal-single-payment signs within 3d"
            );
        }),
        row(
            "loan_signed: disburse",
            s_await_signed(),
            cb(CallbackTitle::LoanSigned),
            "disburse_loan",
            Call,
        )
        .request("disburse_loan")
        .check(|t| {
            assert!(
                t.state.loan.disbursement.requested,
                "recorded before the request leaves"
            )
        }),
        row(
            "disbursement accepted: wait for the bank",
            s_disburse(),
            ok(disbursing("DISB-1")),
            "await_disbursement",
            Wait,
        )
        .check(|t| {
            waits_for(
                t,
                &[
                    CallbackTitle::LoanDisbursed,
                    CallbackTitle::LoanDisbursementFailed,
                ],
            );
            assert_eq!(
                t.state.loan.disbursement.reference.as_deref(),
                Some("DISB-1")
            );
        }),
        row(
            "loan_disbursed: request the virtual account",
            s_await_disbursement(),
            disbursed_cb("DISB-1"),
            "request_virtual_account",
            Call,
        )
        .request("request_virtual_account")
        .check(|t| {
            let Some(FinfraRequest::RequestVirtualAccount { body }) = t.action.request() else {
                panic!()
            };
            assert_eq!(body.bank_code.as_str(), "BNI", "the definition's bank");
        }),
        row(
            "virtual account open: repaying",
            s_va(),
            ok(virtual_account()),
            "repaying",
            Wait,
        )
        .check(|t| {
            let Action::Wait {
                events, wake_at, ..
            } = &t.action
            else {
                panic!()
            };
            assert!(events.iter().any(|e| e.key == CorrelationKey::ExternalId
                && e.value == VA
                && e.title.as_str() == "payment"));
            assert!(events.iter().any(|e| e.title == CallbackTitle::LoanPaid));
            // Next wake: the overdue check of the only installment (due 2026-02-04,
            // end of day WIB, plus 3 days of grace), before the daily poll? No: the
            // poll comes first, after one day.
            assert_eq!(*wake_at, after_days(1));
            let facts = OriginateLoan::summary(&t.state).facts;
            assert_eq!(facts["virtual_account_number"], "88081234567890");
            assert_eq!(facts["amount_outstanding"], "5150000.00");
        }),
        row(
            "paid in full",
            s_repaying(),
            payment("pay-1", "5150000.00"),
            "repaying",
            Wait,
        )
        .check(|t| {
            assert!(t.state.loan.covered());
            let Action::Wait { wake_at, .. } = &t.action else {
                panic!()
            };
            assert_eq!(
                *wake_at,
                t0(),
                "covered: read the loan at once to confirm PAID"
            );
        }),
        row(
            "loan_paid: complete",
            drive(&s_repaying(), &[payment("pay-1", "5150000.00")]),
            cb(CallbackTitle::LoanPaid),
            "paid",
            Complete,
        )
        .check(|t| {
            let Action::Complete {
                outcome:
                    Outcome::LoanPaid {
                        unique_id,
                        user_id,
                        total_paid,
                    },
            } = &t.action
            else {
                panic!()
            };
            assert_eq!(unique_id.as_str(), uid());
            assert_eq!(user_id.as_str(), USER);
            assert_eq!(*total_paid, d("5150000.00"));
            let facts = OriginateLoan::summary(&t.state).facts;
            assert_eq!(facts["loan_status"], "PAID");
            assert_eq!(facts["disbursement_reference"], "DISB-1");
            assert_eq!(facts["amount_paid"], "5150000.00");
            assert_eq!(facts["amount_outstanding"], "0.00");
        }),
        // BNPL from an onboarding.
        row(
            "start with an onboarding: wait for it",
            b_await_onboarding(),
            workflow::Event::Start,
            "await_onboarding",
            Wait,
        )
        .check(|t| {
            let Action::Wait { events, poll, .. } = &t.action else {
                panic!()
            };
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].title.as_str(), "workflow_finished");
            assert_eq!(events[0].key, CorrelationKey::ExternalId);
            assert_eq!(
                events[0].value,
                format!("onboard-borrower/{ONBOARDING_KEY}")
            );
            assert!(poll.is_none());
        }),
        row(
            "onboarding approved the borrower: read it",
            b_await_onboarding(),
            onboarding_approved(),
            "check_borrower",
            Call,
        )
        .request("get_borrower"),
        row(
            "BNPL create",
            b_check(),
            ok(approved()),
            "create_loan",
            Call,
        )
        .request("create_bnpl_loan")
        .check(|t| {
            let Some(FinfraRequest::CreateBnplLoan { body, .. }) = t.action.request() else {
                panic!()
            };
            assert_eq!(body.tenor, 3);
            assert_eq!(body.interest_rate, d("0.0175"));
            assert_eq!(body.merchant_name.as_deref(), Some("Toko Maju"));
        }),
        row(
            "BNPL waits for bnpl_signed",
            drive(&b_create(), &[ok(created(true))]),
            ok(signing()),
            "await_signed",
            Wait,
        )
        .check(|t| waits_for(t, &[CallbackTitle::BnplSigned, CallbackTitle::BnplRejected])),
        row(
            "bnpl_signed: disburse",
            b_await_signed(),
            cb(CallbackTitle::BnplSigned),
            "disburse_loan",
            Call,
        )
        .request("disburse_loan"),
        row(
            "BNPL virtual account at the input's bank",
            drive(
                &b_await_signed(),
                &[cb(CallbackTitle::BnplSigned), ok(disbursing("DISB-9"))],
            ),
            cb(CallbackTitle::BnplDisbursed),
            "request_virtual_account",
            Call,
        )
        .check(|t| {
            let Some(FinfraRequest::RequestVirtualAccount { body }) = t.action.request() else {
                panic!()
            };
            assert_eq!(body.bank_code.as_str(), "MANDIRI");
            assert!(t.state.loan.has_reached(&LoanStatus::Disbursed));
        }),
    ]
}

fn creates_with_the_workflows_unique_id(t: &T) {
    let Action::Call {
        request: FinfraRequest::CreateSinglePaymentLoan { body, user_id },
        operation_key,
        ..
    } = &t.action
    else {
        panic!("a create");
    };
    assert_eq!(body.unique_id, uid());
    assert_eq!(
        operation_key.as_ref().map(|k| k.as_str()),
        Some(uid().as_str())
    );
    assert_eq!(user_id.as_str(), USER);
    assert_eq!(body.principal_amount, d("5000000.00"));
    assert_eq!(body.disbursement_account.swift_code, "BNINIDJA");
}

fn waits_for(t: &T, titles: &[CallbackTitle]) {
    let Action::Wait { events, .. } = &t.action else {
        panic!("a wait");
    };
    let got: Vec<&CallbackTitle> = events.iter().map(|e| &e.title).collect();
    assert_eq!(got, titles.iter().collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .all(|e| e.key == CorrelationKey::LoanUniqueId && e.value == uid())
    );
}

#[test]
fn happy_paths() {
    run(&rows());
}

#[test]
fn a_single_payment_loan_from_start_to_paid_through_json() {
    use workflow::{Engine, Event, Handled};
    let engine = Engine::new(registry());
    let id = workflow::WorkflowId::new(WORKFLOW).unwrap();
    assert_eq!(
        engine
            .validate("originate-loan", &single_input(), t0())
            .unwrap()
            .to_string(),
        "personal-single-payment@1"
    );
    let first = engine
        .start(
            "originate-loan",
            &id,
            &single_input(),
            &workflow::Prior::default(),
            t0(),
        )
        .unwrap();
    assert_eq!(first.summary.state, "check_borrower");
    let script = [
        ok(approved()),
        ok(created(false)),
        ok(signing()),
        cb(CallbackTitle::LoanSigned),
        ok(disbursing("DISB-1")),
        disbursed_cb("DISB-1"),
        ok(virtual_account()),
        payment("pay-1", "5150000.00"),
        cb(CallbackTitle::LoanPaid),
    ];
    let mut state = first.state;
    let mut states = vec![first.summary.state];
    for event in script {
        let stored: Event = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        let decision = engine
            .decide(
                "originate-loan",
                Stored::new(&state, &single_input()),
                &stored,
                t0(),
            )
            .unwrap();
        assert_eq!(decision.handled, Handled::Advanced, "{}", decision.note);
        states.push(decision.summary.state.clone());
        state = decision.state;
    }
    assert_eq!(
        states,
        [
            "check_borrower",
            "create_loan",
            "initiate_signing",
            "await_signed",
            "disburse_loan",
            "await_disbursement",
            "request_virtual_account",
            "repaying",
            "repaying",
            "paid"
        ]
    );
    let summary = engine
        .summary("originate-loan", Stored::new(&state, &single_input()))
        .unwrap();
    assert_eq!(summary.status, workflow::Status::Completed);
    assert_eq!(summary.facts["loan_unique_id"], uid().as_str());
    assert_eq!(summary.facts["user_id"], USER);
}
