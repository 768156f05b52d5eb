//! Raw JSON validation with field paths.
//!
//! The sandbox deliberately does not deserialize requests into shared types: it walks the
//! `serde_json::Value` by hand so that every deviation from the contract (a missing field, a
//! JSON number where a decimal string belongs, a boolean where the reference wants `"true"`,
//! a field that does not exist) is reported by path, e.g.
//! `authorised_signatory.documents.ktp.number must be 16 digits`. A [`Checker`] collects all
//! problems of a body, so one `400` lists them all.
//!
//! Form-encoded bodies (CONTRACT §1) arrive as an object of strings; with `form` set, an
//! integer field also accepts a string of digits, since a form cannot carry anything else.

use std::fmt::Display;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::error::ApiError;

pub(crate) mod borrower;
pub(crate) mod loan;

pub(crate) type Object = Map<String, Value>;

/// `a.b` + `c` → `a.b.c`; the root path is empty.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `a.b` + 3 → `a.b[3]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The format a string field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Any non-empty text.
    Text,
    /// Exactly this many ASCII digits (NIK: 16).
    Digits(usize),
    /// Between `min` and `max` ASCII digits.
    DigitsBetween(usize, usize),
    Email,
    /// International format: `+` and 8 to 15 digits, e.g. `+6287711998822`.
    InternationalPhone,
    /// A phone number, international or local: an optional `+` and 8 to 15 digits.
    Phone,
    /// `YYYY-MM-DD`, a real calendar date.
    Date,
    /// ISO 3166-1 alpha-2, upper case.
    Country,
    /// An upper-case code such as `PRIVATE_SECTOR_EMPLOYEE`: the reference lists these
    /// fields by example ("e.g. OTHER"), so the sandbox checks the shape, not the list.
    Code,
    /// One of a closed list.
    OneOf(&'static [&'static str]),
    /// SWIFT/BIC: 8 or 11 letters and digits.
    Swift,
    /// NPWP: 15 or 16 digits, dots and dashes allowed as separators.
    Npwp,
    /// Loan `unique_id`: 6 to 64 characters of `[A-Za-z0-9_-]` (CONTRACT §1).
    UniqueId,
}

impl Rule {
    /// `None` when `s` satisfies the rule, else what is wrong.
    pub fn check(self, s: &str) -> Option<String> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let ok = match self {
            Rule::Text => !s.trim().is_empty(),
            Rule::Digits(n) => digits(s) && s.len() == n,
            Rule::DigitsBetween(min, max) => digits(s) && (min..=max).contains(&s.len()),
            Rule::Email => is_email(s),
            Rule::InternationalPhone => s
                .strip_prefix('+')
                .is_some_and(|d| digits(d) && (8..=15).contains(&d.len())),
            Rule::Phone => {
                let d = s.strip_prefix('+').unwrap_or(s);
                digits(d) && (8..=15).contains(&d.len())
            }
            Rule::Date => parse_date(s).is_some(),
            Rule::Country => s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()),
            Rule::Code => {
                s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            }
            Rule::OneOf(list) => list.contains(&s),
            Rule::Swift => {
                (s.len() == 8 || s.len() == 11)
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
            Rule::Npwp => {
                let d: String = s.chars().filter(|c| *c != '.' && *c != '-').collect();
                digits(&d) && (d.len() == 15 || d.len() == 16)
            }
            Rule::UniqueId => {
                (6..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }
        };
        if ok {
            return None;
        }
        Some(match self {
            Rule::Text => "must not be empty".to_owned(),
            Rule::Digits(n) => format!("must be {n} digits"),
            Rule::DigitsBetween(min, max) => format!("must be {min} to {max} digits"),
            Rule::Email => "must be an email address".to_owned(),
            Rule::InternationalPhone => {
                "must be a phone number in international format, e.g. +6287711998822".to_owned()
            }
            Rule::Phone => "must be a phone number (8 to 15 digits, optional +)".to_owned(),
            Rule::Date => "must be a date in YYYY-MM-DD format".to_owned(),
            Rule::Country => "must be an ISO 3166-1 alpha-2 country code, e.g. ID".to_owned(),
            Rule::Code => "must be an upper-case code, e.g. OTHER".to_owned(),
            Rule::OneOf(list) => format!("must be one of {}", list.join(", ")),
            Rule::Swift => "must be a SWIFT/BIC code (8 or 11 letters and digits)".to_owned(),
            Rule::Npwp => "must be an NPWP number (15 or 16 digits)".to_owned(),
            Rule::UniqueId => {
                "must be 6 to 64 characters of letters, digits, '_' and '-'".to_owned()
            }
        })
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// Strict `YYYY-MM-DD` (chrono alone would accept `2024-1-5`).
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A money amount: a decimal string with 0 to 2 decimals, no sign, no exponent (CONTRACT §1).
pub(crate) fn parse_money(s: &str) -> Option<Decimal> {
    parse_decimal(s, 2)
}

/// An unsigned decimal string with at most `max_scale` decimals.
pub(crate) fn parse_decimal(s: &str, max_scale: usize) -> Option<Decimal> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f) || f.len() > max_scale) {
        return None;
    }
    s.parse().ok()
}

