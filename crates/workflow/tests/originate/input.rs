//! Submit-time validation of the `originate-loan` input: every problem listed, by path,
//! against Finfra's rules and the definition's `[origination]` limits, with the clock
//! injected.

use serde_json::{Value, json};
use workflow::originate::{BorrowerRef, LoanTerms, OriginateInput};
use workflow::{InputErrors, OriginateLoan, Registry, Workflow};

use crate::common::{USER, registry, t0, workflows_dir};
use crate::fixtures::*;

fn validate(input: &Value) -> Result<OriginateInput, InputErrors> {
    OriginateLoan::validate_input(input, &registry(), t0())
}

fn paths(input: &Value) -> Vec<String> {
    validate(input)
        .expect_err("the input should be refused")
        .errors()
        .iter()
        .map(|e| e.path.clone())
        .collect()
}

fn message(input: &Value, path: &str) -> String {
    validate(input)
        .expect_err("refused")
        .errors()
        .iter()
        .find(|e| e.path == path)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| panic!("no problem at {path}"))
}

#[test]
fn the_examples_are_valid() {
    let single = validate(&single_input()).unwrap();
    assert_eq!(single.definition.name, "personal-single-payment");
    assert!(matches!(single.request.borrower, BorrowerRef::UserId(_)));
    assert_eq!(
        single.request.virtual_account_bank.as_str(),
        "BNI",
        "the definition's"
    );
    let bnpl = validate(&bnpl_input()).unwrap();
    assert!(matches!(&bnpl.request.borrower, BorrowerRef::Onboarding(k) if k == ONBOARDING_KEY));
    assert!(matches!(
        bnpl.request.terms,
        LoanTerms::Bnpl { tenor: 3, .. }
    ));
    assert_eq!(
        bnpl.request.virtual_account_bank.as_str(),
        "MANDIRI",
        "the input's"
    );
    assert_eq!(
        bnpl.policy.timeouts.signing,
        std::time::Duration::from_secs(86_400)
    );
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let mut input = single_input();
    input["loan"]["principal_amount"] = json!(5_000_000);
    input["loan"]["interest_amount"] = json!("150000.005");
    input["loan"]["due_date"] = json!("4 February 2026");
    input["loan"].as_object_mut().unwrap().remove("purpose");
    input["loan"]["colour"] = json!("red");
    input["disbursement_account"]["swift_code"] = json!("bni");
    input["disbursement_account"]
        .as_object_mut()
        .unwrap()
        .remove("holder_name");
    input["borrower"] = json!({"user_id": "6A41"});
    input["virtual_account_bank"] = json!("BSI");
    input["extra"] = json!(1);
    let got = paths(&input);
    for path in [
        "loan.principal_amount",
        "loan.due_date",
        "loan.purpose",
        "loan.colour",
        "disbursement_account.holder_name",
        "borrower.user_id",
        "virtual_account_bank",
        "extra",
    ] {
        assert!(
            got.contains(&path.to_owned()),
            "{path} missing from {got:?}"
        );
    }
    assert!(message(&input, "loan.principal_amount").contains("not a JSON number"));
    // A field that does not parse hides nothing: the other fields' content rules still run
    // (decimals, SWIFT/BIC), and each path has one problem.
    for path in ["loan.interest_amount", "disbursement_account.swift_code"] {
        assert!(
            got.contains(&path.to_owned()),
            "{path} missing from {got:?}"
        );
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "one problem per path: {got:?}");
    // BNPL: an unknown frequency hides neither the tenor, the rate nor the date.
    let mut input = bnpl_input();
    input["loan"]["frequency"] = json!("DAILY");
    input["loan"]["tenor"] = json!(40);
    input["loan"]["interest_rate"] = json!("0.5");
    input["loan"]["first_due_date"] = json!("2020-01-01");
    let got = paths(&input);
    for path in [
        "loan.frequency",
        "loan.tenor",
        "loan.interest_rate",
        "loan.first_due_date",
    ] {
        assert!(
            got.contains(&path.to_owned()),
            "{path} missing from {got:?}"
        );
    }
    // Content rules run when the shape is right.
    let mut input = single_input();
    input["loan"]["interest_amount"] = json!("150000.005");
    input["disbursement_account"]["swift_code"] = json!("bni");
    let got = paths(&input);
    assert!(got.contains(&"loan.interest_amount".to_owned()), "{got:?}");
    assert!(
        got.contains(&"disbursement_account.swift_code".to_owned()),
        "{got:?}"
    );
    assert!(message(&input, "loan.interest_amount").contains("2 decimal"));
}

