//! The input of `originate-loan`, checked at submit time with every problem listed.
//!
//! ```json
//! {
//!   "definition": "personal-bnpl",                   // or "personal-bnpl@2"; needs [origination]
//!   "borrower": {"user_id": "6a41ff87dda4eefd0b7b0300"},
//!                                                    // or {"onboarding": "<business key>"}: the
//!                                                    // onboard-borrower workflow to wait for
//!   "loan": {
//!     "type": "BNPL", "principal_amount": "3000000.00", "tenor": 6, "frequency": "MONTHLY",
//!     "interest_rate": "0.0175", "first_due_date": "2026-02-05", "merchant_name": "Toko Maju"
//!   },
//!   // or {"type": "SINGLE_PAYMENT", "principal_amount": "5000000.00",
//!   //     "interest_amount": "150000.00", "fee_amount": "25000.00",   // fee optional
//!   //     "due_date": "2026-03-01", "purpose": "Working capital"}
//!   "disbursement_account": {"holder_name": "Budi Santoso", "number": "123123123213",
//!                            "swift_code": "BNINIDJA"},
//!   "virtual_account_bank": "BNI"                    // optional: the definition's otherwise
//! }
//! ```
//!
//! - Money and rates are decimal strings (as on Finfra's wire: a JSON number is refused);
//!   money has at most 2 decimals. Dates are `YYYY-MM-DD`.
//! - The body Finfra will receive is checked with `finfra_api::validate` (principal within
//!   Finfra's bounds, tenor 1 to 36, SWIFT/BIC, required fields).
//! - Against the definition's `[origination]`: the product is allowed, the principal, tenor,
//!   frequency and rates are within its limits, and the dates are in the future (after the
//!   submit day) and within its terms.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use finfra_api::model::common::BankAccount;
use finfra_api::model::loan::{CreateBnplLoan, CreateSinglePaymentLoan, Frequency};
use finfra_api::model::virtual_account::BankCode;
use finfra_api::validate::{self, FieldError, Validate};

use crate::definition::{Definition, OriginationPolicy, Resolver};
use crate::ids::UserId;
use crate::machine::InputErrors;

use super::state::{BorrowerRef, LoanRequest, LoanTerms};

/// A validated input: the definition it pinned and the request.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginateInput {
    /// The definition, resolved from the registry.
    pub definition: Definition,
    /// Its `[origination]`.
    pub policy: OriginationPolicy,
    /// What to originate.
    pub request: LoanRequest,
}

struct Errors(Vec<FieldError>);

impl Errors {
    /// Records a problem; only the first one of each path is kept (a field that does not
    /// parse gets a stand-in value so that the other fields' checks still run, and the
    /// stand-in must not add problems of its own).
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if self.has(&path) {
            return;
        }
        self.0.push(FieldError {
            path,
            message: message.into(),
        });
    }

    fn has(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

/// Reads fields of one JSON object, reporting by path.
struct Obj<'a> {
    path: &'static str,
    map: &'a Map<String, Value>,
}

impl Obj<'_> {
    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn unknown(&self, known: &[&str], e: &mut Errors) {
        for key in self.map.keys().filter(|k| !known.contains(&k.as_str())) {
            e.push(self.field(key), "is not a known field");
        }
    }

    fn text(&self, key: &str, required: bool, e: &mut Errors) -> Option<String> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                if required {
                    e.push(self.field(key), "is required");
                }
                None
            }
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                e.push(self.field(key), "must not be empty");
                None
            }
            Some(_) => {
                e.push(self.field(key), "must be a string");
                None
            }
        }
    }

    fn decimal(&self, key: &str, required: bool, e: &mut Errors) -> Option<Decimal> {
        let text = match self.map.get(key) {
            Some(Value::Number(_)) => {
                e.push(
                    self.field(key),
                    "must be a decimal string such as \"5000000.00\", not a JSON number",
                );
                return None;
            }
            _ => self.text(key, required, e)?,
        };
        let parsed = Decimal::from_str_exact(text.trim()).ok();
        if parsed.is_none() {
            e.push(
                self.field(key),
                "must be a decimal string such as \"5000000.00\"",
            );
        }
        parsed
    }

    fn date(&self, key: &str, e: &mut Errors) -> Option<NaiveDate> {
        let text = self.text(key, true, e)?;
        let parsed = NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok();
        if parsed.is_none() {
            e.push(self.field(key), "must be a date YYYY-MM-DD");
        }
        parsed
    }

    fn integer(&self, key: &str, e: &mut Errors) -> Option<u32> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                e.push(self.field(key), "is required");
                None
            }
            Some(value) => {
                let n = value.as_u64().and_then(|n| u32::try_from(n).ok());
                if n.is_none() {
                    e.push(self.field(key), "must be a whole number");
                }
                n
            }
        }
    }

    fn choice<T: From<String>>(
        &self,
        key: &str,
        allowed: &[&str],
        required: bool,
        e: &mut Errors,
    ) -> Option<T> {
        let text = self.text(key, required, e)?;
        if allowed.contains(&text.as_str()) {
            Some(T::from(text))
        } else {
            e.push(
                self.field(key),
                format!("must be one of {} (got {text:?})", allowed.join(", ")),
            );
            None
        }
    }
}

