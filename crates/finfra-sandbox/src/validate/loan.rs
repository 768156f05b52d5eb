//! Loan request bodies (CONTRACT §5).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{Checker, Object, Rule};
use crate::error::ApiError;
use crate::state::schedule::Frequency;

pub(crate) const BANK_CODES: &[&str] = &["BCA", "BNI", "BRI", "MANDIRI", "PERMATA"];

const MIN_PRINCIPAL: i64 = 100_000;
const MAX_PRINCIPAL: i64 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountInput {
    pub holder_name: String,
    pub number: String,
    pub swift_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SingleLoanInput {
    pub unique_id: String,
    pub principal: Decimal,
    pub interest: Decimal,
    pub fee: Decimal,
    pub due_date: NaiveDate,
    pub account: AccountInput,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BnplInput {
    pub unique_id: String,
    pub principal: Decimal,
    pub tenor: u32,
    pub frequency: Frequency,
    pub rate: Decimal,
    pub first_due_date: NaiveDate,
    pub account: AccountInput,
}

fn principal(c: &mut Checker, o: &Object) -> Option<Decimal> {
    let p = c.money(o, "", "principal_amount", true)?;
    if p < Decimal::from(MIN_PRINCIPAL) || p > Decimal::from(MAX_PRINCIPAL) {
        c.problem(
            "principal_amount",
            format!("must be between {MIN_PRINCIPAL} and {MAX_PRINCIPAL}"),
        );
        return None;
    }
    Some(p)
}

fn account(c: &mut Checker, o: &Object) -> Option<AccountInput> {
    let a = c.object(o, "", "disbursement_account", true)?;
    let p = "disbursement_account";
    c.unknown_fields(a, p, &["holder_name", "number", "swift_code"]);
    let holder_name = c.text(a, p, "holder_name");
    let number = c.string(a, p, "number", true, Rule::DigitsBetween(5, 20));
    let swift_code = c.string(a, p, "swift_code", true, Rule::Swift);
    Some(AccountInput {
        holder_name: holder_name?.to_owned(),
        number: number?.to_owned(),
        swift_code: swift_code?.to_owned(),
    })
}

/// `POST /api/core/loans/{userId}`.
pub(crate) fn single_loan(body: &Value, form: bool) -> Result<SingleLoanInput, ApiError> {
    let mut c = Checker::new(form);
    let Some(o) = c.root(body) else {
        return Err(c
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::bad_request("bad body")));
    };
    c.unknown_fields(
        o,
        "",
        &[
            "unique_id",
            "principal_amount",
            "interest_amount",
            "fee_amount",
            "due_date",
            "purpose",
            "disbursement_account",
        ],
    );
    let unique_id = c.string(o, "", "unique_id", true, Rule::UniqueId);
    let principal = principal(&mut c, o);
    let interest = c.money(o, "", "interest_amount", true);
    let fee = match o.get("fee_amount") {
        None | Some(Value::Null) => Some(Decimal::ZERO),
        Some(_) => c.money(o, "", "fee_amount", false),
    };
    let due_date = c.date(o, "", "due_date", true);
    c.text(o, "", "purpose");
    let account = account(&mut c, o);
    c.finish()?;
    match (unique_id, principal, interest, fee, due_date, account) {
        (Some(u), Some(p), Some(i), Some(f), Some(d), Some(a)) => Ok(SingleLoanInput {
            unique_id: u.to_owned(),
            principal: p,
            interest: i,
            fee: f,
            due_date: d,
            account: a,
        }),
        _ => Err(ApiError::bad_request("Validation failed")),
    }
}

/// `POST /api/core/loans/{userId}/bnpl`.
pub(crate) fn bnpl_loan(body: &Value, form: bool) -> Result<BnplInput, ApiError> {
    let mut c = Checker::new(form);
    let Some(o) = c.root(body) else {
        return Err(c
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::bad_request("bad body")));
    };
    c.unknown_fields(
        o,
        "",
        &[
            "unique_id",
            "principal_amount",
            "tenor",
            "frequency",
            "interest_rate",
            "first_due_date",
            "merchant_name",
            "disbursement_account",
        ],
    );
    let unique_id = c.string(o, "", "unique_id", true, Rule::UniqueId);
    let principal = principal(&mut c, o);
    let tenor = c.integer(o, "", "tenor", true, (1, 36));
    let frequency = c.string(o, "", "frequency", true, Rule::OneOf(Frequency::NAMES));
    let rate = c.decimal(o, "", "interest_rate", true, 6, "\"0.0175\"");
    if rate.is_some_and(|r| r >= Decimal::ONE) {
        c.problem(
            "interest_rate",
            "must be below 1 (a rate per period, e.g. \"0.0175\")",
        );
    }
    let first_due_date = c.date(o, "", "first_due_date", true);
    c.string(o, "", "merchant_name", false, Rule::Text);
    let account = account(&mut c, o);
    c.finish()?;
    match (
        unique_id,
        principal,
        tenor,
        frequency.and_then(Frequency::parse),
        rate,
    ) {
        (Some(u), Some(p), Some(t), Some(f), Some(r)) => Ok(BnplInput {
            unique_id: u.to_owned(),
            principal: p,
            tenor: u32::try_from(t).map_err(|_| ApiError::bad_request("tenor out of range"))?,
            frequency: f,
            rate: r,
            first_due_date: first_due_date
                .ok_or_else(|| ApiError::bad_request("Validation failed"))?,
            account: account.ok_or_else(|| ApiError::bad_request("Validation failed"))?,
        }),
        _ => Err(ApiError::bad_request("Validation failed")),
    }
}