#[test]
fn the_borrower_is_an_id_or_an_onboarding_not_both() {
    let mut input = single_input();
    input["borrower"] = json!({"user_id": USER, "onboarding": "x"});
    assert_eq!(paths(&input), ["borrower"]);
    input["borrower"] = json!({});
    assert_eq!(paths(&input), ["borrower"]);
    input["borrower"] = json!({"onboarding": ""});
    assert_eq!(paths(&input), ["borrower.onboarding"]);
}

#[test]
fn dates_are_in_the_future_and_within_the_terms() {
    let mut input = single_input();
    input["loan"]["due_date"] = json!("2026-01-05");
    assert_eq!(message(&input, "loan.due_date"), "must be after 2026-01-05");
    input["loan"]["due_date"] = json!("2026-01-09");
    assert!(message(&input, "loan.due_date").contains("7 to 90 days"));
    input["loan"]["due_date"] = json!("2026-06-01");
    assert!(message(&input, "loan.due_date").contains("is 147"));
    // The clock is the caller's: the same input is valid a day later.
    let mut bnpl = bnpl_input();
    bnpl["loan"]["first_due_date"] = json!("2026-02-20");
    assert!(
        paths(&bnpl).contains(&"loan.first_due_date".to_owned()),
        "46 days > 45"
    );
    let later = t0() + chrono::TimeDelta::days(1);
    assert!(OriginateLoan::validate_input(&bnpl, &registry(), later).is_ok());
}

#[test]
fn the_definitions_limits_apply() {
    let mut bnpl = bnpl_input();
    bnpl["loan"]["principal_amount"] = json!("25000000.00");
    bnpl["loan"]["tenor"] = json!(24);
    bnpl["loan"]["interest_rate"] = json!("0.05");
    assert_eq!(
        paths(&bnpl),
        ["loan.principal_amount", "loan.tenor", "loan.interest_rate"]
    );
    assert!(message(&bnpl, "loan.tenor").contains("between 1 and 12 for definition personal-bnpl"));
    // Finfra's own limit reported once, not twice.
    let mut bnpl = bnpl_input();
    bnpl["loan"]["tenor"] = json!(40);
    assert_eq!(paths(&bnpl), ["loan.tenor"]);
    // business-bnpl allows no weekly installments.
    let mut business = bnpl_input();
    business["definition"] = json!("business-bnpl");
    business["loan"]["frequency"] = json!("WEEKLY");
    business["loan"]["principal_amount"] = json!("5000000.00");
    business["loan"]["interest_rate"] = json!("0.01");
    assert_eq!(paths(&business), ["loan.frequency"]);
    // A single-payment product refuses BNPL.
    let mut wrong = bnpl_input();
    wrong["definition"] = json!("personal-single-payment");
    assert_eq!(
        message(&wrong, "loan.type"),
        "must be SINGLE_PAYMENT for definition personal-single-payment"
    );
    // Interest and fee caps, as a share of the principal.
    let mut single = single_input();
    single["loan"]["interest_amount"] = json!("600000.00");
    single["loan"]["fee_amount"] = json!("200000.00");
    assert_eq!(paths(&single), ["loan.interest_amount", "loan.fee_amount"]);
}

#[test]
fn a_definition_without_origination_does_not_originate() {
    let text = std::fs::read_to_string(workflows_dir().join("personal-bnpl.toml")).unwrap();
    let cut = text.find("\n# Loans").expect("the [origination] section");
    let registry =
        Registry::from_sources([("workflows/personal-bnpl.toml", &text[..cut])]).unwrap();
    assert!(
        registry
            .resolve("personal-bnpl")
            .unwrap()
            .origination
            .is_none()
    );
    let errors = OriginateLoan::validate_input(&bnpl_input(), &registry, t0()).unwrap_err();
    assert!(
        errors.to_string().contains("has no [origination] section"),
        "{errors}"
    );
}