/// An endpoint that takes no body: nothing, or an empty JSON object.
pub(crate) fn empty(body: &Value) -> Result<(), ApiError> {
    match body {
        Value::Null => Ok(()),
        Value::Object(o) if o.is_empty() => Ok(()),
        Value::Object(o) => {
            let mut c = Checker::new(false);
            c.unknown_fields(o, "", &[]);
            c.finish()
        }
        _ => Err(ApiError::bad_request(
            "Validation failed: this endpoint takes no request body",
        )),
    }
}

/// Collects the problems of one request body.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    problems: Vec<String>,
    form: bool,
}

impl Checker {
    pub fn new(form: bool) -> Self {
        Self {
            problems: Vec::new(),
            form,
        }
    }

    /// Records `"{path} {what}"`.
    pub fn problem(&mut self, path: &str, what: impl Display) {
        let path = if path.is_empty() { "body" } else { path };
        self.problems.push(format!("{path} {what}"));
    }

    #[cfg(test)]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// `Ok` when nothing was found, else a `400` listing every problem.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(&self.problems))
        }
    }

    /// The body must be a JSON object.
    pub fn root<'v>(&mut self, body: &'v Value) -> Option<&'v Object> {
        match body {
            Value::Object(m) => Some(m),
            Value::Null => {
                self.problems.push("request body is required".to_owned());
                None
            }
            _ => {
                self.problems
                    .push("request body must be a JSON object".to_owned());
                None
            }
        }
    }

    /// Reports every key of `obj` not in `allowed`: a misspelt field is a client bug that a
    /// lenient server would silently ignore.
    pub fn unknown_fields(&mut self, obj: &Object, path: &str, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(&join(path, key), "is not a known field");
            }
        }
    }

    /// The value of `key`, with `null` counted as absent (CONTRACT §1). Reports a missing
    /// required field.
    fn present<'v>(
        &mut self,
        obj: &'v Object,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'v Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.problem(&join(path, key), "is required");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A string field checked against `rule`. A required field must be non-empty; an optional
    /// one sent as `""` must still satisfy the rule.
    pub fn string<'v>(
        &mut self,
        obj: &'v Object,
        path: &str,
        key: &str,
        required: bool,
        rule: Rule,
    ) -> Option<&'v str> {
        let p = join(path, key);
        match self.present(obj, path, key, required)? {
            Value::String(s) if s.is_empty() && required => {
                self.problem(&p, "is required");
                None
            }
            Value::String(s) => match rule.check(s) {
                None => Some(s),
                Some(what) => {
                    self.problem(&p, what);
                    None
                }
            },
            other => {
                self.problem(&p, format!("must be a string, got {}", kind(other)));
                None
            }
        }
    }

    /// A required non-empty string of any content.
    pub fn text<'v>(&mut self, obj: &'v Object, path: &str, key: &str) -> Option<&'v str> {
        self.string(obj, path, key, true, Rule::Text)
    }

    /// An optional free text; `""` is allowed (descriptions, extensions).
    pub fn optional_text<'v>(&mut self, obj: &'v Object, path: &str, key: &str) -> Option<&'v str> {
        match self.present(obj, path, key, false)? {
            Value::String(s) => Some(s),
            other => {
                self.problem(
                    &join(path, key),
                    format!("must be a string, got {}", kind(other)),
                );
                None
            }
        }
    }

    /// A `YYYY-MM-DD` date.
    pub fn date(
        &mut self,
        obj: &Object,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<NaiveDate> {
        self.string(obj, path, key, required, Rule::Date)
            .and_then(parse_date)
    }

    /// A money amount: a decimal string (CONTRACT §1). A JSON number is refused with a message
    /// that says so, because it is the classic client bug this sandbox exists to catch.
    pub fn money(
        &mut self,
        obj: &Object,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<Decimal> {
        self.decimal(obj, path, key, required, 2, "\"5000000.00\"")
    }

    /// An unsigned decimal string with at most `max_scale` decimals.
    pub fn decimal(
        &mut self,
        obj: &Object,
        path: &str,
        key: &str,
        required: bool,
        max_scale: usize,
        example: &str,
    ) -> Option<Decimal> {
        let p = join(path, key);
        match self.present(obj, path, key, required)? {
            Value::String(s) => match parse_decimal(s, max_scale) {
                Some(d) => Some(d),
                None => {
                    self.problem(
                        &p,
                        format!(
                            "must be a decimal string with at most {max_scale} decimals, e.g. {example}"
                        ),
                    );
                    None
                }
            },
            Value::Number(_) => {
                self.problem(
                    &p,
                    format!("must be a decimal string, e.g. {example}, not a JSON number"),
                );
                None
            }
            other => {
                self.problem(&p, format!("must be a decimal string, got {}", kind(other)));
                None
            }
        }
    }

    /// An integer in `min..=max`. From a form, a string of digits is the integer.
    pub fn integer(
        &mut self,
        obj: &Object,
        path: &str,
        key: &str,
        required: bool,
        (min, max): (i64, i64),
    ) -> Option<i64> {
        let p = join(path, key);
        let n = match self.present(obj, path, key, required)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) if self.form => s.parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(&p, format!("must be an integer from {min} to {max}"));
                None
            }
        }
    }

    /// The string `"true"` or `"false"`: the reference types `prenuptial_agreement` as a
    /// string, so a JSON boolean is refused (CONTRACT §1).
    pub fn bool_string(&mut self, obj: &Object, path: &str, key: &str) -> Option<bool> {
        let p = join(path, key);
        match self.present(obj, path, key, false)? {
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            Value::Bool(_) => {
                self.problem(
                    &p,
                    "must be the string \"true\" or \"false\", not a JSON boolean",
                );
                None
            }
            _ => {
                self.problem(&p, "must be the string \"true\" or \"false\"");
                None
            }
        }
    }

    /// A nested object.
    pub fn object<'v>(
        &mut self,
        obj: &'v Object,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'v Object> {
        match self.present(obj, path, key, required)? {
            Value::Object(m) => Some(m),
            other => {
                self.problem(
                    &join(path, key),
                    format!("must be an object, got {}", kind(other)),
                );
                None
            }
        }
    }

    /// A nested array; with `non_empty`, `[]` is a problem too.
    pub fn array<'v>(
        &mut self,
        obj: &'v Object,
        path: &str,
        key: &str,
        required: bool,
        non_empty: bool,
    ) -> Option<&'v [Value]> {
        let p = join(path, key);
        match self.present(obj, path, key, required)? {
            Value::Array(a) if a.is_empty() && non_empty => {
                self.problem(&p, "must not be empty");
                None
            }
            Value::Array(a) => Some(a),
            other => {
                self.problem(&p, format!("must be an array, got {}", kind(other)));
                None
            }
        }
    }

    /// An array element that must be an object.
    pub fn element<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Object> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.problem(path, format!("must be an object, got {}", kind(other)));
                None
            }
        }
    }
}

