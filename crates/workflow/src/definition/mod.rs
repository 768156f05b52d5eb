//! Workflow definitions: the lender's product policies in `workflows/*.toml`, loaded and
//! validated once at start-up into a [`Registry`] keyed by `(name, version)`.
//!
//! # File format
//!
//! ```toml
//! name = "personal-bnpl"          # must match the file name: personal-bnpl.toml
//! version = 3                     # bump on every change (see "Pinning" below)
//! description = "Consumer BNPL at checkout"   # optional
//!
//! [retry]                         # every Finfra call of the workflows using this definition
//! max_attempts = 8                # 1..=100, the first attempt included
//! base_delay = "1s"               # doubles each attempt, with jitter
//! max_delay = "5m"                # cap on the backoff (never on Finfra's Retry-After)
//!
//! [onboarding]
//! borrower_type = "PERSONAL"      # PERSONAL | BUSINESS: the only type this product onboards
//! hub_checks = ["VERIHUBS", "ASLIRI"]   # checked in this order; [] for none
//! rdf_biometric = true
//! required_documents = []         # KTP, SELFIE, NPWP, SELFIE_WITH_KTP, STOCK_IMAGES, FINANCE_REPORT
//! poll_interval = "30s"           # polls while a callback is late, and rechecks of PENDING checks
//!
//! [onboarding.ekyc]
//! enabled = true                  # OCR + biometric + create on the KYC session + submit
//! data_source = "VERIHUBS"        # optional: izidata | VERIHUBS | ASLIRI | VIDA
//! min_ocr_confidence = 0.8        # 0..=1
//! min_face_match = 0.75           # 0..=1
//! require_nik_match = true        # the KTP's OCR'd NIK must equal documents.ktp.number
//!
//! [onboarding.timeouts]
//! user_created = "15m"            # create accepted → borrower id known
//! kyc_submission = "30m"          # e-KYC path: submission → borrower id (polled)
//! checks = "30m"                  # hub checks and RDF answering PENDING
//! user_verified = "2h"            # KYC review
//! user_approved = "2h"            # approve → APPROVED
//!
//! [credit]                        # the policy decision after onboarding checks
//! sources = ["afpi", "clik"]
//! min_score = 600                 # 300..=900
//! max_overdue_loans = 0
//! max_days_past_due = 30
//! history = true                  # also read the credit history by NIK
//! ```
//!
//! Durations are a whole number and a unit: `ms`, `s`, `m`, `h` or `d`. Every key is
//! required except `description`, `onboarding.ekyc.data_source` and
//! `onboarding.ekyc.require_nik_match` (default `true`); when `enabled = false`, the other
//! `ekyc` keys must be absent. Unknown keys are errors. Errors name the file and the field
//! (`workflows/personal-bnpl.toml: credit.min_score must be between 300 and 900`), and all
//! of a directory's problems are reported at once.
//!
//! ```toml
//! [origination]                   # optional: how loans are originated (`originate-loan`)
//! poll_interval = "30s"
//! # ... the products allowed and their limits, deadlines, the repayment account's bank,
//! # the overdue grace: see the `origination` module.
//! ```
//!
//! A definition without `[origination]` onboards borrowers only: `originate-loan` refuses
//! it at submit. (Optional so that definitions written before loans existed still load.)
//!
//! # Pinning
//!
//! A workflow copies its whole [`Definition`] into its state when it starts. Decisions read
//! the copy, never the registry, so editing or deleting a file changes new work only, and
//! in-flight work finishes on the version it started with, across restarts and on every
//! worker of a fleet, with no old files to keep. `name`, `version` and `digest` (SHA-256
//! of the file) are recorded so SQL can tell which policy each workflow runs. A directory
//! may also hold older versions side by side as `name@version.toml` so that new work can
//! still choose them (`"definition": "personal-bnpl@2"`); plain `"personal-bnpl"` means
//! the highest version loaded.

