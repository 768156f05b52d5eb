//! The definitions in `workflows/`, and every kind of problem a definition file can have,
//! each named by file and field.

mod common;

use std::time::Duration;

use finfra_api::model::borrower::BorrowerType;
use workflow::{DefinitionErrors, Registry};

use common::workflows_dir;

const FILE: &str = "workflows/personal-bnpl.toml";

/// The shipped `personal-bnpl.toml`, to break one thing at a time.
fn text() -> String {
    std::fs::read_to_string(workflows_dir().join("personal-bnpl.toml")).unwrap()
}

fn load(text: &str) -> Result<Registry, DefinitionErrors> {
    Registry::from_sources([(FILE, text)])
}

fn errors(text: &str) -> DefinitionErrors {
    load(text).expect_err("the definition should be refused")
}

fn lines(errors: &DefinitionErrors) -> Vec<String> {
    errors.0.iter().map(ToString::to_string).collect()
}

#[test]
fn the_four_definitions_load() {
    let registry = Registry::load_dir(&workflows_dir()).unwrap();
    let names: Vec<&str> = registry.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "business-bnpl",
            "business-single-payment",
            "personal-bnpl",
            "personal-single-payment"
        ]
    );
    for definition in registry.iter() {
        assert_eq!(definition.version, 1);
        assert_eq!(definition.digest.len(), 64);
        let expected = if definition.name.starts_with("business") {
            BorrowerType::Business
        } else {
            BorrowerType::Personal
        };
        assert_eq!(
            definition.onboarding.borrower_type, expected,
            "{}",
            definition.name
        );
        assert_eq!(
            definition.onboarding.ekyc.enabled,
            expected == BorrowerType::Personal
        );
        assert!(
            definition
                .file
                .ends_with(&format!("{}.toml", definition.name))
        );
    }
    let bnpl = registry.resolve("personal-bnpl").unwrap();
    assert_eq!(bnpl.credit.min_score, 550);
    assert_eq!(bnpl.onboarding.hub_checks.len(), 2);
    assert_eq!(bnpl.onboarding.poll_interval, Duration::from_secs(30));
    assert_eq!(
        bnpl.onboarding.timeouts.user_verified,
        Duration::from_secs(7200)
    );
    assert!(bnpl.onboarding.ekyc.require_nik_match, "defaults to true");
    assert_eq!(bnpl.retry.policy().max_delay, Duration::from_secs(300));
    let business = registry.get("business-single-payment", 1).unwrap();
    assert_eq!(business.onboarding.required_documents.len(), 2);
}

#[test]
fn versions_live_side_by_side_and_resolve() {
    let v2 = text()
        .replace("version = 1", "version = 2")
        .replace("min_score = 550", "min_score = 580");
    let registry = Registry::from_sources([
        ("workflows/personal-bnpl@1.toml", text()),
        ("workflows/personal-bnpl.toml", v2),
    ])
    .unwrap();
    assert_eq!(registry.resolve("personal-bnpl").unwrap().version, 2);
    assert_eq!(
        registry
            .resolve("personal-bnpl@1")
            .unwrap()
            .credit
            .min_score,
        550
    );
    assert_eq!(
        registry.latest("personal-bnpl").unwrap().credit.min_score,
        580
    );
    let unknown = registry.resolve("personal-bnpl@7").unwrap_err();
    assert!(
        unknown.contains("personal-bnpl@1, personal-bnpl@2"),
        "{unknown}"
    );
    assert_ne!(
        registry.get("personal-bnpl", 1).unwrap().digest,
        registry.get("personal-bnpl", 2).unwrap().digest
    );
}

#[test]
fn an_out_of_range_value_names_file_and_field() {
    let e = errors(&text().replace("min_score = 550", "min_score = 950"));
    assert_eq!(
        lines(&e),
        ["workflows/personal-bnpl.toml: credit.min_score must be between 300 and 900"]
    );
}

#[test]
fn unknown_keys_are_errors() {
    let e = errors(
        &text()
            .replace("[credit]", "[credit]\ncolour = \"blue\"")
            .replace("[retry]", "[retry]\njitter = true"),
    );
    assert!(e.has(FILE, "credit.colour"), "{e}");
    assert!(e.has(FILE, "retry.jitter"), "{e}");
    assert!(lines(&e).contains(&format!("{FILE}: credit.colour is not a known key")));
    let e = errors(&format!("{}\n[collections]\nproducts = []\n", text()));
    assert!(e.has(FILE, "collections"), "{e}");
}

