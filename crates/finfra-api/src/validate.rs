//! Checks on request bodies before they leave the process.
//!
//! Finfra answers a malformed body with a `400` naming one field at a time; catching the
//! mistakes here names all of them at once, costs no request, and keeps a bad body out of
//! the retry machinery (a `400` is not retryable, so the work would stop there anyway).
//! Every problem is reported with the full field path, in Finfra's own style:
//! `authorised_signatory.documents.ktp.number: must be 16 digits`.
//!
//! What is checked is what the reference and CONTRACT state (formats, required fields,
//! ranges), plus a few sanity rules that need no clock. Anything relative to "today"
//! (a birth date in the past, a due date in the future) is the engine's job, with the
//! clock injected: [`past_date`] and [`future_date`] are here for it to use.
//!
//! The field validators ([`nik`], [`npwp`], [`phone`], [`swift`], ...) are public and
//! return the bare message, so the engine can reuse them on its own newtypes.

mod borrower;
mod country;
mod fields;
mod requests;

use std::fmt;

use crate::lenient::WireEnum;

pub use country::ISO_3166_ALPHA2;
pub use fields::{
    NikBirth, country_code, document_id, email, emergency_phone, future_date, money,
    money_non_negative, nik, nik_birth, nik_consistent, normalize_npwp, npwp, past_date, phone,
    plausible_birth_date, principal, required, swift, unique_id, user_id,
};

/// A request body that can be checked before it is sent.
pub trait Validate {
    /// Checks every field and collects every problem.
    ///
    /// # Errors
    ///
    /// [`ValidationErrors`] listing each invalid field by its full path.
    fn validate(&self) -> Result<(), ValidationErrors>;
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path with indices, e.g. `entity.managements[0].identity_number`.
    pub path: String,
    /// What is wrong, e.g. `must be 16 digits`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// The problems, in the order the fields were checked.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Whether `path` is among the invalid fields.
    pub fn has(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }
}

impl From<Vec<FieldError>> for ValidationErrors {
    fn from(errors: Vec<FieldError>) -> Self {
        Self { errors }
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(error: FieldError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Walks a body, tracking the current path, and collects errors.
pub(crate) struct Checker {
    path: String,
    errors: Vec<FieldError>,
}

impl Checker {
    pub(crate) fn new() -> Self {
        Self {
            path: String::new(),
            errors: Vec::new(),
        }
    }

    fn join(&self, field: &str) -> String {
        if field.is_empty() {
            self.path.clone()
        } else if self.path.is_empty() {
            field.to_owned()
        } else if field.starts_with('[') {
            format!("{}{field}", self.path)
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// Runs `f` with `field` appended to the path.
    pub(crate) fn at(&mut self, field: &str, f: impl FnOnce(&mut Self)) {
        let saved = self.path.len();
        self.path = self.join(field);
        f(self);
        self.path.truncate(saved);
    }

    /// Runs `f` on each item of a list, with `[i]` appended to the path.
    pub(crate) fn each<T>(&mut self, field: &str, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.at(field, |c| {
            for (i, item) in items.iter().enumerate() {
                c.at(&format!("[{i}]"), |c| f(c, item));
            }
        });
    }

    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        let path = self.join(field);
        self.errors.push(FieldError {
            path,
            message: message.into(),
        });
    }

    /// Records `result`'s message, if any, against `field`.
    pub(crate) fn check(&mut self, field: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(field, message);
        }
    }

    /// Applies `rule` to a string field.
    pub(crate) fn str(&mut self, field: &str, value: &str, rule: fn(&str) -> Result<(), String>) {
        self.check(field, rule(value));
    }

    /// Applies `rule` to an optional string field when present. An optional field sent
    /// as `""` must still be valid (CONTRACT §1), so `Some("")` is checked, not skipped.
    pub(crate) fn opt_str(
        &mut self,
        field: &str,
        value: &Option<String>,
        rule: fn(&str) -> Result<(), String>,
    ) {
        if let Some(v) = value {
            self.check(field, rule(v));
        }
    }

    /// Requests must not carry values Finfra does not document: `Unknown` exists to read
    /// new values, not to invent them.
    pub(crate) fn known<E: WireEnum>(&mut self, field: &str, value: &E) {
        if !E::known_values().contains(&value.wire()) {
            let message = format!(
                "must be one of {} (got {:?})",
                E::known_values().join(", "),
                value.wire()
            );
            self.error(field, message);
        }
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                errors: self.errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_builds_paths_and_collects_everything() {
        let mut c = Checker::new();
        c.error("type", "bad");
        c.at("entity", |c| {
            c.each("managements", &["a", "b"], |c, _| {
                c.error("identity_number", "must be 16 digits")
            });
            c.error("", "whole entity");
        });
        c.error("after", "still top level");
        let errs = c.finish().unwrap_err();
        let paths: Vec<&str> = errs.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "type",
                "entity.managements[0].identity_number",
                "entity.managements[1].identity_number",
                "entity",
                "after"
            ]
        );
        assert_eq!(
            errs.to_string(),
            "type: bad; entity.managements[0].identity_number: must be 16 digits; \
             entity.managements[1].identity_number: must be 16 digits; entity: whole entity; \
             after: still top level"
        );
        assert!(errs.has("after"));
    }

    #[test]
    fn empty_checker_is_ok() {
        assert_eq!(Checker::new().finish(), Ok(()));
    }
}
