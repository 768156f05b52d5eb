//! Waiting for the `onboard-borrower` workflow the input names: its end, however it ended,
//! decides; another workflow's end is not ours; a person supplies the borrower when the
//! end never comes.

use serde_json::json;
use workflow::ActionKind::{Call, Fail, NeedsAttention, Wait};
use workflow::{Event, Outcome, Status, Stored, UserId, WorkflowFinished};

use crate::common::{USER, registry, t0};
use crate::fixtures::*;
use crate::table::{Row, row, run};

fn stuck() -> workflow::originate::OriginateState {
    drive_at(&b_await_onboarding(), Event::Wake, after_days(7))
}

pub fn rows() -> Vec<Row> {
    vec![
        row("approved: read the borrower", b_await_onboarding(), onboarding_approved(), "check_borrower", Call)
            .check(|t| assert_eq!(t.state.loan.user_id.as_ref().map(UserId::as_str), Some(USER))),
        row("declined by the credit policy", b_await_onboarding(), onboarding_finished(Status::Completed, Some(Outcome::BorrowerDeclined {
            user_id: UserId::new(USER).unwrap(),
            reasons: vec!["credit score 420 is below the minimum 550".into()],
        }), ONBOARDING_KEY), "failed", Fail)
            .check(|t| {
                assert_eq!(reason_code(t), "borrower_declined");
                assert!(matches!(&t.action, workflow::Action::Fail { reason } if reason.message.contains("420")));
            }),
        row("onboarding failed (KYC rejected)", b_await_onboarding(), onboarding_finished(Status::Failed, None, ONBOARDING_KEY), "failed", Fail)
            .check(|t| {
                assert_eq!(reason_code(t), "onboarding_failed");
                assert!(matches!(&t.action, workflow::Action::Fail { reason } if reason.message.contains("KYC")));
            }),
        row("onboarding cancelled", b_await_onboarding(), onboarding_finished(Status::Cancelled, None, ONBOARDING_KEY), "failed", Fail)
            .check(|t| assert_eq!(reason_code(t), "onboarding_cancelled")),
        row("another onboarding's end: not ours", b_await_onboarding(), onboarding_finished(Status::Failed, None, "someone-else"), "await_onboarding", Wait)
            .ignored(),
        row("the end delivered again after it was used", b_check(), onboarding_approved(), "check_borrower", Call)
            .ignored(),
        row("woken early: nothing", b_await_onboarding(), Event::Wake, "await_onboarding", Wait)
            .at(after_days(1))
            .ignored(),
        row("never finished: a person looks", b_await_onboarding(), Event::Wake, "needs_attention", NeedsAttention)
            .at(after_days(7))
            .check(|t| assert_eq!(reason_code(t), "onboarding_timeout")),
        row("resolve with the borrower's id", stuck(), resolve(json!({"user_id": USER})), "check_borrower", Call)
            .request("get_borrower"),
        row("resolve with a malformed id: refused", stuck(), resolve(json!({"user_id": "nope"})), "needs_attention", NeedsAttention)
            .ignored(),
        row("resolve retry: wait again", stuck(), resolve(json!({"retry": true})), "await_onboarding", Wait)
            .at(after_days(8))
            .check(|t| assert!(matches!(&t.action, workflow::Action::Wait { deadline, .. } if *deadline == after_days(15)))),
    ]
}

#[test]
fn onboarding_branches() {
    run(&rows());
}

#[test]
fn the_announcement_is_built_from_the_finished_workflows_last_decision() {
    use workflow::{Engine, OnboardBorrower, Workflow};
    // An onboarding that ends approved, through the JSON interface like the executor.
    let engine = Engine::new(registry());
    let approved_state = drive_onboarding_to_approved();
    let summary = OnboardBorrower::summary(&approved_state);
    let action = OnboardBorrower::action(&approved_state);
    let finished = WorkflowFinished::new(
        "wf-1",
        "onboard-borrower",
        ONBOARDING_KEY,
        &summary,
        &action,
    )
    .expect("a terminal decision");
    assert_eq!(finished.status, Status::Completed);
    assert!(matches!(
        finished.outcome,
        Some(Outcome::BorrowerApproved { .. })
    ));
    // Stored as the inbox payload and read back by the executor.
    let payload = serde_json::to_value(&finished).unwrap();
    let back: WorkflowFinished = serde_json::from_value(payload).unwrap();
    let event = Event::Callback(workflow::CallbackEvent::Workflow(back));
    let decision = engine
        .decide(
            "originate-loan",
            Stored::new(
                &serde_json::to_value(b_await_onboarding()).unwrap(),
                &serde_json::json!({}),
            ),
            &event,
            t0(),
        )
        .unwrap();
    assert_eq!(decision.summary.state, "check_borrower");
    // A running workflow announces nothing.
    let running = OnboardBorrower::action(&crate::common::p_ocr());
    assert!(WorkflowFinished::new("wf-1", "onboard-borrower", "k", &summary, &running).is_none());
    assert_eq!(
        WorkflowFinished::correlation(workflow::Kind::OnboardBorrower, "k/1"),
        "onboard-borrower/k/1"
    );
}

fn drive_onboarding_to_approved() -> workflow::onboard::OnboardState {
    use finfra_api::callback::CallbackTitle;
    crate::common::drive(
        &crate::common::p_await_approved(),
        &[crate::common::callback(CallbackTitle::UserApproved)],
    )
}

/// `loans.onboarding_business_key` comes from the facts (the views never read the input):
/// the onboarding's key from the start to the end, `null` for a loan naming a user id.
#[test]
fn facts_name_the_onboarding() {
    use workflow::{OriginateLoan, Workflow};
    for state in [b_await_onboarding(), b_check(), b_await_signed()] {
        let facts = OriginateLoan::summary(&state).facts;
        assert_eq!(facts["onboarding_business_key"], ONBOARDING_KEY, "{facts}");
    }
    let facts = OriginateLoan::summary(&s_repaying()).facts;
    assert!(facts["onboarding_business_key"].is_null(), "{facts}");
}