#[test]
fn missing_keys_are_errors() {
    let e = errors(&text().replace("user_verified = \"2h\"\n", ""));
    assert_eq!(
        lines(&e),
        [format!(
            "{FILE}: onboarding.timeouts.user_verified is required"
        )]
    );
    let e = errors(&text().replace("[credit]", "[credit_policy]"));
    assert!(e.has(FILE, "credit"), "{e}");
    assert!(e.has(FILE, "credit_policy"), "{e}");
}

#[test]
fn wrong_types_and_values_are_named() {
    let e = errors(
        &text()
            .replace("poll_interval = \"30s\"", "poll_interval = 30")
            .replace(
                "hub_checks = [\"VERIHUBS\", \"ASLIRI\"]",
                "hub_checks = [\"VERIHUBS\", \"DUKCAPIL\"]",
            )
            .replace("rdf_biometric = true", "rdf_biometric = \"yes\"")
            .replace("min_face_match = 0.75", "min_face_match = 1.5")
            .replace("borrower_type = \"PERSONAL\"", "borrower_type = \"PERSON\"")
            .replace(
                "sources = [\"afpi\", \"clik\"]",
                "sources = [\"afpi\", \"afpi\"]",
            ),
    );
    for field in [
        "onboarding.poll_interval",
        "onboarding.hub_checks[1]",
        "onboarding.rdf_biometric",
        "onboarding.ekyc.min_face_match",
        "onboarding.borrower_type",
        "credit.sources[1]",
    ] {
        assert!(e.has(FILE, field), "{field} missing from:\n{e}");
    }
    assert!(
        e.to_string()
            .contains("onboarding.hub_checks[1] must be one of VERIHUBS, ASLIRI"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("onboarding.poll_interval must be a duration"),
        "{e}"
    );
}

#[test]
fn durations_and_their_relations_are_checked() {
    let e = errors(
        &text()
            .replace("max_delay = \"5m\"", "max_delay = \"500ms\"")
            .replace("base_delay = \"1s\"", "base_delay = \"2s\""),
    );
    assert_eq!(
        lines(&e),
        [format!(
            "{FILE}: retry.max_delay must not be shorter than retry.base_delay"
        )]
    );
    let e = errors(&text().replace("user_created = \"15m\"", "user_created = \"15 minutes\""));
    assert!(e.has(FILE, "onboarding.timeouts.user_created"), "{e}");
    let e = errors(&text().replace("checks = \"30m\"", "checks = \"90d\""));
    assert!(
        e.to_string()
            .contains("onboarding.timeouts.checks must be between 1s and 30d"),
        "{e}"
    );
}

#[test]
fn a_disabled_ekyc_takes_no_thresholds() {
    let e = errors(&text().replace("enabled = true", "enabled = false"));
    assert!(e.has(FILE, "onboarding.ekyc.min_face_match"), "{e}");
    assert!(
        e.to_string()
            .contains("has no effect when onboarding.ekyc.enabled = false")
    );
}

#[test]
fn the_name_must_match_the_file() {
    let e = Registry::from_sources([("workflows/bnpl.toml", text())]).unwrap_err();
    assert!(e.has("workflows/bnpl.toml", "name"), "{e}");
    let e = errors(&text().replace("name = \"personal-bnpl\"", "name = \"Personal BNPL\""));
    assert!(
        e.to_string()
            .contains("name must be lowercase letters, digits and '-'"),
        "{e}"
    );
}

#[test]
fn two_files_cannot_define_one_version() {
    let e = Registry::from_sources([
        ("workflows/personal-bnpl.toml", text()),
        ("workflows/personal-bnpl@1.toml", text()),
    ])
    .unwrap_err();
    assert_eq!(
        lines(&e),
        [
            "workflows/personal-bnpl@1.toml: version 1 is already defined by workflows/personal-bnpl.toml for personal-bnpl"
        ]
    );
}

#[test]
fn invalid_toml_gives_the_line() {
    let e = errors(&text().replace("min_score = 550", "min_score = = 550"));
    let line = text()
        .lines()
        .position(|l| l.starts_with("min_score"))
        .unwrap()
        + 1;
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{FILE}: is not valid TOML (line {line})")),
        "{shown}"
    );
}

