//! The benchmark's onboardings: one `onboard-borrower` input per definition, built on the
//! reference's create-borrower example (`worker::sample`), each with a NIK of its own (the
//! sandbox refuses a second borrower with the same NIK) and no magic value, so every
//! onboarding takes the ordinary path: e-KYC where the definition enables it, document
//! uploads for the documents it requires, hub checks, RDF, three callbacks, credit, then
//! approve (or block on the score the sandbox derives from the NIK).

use finfra_api::model::borrower::BorrowerType;
use finfra_api::model::document::DocumentType;
use serde_json::{Value, json};
use worker::sample::{Applicant, Product, Tag};
use workflow::{Definition, Registry};

/// The workflow kind the benchmark submits.
pub const KIND: &str = "onboard-borrower";

/// The definition of the onboardings `--in-flight` keeps waiting: `personal-bnpl`'s policy
/// under a name of its own, polling a waiting borrower once an hour (the most a definition
/// allows) instead of every 30 s, so that once parked they stay parked through a benchmark.
pub const IN_FLIGHT_DEFINITION: &str = "bench-in-flight";

/// The file the `--in-flight` worker reads it from.
pub const IN_FLIGHT_FILE: &str = "bench-in-flight.toml";

/// The `--in-flight` definition's file.
pub const IN_FLIGHT_TOML: &str = r#"
name = "bench-in-flight"
version = 1
description = "finflow bench --in-flight: personal e-KYC onboardings that wait for a KYC review"

[retry]
max_attempts = 8
base_delay = "1s"
max_delay = "5m"

[onboarding]
borrower_type = "PERSONAL"
hub_checks = ["VERIHUBS", "ASLIRI"]
rdf_biometric = true
required_documents = []
poll_interval = "1h"

[onboarding.ekyc]
enabled = true
min_ocr_confidence = 0.8
min_face_match = 0.75

[onboarding.timeouts]
user_created = "15m"
kyc_submission = "30m"
checks = "30m"
user_verified = "2h"
user_approved = "2h"

[credit]
sources = ["afpi", "clik"]
min_score = 550
max_overdue_loans = 1
max_days_past_due = 30
history = true
"#;

/// The `--in-flight` definition, parsed as a definition file is.
///
/// # Errors
/// Never for a build whose definition format still reads it (a unit test says so).
pub fn in_flight_definition() -> anyhow::Result<Definition> {
    let registry = Registry::from_sources([(IN_FLIGHT_FILE, IN_FLIGHT_TOML)])
        .map_err(|e| anyhow::anyhow!("the --in-flight definition: {e}"))?;
    registry
        .latest(IN_FLIGHT_DEFINITION)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the --in-flight definition did not load"))
}

/// Builds the inputs, one definition after the other in name order.
pub struct Inputs {
    /// The latest version of each PERSONAL or BUSINESS definition, by name.
    definitions: Vec<Definition>,
    /// For `--in-flight`.
    in_flight: Definition,
}

impl Inputs {
    /// Inputs over every PERSONAL and BUSINESS definition of `registry` (latest versions).
    ///
    /// # Errors
    /// The registry has no such definition.
    pub fn new(registry: &Registry) -> anyhow::Result<Self> {
        let mut names: Vec<&str> = registry.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let definitions: Vec<Definition> = names
            .into_iter()
            .filter_map(|name| registry.latest(name))
            .filter(|d| {
                matches!(
                    d.onboarding.borrower_type,
                    BorrowerType::Personal | BorrowerType::Business
                )
            })
            .cloned()
            .collect();
        if definitions.is_empty() {
            anyhow::bail!("no PERSONAL or BUSINESS onboarding definition to benchmark");
        }
        Ok(Self {
            definitions,
            in_flight: in_flight_definition()?,
        })
    }

    /// The `--in-flight` definition, to add to the engine's registry.
    pub fn in_flight_definition(&self) -> &Definition {
        &self.in_flight
    }

    /// `name@version` of each definition used, in the order they take turns.
    pub fn definition_names(&self) -> Vec<String> {
        self.definitions
            .iter()
            .map(|d| format!("{}@{}", d.name, d.version))
            .collect()
    }

    /// The `n`-th input: definition `n mod len`, NIK number `n`.
    pub fn input(&self, n: u64) -> Value {
        let len = u64::try_from(self.definitions.len()).unwrap_or(1).max(1);
        let index = usize::try_from(n % len).unwrap_or(0);
        input_for(&self.definitions[index], &nik(n))
    }

