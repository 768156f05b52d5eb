//! Every failure branch: rate limits, server errors on reads and writes, lost answers of
//! non-idempotent calls and their reconciliation, 409s, exhausted retries, final 4xx, and
//! the business "no"s (KYC checks, credit policy).

use std::time::Duration;

use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::document::DocumentType;
use finfra_api::model::ekyc::{
    HubCheckStatus, HubProvider, KycSubmissionStatus, Liveness, RdfBiometricStatus,
};
use workflow::ActionKind::{Call, Complete, Fail, NeedsAttention, SleepUntil, Wait};
use workflow::kit::Phase as _;
use workflow::{
    Action, CallFailure, CallPurpose, Event, FailureKind, FinfraRequest, FinfraResponse,
    OnboardBorrower, Outcome, SleepReason, Status, Workflow,
};

use crate::common::*;
use crate::table::{Row, T, row, run};

fn reason_code(t: &T) -> &str {
    match &t.action {
        Action::Fail { reason } | Action::NeedsAttention { reason, .. } => &reason.code,
        _ => "",
    }
}

/// The personal create step after a lost answer: reconciling.
pub fn p_create_ambiguous() -> workflow::onboard::OnboardState {
    drive(&p_create(), &[err(CallFailure::server(500, false))])
}

/// The KYC submit after a lost answer: reconciling.
pub fn p_submit_ambiguous() -> workflow::onboard::OnboardState {
    drive(&p_submit(), &[err(CallFailure::timeout(true, false))])
}

pub fn b_create_ambiguous() -> workflow::onboard::OnboardState {
    drive(&b_create(), &[err(CallFailure::timeout(true, false))])
}

pub fn p_approve_ambiguous() -> workflow::onboard::OnboardState {
    drive(&p_approve(), &[err(CallFailure::timeout(true, false))])
}

/// `n` failures of the hub check, each followed by its wake-up.
fn hub_failed(n: usize) -> workflow::onboard::OnboardState {
    let mut state = p_hub();
    for _ in 0..n {
        state = drive(&state, &[err(CallFailure::server(500, true))]);
        state = OnboardBorrower::decide(&state, &Event::Wake, at(86_400)).state;
    }
    state
}

