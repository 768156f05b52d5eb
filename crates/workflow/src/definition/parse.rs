//! Reading one definition file: TOML into a [`Definition`], every problem collected with
//! the file and the field's dotted path.
//!
//! The file is read as a plain TOML table and walked by hand rather than deserialized
//! with serde: serde stops at the first problem and reports positions, not paths, while
//! operators need every problem at once, named by field.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::Duration;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use toml::{Table, Value};

use finfra_api::model::borrower::BorrowerType;
use finfra_api::model::credit::CreditSource;
use finfra_api::model::document::DocumentType;
use finfra_api::model::ekyc::{DataSource, HubProvider};

use super::{
    CreditPolicy, Definition, DefinitionError, EkycPolicy, OnboardingPolicy, OnboardingTimeouts,
    RetrySettings, ReturningBorrowers,
};
use crate::ids::hex;

/// The top-level sections, each required but `origination` (a definition without it
/// onboards only; `originate-loan` refuses it at submit).
const SECTIONS: &[&str] = &["retry", "onboarding", "credit", "origination"];

/// Collects problems for one file.
pub(super) struct Problems {
    file: String,
    list: Vec<DefinitionError>,
}

impl Problems {
    pub(super) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(DefinitionError {
            file: self.file.clone(),
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// A table being read: its path and the keys read so far (the others are unknown).
pub(super) struct Section<'a> {
    path: String,
    table: &'a Table,
    read: BTreeSet<&'static str>,
}

impl<'a> Section<'a> {
    pub(super) fn new(path: &str, table: &'a Table) -> Self {
        Self {
            path: path.to_owned(),
            table,
            read: BTreeSet::new(),
        }
    }

    pub(super) fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.insert(key);
        self.table.get(key)
    }

    /// A required value, or `None` after reporting it missing.
    pub(super) fn required(&mut self, p: &mut Problems, key: &'static str) -> Option<&'a Value> {
        let value = self.get(key);
        if value.is_none() {
            p.push(&self.field(key), "is required");
        }
        value
    }

    pub(super) fn string(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        required: bool,
    ) -> Option<String> {
        let value = if required {
            self.required(p, key)?
        } else {
            self.get(key)?
        };
        match value.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.to_owned()),
            Some(_) => {
                p.push(&self.field(key), "must not be empty");
                None
            }
            None => {
                p.push(&self.field(key), "must be a string");
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        range: RangeInclusive<u32>,
    ) -> Option<u32> {
        let value = self.required(p, key)?;
        let n = value
            .as_integer()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n));
        if n.is_none() {
            let message = if *range.end() == u32::MAX {
                format!("must be a whole number of at least {}", range.start())
            } else {
                format!("must be between {} and {}", range.start(), range.end())
            };
            p.push(&self.field(key), message);
        }
        n
    }

    fn fraction(&mut self, p: &mut Problems, key: &'static str) -> Option<f64> {
        let value = self.required(p, key)?;
        // TOML writes 1 as an integer; both forms are fine.
        #[allow(clippy::cast_precision_loss)]
        let n = value
            .as_float()
            .or_else(|| value.as_integer().map(|i| i as f64))
            .filter(|f| (0.0..=1.0).contains(f));
        if n.is_none() {
            p.push(&self.field(key), "must be a number between 0 and 1");
        }
        n
    }

    fn boolean(&mut self, p: &mut Problems, key: &'static str) -> Option<bool> {
        let value = self.required(p, key)?;
        let b = value.as_bool();
        if b.is_none() {
            p.push(&self.field(key), "must be true or false");
        }
        b
    }

    pub(super) fn duration(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let value = self.required(p, key)?;
        let Some(d) = value.as_str().and_then(parse_duration) else {
            p.push(
                &self.field(key),
                "must be a duration such as \"500ms\", \"30s\", \"15m\", \"2h\" or \"1d\"",
            );
            return None;
        };
        if !range.contains(&d) {
            p.push(
                &self.field(key),
                format!(
                    "must be between {} and {}",
                    show_duration(*range.start()),
                    show_duration(*range.end())
                ),
            );
            return None;
        }
        Some(d)
    }