mod origination;
mod parse;

pub use parse::parse_duration;

pub use origination::{BnplLimits, OriginationPolicy, OriginationTimeouts, SinglePaymentLimits};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use finfra_api::model::borrower::BorrowerType;
use finfra_api::model::credit::CreditSource;
use finfra_api::model::document::DocumentType;
use finfra_api::model::ekyc::{DataSource, HubProvider};
use finfra_api::retry::RetryPolicy;

use crate::serde_util::millis;

/// One loaded definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// `personal-bnpl`.
    pub name: String,
    /// 1 and up.
    pub version: u32,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file it was loaded from, as given to the loader.
    pub file: String,
    /// SHA-256 of the file's text, hex.
    pub digest: String,
    /// Retries of every Finfra call.
    pub retry: RetrySettings,
    /// How borrowers are onboarded.
    pub onboarding: OnboardingPolicy,
    /// The credit policy decision.
    pub credit: CreditPolicy,
    /// How loans are originated, when this definition originates them. Absent from
    /// definitions pinned before `[origination]` existed, which reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origination: Option<OriginationPolicy>,
}

impl Definition {
    /// `(name, version, digest)`, as recorded with each workflow.
    #[must_use]
    pub fn reference(&self) -> DefinitionRef {
        DefinitionRef {
            name: self.name.clone(),
            version: self.version,
            digest: self.digest.clone(),
        }
    }
}

/// Where an input's `"definition"` is looked up: in the registry when a workflow is
/// submitted and started, in the one definition it pinned afterwards (the state's request is
/// rebuilt from the input on every step, see `crate::stored`, and must come out as it did at
/// start even when the registry has moved on).
#[derive(Debug, Clone, Copy)]
pub enum Resolver<'a> {
    /// The definitions loaded.
    Registry(&'a Registry),
    /// The definition a running workflow pinned: whatever the input names.
    Pinned(&'a Definition),
}

impl<'a> Resolver<'a> {
    /// The definition `spec` (`name` or `name@version`) names.
    ///
    /// # Errors
    ///
    /// A message for the `definition` field when the registry does not know it.
    pub fn resolve(self, spec: &str) -> Result<&'a Definition, String> {
        match self {
            Self::Registry(registry) => registry.resolve(spec),
            Self::Pinned(definition) => Ok(definition),
        }
    }
}

impl<'a> From<&'a Registry> for Resolver<'a> {
    fn from(registry: &'a Registry) -> Self {
        Self::Registry(registry)
    }
}

/// Which definition a workflow runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DefinitionRef {
    /// The definition's name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// SHA-256 of its file.
    pub digest: String,
}

impl fmt::Display for DefinitionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// `[retry]`: bounds on retrying one Finfra call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySettings {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// First backoff.
    #[serde(with = "millis", rename = "base_delay_ms")]
    pub base_delay: Duration,
    /// Cap on the backoff.
    #[serde(with = "millis", rename = "max_delay_ms")]
    pub max_delay: Duration,
}

impl RetrySettings {
    /// As `finfra_api::retry` takes it.
    #[must_use]
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
        }
    }
}

/// `[onboarding]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardingPolicy {
    /// The borrower type this product onboards.
    pub borrower_type: BorrowerType,
    /// e-KYC options.
    pub ekyc: EkycPolicy,
    /// Hub checks, in order.
    pub hub_checks: Vec<HubProvider>,
    /// Whether to run the RDF biometric verification.
    pub rdf_biometric: bool,
    /// Documents the input must provide (as an upload or in the create body).
    pub required_documents: Vec<DocumentType>,
    /// Poll and recheck interval.
    #[serde(with = "millis", rename = "poll_interval_ms")]
    pub poll_interval: Duration,
    /// Deadlines.
    pub timeouts: OnboardingTimeouts,
    /// What a new onboarding of a borrower whose earlier onboarding completed does.
    #[serde(default)]
    pub returning_borrowers: ReturningBorrowers,
}

