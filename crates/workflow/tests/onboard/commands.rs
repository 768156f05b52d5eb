//! Operator commands: cancel from any state, resolve from `needs_attention`.

use finfra_api::callback::CallbackTitle;
use finfra_api::model::ekyc::KycSubmissionStatus;
use serde_json::json;
use workflow::ActionKind::{Call, Cancelled, Complete, NeedsAttention, SleepUntil, Wait};
use workflow::kit::Phase as _;
use workflow::onboard::OnboardState;
use workflow::{Action, CallFailure, CallPurpose, Event, OnboardBorrower, Status, Workflow};

use crate::common::*;
use crate::failures::p_create_ambiguous;
use crate::table::{Row, row, run};

fn cancel() -> Event {
    Event::Cancel {
        by: "ops@lender".to_owned(),
        reason: "customer withdrew".to_owned(),
    }
}

fn resolve(data: serde_json::Value) -> Event {
    Event::Resolve {
        by: "ops@lender".to_owned(),
        reason: "checked at Finfra".to_owned(),
        data,
    }
}

/// Stuck after `user_created` never came (plain path).
fn stuck_without_id() -> OnboardState {
    OnboardBorrower::decide(&b_await_created(), &Event::Wake, at(30 * 60)).state
}

/// Stuck at a hub check after its attempts ran out.
fn stuck_at_hub() -> OnboardState {
    let mut state = p_hub();
    for _ in 0..8 {
        state = drive(&state, &[err(CallFailure::server(500, true))]);
        state = OnboardBorrower::decide(&state, &Event::Wake, at(86_400)).state;
    }
    state
}

/// Stuck not knowing whether the create was applied.
fn stuck_ambiguous() -> OnboardState {
    drive(
        &p_create_ambiguous(),
        &[err(CallFailure::rejected(404, "KYC session not found"))],
    )
}

fn stuck_verifying() -> OnboardState {
    OnboardBorrower::decide(&p_await_verified(), &Event::Wake, at(2 * 3600)).state
}