fn object<'a>(
    top: &'a Map<String, Value>,
    key: &'static str,
    what: &str,
    e: &mut Errors,
) -> Option<Obj<'a>> {
    match top.get(key) {
        None | Some(Value::Null) => {
            e.push(key, format!("is required: {what}"));
            None
        }
        Some(Value::Object(map)) => Some(Obj { path: key, map }),
        Some(_) => {
            e.push(key, "must be an object");
            None
        }
    }
}

const TOP_LEVEL: &[&str] = &[
    "definition",
    "borrower",
    "loan",
    "disbursement_account",
    "virtual_account_bank",
];
const SINGLE_KEYS: &[&str] = &[
    "type",
    "principal_amount",
    "interest_amount",
    "fee_amount",
    "due_date",
    "purpose",
];
const BNPL_KEYS: &[&str] = &[
    "type",
    "principal_amount",
    "tenor",
    "frequency",
    "interest_rate",
    "first_due_date",
    "merchant_name",
];
const LOAN_TYPES: &[&str] = &["SINGLE_PAYMENT", "BNPL"];

/// A placeholder `unique_id` for checking the body before the workflow has an id.
const PLACEHOLDER_ID: &str = "op-00000000000000000000000000000000";

/// Validates an `originate-loan` input (see the module docs).
///
/// # Errors
///
/// [`InputErrors`] listing every problem, by path.
pub fn validate(
    input: &Value,
    definitions: Resolver<'_>,
    now: DateTime<Utc>,
) -> Result<OriginateInput, InputErrors> {
    let mut e = Errors(Vec::new());
    let Some(top) = input.as_object() else {
        e.push("input", "must be a JSON object");
        return Err(InputErrors::from(e.0));
    };
    for key in top.keys().filter(|k| !TOP_LEVEL.contains(&k.as_str())) {
        e.push(key.as_str(), "is not a known field");
    }
    let definition = definition(top, definitions, &mut e);
    let borrower = borrower(top, &mut e);
    let terms = terms(top, &mut e);
    let account = account(top, &mut e);
    let bank = match top.get("virtual_account_bank") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if BankCode::KNOWN.contains(&s.as_str()) => {
            Some(BankCode::from(s.as_str()))
        }
        Some(_) => {
            e.push(
                "virtual_account_bank",
                format!("must be one of {}", BankCode::KNOWN.join(", ")),
            );
            None
        }
    };
    if let (Some(terms), Some(account)) = (&terms, &account) {
        finfra_rules(terms, account, &mut e);
    }
    if let (Some((definition, policy)), Some(terms)) = (&definition, &terms) {
        against_policy(definition, policy, terms, now.date_naive(), &mut e);
    }
    match (definition, borrower, terms, account) {
        (Some((definition, policy)), Some(borrower), Some(terms), Some(account))
            if e.0.is_empty() =>
        {
            let virtual_account_bank = bank.unwrap_or_else(|| policy.virtual_account_bank.clone());
            Ok(OriginateInput {
                definition: definition.clone(),
                policy: policy.clone(),
                request: LoanRequest {
                    borrower,
                    terms,
                    disbursement_account: account,
                    virtual_account_bank,
                },
            })
        }
        _ => Err(InputErrors::from(e.0)),
    }
}

fn definition<'a>(
    top: &Map<String, Value>,
    definitions: Resolver<'a>,
    e: &mut Errors,
) -> Option<(&'a Definition, &'a OriginationPolicy)> {
    let Some(spec) = top.get("definition").and_then(Value::as_str) else {
        e.push(
            "definition",
            "is required: the name of a workflows/*.toml definition",
        );
        return None;
    };
    match definitions.resolve(spec) {
        Ok(definition) => match &definition.origination {
            Some(policy) => Some((definition, policy)),
            None => {
                e.push(
                    "definition",
                    format!(
                        "{definition_ref} has no [origination] section: it does not originate loans",
                        definition_ref = definition.reference()
                    ),
                );
                None
            }
        },
        Err(message) => {
            e.push("definition", message);
            None
        }
    }
}

