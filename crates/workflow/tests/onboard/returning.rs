//! A returning borrower: a new onboarding of a NIK whose earlier onboarding completed
//! adopts the borrower that onboarding created (the executor finds it in the store and
//! passes it as `Prior::returning_borrower`), reads it, and carries on from its status. It
//! never creates a second borrower, which Finfra would refuse with `409`.

use finfra_api::model::borrower::BorrowerStatus;
use workflow::ActionKind::{Call, Complete, Fail, NeedsAttention, Wait};
use workflow::definition::ReturningBorrowers;
use workflow::kit::Phase as _;
use workflow::onboard::OnboardState;
use workflow::{
    Action, CallFailure, OnboardBorrower, Outcome, Prior, UserId, Workflow, WorkflowId,
};

use crate::common::*;
use crate::table::{Row, T, row, run};

fn returning(input: &serde_json::Value) -> OnboardState {
    let input = OnboardBorrower::validate_input(input, &registry(), t0()).expect("valid");
    let prior = Prior {
        returning_borrower: Some(UserId::new(USER).expect("an id")),
    };
    OnboardBorrower::start(
        &WorkflowId::new(WORKFLOW).expect("an id"),
        input,
        &prior,
        t0(),
    )
    .state
}

fn rechecking() -> OnboardState {
    let mut state = returning(&personal_input());
    state.definition.onboarding.returning_borrowers = ReturningBorrowers::RecheckCredit;
    state
}

fn reason_code(t: &T) -> &str {
    match &t.action {
        Action::Fail { reason } | Action::NeedsAttention { reason, .. } => &reason.code,
        _ => "",
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row("returning, APPROVED: approved again, nothing created", returning(&personal_input()), ok(get_borrower(BorrowerStatus::Approved)), "approved", Complete)
            .check(|t| assert!(matches!(&t.action, Action::Complete { outcome: Outcome::BorrowerApproved { user_id } } if user_id.as_str() == USER))),
        row("returning, APPROVED, the definition rechecks credit: the score is read", rechecking(), ok(get_borrower(BorrowerStatus::Approved)), "credit_score", Call)
            .request("score_report"),
        row("returning, APPROVED_BY_PARTNER: waits for APPROVED", returning(&personal_input()), ok(get_borrower(BorrowerStatus::ApprovedByPartner)), "await_user_approved", Wait),
        row("returning, VERIFIED: the credit policy decides", returning(&business_input()), ok(get_borrower(BorrowerStatus::Verified)), "credit_score", Call),
        row("returning, PENDING: waits for the KYC review", returning(&personal_input()), ok(get_borrower(BorrowerStatus::Pending)), "await_user_verified", Wait),
        row("returning, BLOCKED: failed with Finfra's word", returning(&personal_input()), ok(get_borrower(BorrowerStatus::Blocked)), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "borrower_blocked")),
        row("returning, 404: the earlier record is wrong, for a person", returning(&personal_input()), err(CallFailure::rejected(404, "Borrower not found")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "returning_borrower_not_found")),
    ]
}

#[test]
fn returning_borrowers() {
    run(&rows());
}

#[test]
fn a_returning_borrower_is_read_first_and_never_created_again() {
    let state = returning(&personal_input());
    assert_eq!(state.phase.name(), "check_returning_borrower");
    assert_eq!(
        state.borrower.user_id.as_ref().map(UserId::as_str),
        Some(USER)
    );
    let mut state = rechecking();
    let mut sent = Vec::new();
    for event in [
        ok(get_borrower(BorrowerStatus::Approved)),
        ok(score(720, 0, 0)),
        ok(history(&[("CURRENT", 0)])),
        ok(get_borrower(BorrowerStatus::Approved)),
    ] {
        if let Some(request) = OnboardBorrower::action(&state).request() {
            sent.push(request.name());
        }
        state = OnboardBorrower::decide(&state, &event, at(1)).state;
    }
    assert!(
        !sent
            .iter()
            .any(|r| r.starts_with("create_borrower") || *r == "ocr"),
        "{sent:?}"
    );
    assert_eq!(sent[0], "get_borrower");
}