pub fn rows() -> Vec<Row> {
    vec![
        // Rate limits.
        row("429 with Retry-After on create", p_create(), err(CallFailure::rate_limited(Some(Duration::from_secs(7)))), "create_borrower", SleepUntil)
            .status(Status::Retrying)
            .check(|t| {
                assert!(matches!(&t.action, Action::SleepUntil { at: when, reason: SleepReason::RateLimited, .. } if *when == at(7)));
                assert_eq!(t.state.phase.run().map(|r| r.failures), Some(0), "429s use no attempts");
            }),
        row("429 without Retry-After backs off", p_hub(), err(CallFailure::rate_limited(None)), "hub_check", SleepUntil)
            .check(|t| {
                let Action::SleepUntil { at: when, .. } = &t.action else { panic!() };
                assert!(*when >= at(0) + chrono::TimeDelta::milliseconds(500) && *when <= at(1), "{when}");
            }),
        row("wake after Retry-After sends again, same key", drive(&p_create(), &[err(CallFailure::rate_limited(Some(Duration::from_secs(7))))]), Event::Wake, "create_borrower", Call)
            .at(at(7))
            .purpose(CallPurpose::Perform)
            .check(|t| {
                let Action::Call { attempt, operation_key, .. } = &t.action else { panic!() };
                assert_eq!(*attempt, 2);
                assert_eq!(operation_key, &p_create().phase.run().unwrap().operation_key);
            }),
        row("wake inside Retry-After is ignored", drive(&p_create(), &[err(CallFailure::rate_limited(Some(Duration::from_secs(7))))]), Event::Wake, "create_borrower", SleepUntil)
            .at(at(6))
            .ignored(),
        // Server errors: a read retries, a write reconciles.
        row("500 on GET retries", p_hub(), err(CallFailure::server(500, true)), "hub_check", SleepUntil).status(Status::Retrying),
        row("500 on POST create: ambiguous, read the KYC submission", p_create(), err(CallFailure::server(500, false)), "create_borrower", Call)
            .status(Status::Ambiguous)
            .request("get_kyc_submission")
            .purpose(CallPurpose::Reconcile),
        row("503 on POST is not ambiguous: retry", p_create(), err(CallFailure::server(503, false)), "create_borrower", SleepUntil)
            .status(Status::Retrying),
        row("timeout before sending is not ambiguous", p_create(), err(CallFailure::timeout(false, false)), "create_borrower", SleepUntil),
        row("timeout on a repeatable POST (RDF) retries", p_rdf(), err(CallFailure::timeout(true, false)), "rdf_biometric", SleepUntil),
        // Reconciling the create on the KYC session.
        row("reconcile finds the borrower", p_create_ambiguous(), ok(submission(KycSubmissionStatus::Draft, Some(USER), &[])), "submit_kyc", Call)
            .check(|t| assert_eq!(t.state.borrower.user_id.as_ref().map(|u| u.as_str()), Some(USER))),
        row("reconcile finds nothing: send again (Finfra dedups the NIK)", p_create_ambiguous(), ok(submission(KycSubmissionStatus::Draft, None, &[])), "create_borrower", Call)
            .request("create_borrower_for_kyc")
            .purpose(CallPurpose::Perform)
            .check(|t| assert_eq!(t.action_attempt(), 2)),
        row("reconcile shows a rejection", p_create_ambiguous(), ok(submission(KycSubmissionStatus::Rejected, Some(USER), &["KTP data does not match"])), "failed", Fail)
            .check(|t| {
                assert_eq!(reason_code(t), "kyc_rejected");
                // The rejected borrower exists at Finfra: its id is recorded (found by the e2e test).
                assert_eq!(t.state.borrower.user_id.as_ref().map(|u| u.as_str()), Some(USER));
            }),
        row("submit reconcile shows a rejection: the user id is kept", p_submit_ambiguous(), ok(submission(KycSubmissionStatus::Rejected, Some(USER), &["KTP data does not match"])), "failed", Fail)
            .check(|t| {
                assert_eq!(reason_code(t), "kyc_rejected");
                assert_eq!(t.state.borrower.user_id.as_ref().map(|u| u.as_str()), Some(USER));
                assert_eq!(t.state.borrower.rejection_reason.as_deref(), Some("KTP data does not match"));
            }),
        row("reconcile read fails: read again later", p_create_ambiguous(), err(CallFailure::server(502, true)), "create_borrower", SleepUntil)
            .status(Status::Ambiguous),
        row("reconcile read 404: attention, never a blind resend", p_create_ambiguous(), err(CallFailure::rejected(404, "KYC session not found")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "reconcile_failed")),
        // The plain create: no read can find a borrower by NIK, the resend is the reconcile.
        row("lost answer of a plain create: resend to reconcile", b_create(), err(CallFailure::timeout(true, false)), "create_borrower", Call)
            .status(Status::Ambiguous)
            .request("create_borrower")
            .purpose(CallPurpose::Reconcile),
        row("the resend answers 409: it was applied", b_create_ambiguous(), err(CallFailure::conflict("Borrower with this identity number already exists")), "await_user_created", Wait),
        row("the resend is accepted: it was not", b_create_ambiguous(), ok(FinfraResponse::CreateBorrower(accepted())), "await_user_created", Wait),
        // 409 on create.
        row("409 on a first send: someone else's borrower, never carried on with", b_create(), err(CallFailure::conflict("Borrower with this identity number already exists")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "borrower_exists_at_finfra"))
            .check(|t| assert!(!t.state.borrower.create_accepted))
            .check(|t| assert!(matches!(&t.action, Action::NeedsAttention { reason, .. } if reason.hint.as_deref().is_some_and(|h| h.contains("user_id"))))),
        row("409 on the KYC path on a first send: needs attention", p_create(), err(CallFailure::conflict("Borrower with this identity number already exists")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "borrower_exists_at_finfra")),
        row("submit 400 (no borrower on the session) on a first send: never waits by NIK", p_submit(), err(CallFailure::rejected(400, "No borrower has been created for this KYC session")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "kyc_session_without_borrower")),
        row("submit lost: read the submission", p_submit(), err(CallFailure::timeout(true, false)), "submit_kyc", Call)
            .request("get_kyc_submission")
            .status(Status::Ambiguous),
        row("submit reconcile: it was submitted", drive(&p_submit(), &[err(CallFailure::timeout(true, false))]), ok(submission(KycSubmissionStatus::Submitted, None, &[])), "await_user_created", Wait),
        row("submit reconcile: still a draft, submit again", drive(&p_submit(), &[err(CallFailure::timeout(true, false))]), ok(submission(KycSubmissionStatus::Draft, Some(USER), &[])), "submit_kyc", Call)
            .request("submit_kyc"),
        // Approve: never re-sent without reading the borrower.
        row("approve lost: read the borrower", p_approve(), err(CallFailure::timeout(true, false)), "approve_borrower", Call)
            .status(Status::Ambiguous)
            .request("get_borrower"),
        row("approve reconcile: applied", p_approve_ambiguous(), ok(get_borrower(BorrowerStatus::ApprovedByPartner)), "await_user_approved", Wait),
        row("approve reconcile: already APPROVED", p_approve_ambiguous(), ok(get_borrower(BorrowerStatus::Approved)), "approved", Complete),
        row("approve reconcile: not applied, approve again", p_approve_ambiguous(), ok(get_borrower(BorrowerStatus::Verified)), "approve_borrower", Call)
            .request("approve_borrower")
            .check(|t| assert_eq!(t.action_attempt(), 2)),
        row("approve reconcile: rejected meanwhile", p_approve_ambiguous(), ok(get_borrower(BorrowerStatus::Rejected)), "failed", Fail),
        row("approve 409: read to learn why", p_approve(), err(CallFailure::conflict("KYC verification is not complete")), "approve_borrower", Call)
            .request("get_borrower"),
        row("approve 409, borrower PENDING after VERIFIED: a contradiction for a person", drive(&p_approve(), &[err(CallFailure::conflict("KYC verification is not complete"))]), ok(get_borrower(BorrowerStatus::Pending)), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "unexpected_status")),
        row("a 2xx we could not read: it was applied, reconcile", p_approve(), err(CallFailure::undecodable(200)), "approve_borrower", Call)
            .request("get_borrower"),
        // Block (decline).
        row("block lost: read", p_block(), err(CallFailure::server(500, false)), "block_borrower", Call).request("get_borrower"),
        row("block reconcile: blocked", drive(&p_block(), &[err(CallFailure::server(500, false))]), ok(get_borrower(BorrowerStatus::Blocked)), "declined", Complete),
        row("block reconcile: not blocked, block again", drive(&p_block(), &[err(CallFailure::server(500, false))]), ok(get_borrower(BorrowerStatus::Verified)), "block_borrower", Call)
            .request("block_borrower"),
        row("block 409 (rejected): read", p_block(), err(CallFailure::conflict("A rejected borrower cannot be blocked")), "block_borrower", Call).request("get_borrower"),
        // Exhausted and final.
        row("retries exhausted: attention", hub_failed(7), err(CallFailure::server(500, true)), "needs_attention", NeedsAttention)
            .check(|t| {
                assert_eq!(reason_code(t), "retries_exhausted");
                assert!(matches!(&t.action, Action::NeedsAttention { step, reason, .. } if step == "hub_check" && reason.hint.is_some()));
            }),
        row("one attempt left still retries", hub_failed(6), err(CallFailure::server(500, true)), "hub_check", SleepUntil),
        row("400 on create: the input is at fault, fail with Finfra's message", b_create(), err(CallFailure::rejected(400, "authorised_signatory.email must be valid")), "failed", Fail)
            .check(|t| {
                assert_eq!(reason_code(t), "finfra_rejected");
                let Action::Fail { reason } = &t.action else { panic!() };
                assert!(reason.message.contains("authorised_signatory.email must be valid"));
            }),
        row("404 on a read: attention", p_hub(), err(CallFailure::rejected(404, "Borrower not found")), "needs_attention", NeedsAttention),
        row("401 after refresh: attention to fix credentials", p_score(), err(CallFailure::permanent(FailureKind::Unauthorized, "refused")), "needs_attention", NeedsAttention)
            .check(|t| assert_eq!(reason_code(t), "finfra_unauthorized")),
        row("expired upload URL: create the document again", b_upload_npwp(), err(CallFailure::rejected(403, "URL expired")), "create_document", Call),
        // The executor lost the call.
        row("interrupted create: reconcile, never resend blindly", p_create(), Event::CallInterrupted, "create_borrower", Call)
            .status(Status::Ambiguous)
            .request("get_kyc_submission"),
        row("interrupted read: ask again", p_hub(), Event::CallInterrupted, "hub_check", Call).request("hub_status"),
        row("a stale answer while approve is outstanding: reconcile", p_approve(), ok(score(700, 0, 0)), "approve_borrower", Call)
            .request("get_borrower"),
        // The business "no"s.
        row("OCR confidence too low", p_ocr(), ok(ocr(Some(NIK), 0.42)), "failed", Fail).check(|t| assert_eq!(reason_code(t), "ocr_rejected")),
        row("OCR NIK mismatch", p_ocr(), ok(ocr(Some(OTHER_NIK), 0.97)), "failed", Fail).check(|t| assert_eq!(reason_code(t), "ocr_rejected")),
        row("liveness failed", p_biometric(), ok(biometric(Liveness::Failed, 0.12)), "failed", Fail).check(|t| assert_eq!(reason_code(t), "liveness_failed")),
        row("face mismatch", p_biometric(), ok(biometric(Liveness::Passed, 0.31)), "failed", Fail).check(|t| assert_eq!(reason_code(t), "face_mismatch")),
        row("hub FAILED", p_hub(), ok(hub(HubProvider::Verihubs, HubCheckStatus::Failed)), "failed", Fail).check(|t| assert_eq!(reason_code(t), "hub_check_failed")),
        row("hub PENDING: recheck later", p_hub(), ok(hub(HubProvider::Verihubs, HubCheckStatus::Pending)), "hub_check", SleepUntil)
            .status(Status::Waiting)
            .check(|t| assert!(matches!(&t.action, Action::SleepUntil { at: when, reason: SleepReason::Recheck, .. } if *when == at(30)))),
        row("hub recheck due", drive(&p_hub(), &[ok(hub(HubProvider::Verihubs, HubCheckStatus::Pending))]), Event::Wake, "hub_check", Call)
            .at(at(30))
            .request("hub_status"),
        row("an answer while no call is outstanding is ignored", drive(&p_hub(), &[ok(hub(HubProvider::Verihubs, HubCheckStatus::Pending))]), ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)), "hub_check", SleepUntil)
            .ignored(),
        row("RDF FAILED", p_rdf(), ok(rdf(RdfBiometricStatus::Failed)), "failed", Fail).check(|t| assert_eq!(reason_code(t), "rdf_biometric_failed")),
        row("RDF PENDING: verify again later", p_rdf(), ok(rdf(RdfBiometricStatus::Pending)), "rdf_biometric", SleepUntil).status(Status::Waiting),
        row("policy: score below minimum", p_score(), ok(score(420, 0, 0)), "credit_history", Call),
        row("policy declines on score", drive(&p_score(), &[ok(score(420, 0, 0))]), ok(history(&[])), "block_borrower", Call)
            .check(|t| assert_eq!(decline(t), ["credit score 420 is below the minimum 600"])),
        row("policy declines on overdue loans", drive(&p_score(), &[ok(score(700, 2, 0))]), ok(history(&[])), "block_borrower", Call)
            .check(|t| assert_eq!(decline(t), ["2 overdue loans (at most 0 allowed)"])),
        row("policy declines on days past due (history)", drive(&p_score(), &[ok(score(700, 0, 0))]), ok(history(&[("CURRENT", 95)])), "block_borrower", Call)
            .check(|t| assert_eq!(decline(t), ["95 days past due (at most 30 allowed)"])),
        row("blocked: declined", p_block(), ok(FinfraResponse::BlockBorrower(borrower(BorrowerStatus::Blocked))), "declined", Complete)
            .check(|t| assert!(matches!(&t.action, Action::Complete { outcome: Outcome::BorrowerDeclined { reasons, .. } } if reasons.len() == 2))),
    ]
}