/// `[onboarding] returning_borrowers`: a new onboarding of a NIK whose earlier onboarding
/// completed adopts that borrower's Finfra id (reading the borrower first) instead of
/// creating one, which Finfra would refuse with `409`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturningBorrowers {
    /// An `APPROVED` borrower is approved again as it is (the default).
    #[default]
    Adopt,
    /// The credit policy runs again (score, history, decision) before approving.
    RecheckCredit,
}

impl ReturningBorrowers {
    /// The spellings in a definition.
    pub const KNOWN: &'static [&'static str] = &["adopt", "recheck_credit"];
}

impl From<&'static str> for ReturningBorrowers {
    fn from(text: &'static str) -> Self {
        match text {
            "recheck_credit" => Self::RecheckCredit,
            _ => Self::Adopt,
        }
    }
}

/// `[onboarding.ekyc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EkycPolicy {
    /// OCR, biometric, create on the KYC session, submit.
    pub enabled: bool,
    /// The OCR's `data-source` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<DataSource>,
    /// Lowest OCR confidence accepted.
    pub min_ocr_confidence: f64,
    /// Lowest face-match score accepted.
    pub min_face_match: f64,
    /// Whether the OCR'd NIK must equal the body's KTP number.
    pub require_nik_match: bool,
}

/// `[onboarding.timeouts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnboardingTimeouts {
    /// Create accepted → borrower id known (plain path: the `user_created` callback).
    #[serde(with = "millis", rename = "user_created_ms")]
    pub user_created: Duration,
    /// e-KYC path: submission → borrower id known (callback or submission poll).
    #[serde(with = "millis", rename = "kyc_submission_ms")]
    pub kyc_submission: Duration,
    /// Hub checks and RDF answering `PENDING`.
    #[serde(with = "millis", rename = "checks_ms")]
    pub checks: Duration,
    /// KYC review: `VERIFIED` or `REJECTED`.
    #[serde(with = "millis", rename = "user_verified_ms")]
    pub user_verified: Duration,
    /// Approve → `APPROVED`.
    #[serde(with = "millis", rename = "user_approved_ms")]
    pub user_approved: Duration,
}

/// `[credit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditPolicy {
    /// Bureaus for the score report.
    pub sources: Vec<CreditSource>,
    /// Lowest score approved.
    pub min_score: u32,
    /// Most overdue loans approved.
    pub max_overdue_loans: u32,
    /// Most days past due approved.
    pub max_days_past_due: u32,
    /// Whether to read the credit history too.
    pub history: bool,
}

/// One problem with a definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The file, as given to the loader (`workflows/personal-bnpl.toml`).
    pub file: String,
    /// The field's dotted path (`credit.min_score`); empty for the file as a whole.
    pub field: String,
    /// What is wrong (`must be between 300 and 900`).
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {} {}", self.file, self.field, self.message)
        }
    }
}

/// Every problem found while loading definitions, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl DefinitionErrors {
    /// Whether some problem concerns `file` and `field`.
    #[must_use]
    pub fn has(&self, file: &str, field: &str) -> bool {
        self.0.iter().any(|e| e.file == file && e.field == field)
    }
}

/// The loaded definitions, keyed by `(name, version)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    definitions: BTreeMap<(String, u32), Definition>,
}