    /// The `n`-th input on the `--in-flight` definition (NIK number `n`, as [`Self::input`]).
    pub fn in_flight_input(&self, n: u64) -> Value {
        input_for(&self.in_flight, &nik(n))
    }
}

/// A distinct, valid NIK for each `n` below 10^8: region `32xxxx`, birth date 20-09-92 (as in
/// the reference's example), serial `yyyy`.
fn nik(n: u64) -> String {
    format!("32{:04}200992{:04}", (n / 10_000) % 10_000, n % 10_000)
}

fn input_for(definition: &Definition, nik: &str) -> Value {
    let policy = &definition.onboarding;
    let business = matches!(policy.borrower_type, BorrowerType::Business);
    let borrower = borrower_body(nik, business);
    let in_body = |slot: &str| {
        borrower["authorised_signatory"]["documents"]
            .get(slot)
            .is_some()
    };
    let documents: Vec<Value> = policy
        .required_documents
        .iter()
        .filter(|kind| workflow::onboard::input::slot(kind).is_none_or(|slot| !in_body(slot)))
        .map(|kind| {
            let mut upload = json!({
                "type": kind,
                "base64": "JVBERi0xLjQK",
                "content_type": "application/pdf",
            });
            if matches!(kind, DocumentType::Npwp) {
                upload["number"] = json!("012345678901000");
            }
            upload
        })
        .collect();
    let mut input = json!({
        "definition": definition.name,
        "borrower": borrower,
    });
    if !documents.is_empty() {
        input["documents"] = Value::Array(documents);
    }
    if policy.ekyc.enabled {
        // The sandbox's OCR reads the NIK from 16 digits in the file.
        input["ekyc"] = json!({
            "ktp_image": format!("https://files.example/ktp-{nik}.jpg"),
            "selfie": "https://files.example/selfie.jpg",
        });
    }
    input
}

/// A borrower without magic values (`worker::sample`'s), under `nik`: the sample applicants
/// give distinct NIKs for [`worker::sample::MAX_INDEX`] onboardings only, the benchmark needs more.
fn borrower_body(nik: &str, business: bool) -> Value {
    let product = if business {
        Product::BusinessBnpl
    } else {
        Product::PersonalBnpl
    };
    let mut applicant = Applicant::new(0, product, Tag::Clean, String::new());
    nik.clone_into(&mut applicant.nik);
    applicant.body()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn niks_are_distinct_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for n in [0, 1, 9_999, 10_000, 12_345_678, 99_999_999] {
            let nik = nik(n);
            assert!(finfra_api::validate::nik(&nik).is_ok(), "{nik}");
            assert!(seen.insert(nik));
        }
    }

    #[test]
    fn every_bundled_definition_gets_an_input_that_validates() {
        let registry = worker::inprocess::bundled().expect("bundled definitions load");
        let inputs = Inputs::new(&registry).expect("inputs");
        assert_eq!(inputs.definition_names().len(), 4);
        let mut registry = registry;
        registry.insert(inputs.in_flight_definition().clone());
        let engine = workflow::Engine::new(registry);
        for n in 0..8 {
            let input = inputs.input(n);
            engine
                .validate(KIND, &input, chrono::Utc::now())
                .unwrap_or_else(|e| panic!("input {n} is refused: {e}"));
        }
        engine
            .validate(KIND, &inputs.in_flight_input(8), chrono::Utc::now())
            .unwrap_or_else(|e| panic!("the in-flight input is refused: {e}"));
    }

    #[test]
    fn in_flight_onboardings_poll_hourly_and_otherwise_follow_personal_bnpl() {
        let held = in_flight_definition().expect("it loads");
        assert_eq!(
            held.onboarding.poll_interval,
            std::time::Duration::from_secs(3600)
        );
        let registry = worker::inprocess::bundled().expect("bundled definitions load");
        let bnpl = registry.latest("personal-bnpl").expect("personal-bnpl");
        assert_eq!(held.onboarding.ekyc, bnpl.onboarding.ekyc);
        assert_eq!(held.onboarding.hub_checks, bnpl.onboarding.hub_checks);
        assert_eq!(held.credit, bnpl.credit);
    }
}
