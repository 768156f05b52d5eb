//! Submit-time validation of the `onboard-borrower` input: every problem listed, by path.

mod common;

use serde_json::{Value, json};

use workflow::{InputErrors, OnboardBorrower, Workflow};

use common::*;

fn validate(input: &Value) -> Result<workflow::onboard::OnboardInput, InputErrors> {
    OnboardBorrower::validate_input(input, &registry(), t0())
}

fn problems(input: &Value) -> InputErrors {
    validate(input).expect_err("the input should be refused")
}

fn paths(errors: &InputErrors) -> Vec<&str> {
    errors.errors().iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn the_examples_are_valid() {
    let personal = validate(&personal_input()).unwrap();
    assert_eq!(personal.definition.name, "personal-single-payment");
    assert_eq!(personal.request.nik.as_str(), NIK);
    let business = validate(&business_input()).unwrap();
    assert_eq!(business.request.documents.len(), 2);
    assert_eq!(business.request.documents[0].filename, "npwp.pdf");
    assert_eq!(business.request.documents[1].filename, "finance_report");
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let mut input = personal_input();
    let s = &mut input["borrower"]["authorised_signatory"];
    s["documents"]["ktp"]["number"] = json!("32750620");
    s["mobile_number"] = json!("081234");
    s["email"] = json!("budi-at-example");
    s["birth_date"] = json!("1 November 1995");
    s["gender"] = json!("M");
    s.as_object_mut().unwrap().remove("mother_maiden_name");
    s["favourite_colour"] = json!("blue");
    s["address"]["country"] = json!("XX");
    input["colour"] = json!("red");
    let e = problems(&input);
    let got = paths(&e);
    for path in [
        "colour",
        "borrower.authorised_signatory.documents.ktp.number",
        "borrower.authorised_signatory.mobile_number",
        "borrower.authorised_signatory.email",
        "borrower.authorised_signatory.birth_date",
        "borrower.authorised_signatory.gender",
        "borrower.authorised_signatory.mother_maiden_name",
        "borrower.authorised_signatory.favourite_colour",
        "borrower.authorised_signatory.address.country",
    ] {
        assert!(got.contains(&path), "{path} missing from {got:?}");
    }
    // Each problem once: the unparseable birth date is not also "in the future".
    assert_eq!(
        got.iter()
            .filter(|p| **p == "borrower.authorised_signatory.birth_date")
            .count(),
        1
    );
    assert!(
        e.to_string()
            .contains("borrower.authorised_signatory.documents.ktp.number: must be 16 digits")
    );
}

#[test]
fn the_definition_must_exist_and_fit() {
    let mut input = personal_input();
    input["definition"] = json!("gold-card");
    assert!(
        problems(&input)
            .to_string()
            .contains("definition: is not a known definition: \"gold-card\"")
    );
    input.as_object_mut().unwrap().remove("definition");
    assert_eq!(paths(&problems(&input)), ["definition"]);
    let mut input = personal_input();
    input["definition"] = json!("business-bnpl");
    let e = problems(&input);
    assert!(e.has("borrower.type"), "{e}");
    assert!(e.has("ekyc"), "{e}: business-bnpl does not use e-KYC");
    assert!(e.has("documents"), "{e}: business-bnpl requires NPWP");
}

#[test]
fn ekyc_is_required_when_the_definition_uses_it() {
    let mut input = personal_input();
    input.as_object_mut().unwrap().remove("ekyc");
    assert_eq!(
        problems(&input).to_string(),
        "ekyc: is required: definition personal-single-payment uses e-KYC"
    );
    input["ekyc"] = json!({"ktp_image": "", "face": "x"});
    let e = problems(&input);
    assert!(
        e.has("ekyc.ktp_image") && e.has("ekyc.selfie") && e.has("ekyc.face"),
        "{e}"
    );
}

#[test]
fn business_needs_its_entity_and_documents() {
    let mut input = business_input();
    input["borrower"].as_object_mut().unwrap().remove("entity");
    input["documents"] = json!([]);
    let e = problems(&input);
    assert!(e.has("borrower.entity"), "{e}");
    assert_eq!(
        e.errors().iter().filter(|f| f.path == "documents").count(),
        2,
        "NPWP and FINANCE_REPORT: {e}"
    );
    let mut input = business_input();
    input["borrower"]["entity"]["managements"][0]["identity_number"] = json!("123");
    input["borrower"]["entity"]["deed_date"] = json!("2099-01-01");
    let e = problems(&input);
    assert!(
        e.has("borrower.entity.managements[0].identity_number"),
        "{e}"
    );
    assert!(e.has("borrower.entity.deed_date"), "{e}");
}

#[test]
fn documents_are_checked_one_by_one() {
    let mut input = business_input();
    input["documents"] = json!([
        {"type": "NPWP", "path": "/a.pdf", "base64": "AAAA", "content_type": "application/pdf"},
        {"type": "PASSPORT", "path": "/b.pdf", "content_type": "pdf"},
        {"type": "FINANCE_REPORT", "content_type": "application/pdf"},
        {"type": "FINANCE_REPORT", "path": "/c.pdf", "content_type": "application/pdf", "number": "1"},
        {"type": "NPWP", "path": "/d.pdf", "content_type": "application/pdf", "number": "01.234"},
        "npwp.pdf"
    ]);
    let e = problems(&input);
    for path in [
        "documents[0]",
        "documents[1].type",
        "documents[1].content_type",
        "documents[2]",
        "documents[3].number",
        "documents[4].number",
        "documents[5]",
    ] {
        assert!(e.has(path), "{path} missing from {e}");
    }
}

#[test]
fn uploads_fill_the_body_slots() {
    // The body need not carry a KTP file when the KTP is uploaded.
    let mut input = business_input();
    input["borrower"]["authorised_signatory"]["documents"]["ktp"]
        .as_object_mut()
        .unwrap()
        .remove("file");
    input["documents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "KTP", "path": "/srv/ktp.jpg", "content_type": "image/jpeg"}));
    let valid = validate(&input).unwrap();
    assert_eq!(valid.request.documents.len(), 3);
    // An NPWP upload without a number, for a body without documents.npwp.
    let mut input = business_input();
    input["documents"][0]
        .as_object_mut()
        .unwrap()
        .remove("number");
    let e = problems(&input);
    assert!(
        e.has("borrower.authorised_signatory.documents.npwp.number"),
        "{e}"
    );
}

#[test]
fn dates_are_checked_against_the_submit_day() {
    let mut input = personal_input();
    input["borrower"]["authorised_signatory"]["birth_date"] = json!("2030-01-01");
    input["borrower"]["authorised_signatory"]["documents"]["ktp"]["expiry_date"] =
        json!("2025-12-31");
    let e = problems(&input);
    assert!(e.has("borrower.authorised_signatory.birth_date"), "{e}");
    assert!(
        e.has("borrower.authorised_signatory.documents.ktp.expiry_date"),
        "{e}"
    );
}

#[test]
fn an_input_that_is_not_an_object() {
    assert_eq!(paths(&problems(&json!([1, 2]))), ["input"]);
    let e = problems(
        &json!({"definition": "personal-single-payment", "ekyc": {"ktp_image": "k", "selfie": "s"}}),
    );
    assert_eq!(paths(&e), ["borrower"]);
    let e = problems(
        &json!({"definition": "personal-single-payment", "borrower": "yes", "ekyc": {"ktp_image": "k", "selfie": "s"}}),
    );
    assert_eq!(paths(&e), ["borrower"]);
}