/// The JSON kind of a value, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn rules_accept_and_refuse() {
        assert_eq!(Rule::Digits(16).check("3275062009921981"), None);
        assert!(Rule::Digits(16).check("327506200992198").is_some());
        assert!(Rule::Digits(16).check("32750620099219a1").is_some());
        assert_eq!(Rule::InternationalPhone.check("+6287711998822"), None);
        assert!(Rule::InternationalPhone.check("087711998822").is_some());
        assert_eq!(Rule::Phone.check("08123456789"), None);
        assert_eq!(Rule::Email.check("budi+reject@example.com"), None);
        assert!(Rule::Email.check("budi@example").is_some());
        assert_eq!(Rule::Swift.check("BNINIDJA"), None);
        assert!(Rule::Swift.check("bninidja").is_some());
        assert_eq!(Rule::Npwp.check("01.234.567.8-901.000"), None);
        assert_eq!(Rule::UniqueId.check("loan-0001"), None);
        assert!(Rule::UniqueId.check("loan1").is_some());
        assert!(Rule::UniqueId.check("loan 0001").is_some());
        assert_eq!(Rule::Code.check("PRIVATE_SECTOR_EMPLOYEE"), None);
        assert!(Rule::Code.check("Islam").is_some());
    }

    #[test]
    fn dates_are_strict() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2024-2-09").is_none());
        assert!(parse_date("1987-11-23T00:00:00.000Z").is_none());
    }

    #[test]
    fn money_is_a_decimal_string_with_two_decimals_at_most() {
        assert_eq!(
            parse_money("5000000.00"),
            Some(Decimal::new(500_000_000, 2))
        );
        assert_eq!(parse_money("5000000"), Some(Decimal::new(5_000_000, 0)));
        assert!(parse_money("5000000.001").is_none());
        assert!(parse_money("-1").is_none());
        assert!(parse_money("1e6").is_none());
        assert!(parse_money(".5").is_none());

        let mut c = Checker::new(false);
        let o = obj(json!({"principal_amount": 5000000}));
        assert_eq!(c.money(&o, "", "principal_amount", true), None);
        let msg = c.finish().unwrap_err().message;
        assert!(
            msg.contains("principal_amount must be a decimal string"),
            "{msg}"
        );
    }

    #[test]
    fn collects_all_problems_with_paths() {
        let mut c = Checker::new(false);
        let o = obj(json!({"a": {"nik": "123", "flag": true, "extra": 1}}));
        let a = c.object(&o, "", "a", true).unwrap();
        c.string(a, "a", "nik", true, Rule::Digits(16));
        c.bool_string(a, "a", "flag");
        c.text(a, "a", "name");
        c.unknown_fields(a, "a", &["nik", "flag", "name"]);
        let msg = c.finish().unwrap_err().message;
        assert_eq!(
            msg,
            "Validation failed: a.nik must be 16 digits; a.flag must be the string \"true\" or \
             \"false\", not a JSON boolean; a.name is required; a.extra is not a known field"
        );
    }

    #[test]
    fn null_is_absent_and_empty_optional_is_validated() {
        let mut c = Checker::new(false);
        let o = obj(json!({"spouse": null, "nik": ""}));
        assert_eq!(c.string(&o, "", "spouse", false, Rule::Digits(16)), None);
        assert!(c.is_clean());
        c.string(&o, "", "nik", false, Rule::Digits(16));
        assert!(!c.is_clean());
    }

    #[test]
    fn form_integers_may_be_strings() {
        let o = obj(json!({"tenor": "3"}));
        assert_eq!(
            Checker::new(true).integer(&o, "", "tenor", true, (1, 36)),
            Some(3)
        );
        assert_eq!(
            Checker::new(false).integer(&o, "", "tenor", true, (1, 36)),
            None
        );
    }
}