fn decline(t: &T) -> Vec<String> {
    t.state
        .borrower
        .decision
        .as_ref()
        .map(|d| d.reasons.clone())
        .unwrap_or_default()
}

trait Attempt {
    fn action_attempt(&self) -> u32;
}

impl Attempt for T {
    fn action_attempt(&self) -> u32 {
        match &self.action {
            Action::Call { attempt, .. } => *attempt,
            _ => 0,
        }
    }
}

#[test]
fn failure_branches() {
    run(&rows());
}

#[test]
fn a_pending_check_gives_up_after_the_checks_timeout() {
    let pending = drive(
        &p_hub(),
        &[ok(hub(HubProvider::Verihubs, HubCheckStatus::Pending))],
    );
    let woken = OnboardBorrower::decide(&pending, &Event::Wake, at(30)).state;
    let t = OnboardBorrower::decide(
        &woken,
        &ok(hub(HubProvider::Verihubs, HubCheckStatus::Pending)),
        at(30 * 60),
    );
    assert_eq!(t.state.phase.name(), "needs_attention");
    assert_eq!(reason_code(&t), "check_pending");
}

#[test]
fn reconcile_reads_run_out_into_attention() {
    let mut state = p_create_ambiguous();
    for _ in 0..7 {
        state = OnboardBorrower::decide(&state, &err(CallFailure::server(500, true)), t0()).state;
        assert_eq!(state.phase.status(), Status::Ambiguous);
        state = OnboardBorrower::decide(&state, &Event::Wake, at(86_400)).state;
    }
    let t = OnboardBorrower::decide(&state, &err(CallFailure::server(500, true)), t0());
    assert_eq!(reason_code(&t), "reconcile_failed");
}