    /// A value from a closed list; the list's spelling is the wire's.
    pub(super) fn choice<T: From<&'static str>>(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        allowed: &'static [&'static str],
        required: bool,
    ) -> Option<T> {
        let text = self.string(p, key, required)?;
        match allowed.iter().find(|a| **a == text) {
            Some(a) => Some(T::from(*a)),
            None => {
                p.push(
                    &self.field(key),
                    format!("must be one of {} (got {text:?})", allowed.join(", ")),
                );
                None
            }
        }
    }

    /// A list of values from a closed list, without duplicates.
    pub(super) fn choices<T: From<&'static str>>(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        allowed: &'static [&'static str],
    ) -> Option<Vec<T>> {
        let value = self.required(p, key)?;
        let Some(items) = value.as_array() else {
            p.push(&self.field(key), "must be a list");
            return None;
        };
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", self.field(key));
            match item
                .as_str()
                .and_then(|s| allowed.iter().find(|a| **a == s))
            {
                Some(a) if seen.insert(*a) => out.push(T::from(*a)),
                Some(a) => {
                    p.push(&field, format!("repeats {a}"));
                    ok = false;
                }
                None => {
                    p.push(&field, format!("must be one of {}", allowed.join(", ")));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn table(&mut self, p: &mut Problems, key: &'static str) -> Option<Section<'a>> {
        let value = self.required(p, key)?;
        match value.as_table() {
            Some(table) => Some(Section::new(&self.field(key), table)),
            None => {
                p.push(&self.field(key), "must be a table");
                None
            }
        }
    }

    /// An optional sub-table: `None` when absent (nothing reported), or when not a table
    /// (reported).
    pub(super) fn optional_table(
        &mut self,
        p: &mut Problems,
        key: &'static str,
    ) -> Option<Section<'a>> {
        let value = self.get(key)?;
        match value.as_table() {
            Some(table) => Some(Section::new(&self.field(key), table)),
            None => {
                p.push(&self.field(key), "must be a table");
                None
            }
        }
    }

    /// A required exact decimal (money, a rate): a string such as `"0.0175"` or
    /// `"5000000.00"`, or a TOML integer or float (read from its shortest decimal form,
    /// which is what was written), not negative.
    pub(super) fn decimal(&mut self, p: &mut Problems, key: &'static str) -> Option<Decimal> {
        let value = self.required(p, key)?;
        let parsed = match value {
            Value::String(s) => Decimal::from_str_exact(s.trim()).ok(),
            Value::Integer(i) => Some(Decimal::from(*i)),
            Value::Float(f) if f.is_finite() => Decimal::from_str_exact(&f.to_string()).ok(),
            _ => None,
        };
        match parsed {
            Some(d) if !d.is_sign_negative() || d.is_zero() => Some(d.normalize()),
            Some(_) => {
                p.push(&self.field(key), "must not be negative");
                None
            }
            None => {
                p.push(
                    &self.field(key),
                    "must be a decimal number such as \"0.0175\" or \"5000000.00\"",
                );
                None
            }
        }
    }

    /// Reports the keys nobody read.
    pub(super) fn finish(self, p: &mut Problems) {
        for key in self.table.keys() {
            if !self.read.contains(key.as_str()) {
                p.push(&self.field(key), "is not a known key");
            }
        }
    }
}

/// `"30s"`, `"15m"`, `"2h"`, `"1d"`, `"5y"` (365 days a year), `"500ms"`.
#[must_use]
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let secs = |factor: u64| n.checked_mul(factor).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "y" => secs(365 * 86_400),
        _ => None,
    }
}

fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

pub(super) const SECOND: Duration = Duration::from_secs(1);
pub(super) const DAY: Duration = Duration::from_secs(86_400);

/// Parses one file.
pub(super) fn definition(file: &str, text: &str) -> Result<Definition, Vec<DefinitionError>> {
    let mut p = Problems {
        file: file.to_owned(),
        list: Vec::new(),
    };
    let table: Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            let e: toml::de::Error = e;
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            let message = e.message().trim().to_owned();
            p.push(
                "",
                match line {
                    Some(line) => format!("is not valid TOML (line {line}): {message}"),
                    None => format!("is not valid TOML: {message}"),
                },
            );
            return Err(p.list);
        }
    };
    let mut root = Section::new("", &table);
    let name = root.string(&mut p, "name", true);
    if let Some(name) = &name {
        check_name(&mut p, name);
    }
    let version = root.integer(&mut p, "version", 1..=u32::MAX);
    if let (Some(name), Some(version)) = (&name, version) {
        check_file_name(&mut p, file, name, version);
    }
    let description = root.string(&mut p, "description", false);
    let retry = root
        .table(&mut p, SECTIONS[0])
        .and_then(|s| retry(&mut p, s));
    let onboarding = root
        .table(&mut p, SECTIONS[1])
        .and_then(|s| onboarding(&mut p, s));
    let credit = root
        .table(&mut p, SECTIONS[2])
        .and_then(|s| credit(&mut p, s));
    // `None` both when absent and when refused: the problems say which.
    let origination = root
        .optional_table(&mut p, SECTIONS[3])
        .and_then(|s| super::origination::parse(&mut p, s));
    root.finish(&mut p);
    match (name, version, retry, onboarding, credit) {
        (Some(name), Some(version), Some(retry), Some(onboarding), Some(credit))
            if p.list.is_empty() =>
        {
            Ok(Definition {
                name,
                version,
                description,
                file: file.to_owned(),
                digest: hex(&Sha256::digest(text.as_bytes())),
                retry,
                onboarding,
                credit,
                origination,
            })
        }
        _ => Err(p.list),
    }
}