pub fn rows() -> Vec<Row> {
    vec![
        row("cancel at OCR", p_ocr(), cancel(), "cancelled", Cancelled)
            .check(|t| assert!(matches!(&t.state.phase, workflow::onboard::Phase::Cancelled { step, .. } if step == "ekyc_ocr"))),
        row("cancel while ambiguous", p_create_ambiguous(), cancel(), "cancelled", Cancelled)
            .check(|t| assert!(t.note.contains("unknown"))),
        row("cancel while waiting", p_await_verified(), cancel(), "cancelled", Cancelled),
        row("cancel while retrying", drive(&p_hub(), &[err(CallFailure::server(500, true))]), cancel(), "cancelled", Cancelled),
        row("cancel from needs_attention", stuck_without_id(), cancel(), "cancelled", Cancelled)
            .check(|t| assert!(matches!(&t.state.phase, workflow::onboard::Phase::Cancelled { step, .. } if step == "await_user_created"))),
        row("cancel after completion is refused", drive(&p_await_approved(), &[callback(CallbackTitle::UserApproved)]), cancel(), "approved", Complete)
            .ignored(),
        row("cancel twice", drive(&p_ocr(), &[cancel()]), cancel(), "cancelled", Cancelled).ignored(),
        row("resolve with the user id", stuck_without_id(), resolve(json!({"user_id": USER})), "hub_check", Call)
            .check(|t| {
                assert_eq!(t.state.borrower.user_id.as_ref().map(|u| u.as_str()), Some(USER));
                assert!(t.state.borrower.statuses.iter().any(|s| s.source == workflow::onboard::state::Source::Operator));
            }),
        row("resolve retry of a wait: waits again, polls at once", stuck_verifying(), resolve(json!({"retry": true})), "await_user_verified", Wait)
            .at(at(3 * 3600))
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, deadline, .. } if *wake_at == at(3 * 3600) && *deadline == at(5 * 3600)))),
        row("resolve retry of exhausted attempts", stuck_at_hub(), resolve(json!({})), "hub_check", Call)
            .request("hub_status")
            .check(|t| assert_eq!(t.state.phase.run().map(|r| r.failures), Some(0))),
        row("resolve retry of an unknown outcome reconciles first", stuck_ambiguous(), resolve(json!({"retry": true})), "create_borrower", Call)
            .status(Status::Ambiguous)
            .request("get_kyc_submission")
            .purpose(CallPurpose::Reconcile),
        row("resolve with a bad user id is refused", stuck_without_id(), resolve(json!({"user_id": "nope"})), "needs_attention", NeedsAttention)
            .ignored(),
        row("resolve with unknown data is refused", stuck_without_id(), resolve(json!({"approve": true})), "needs_attention", NeedsAttention)
            .ignored(),
        row("resolve with a user id once it is known is refused", stuck_at_hub(), resolve(json!({"user_id": USER})), "needs_attention", NeedsAttention)
            .ignored(),
        row("resolve with a user id before the create is refused", drive(&p_ocr(), &[err(CallFailure::permanent(workflow::FailureKind::Unauthorized, "refused"))]), resolve(json!({"user_id": USER})), "needs_attention", NeedsAttention)
            .ignored()
            .check(|t| assert!(t.note.contains("not at ekyc_ocr"), "{}", t.note)),
        row("resolve with a user id after a lost create", drive(&p_create_ambiguous(), &[err(CallFailure::rejected(404, "gone"))]), resolve(json!({"user_id": USER})), "hub_check", Call),
        row("resolve outside needs_attention is refused", p_hub(), resolve(json!({})), "hub_check", Call).ignored(),
        row("the awaited callback after the wait ran out resumes the workflow by itself", stuck_without_id(), callback(CallbackTitle::UserCreated), "hub_check", Call)
            .check(|t| assert!(t.note.contains("resumed by itself"), "{}", t.note)),
        row("another borrower's callback in needs_attention changes nothing", stuck_without_id(), callback_for(CallbackTitle::UserCreated, OTHER_USER, OTHER_NIK), "needs_attention", NeedsAttention)
            .ignored(),
        row("a wake in needs_attention", stuck_at_hub(), Event::Wake, "needs_attention", NeedsAttention).ignored(),
        row("a reconcile read's retry stays ambiguous", drive(&p_create_ambiguous(), &[err(CallFailure::server(500, true))]), Event::Wake, "create_borrower", Call)
            .at(at(86_400))
            .status(Status::Ambiguous)
            .request("get_kyc_submission"),
        row("a reconcile after resolve finds the borrower", drive(&stuck_ambiguous(), &[resolve(json!({"retry": true}))]), ok(submission(KycSubmissionStatus::Submitted, Some(USER), &[])), "hub_check", Call),
        row("retrying hub before its time", drive(&p_hub(), &[err(CallFailure::server(500, true))]), Event::Wake, "hub_check", SleepUntil)
            .ignored(),
    ]
}

#[test]
fn commands() {
    run(&rows());
}

#[test]
fn check_command_tells_the_cli_why() {
    let done = drive(
        &p_await_approved(),
        &[callback(CallbackTitle::UserApproved)],
    );
    let refused = OnboardBorrower::check_command(&done, &cancel(), t0()).unwrap_err();
    assert!(refused.0.contains("already approved"), "{refused}");
    let refused = OnboardBorrower::check_command(
        &stuck_without_id(),
        &resolve(json!({"user_id": "x"})),
        t0(),
    )
    .unwrap_err();
    assert!(refused.0.contains("user id"), "{refused}");
    assert!(
        OnboardBorrower::check_command(
            &stuck_without_id(),
            &resolve(json!({"user_id": USER})),
            t0()
        )
        .is_ok()
    );
}