/// A body of exactly one string field (`{"unique_id"}`, `{"reason"}`), checked by `rule`.
pub(crate) fn single_field(
    body: &Value,
    form: bool,
    key: &str,
    rule: Rule,
) -> Result<String, ApiError> {
    let mut c = Checker::new(form);
    let Some(o) = c.root(body) else {
        return Err(c
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::bad_request("bad body")));
    };
    c.unknown_fields(o, "", &[key]);
    let v = c.string(o, "", key, true, rule).map(str::to_owned);
    c.finish()?;
    v.ok_or_else(|| ApiError::bad_request(format!("Validation failed: {key} is required")))
}

/// `POST /api/core/virtual-account/request`: `(loan_unique_id, bank_code)`.
pub(crate) fn virtual_account(body: &Value, form: bool) -> Result<(String, String), ApiError> {
    let mut c = Checker::new(form);
    let Some(o) = c.root(body) else {
        return Err(c
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::bad_request("bad body")));
    };
    c.unknown_fields(o, "", &["loan_unique_id", "bank_code"]);
    let id = c.string(o, "", "loan_unique_id", true, Rule::UniqueId);
    let bank = c.string(o, "", "bank_code", true, Rule::OneOf(BANK_CODES));
    c.finish()?;
    match (id, bank) {
        (Some(i), Some(b)) => Ok((i.to_owned(), b.to_owned())),
        _ => Err(ApiError::bad_request("Validation failed")),
    }
}

/// An optional `{"reason"}` body (block borrower).
pub(crate) fn optional_reason(body: &Value, form: bool) -> Result<Option<String>, ApiError> {
    if body.is_null() {
        return Ok(None);
    }
    let mut c = Checker::new(form);
    let Some(o) = c.root(body) else {
        return Err(c
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::bad_request("bad body")));
    };
    c.unknown_fields(o, "", &["reason"]);
    let reason = c
        .string(o, "", "reason", false, Rule::Text)
        .map(str::to_owned);
    c.finish()?;
    Ok(reason)
}

/// A `{"user_id"}` body (score report, CLIK report).
pub(crate) fn user_id(body: &Value, form: bool) -> Result<String, ApiError> {
    single_field(body, form, "user_id", Rule::Text)
}