fn check_name(p: &mut Problems, name: &str) {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !ok {
        p.push("name", "must be lowercase letters, digits and '-'");
    }
}

/// The file must be `name.toml` or `name@version.toml`, so that a directory listing tells
/// what is loaded and two files cannot silently claim one name.
fn check_file_name(p: &mut Problems, file: &str, name: &str, version: u32) {
    let stem = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let pinned = format!("{name}@{version}");
    if stem != name && stem != pinned {
        p.push(
            "name",
            format!("must match the file name: {name:?} belongs in {name}.toml or {pinned}.toml"),
        );
    }
}

fn retry(p: &mut Problems, mut s: Section<'_>) -> Option<RetrySettings> {
    let max_attempts = s.integer(p, "max_attempts", 1..=100);
    let base_delay = s.duration(
        p,
        "base_delay",
        Duration::from_millis(10)..=Duration::from_secs(3600),
    );
    let max_delay = s.duration(p, "max_delay", Duration::from_millis(10)..=DAY);
    if let (Some(base), Some(max)) = (base_delay, max_delay)
        && max < base
    {
        p.push(
            &s.field("max_delay"),
            "must not be shorter than retry.base_delay",
        );
    }
    s.finish(p);
    Some(RetrySettings {
        max_attempts: max_attempts?,
        base_delay: base_delay?,
        max_delay: max_delay?,
    })
}

