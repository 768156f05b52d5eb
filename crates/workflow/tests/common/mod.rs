//! Shared by the integration tests: the real definitions from `workflows/`, inputs built on
//! the reference's example body, Finfra answers and callbacks as the sandbox would send them,
//! and states at each step of an onboarding reached by driving the machine itself.

#![allow(dead_code)]

pub mod determinism;
pub mod table;

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use finfra_api::callback::{CallbackData, CallbackTitle, StatusCallback};
use finfra_api::model::Accepted;
use finfra_api::model::borrower::{Borrower, BorrowerStatus};
use finfra_api::model::credit::{CreditHistory, ScoreReport};
use finfra_api::model::document::{CreatedDocument, DocumentType};
use finfra_api::model::ekyc::{
    BiometricResponse, HubCheckResult, HubCheckStatus, HubProvider, KycSubmission,
    KycSubmissionStatus, KycSubmitted, Liveness, OcrExtracted, OcrResponse, RdfBiometricResult,
    RdfBiometricStatus,
};
use workflow::onboard::OnboardState;
use workflow::{
    CallFailure, CallbackEvent, Event, FinfraResponse, OnboardBorrower, Prior, Registry, Workflow,
    WorkflowId,
};

pub const NIK: &str = "3275062009921981";
pub const OTHER_NIK: &str = "3171014506900001";
pub const USER: &str = "6a41ff87dda4eefd0b7b0300";
pub const OTHER_USER: &str = "6a41ff87dda4eefd0b7b0399";
pub const KYC: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJreWMifQ.c2lnbmF0dXJl";
pub const WORKFLOW: &str = "wf-test-0001";

/// Monday 2026-01-05 08:00 UTC: every test's clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .expect("a valid date")
}

/// `t0` plus `n` seconds.
pub fn at(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(n)
}

pub fn workflows_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

pub fn registry() -> Registry {
    Registry::load_dir(&workflows_dir()).expect("the shipped definitions load")
}

pub fn personal_body() -> Value {
    json!({
        "type": "PERSONAL",
        "authorised_signatory": {
            "first_name": "Budi", "last_name": "Santoso", "birth_date": "1995-11-01",
            "birth_place": "Jakarta", "email": "budi@example.com", "mother_maiden_name": "Sari",
            "marital_status": "MARRIED", "gender": "MALE", "title": "BPK", "domicile": "ID",
            "religion": "ISLAM", "job": "PRIVATE_SECTOR_EMPLOYEE", "education": "ELEMENTARY_SCHOOL",
            "address": {
                "street_address": "Jl. Sudirman No. 1", "rt": "01", "rw": "01",
                "province": "JAWA_BARAT", "city": "Bandung", "district": "Coblong",
                "village": "Dago", "postal_code": "40135", "country": "ID"
            },
            "mobile_number": "+6281234567890",
            "bank_account": [{"holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"}],
            "documents": {
                "ktp": {"number": NIK, "file": "https://files.example/ktp.jpg", "issuing_city": "Jakarta", "expiry_date": "2099-11-01"},
                "selfie": {"file": "https://files.example/selfie.jpg"}
            },
            "monthly_income_range": "LESS_THAN_3_MILLION", "emergency_contact_name": "Humairah",
            "emergency_contact_number": "08123456789", "housing_status": "OWN_HOME",
            "source_of_fund": "SALARY", "place_of_work": "Finfra", "work_address": "Mega Kuningan",
            "number_of_dependents": 3, "spouse_name": "Mia",
            "spouse_identification_number": "3275062309984412", "spouse_date_of_birth": "1999-03-01",
            "prenuptial_agreement": "true"
        }
    })
}

pub fn business_body() -> Value {
    let mut body = personal_body();
    body["type"] = json!("BUSINESS");
    body["entity"] = json!({
        "name": "PT Maju Jaya", "phone_number": "+6287711998822", "email": "finance@majujaya.co.id",
        "business_type": "OTHER", "industry": "PRIVATE_PERSON_NAME", "nationality": "ID",
        "residence": "ID", "npwp": "012345678901000", "legal_entity": "PT",
        "establishment_date": "2015-03-01", "establishment_place": "Bandung",
        "deed_date": "2015-02-20", "deed_number": "AHU-0012345",
        "address": {
            "street_address": "Jl. Asia Afrika 8", "rt": "02", "rw": "03", "province": "JAWA_BARAT",
            "city": "Bandung", "district": "Sumur Bandung", "village": "Braga", "postal_code": "40111"
        },
        "managements": [{
            "name": "Budi Santoso", "position": "OWNER_MANAGEMENT", "email_address": "budi@majujaya.co.id",
            "mobile_number": "+6281234567890", "address": "Jl. Sudirman No. 1, Bandung",
            "gender": "MALE", "identity_number": NIK
        }]
    });
    body
}

/// `personal-single-payment`: e-KYC on, hub VERIHUBS, RDF on.
pub fn personal_input() -> Value {
    json!({
        "definition": "personal-single-payment",
        "borrower": personal_body(),
        "ekyc": {"ktp_image": format!("https://files.example/ktp-{NIK}.jpg"), "selfie": "https://files.example/selfie.jpg"}
    })
}

