//! Waiting for callbacks: polls when they are late, deadlines, failed polls.

use std::time::Duration;

use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::ekyc::KycSubmissionStatus;
use workflow::ActionKind::{Call, Complete, Fail, NeedsAttention, Wait};
use workflow::kit::Phase as _;
use workflow::onboard::OnboardState;
use workflow::{Action, CallFailure, CallPurpose, Event, OnboardBorrower, Workflow};

use crate::common::*;
use crate::table::{Row, T, row, run};

/// A state whose poll is outstanding (woken at the first poll time).
fn polling(state: &OnboardState, poll_at: i64) -> OnboardState {
    OnboardBorrower::decide(state, &Event::Wake, at(poll_at)).state
}

/// A wait for verification whose poll at 30 s found the borrower REJECTED, with no reason.
fn rejected_by_poll(state: &OnboardState) -> OnboardState {
    let polled = polling(state, 30);
    OnboardBorrower::decide(&polled, &ok(get_borrower(BorrowerStatus::Rejected)), at(31)).state
}

fn failure(t: &T) -> String {
    match &t.action {
        Action::Fail { reason } => reason.message.clone(),
        _ => String::new(),
    }
}

fn hint(t: &T) -> String {
    match &t.action {
        Action::NeedsAttention { reason, .. } => reason.hint.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row("woken before the poll: nothing to do", p_await_created(), Event::Wake, "await_user_created", Wait)
            .at(at(10))
            .ignored(),
        row("poll due: read the KYC submission", p_await_created(), Event::Wake, "await_user_created", Call)
            .at(at(30))
            .request("get_kyc_submission")
            .purpose(CallPurpose::Poll),
        row("poll: not yet", polling(&p_await_created(), 30), ok(submission(KycSubmissionStatus::Submitted, None, &[])), "await_user_created", Wait)
            .at(at(31))
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, .. } if *wake_at == at(61)))),
        row("poll finds the borrower: no callback needed", polling(&p_await_created(), 30), ok(submission(KycSubmissionStatus::Processing, Some(USER), &[])), "hub_check", Call)
            .at(at(31))
            .check(|t| assert_eq!(t.state.borrower.user_id.as_ref().map(|u| u.as_str()), Some(USER))),
        row("poll shows a rejection", polling(&p_await_created(), 30), ok(submission(KycSubmissionStatus::Rejected, None, &["KTP data does not match"])), "failed", Fail)
            .at(at(31)),
        row("poll rate limited: next poll exactly after Retry-After", polling(&p_await_created(), 30), err(CallFailure::rate_limited(Some(Duration::from_secs(5)))), "await_user_created", Wait)
            .at(at(31))
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, .. } if *wake_at == at(36)))),
        row("poll 500: poll again later", polling(&p_await_created(), 30), err(CallFailure::server(500, true)), "await_user_created", Wait).at(at(31)),
        row("poll 404: attention", polling(&p_await_created(), 30), err(CallFailure::rejected(404, "KYC session not found")), "needs_attention", NeedsAttention).at(at(31)),
        row("interrupted poll: poll again", polling(&p_await_created(), 30), Event::CallInterrupted, "await_user_created", Call)
            .at(at(31))
            .request("get_kyc_submission"),
        row("kyc path deadline: attention", p_await_created(), Event::Wake, "needs_attention", NeedsAttention)
            .at(at(30 * 60))
            .check(|t| assert!(hint(t).contains("user_id"))),
        row("plain path: no poll, wake only at the deadline", b_await_created(), Event::Wake, "await_user_created", Wait)
            .at(at(60))
            .ignored()
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, poll: None, .. } if *wake_at == at(30 * 60)))),
        row("plain path deadline: attention, resolve with the user id", b_await_created(), Event::Wake, "needs_attention", NeedsAttention)
            .at(at(30 * 60))
            .check(|t| {
                assert!(hint(t).contains("{\"user_id\""));
                let Action::NeedsAttention { reason, .. } = &t.action else { panic!() };
                assert_eq!(reason.code, "user_created_timeout");
                assert!(!reason.message.contains(NIK), "the NIK is masked: {}", reason.message);
            }),
        row("verified poll: VERIFIED", polling(&p_await_verified(), 30), ok(get_borrower(BorrowerStatus::Verified)), "credit_score", Call).at(at(31)),
        row("verified poll: still PENDING", polling(&p_await_verified(), 30), ok(get_borrower(BorrowerStatus::Pending)), "await_user_verified", Wait).at(at(31)),
        // Finfra gives a rejection's reason in the KYC submission (e-KYC) or in the
        // `user_rejected` callback, never in the borrower: a poll that finds REJECTED first
        // waits for the reason.
        row("verified poll: REJECTED (e-KYC): read the submission for the reason", polling(&p_await_verified(), 30), ok(get_borrower(BorrowerStatus::Rejected)), "await_user_verified", Wait)
            .at(at(31))
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, .. } if *wake_at == at(61)))),
        row("the next poll reads the KYC submission", rejected_by_poll(&p_await_verified()), Event::Wake, "await_user_verified", Call)
            .at(at(61))
            .request("get_kyc_submission"),
        row("the submission gives the reason: failed with it", polling(&rejected_by_poll(&p_await_verified()), 61), ok(submission(KycSubmissionStatus::Rejected, Some(USER), &["blurry KTP"])), "failed", Fail)
            .at(at(62))
            .check(|t| assert!(failure(t).contains("blurry KTP"), "{}", failure(t))),
        row("verified poll: REJECTED (no e-KYC): wait for user_rejected until Finfra stops retrying it", polling(&b_await_verified(), 30), ok(get_borrower(BorrowerStatus::Rejected)), "await_user_verified", Wait)
            .at(at(31))
            .check(|t| assert!(matches!(&t.action, Action::Wait { wake_at, .. } if *wake_at == at(31 + 17 * 60)))),
        row("user_rejected after the poll: failed with its reason", rejected_by_poll(&b_await_verified()), rejected_callback("KTP data does not match the Dukcapil record"), "failed", Fail)
            .at(at(40))
            .check(|t| assert!(failure(t).contains("Dukcapil"), "{}", failure(t))),
        row("no user_rejected within Finfra's retries: failed without a reason", polling(&rejected_by_poll(&b_await_verified()), 31 + 17 * 60), ok(get_borrower(BorrowerStatus::Rejected)), "failed", Fail)
            .at(at(32 + 17 * 60))
            .check(|t| assert!(failure(t).contains("no reason given"), "{}", failure(t))),
        row("the deadline while waiting for the reason: failed, not stuck", rejected_by_poll(&b_await_verified()), Event::Wake, "failed", Fail)
            .at(at(24 * 3600)),
        row("a reconciliation nudge polls at once", p_await_verified(), Event::PollNow { by: "reconcile-loans run".into() }, "await_user_verified", Call)
            .at(at(5))
            .request("get_borrower")
            .purpose(CallPurpose::Poll),
        row("a nudge while the poll is out changes nothing", polling(&p_await_verified(), 30), Event::PollNow { by: "reconcile-loans run".into() }, "await_user_verified", Call)
            .at(at(31))
            .ignored(),
        row("verified deadline: attention", p_await_verified(), Event::Wake, "needs_attention", NeedsAttention).at(at(2 * 3600)),
        row("approved poll: APPROVED", polling(&p_await_approved(), 30), ok(get_borrower(BorrowerStatus::Approved)), "approved", Complete).at(at(31)),
        row("approved poll: APPROVED_BY_PARTNER still", polling(&p_await_approved(), 30), ok(get_borrower(BorrowerStatus::ApprovedByPartner)), "await_user_approved", Wait).at(at(31)),
        row("approved deadline: attention", p_await_approved(), Event::Wake, "needs_attention", NeedsAttention).at(at(2 * 3600)),
    ]
}

#[test]
fn waits_polls_and_deadlines() {
    run(&rows());
}

#[test]
fn failed_polls_run_out_into_attention() {
    let mut state = polling(&p_await_verified(), 30);
    for _ in 0..7 {
        let t = OnboardBorrower::decide(&state, &err(CallFailure::server(500, true)), at(31));
        assert_eq!(t.state.phase.name(), "await_user_verified");
        let Action::Wait { wake_at, .. } = t.action else {
            panic!()
        };
        state = OnboardBorrower::decide(&t.state, &Event::Wake, wake_at).state;
    }
    let t = OnboardBorrower::decide(&state, &err(CallFailure::server(500, true)), at(40));
    assert_eq!(t.state.phase.name(), "needs_attention");
}