#[test]
fn resending_after_reconciling_uses_up_attempts() {
    // Each round: the create's answer is lost, the read finds nothing, the create is sent
    // again. After max_attempts (8) lost answers, a person decides.
    let mut state = p_create();
    for round in 0..8 {
        state =
            OnboardBorrower::decide(&state, &err(CallFailure::timeout(true, false)), t0()).state;
        assert_eq!(state.phase.status(), Status::Ambiguous, "round {round}");
        let t = OnboardBorrower::decide(
            &state,
            &ok(submission(KycSubmissionStatus::Draft, None, &[])),
            t0(),
        );
        if round < 7 {
            assert!(matches!(
                t.action.request(),
                Some(FinfraRequest::CreateBorrowerForKyc { .. })
            ));
        } else {
            assert_eq!(reason_code(&t), "retries_exhausted");
        }
        state = t.state;
    }
}

#[test]
fn upload_documents_keep_their_operation_keys_per_document() {
    let first = OnboardBorrower::action(&b_create_npwp());
    let second = OnboardBorrower::action(&b_create_report());
    let key = |a: &Action| match a {
        Action::Call { operation_key, .. } => operation_key.clone(),
        _ => None,
    };
    assert!(key(&first).is_some());
    assert_ne!(key(&first), key(&second));
    let again = OnboardBorrower::action(&drive(
        &b_upload_npwp(),
        &[
            err(CallFailure::rejected(403, "expired")),
            ok(created_document("doc-npwp-09", DocumentType::Npwp)),
        ],
    ));
    assert_eq!(
        again.request().map(FinfraRequest::name),
        Some("upload_document")
    );
}