/// `business-single-payment`: documents NPWP and FINANCE_REPORT, hubs VERIHUBS and ASLIRI,
/// no e-KYC, no RDF, min score 650.
pub fn business_input() -> Value {
    json!({
        "definition": "business-single-payment",
        "borrower": business_body(),
        "documents": [
            {"type": "NPWP", "path": "/srv/uploads/npwp.pdf", "content_type": "application/pdf", "number": "012345678901000"},
            {"type": "FINANCE_REPORT", "base64": "JVBERi0xLjQK", "content_type": "application/pdf"}
        ]
    })
}

pub fn start(input: &Value) -> OnboardState {
    let input = OnboardBorrower::validate_input(input, &registry(), t0()).expect("a valid input");
    OnboardBorrower::start(
        &WorkflowId::new(WORKFLOW).expect("an id"),
        input,
        &Prior::default(),
        t0(),
    )
    .state
}

/// Applies `events` at `t0`, one after the other.
pub fn drive(state: &OnboardState, events: &[Event]) -> OnboardState {
    events.iter().fold(state.clone(), |state, event| {
        OnboardBorrower::decide(&state, event, t0()).state
    })
}

pub fn ok(response: FinfraResponse) -> Event {
    Event::CallSucceeded(response)
}

pub fn err(failure: CallFailure) -> Event {
    Event::CallFailed(failure)
}

pub fn status_callback(
    title: CallbackTitle,
    user_id: &str,
    nik: &str,
    reason: Option<&str>,
) -> StatusCallback {
    let status = title
        .user_event()
        .map_or_else(|| "UNKNOWN".to_owned(), |e| e.status().as_str().to_owned());
    StatusCallback {
        event_id: format!("evt-{title}-{user_id}"),
        callback_title: title,
        occurred_at: t0(),
        user_id: Some(user_id.to_owned()),
        identity_number: Some(nik.to_owned()),
        kyc_id: None,
        loan_unique_id: None,
        status,
        data: CallbackData {
            reason: reason.map(str::to_owned),
            ..CallbackData::default()
        },
    }
}

/// A user callback about our borrower.
pub fn callback(title: CallbackTitle) -> Event {
    Event::Callback(CallbackEvent::Status(status_callback(
        title, USER, NIK, None,
    )))
}

pub fn callback_for(title: CallbackTitle, user_id: &str, nik: &str) -> Event {
    Event::Callback(CallbackEvent::Status(status_callback(
        title, user_id, nik, None,
    )))
}

pub fn rejected_callback(reason: &str) -> Event {
    Event::Callback(CallbackEvent::Status(status_callback(
        CallbackTitle::UserRejected,
        USER,
        NIK,
        Some(reason),
    )))
}

pub fn ocr(nik: Option<&str>, confidence: f64) -> FinfraResponse {
    FinfraResponse::Ocr(OcrResponse {
        kyc_id: KYC.to_owned(),
        data_source: None,
        extracted: OcrExtracted {
            nik: nik.map(str::to_owned),
            ..OcrExtracted::default()
        },
        confidence,
    })
}

pub fn biometric(liveness: Liveness, face_match_score: f64) -> FinfraResponse {
    FinfraResponse::BiometricKyc(BiometricResponse {
        kyc_id: KYC.to_owned(),
        liveness,
        face_match_score,
    })
}

pub fn accepted() -> Accepted {
    Accepted {
        status: "success".to_owned(),
        message: "Borrower creation request accepted".to_owned(),
    }
}

pub fn kyc_submitted() -> FinfraResponse {
    FinfraResponse::SubmitKyc(KycSubmitted {
        kyc_id: KYC.to_owned(),
        status: KycSubmissionStatus::Submitted,
    })
}

pub fn submission(
    status: KycSubmissionStatus,
    user_id: Option<&str>,
    reasons: &[&str],
) -> FinfraResponse {
    FinfraResponse::GetKycSubmission(KycSubmission {
        kyc_id: KYC.to_owned(),
        status,
        user_id: user_id.map(str::to_owned),
        reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
    })
}

pub fn created_document(id: &str, kind: DocumentType) -> FinfraResponse {
    FinfraResponse::CreateDocument(CreatedDocument {
        id: id.to_owned(),
        r#type: kind,
        presigned_url: format!("http://127.0.0.1:8090/_storage/{id}?token=t0k3n"),
        expires_at: at(3600),
    })
}

pub fn borrower(status: BorrowerStatus) -> Borrower {
    serde_json::from_value(json!({
        "id": USER,
        "partner_id": "1507b694-e78e-4fc9-ac28-68d72fba45e9",
        "status": status.as_str(),
        "type": "PERSONAL",
        "authorised_signatory": {},
        "created_at": "2026-01-05T08:00:00Z"
    }))
    .expect("a borrower")
}

pub fn get_borrower(status: BorrowerStatus) -> FinfraResponse {
    FinfraResponse::GetBorrower(borrower(status))
}

