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

/// Builds the inputs, one definition after the other in name order.
pub struct Inputs {
    /// The latest version of each PERSONAL or BUSINESS definition, by name.
    definitions: Vec<Definition>,
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
        Ok(Self { definitions })
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
        let engine = workflow::Engine::new(registry);
        for n in 0..8 {
            let input = inputs.input(n);
            engine
                .validate(KIND, &input, chrono::Utc::now())
                .unwrap_or_else(|e| panic!("input {n} is refused: {e}"));
        }
    }
}