#[test]
fn every_problem_of_every_file_is_reported_at_once() {
    let e = Registry::from_sources([
        (
            FILE,
            text()
                .replace("min_score = 550", "min_score = 100")
                .replace("max_attempts = 8", "max_attempts = 0"),
        ),
        (
            "workflows/business-bnpl.toml",
            "name = \"business-bnpl\"\nversion = 0\n".to_owned(),
        ),
    ])
    .unwrap_err();
    assert!(e.has(FILE, "credit.min_score"));
    assert!(e.has(FILE, "retry.max_attempts"));
    assert!(e.has("workflows/business-bnpl.toml", "version"));
    assert!(e.has("workflows/business-bnpl.toml", "retry"));
    assert!(e.has("workflows/business-bnpl.toml", "onboarding"));
    assert!(e.has("workflows/business-bnpl.toml", "credit"));
}

#[test]
fn an_unreadable_directory_is_an_error() {
    let e = Registry::load_dir(&workflows_dir().join("does-not-exist")).unwrap_err();
    assert!(e.to_string().contains("could not be read"), "{e}");
}

#[test]
fn the_origination_policies_load() {
    let registry = Registry::load_dir(&workflows_dir()).unwrap();
    for definition in registry.iter() {
        let policy = definition
            .origination
            .as_ref()
            .unwrap_or_else(|| panic!("{} originates loans", definition.name));
        let bnpl = definition.name.ends_with("bnpl");
        assert_eq!(policy.bnpl.is_some(), bnpl, "{}", definition.name);
        assert_eq!(
            policy.single_payment.is_some(),
            !bnpl,
            "{}",
            definition.name
        );
    }
    let bnpl = registry.resolve("personal-bnpl").unwrap();
    let policy = bnpl.origination.as_ref().unwrap();
    let limits = policy.bnpl.as_ref().unwrap();
    assert_eq!(limits.max_interest_rate.to_string(), "0.03");
    assert_eq!((limits.min_tenor, limits.max_tenor), (1, 12));
    assert_eq!(limits.frequencies.len(), 3);
    assert_eq!(policy.timeouts.signing, Duration::from_secs(86_400));
    assert_eq!(policy.overdue_grace, Duration::from_secs(3 * 86_400));
    assert_eq!(policy.virtual_account_bank.as_str(), "BCA");
    let single = registry.resolve("business-single-payment").unwrap();
    let limits = single
        .origination
        .as_ref()
        .unwrap()
        .single_payment
        .as_ref()
        .unwrap();
    assert_eq!(limits.max_principal.to_string(), "2000000000");
    // Pinned copies from before [origination] existed still read.
    let mut json = serde_json::to_value(bnpl).unwrap();
    json.as_object_mut().unwrap().remove("origination");
    let old: workflow::Definition = serde_json::from_value(json).unwrap();
    assert!(old.origination.is_none());
}

#[test]
fn origination_problems_name_file_and_field() {
    let e = errors(
        &text()
            .replace(
                "virtual_account_bank = \"BCA\"",
                "virtual_account_bank = \"BSI\"",
            )
            .replace("max_principal = \"20000000\"", "max_principal = \"50000\"")
            .replace("max_tenor = 12", "max_tenor = 40")
            .replace(
                "max_interest_rate = \"0.03\"",
                "max_interest_rate = \"three percent\"",
            )
            .replace("signing = \"1d\"\n", "")
            .replace(
                "frequencies = [\"WEEKLY\", \"BIWEEKLY\", \"MONTHLY\"]",
                "frequencies = [\"DAILY\"]",
            )
            .replace("[origination.bnpl]", "[origination.bnpl]\ngrace_days = 3"),
    );
    for field in [
        "origination.virtual_account_bank",
        "origination.bnpl.max_principal",
        "origination.bnpl.max_tenor",
        "origination.bnpl.max_interest_rate",
        "origination.timeouts.signing",
        "origination.bnpl.frequencies[0]",
        "origination.bnpl.grace_days",
    ] {
        assert!(e.has(FILE, field), "{field} missing from:\n{e}");
    }
    assert!(
        lines(&e).contains(&format!("{FILE}: origination.timeouts.signing is required")),
        "{e}"
    );
    assert!(
        e.to_string().contains(
            "origination.bnpl.max_principal must be an amount between 100000 and 2000000000"
        ),
        "{e}"
    );
    // Bounds in the wrong order.
    let e = errors(&text().replace("min_tenor = 1", "min_tenor = 20"));
    assert_eq!(
        lines(&e),
        [format!(
            "{FILE}: origination.bnpl.max_tenor must not be below origination.bnpl.min_tenor"
        )]
    );
    // No product at all.
    let cut = text().find("[origination.bnpl]").unwrap();
    let e = errors(&text()[..cut]);
    assert!(e.has(FILE, "origination.single_payment"), "{e}");
    assert!(e.to_string().contains("at least one product"), "{e}");
}