fn borrower(top: &Map<String, Value>, e: &mut Errors) -> Option<BorrowerRef> {
    let b = object(
        top,
        "borrower",
        "{\"user_id\": \"<24 hex>\"} or {\"onboarding\": \"<business key>\"}",
        e,
    )?;
    b.unknown(&["user_id", "onboarding"], e);
    match (
        b.map.contains_key("user_id"),
        b.map.contains_key("onboarding"),
    ) {
        (true, false) => {
            let id = b.text("user_id", true, e)?;
            match UserId::new(id) {
                Ok(user_id) => Some(BorrowerRef::UserId(user_id)),
                Err(err) => {
                    e.push("borrower.user_id", err.message);
                    None
                }
            }
        }
        (false, true) => b.text("onboarding", true, e).map(BorrowerRef::Onboarding),
        (true, true) => {
            e.push(
                "borrower",
                "must give either user_id or onboarding, not both",
            );
            None
        }
        (false, false) => {
            e.push("borrower", "must give user_id or onboarding");
            None
        }
    }
}

/// The loan's terms as given. A field that does not parse (its problem recorded) gets a
/// stand-in that no rule about the other fields can trip on (a principal so large that every
/// rate of it is nil, zero rates, a date far ahead), so that every other field is still
/// checked against Finfra's rules and the definition's limits; `None` only without a loan
/// object or its type. The stand-ins never reach a workflow: with a problem recorded,
/// `validate` refuses the input.
fn terms(top: &Map<String, Value>, e: &mut Errors) -> Option<LoanTerms> {
    let loan = object(top, "loan", "the product and its terms", e)?;
    let kind = loan.choice::<String>("type", LOAN_TYPES, true, e)?;
    let principal_amount = loan
        .decimal("principal_amount", true, e)
        .unwrap_or(Decimal::MAX);
    if kind == "SINGLE_PAYMENT" {
        loan.unknown(SINGLE_KEYS, e);
        Some(LoanTerms::SinglePayment {
            principal_amount,
            interest_amount: loan
                .decimal("interest_amount", true, e)
                .unwrap_or(Decimal::ZERO),
            fee_amount: loan.decimal("fee_amount", false, e),
            due_date: loan.date("due_date", e).unwrap_or(NaiveDate::MAX),
            purpose: loan.text("purpose", true, e).unwrap_or_default(),
        })
    } else {
        loan.unknown(BNPL_KEYS, e);
        Some(LoanTerms::Bnpl {
            principal_amount,
            tenor: loan.integer("tenor", e).unwrap_or(1),
            frequency: loan
                .choice::<Frequency>("frequency", Frequency::KNOWN, true, e)
                .unwrap_or(Frequency::Monthly),
            interest_rate: loan
                .decimal("interest_rate", true, e)
                .unwrap_or(Decimal::ZERO),
            first_due_date: loan.date("first_due_date", e).unwrap_or(NaiveDate::MAX),
            merchant_name: loan.text("merchant_name", false, e),
        })
    }
}

fn account(top: &Map<String, Value>, e: &mut Errors) -> Option<BankAccount> {
    let a = object(
        top,
        "disbursement_account",
        "{holder_name, number, swift_code}: where the money goes",
        e,
    )?;
    a.unknown(&["holder_name", "number", "swift_code"], e);
    // Stand-ins as in `terms`: a missing field is already a problem of its own path.
    Some(BankAccount {
        holder_name: a.text("holder_name", true, e).unwrap_or_default(),
        number: a.text("number", true, e).unwrap_or_default(),
        swift_code: a.text("swift_code", true, e).unwrap_or_default(),
    })
}

/// Finfra's own rules, on the body it will receive (`finfra_api::validate`).
fn finfra_rules(terms: &LoanTerms, account: &BankAccount, e: &mut Errors) {
    let result = match terms.clone() {
        LoanTerms::SinglePayment {
            principal_amount,
            interest_amount,
            fee_amount,
            due_date,
            purpose,
        } => CreateSinglePaymentLoan {
            unique_id: PLACEHOLDER_ID.to_owned(),
            principal_amount,
            interest_amount,
            fee_amount,
            due_date,
            purpose,
            disbursement_account: account.clone(),
        }
        .validate(),
        LoanTerms::Bnpl {
            principal_amount,
            tenor,
            frequency,
            interest_rate,
            first_due_date,
            merchant_name,
        } => CreateBnplLoan {
            unique_id: PLACEHOLDER_ID.to_owned(),
            principal_amount,
            tenor,
            frequency,
            interest_rate,
            first_due_date,
            merchant_name,
            disbursement_account: account.clone(),
        }
        .validate(),
    };
    let Err(errors) = result else { return };
    for f in errors.errors() {
        let path = if f.path.starts_with("disbursement_account") {
            f.path.clone()
        } else {
            format!("loan.{}", f.path)
        };
        if !e.has(&path) {
            e.push(path, f.message.clone());
        }
    }
}