pub fn hub(provider: HubProvider, status: HubCheckStatus) -> FinfraResponse {
    FinfraResponse::HubStatus(HubCheckResult {
        user_id: USER.to_owned(),
        provider,
        status,
        checked_at: Some(t0()),
    })
}

pub fn rdf(status: RdfBiometricStatus) -> FinfraResponse {
    FinfraResponse::VerifyBiometricRdf(RdfBiometricResult {
        user_id: USER.to_owned(),
        status,
    })
}

/// A score report from one bureau.
pub fn score(score: u32, overdue_loans: u32, max_days_past_due: u32) -> FinfraResponse {
    FinfraResponse::ScoreReport(
        serde_json::from_value::<ScoreReport>(json!({
            "user_id": USER, "score": score, "grade": "B",
            "sources": [{"source": "afpi", "active_loans": 1, "overdue_loans": overdue_loans,
                         "max_days_past_due": max_days_past_due, "outstanding_amount": "1000000.00"}],
            "generated_at": "2026-01-05T08:00:00Z"
        }))
        .expect("a score report"),
    )
}

/// A credit history with records `(status, days past due)`.
pub fn history(records: &[(&str, u32)]) -> FinfraResponse {
    let records: Vec<Value> = records
        .iter()
        .map(|(status, dpd)| {
            json!({"provider": "Lender", "loan_amount": "5000000", "outstanding_amount": "0",
                   "status": status, "days_past_due": dpd})
        })
        .collect();
    FinfraResponse::CreditHistory(
        serde_json::from_value::<CreditHistory>(
            json!({"identity_number": NIK, "records": records}),
        )
        .expect("a credit history"),
    )
}

// States along the personal (e-KYC) path, each reached by driving the machine.

pub fn p_ocr() -> OnboardState {
    start(&personal_input())
}

pub fn p_biometric() -> OnboardState {
    drive(&p_ocr(), &[ok(ocr(Some(NIK), 0.97))])
}

pub fn p_create() -> OnboardState {
    drive(&p_biometric(), &[ok(biometric(Liveness::Passed, 0.93))])
}

pub fn p_submit() -> OnboardState {
    drive(
        &p_create(),
        &[ok(FinfraResponse::CreateBorrowerForKyc(accepted()))],
    )
}

pub fn p_await_created() -> OnboardState {
    drive(&p_submit(), &[ok(kyc_submitted())])
}

pub fn p_hub() -> OnboardState {
    drive(&p_await_created(), &[callback(CallbackTitle::UserCreated)])
}

pub fn p_rdf() -> OnboardState {
    drive(
        &p_hub(),
        &[ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed))],
    )
}

pub fn p_await_verified() -> OnboardState {
    drive(&p_rdf(), &[ok(rdf(RdfBiometricStatus::Verified))])
}

pub fn p_score() -> OnboardState {
    drive(
        &p_await_verified(),
        &[callback(CallbackTitle::UserVerified)],
    )
}

pub fn p_history() -> OnboardState {
    drive(&p_score(), &[ok(score(700, 0, 0))])
}

pub fn p_approve() -> OnboardState {
    drive(&p_history(), &[ok(history(&[("CURRENT", 0)]))])
}

pub fn p_await_approved() -> OnboardState {
    drive(
        &p_approve(),
        &[ok(FinfraResponse::ApproveBorrower(borrower(
            BorrowerStatus::ApprovedByPartner,
        )))],
    )
}

pub fn p_block() -> OnboardState {
    drive(&p_history(), &[ok(history(&[("LATE", 95)]))])
}

// States along the business path (documents, plain create, two hubs, no RDF).

pub fn b_create_npwp() -> OnboardState {
    start(&business_input())
}

pub fn b_upload_npwp() -> OnboardState {
    drive(
        &b_create_npwp(),
        &[ok(created_document("doc-npwp-01", DocumentType::Npwp))],
    )
}

pub fn b_create_report() -> OnboardState {
    drive(&b_upload_npwp(), &[ok(FinfraResponse::UploadDocument)])
}

pub fn b_create() -> OnboardState {
    drive(
        &b_create_report(),
        &[
            ok(created_document(
                "doc-report-02",
                DocumentType::FinanceReport,
            )),
            ok(FinfraResponse::UploadDocument),
        ],
    )
}

pub fn b_await_created() -> OnboardState {
    drive(
        &b_create(),
        &[ok(FinfraResponse::CreateBorrower(accepted()))],
    )
}

pub fn b_hub_verihubs() -> OnboardState {
    drive(&b_await_created(), &[callback(CallbackTitle::UserCreated)])
}

pub fn b_hub_asliri() -> OnboardState {
    drive(
        &b_hub_verihubs(),
        &[ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed))],
    )
}

pub fn b_await_verified() -> OnboardState {
    drive(
        &b_hub_asliri(),
        &[ok(hub(HubProvider::Asliri, HubCheckStatus::Passed))],
    )
}

pub fn b_score() -> OnboardState {
    drive(
        &b_await_verified(),
        &[callback(CallbackTitle::UserVerified)],
    )
}