impl Registry {
    /// Parses and validates definitions from `(file name, text)` pairs (pure: the caller
    /// read the files). File names are used in messages and to check `name`.
    ///
    /// # Errors
    ///
    /// [`DefinitionErrors`] listing every problem of every file, and two files defining
    /// the same `(name, version)`.
    pub fn from_sources<I, F, T>(sources: I) -> Result<Self, DefinitionErrors>
    where
        I: IntoIterator<Item = (F, T)>,
        F: Into<String>,
        T: AsRef<str>,
    {
        let mut errors = Vec::new();
        let mut definitions: BTreeMap<(String, u32), Definition> = BTreeMap::new();
        for (file, text) in sources {
            let file = file.into();
            match parse::definition(&file, text.as_ref()) {
                Ok(definition) => {
                    let key = (definition.name.clone(), definition.version);
                    if let Some(existing) = definitions.get(&key) {
                        errors.push(DefinitionError {
                            file: file.clone(),
                            field: "version".to_owned(),
                            message: format!(
                                "{} is already defined by {} for {}",
                                key.1, existing.file, key.0
                            ),
                        });
                    } else {
                        definitions.insert(key, definition);
                    }
                }
                Err(mut problems) => errors.append(&mut problems),
            }
        }
        if errors.is_empty() {
            Ok(Self { definitions })
        } else {
            Err(DefinitionErrors(errors))
        }
    }

    /// Reads every `*.toml` file of `dir` (in name order) and loads them: the start-up step
    /// of `finflow run`. The only I/O of this crate.
    ///
    /// # Errors
    ///
    /// [`DefinitionErrors`]: an unreadable directory or file, and every problem of
    /// [`Self::from_sources`].
    pub fn load_dir(dir: &Path) -> Result<Self, DefinitionErrors> {
        let io_error = |file: &Path, e: std::io::Error| DefinitionError {
            file: file.display().to_string(),
            field: String::new(),
            message: format!("could not be read: {e}"),
        };
        let entries =
            std::fs::read_dir(dir).map_err(|e| DefinitionErrors(vec![io_error(dir, e)]))?;
        let mut paths = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let path = entry.path();
                    if path.extension().is_some_and(|ext| ext == "toml") {
                        paths.push(path);
                    }
                }
                Err(e) => errors.push(io_error(dir, e)),
            }
        }
        paths.sort();
        let mut sources = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path.display().to_string(), text)),
                Err(e) => errors.push(io_error(&path, e)),
            }
        }
        match Self::from_sources(sources) {
            Ok(registry) if errors.is_empty() => Ok(registry),
            Ok(_) => Err(DefinitionErrors(errors)),
            Err(DefinitionErrors(mut more)) => {
                errors.append(&mut more);
                Err(DefinitionErrors(errors))
            }
        }
    }

    /// Adds a definition built in code (tests, embedding).
    pub fn insert(&mut self, definition: Definition) {
        self.definitions
            .insert((definition.name.clone(), definition.version), definition);
    }

    /// `(name, version)`.
    #[must_use]
    pub fn get(&self, name: &str, version: u32) -> Option<&Definition> {
        self.definitions.get(&(name.to_owned(), version))
    }

    /// The highest version of `name`.
    #[must_use]
    pub fn latest(&self, name: &str) -> Option<&Definition> {
        self.definitions
            .range((name.to_owned(), 0)..=(name.to_owned(), u32::MAX))
            .next_back()
            .map(|(_, d)| d)
    }

    /// `"name"` (the highest version) or `"name@version"`.
    ///
    /// # Errors
    ///
    /// A message naming what is known, for an input's `definition` field.
    pub fn resolve(&self, spec: &str) -> Result<&Definition, String> {
        let found = match spec.split_once('@') {
            Some((name, version)) => version
                .parse::<u32>()
                .ok()
                .and_then(|version| self.get(name, version)),
            None => self.latest(spec),
        };
        found.ok_or_else(|| {
            let known: Vec<String> = self
                .definitions
                .keys()
                .map(|(name, version)| format!("{name}@{version}"))
                .collect();
            format!(
                "is not a known definition: {spec:?} (known: {})",
                known.join(", ")
            )
        })
    }

    /// Every definition, by name then version.
    pub fn iter(&self) -> impl Iterator<Item = &Definition> {
        self.definitions.values()
    }

    /// How many definitions are loaded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    /// Whether none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }
}