fn onboarding(p: &mut Problems, mut s: Section<'_>) -> Option<OnboardingPolicy> {
    let borrower_type = s.choice::<BorrowerType>(p, "borrower_type", BorrowerType::KNOWN, true);
    let hub_checks = s.choices::<HubProvider>(p, "hub_checks", HubProvider::KNOWN);
    let rdf_biometric = s.boolean(p, "rdf_biometric");
    let required_documents =
        s.choices::<DocumentType>(p, "required_documents", DocumentType::KNOWN);
    let poll_interval = s.duration(p, "poll_interval", SECOND..=Duration::from_secs(3600));
    let ekyc = s.table(p, "ekyc").and_then(|e| ekyc(p, e));
    let timeouts = s.table(p, "timeouts").and_then(|t| timeouts(p, t));
    let returning_borrowers = if s.get("returning_borrowers").is_some() {
        s.choice::<ReturningBorrowers>(p, "returning_borrowers", ReturningBorrowers::KNOWN, true)
    } else {
        Some(ReturningBorrowers::default())
    };
    s.finish(p);
    Some(OnboardingPolicy {
        borrower_type: borrower_type?,
        ekyc: ekyc?,
        hub_checks: hub_checks?,
        rdf_biometric: rdf_biometric?,
        required_documents: required_documents?,
        poll_interval: poll_interval?,
        timeouts: timeouts?,
        returning_borrowers: returning_borrowers?,
    })
}

fn ekyc(p: &mut Problems, mut s: Section<'_>) -> Option<EkycPolicy> {
    let enabled = s.boolean(p, "enabled")?;
    if !enabled {
        // Thresholds of a disabled e-KYC would read as if they applied.
        for key in s.table.keys() {
            if key != "enabled" {
                p.push(
                    &s.field(key),
                    "has no effect when onboarding.ekyc.enabled = false: remove it",
                );
            }
        }
        return Some(EkycPolicy {
            enabled: false,
            data_source: None,
            min_ocr_confidence: 0.0,
            min_face_match: 0.0,
            require_nik_match: false,
        });
    }
    let data_source = s.choice::<DataSource>(p, "data_source", DataSource::KNOWN, false);
    let min_ocr_confidence = s.fraction(p, "min_ocr_confidence");
    let min_face_match = s.fraction(p, "min_face_match");
    let require_nik_match = if s.table.contains_key("require_nik_match") {
        s.boolean(p, "require_nik_match")
    } else {
        Some(true)
    };
    s.finish(p);
    Some(EkycPolicy {
        enabled,
        data_source,
        min_ocr_confidence: min_ocr_confidence?,
        min_face_match: min_face_match?,
        require_nik_match: require_nik_match?,
    })
}

fn timeouts(p: &mut Problems, mut s: Section<'_>) -> Option<OnboardingTimeouts> {
    let range = SECOND..=Duration::from_secs(30 * 86_400);
    let user_created = s.duration(p, "user_created", range.clone());
    let kyc_submission = s.duration(p, "kyc_submission", range.clone());
    let checks = s.duration(p, "checks", range.clone());
    let user_verified = s.duration(p, "user_verified", range.clone());
    let user_approved = s.duration(p, "user_approved", range);
    s.finish(p);
    Some(OnboardingTimeouts {
        user_created: user_created?,
        kyc_submission: kyc_submission?,
        checks: checks?,
        user_verified: user_verified?,
        user_approved: user_approved?,
    })
}

fn credit(p: &mut Problems, mut s: Section<'_>) -> Option<CreditPolicy> {
    let sources = s.choices::<CreditSource>(p, "sources", CreditSource::KNOWN);
    if sources.as_ref().is_some_and(Vec::is_empty) {
        p.push(&s.field("sources"), "must name at least one of afpi, clik");
    }
    let min_score = s.integer(p, "min_score", 300..=900);
    let max_overdue_loans = s.integer(p, "max_overdue_loans", 0..=1000);
    let max_days_past_due = s.integer(p, "max_days_past_due", 0..=36_500);
    let history = s.boolean(p, "history");
    s.finish(p);
    Some(CreditPolicy {
        sources: sources?,
        min_score: min_score?,
        max_overdue_loans: max_overdue_loans?,
        max_days_past_due: max_days_past_due?,
        history: history?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(DAY));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "s", "10", "1.5s", "-1s", "10 s", "3w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(show_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(show_duration(Duration::from_millis(10)), "10ms");
    }
}
