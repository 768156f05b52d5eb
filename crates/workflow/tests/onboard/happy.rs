//! The paths that end with an `APPROVED` borrower: PERSONAL with e-KYC, BUSINESS with
//! documents, step by step.

use finfra_api::callback::CallbackTitle;
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::document::DocumentType;
use finfra_api::model::ekyc::{HubCheckStatus, HubProvider, Liveness, RdfBiometricStatus};
use workflow::ActionKind::{Call, Complete, Wait};
use workflow::kit::Phase as _;
use workflow::{
    Action, CorrelationKey, FinfraRequest, FinfraResponse, OnboardBorrower, Outcome, Workflow,
};

use crate::common::*;
use crate::table::{Row, T, row, run};

pub fn rows() -> Vec<Row> {
    vec![
        // PERSONAL, personal-single-payment: e-KYC, hub VERIHUBS, RDF.
        row("ocr read", p_ocr(), ok(ocr(Some(NIK), 0.97)), "ekyc_biometric", Call)
            .request("biometric_kyc")
            .check(|t| assert_eq!(t.state.borrower.kyc_id.as_ref().map(|k| k.as_str()), Some(KYC))),
        row("biometric passed", p_biometric(), ok(biometric(Liveness::Passed, 0.93)), "create_borrower", Call)
            .request("create_borrower_for_kyc")
            .check(has_operation_key),
        row("create accepted (kyc path)", p_create(), ok(FinfraResponse::CreateBorrowerForKyc(accepted())), "submit_kyc", Call)
            .request("submit_kyc"),
        row("kyc submitted", p_submit(), ok(kyc_submitted()), "await_user_created", Wait)
            .check(waits_by_nik_and_polls_submission),
        row("user_created", p_await_created(), callback(CallbackTitle::UserCreated), "hub_check", Call)
            .request("hub_status")
            .check(|t| {
                assert_eq!(t.state.borrower.user_id.as_ref().map(|u| u.as_str()), Some(USER));
                assert_eq!(t.state.borrower.status, Some(BorrowerStatus::Pending));
            }),
        row("hub passed", p_hub(), ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)), "rdf_biometric", Call)
            .request("verify_biometric_rdf"),
        row("rdf verified", p_rdf(), ok(rdf(RdfBiometricStatus::Verified)), "await_user_verified", Wait)
            .check(waits_by_user_id_and_polls_borrower),
        row("user_verified", p_await_verified(), callback(CallbackTitle::UserVerified), "credit_score", Call)
            .request("score_report"),
        row("score read", p_score(), ok(score(700, 0, 0)), "credit_history", Call).request("credit_history"),
        row("history clean: policy approves", p_history(), ok(history(&[("CURRENT", 0)])), "approve_borrower", Call)
            .request("approve_borrower")
            .check(|t| assert!(t.state.borrower.decision.as_ref().is_some_and(|d| d.approved))),
        row(
            "approved by partner",
            p_approve(),
            ok(FinfraResponse::ApproveBorrower(borrower(BorrowerStatus::ApprovedByPartner))),
            "await_user_approved",
            Wait,
        ),
        row("user_approved", p_await_approved(), callback(CallbackTitle::UserApproved), "approved", Complete)
            .check(|t| {
                assert!(matches!(&t.action, Action::Complete { outcome: Outcome::BorrowerApproved { user_id } } if user_id.as_str() == USER));
                let statuses: Vec<&str> = t.state.borrower.statuses.iter().map(|s| s.status.as_str()).collect();
                assert_eq!(statuses, ["PENDING", "VERIFIED", "APPROVED_BY_PARTNER", "APPROVED"]);
            }),
        // BUSINESS, business-single-payment: two documents, plain create, two hubs, no RDF.
        row("npwp created", b_create_npwp(), ok(created_document("doc-npwp-01", DocumentType::Npwp)), "upload_document", Call)
            .request("upload_document"),
        row("npwp uploaded", b_upload_npwp(), ok(FinfraResponse::UploadDocument), "create_document", Call)
            .request("create_document"),
        row(
            "last document uploaded",
            drive(&b_create_report(), &[ok(created_document("doc-report-02", DocumentType::FinanceReport))]),
            ok(FinfraResponse::UploadDocument),
            "create_borrower",
            Call,
        )
        .request("create_borrower")
        .check(create_body_carries_document_ids),
        row("create accepted (plain)", b_create(), ok(FinfraResponse::CreateBorrower(accepted())), "await_user_created", Wait)
            .check(|t| {
                let Action::Wait { poll, events, .. } = &t.action else { panic!("a wait") };
                assert!(poll.is_none(), "no KYC session to poll");
                assert!(events.iter().all(|e| e.key == CorrelationKey::IdentityNumber && e.value == NIK));
            }),
        row("user_created (business)", b_await_created(), callback(CallbackTitle::UserCreated), "hub_check", Call)
            .check(|t| assert!(matches!(t.action.request(), Some(FinfraRequest::HubStatus { provider: HubProvider::Verihubs, .. })))),
        row("first hub passed", b_hub_verihubs(), ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)), "hub_check", Call)
            .check(|t| assert!(matches!(t.action.request(), Some(FinfraRequest::HubStatus { provider: HubProvider::Asliri, .. })))),
        row("second hub passed: no RDF", b_hub_asliri(), ok(hub(HubProvider::Asliri, HubCheckStatus::Passed)), "await_user_verified", Wait),
        row("business score below 650 declines", drive(&b_score(), &[ok(score(640, 0, 0))]), ok(history(&[])), "block_borrower", Call),
    ]
}