fn check_principal(principal: Decimal, min: Decimal, max: Decimal, name: &str, e: &mut Errors) {
    if !(min..=max).contains(&principal) && !e.has("loan.principal_amount") {
        e.push(
            "loan.principal_amount",
            format!("must be between {min} and {max} for definition {name}"),
        );
    }
}

/// Days from `today` to `date`, for the term limits.
fn days(today: NaiveDate, date: NaiveDate) -> i64 {
    (date - today).num_days()
}

fn check_date(
    path: &str,
    date: NaiveDate,
    today: NaiveDate,
    range: (u32, u32),
    name: &str,
    e: &mut Errors,
) {
    if let Err(message) = validate::future_date(date, today) {
        e.push(path, message);
        return;
    }
    let n = days(today, date);
    if n < i64::from(range.0) || n > i64::from(range.1) {
        e.push(
            path,
            format!(
                "must be {} to {} days after {today} for definition {name} (is {n})",
                range.0, range.1
            ),
        );
    }
}

fn against_policy(
    definition: &Definition,
    policy: &OriginationPolicy,
    terms: &LoanTerms,
    today: NaiveDate,
    e: &mut Errors,
) {
    let name = &definition.name;
    let allowed: Vec<&str> = [
        policy.single_payment.as_ref().map(|_| "SINGLE_PAYMENT"),
        policy.bnpl.as_ref().map(|_| "BNPL"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match terms {
        LoanTerms::SinglePayment {
            principal_amount,
            interest_amount,
            fee_amount,
            due_date,
            ..
        } => {
            let Some(limits) = &policy.single_payment else {
                e.push(
                    "loan.type",
                    format!("must be {} for definition {name}", allowed.join(" or ")),
                );
                return;
            };
            check_principal(
                *principal_amount,
                limits.min_principal,
                limits.max_principal,
                name,
                e,
            );
            let principal = *principal_amount;
            let ratio = |amount: Decimal| (!principal.is_zero()).then(|| amount / principal);
            if ratio(*interest_amount).is_some_and(|r| r > limits.max_interest_rate)
                && !e.has("loan.interest_amount")
            {
                e.push(
                    "loan.interest_amount",
                    format!(
                        "must be at most {} of the principal for definition {name}",
                        limits.max_interest_rate
                    ),
                );
            }
            if let Some(fee) = fee_amount
                && ratio(*fee).is_some_and(|r| r > limits.max_fee_rate)
                && !e.has("loan.fee_amount")
            {
                e.push(
                    "loan.fee_amount",
                    format!(
                        "must be at most {} of the principal for definition {name}",
                        limits.max_fee_rate
                    ),
                );
            }
            check_date(
                "loan.due_date",
                *due_date,
                today,
                (limits.min_term_days, limits.max_term_days),
                name,
                e,
            );
        }
        LoanTerms::Bnpl {
            principal_amount,
            tenor,
            frequency,
            interest_rate,
            first_due_date,
            ..
        } => {
            let Some(limits) = &policy.bnpl else {
                e.push(
                    "loan.type",
                    format!("must be {} for definition {name}", allowed.join(" or ")),
                );
                return;
            };
            check_principal(
                *principal_amount,
                limits.min_principal,
                limits.max_principal,
                name,
                e,
            );
            if !(limits.min_tenor..=limits.max_tenor).contains(tenor) && !e.has("loan.tenor") {
                e.push(
                    "loan.tenor",
                    format!(
                        "must be between {} and {} for definition {name}",
                        limits.min_tenor, limits.max_tenor
                    ),
                );
            }
            if !limits.frequencies.contains(frequency) {
                let allowed: Vec<&str> = limits.frequencies.iter().map(Frequency::as_str).collect();
                e.push(
                    "loan.frequency",
                    format!(
                        "must be one of {} for definition {name}",
                        allowed.join(", ")
                    ),
                );
            }
            if !(limits.min_interest_rate..=limits.max_interest_rate).contains(interest_rate)
                && !e.has("loan.interest_rate")
            {
                e.push(
                    "loan.interest_rate",
                    format!(
                        "must be between {} and {} for definition {name}",
                        limits.min_interest_rate, limits.max_interest_rate
                    ),
                );
            }
            check_date(
                "loan.first_due_date",
                *first_due_date,
                today,
                (1, limits.max_first_due_days),
                name,
                e,
            );
        }
    }
}