fn has_operation_key(t: &T) {
    let Action::Call { operation_key, .. } = &t.action else {
        panic!("a call")
    };
    assert!(
        operation_key
            .as_ref()
            .is_some_and(|k| k.as_str().starts_with("op-"))
    );
}

fn waits_by_nik_and_polls_submission(t: &T) {
    let Action::Wait {
        events,
        poll,
        deadline,
        wake_at,
        ..
    } = &t.action
    else {
        panic!("a wait")
    };
    let titles: Vec<&str> = events.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(titles, ["user_created", "user_verified", "user_rejected"]);
    assert!(
        events
            .iter()
            .all(|e| e.key == CorrelationKey::IdentityNumber && e.value == NIK)
    );
    let poll = poll.as_ref().expect("a poll");
    assert_eq!(poll.request.name(), "get_kyc_submission");
    assert_eq!(poll.next_at, at(30));
    assert_eq!(*wake_at, at(30));
    assert_eq!(*deadline, at(30 * 60), "the kyc_submission timeout");
}

fn waits_by_user_id_and_polls_borrower(t: &T) {
    let Action::Wait {
        events,
        poll,
        deadline,
        ..
    } = &t.action
    else {
        panic!("a wait")
    };
    assert!(
        events
            .iter()
            .all(|e| e.key == CorrelationKey::UserId && e.value == USER)
    );
    assert!(
        events
            .iter()
            .any(|e| e.title == CallbackTitle::UserRejected)
    );
    assert_eq!(
        poll.as_ref().map(|p| p.request.name()),
        Some("get_borrower")
    );
    assert_eq!(*deadline, at(2 * 3600));
}

fn create_body_carries_document_ids(t: &T) {
    let Some(FinfraRequest::CreateBorrower { body, kyc_id: None }) = t.action.request() else {
        panic!("a plain create");
    };
    let docs = &body.authorised_signatory.documents;
    assert_eq!(
        docs.npwp.as_ref().map(|n| n.file.as_str()),
        Some("doc-npwp-01")
    );
    assert_eq!(
        docs.npwp.as_ref().map(|n| n.number.as_str()),
        Some("012345678901000")
    );
    assert_eq!(
        docs.finance_report.as_ref().map(|f| f.file.as_str()),
        Some("doc-report-02")
    );
    assert!(body.entity.is_some());
}

#[test]
fn happy_paths() {
    run(&rows());
}

#[test]
fn start_pins_the_definition_and_asks_for_the_first_call() {
    let input = OnboardBorrower::validate_input(&personal_input(), &registry(), t0()).unwrap();
    assert_eq!(
        OnboardBorrower::definition(&input).name,
        "personal-single-payment"
    );
    let t = OnboardBorrower::start(
        &workflow::WorkflowId::new(WORKFLOW).unwrap(),
        input,
        &workflow::Prior::default(),
        t0(),
    );
    assert_eq!(t.state.phase.name(), "ekyc_ocr");
    assert_eq!(t.state.definition.name, "personal-single-payment");
    let Some(FinfraRequest::Ocr {
        body,
        data_source,
        kyc_id: None,
    }) = t.action.request()
    else {
        panic!("an OCR call first: {:?}", t.action);
    };
    assert!(body.file.contains(NIK));
    assert_eq!(data_source.as_ref().map(|d| d.as_str()), Some("VERIHUBS"));
    // BUSINESS with documents starts with the first upload.
    assert_eq!(b_create_npwp().phase.name(), "create_document");
}

#[test]
fn a_whole_personal_onboarding_records_every_fact() {
    let done = drive(
        &p_await_approved(),
        &[callback(CallbackTitle::UserApproved)],
    );
    assert_eq!(done.phase.name(), "approved");
    let facts = serde_json::to_value(&done.borrower).unwrap();
    assert_eq!(facts["user_id"], USER);
    assert_eq!(facts["status"], "APPROVED");
    assert_eq!(facts["hub_checks"][0]["status"], "PASSED");
    assert_eq!(facts["rdf"], "VERIFIED");
    assert_eq!(facts["credit"]["score"], 700);
    assert_eq!(facts["decision"]["approved"], true);
    let summary = OnboardBorrower::summary(&done);
    assert_eq!(summary.state, "approved");
    assert_eq!(summary.status.as_str(), "completed");
    assert_eq!(summary.facts["user_id"], USER);
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["phase"]["state"], "approved");
}

#[test]
fn business_bnpl_asks_its_own_credit_sources() {
    let mut input = business_input();
    input["definition"] = serde_json::json!("business-bnpl");
    let state = drive(
        &start(&input),
        &[
            ok(created_document("doc-npwp-01", DocumentType::Npwp)),
            ok(FinfraResponse::UploadDocument),
            ok(created_document(
                "doc-report-02",
                DocumentType::FinanceReport,
            )),
            ok(FinfraResponse::UploadDocument),
            ok(FinfraResponse::CreateBorrower(accepted())),
            callback(CallbackTitle::UserCreated),
            ok(hub(HubProvider::Asliri, HubCheckStatus::Passed)),
            callback(CallbackTitle::UserVerified),
        ],
    );
    let action = OnboardBorrower::action(&state);
    let Some(FinfraRequest::ScoreReport { sources, .. }) = action.request() else {
        panic!("a score report: {action:?}");
    };
    let names: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["clik"]);
}
