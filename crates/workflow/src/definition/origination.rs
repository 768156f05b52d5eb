//! `[origination]`: how a definition originates loans (`originate-loan`): the products it
//! allows and their limits, the deadlines of each wait, the polls, the repayment account's
//! bank and when an unpaid installment counts as overdue.
//!
//! ```toml
//! [origination]
//! poll_interval = "30s"             # a loan or borrower callback is late: read Finfra
//! repayment_poll_interval = "1d"    # while repaying: read the loan (lost payment callbacks)
//! virtual_account_bank = "BNI"      # BCA | BNI | BRI | MANDIRI | PERMATA, unless the input names one
//! overdue_grace = "3d"              # after the end of a due date (WIB) before an unpaid installment is overdue
//!
//! [origination.timeouts]
//! onboarding = "7d"                 # the onboard-borrower workflow the input names: its end
//! borrower_approved = "2h"          # APPROVED_BY_PARTNER → APPROVED
//! signing = "3d"                    # signing initiated → signed; else the loan is rejected at Finfra
//! disbursement = "1d"               # disbursement accepted → disbursed or failed; else needs attention
//! collection = "90d"                # the last installment overdue this long: needs attention
//!
//! [origination.single_payment]      # present: single-payment loans are allowed
//! min_principal = "500000"
//! max_principal = "10000000"
//! max_interest_rate = "0.10"        # interest_amount / principal_amount, at most
//! max_fee_rate = "0.03"             # fee_amount / principal_amount, at most
//! min_term_days = 7                 # due_date at least this many days after the submit day
//! max_term_days = 90                #          and at most this many
//!
//! [origination.bnpl]                # present: BNPL loans are allowed
//! min_principal = "100000"
//! max_principal = "20000000"
//! min_tenor = 1                     # installments, within Finfra's 1..=36
//! max_tenor = 12
//! frequencies = ["WEEKLY", "BIWEEKLY", "MONTHLY"]
//! min_interest_rate = "0"           # flat, per installment period
//! max_interest_rate = "0.03"
//! max_first_due_days = 45           # first_due_date at most this many days after the submit day
//! ```
//!
//! At least one of `single_payment` and `bnpl` must be present. Amounts and rates are exact
//! decimals: strings (`"0.0175"`) or plain TOML numbers. Principal bounds must lie within
//! Finfra's own (100 000 to 2 000 000 000 IDR, CONTRACT §5).

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use finfra_api::model::loan::{Frequency, MAX_PRINCIPAL, MIN_PRINCIPAL, TENOR_RANGE};
use finfra_api::model::virtual_account::BankCode;

use super::parse::{DAY, Problems, SECOND, Section};
use crate::serde_util::millis;

/// `[origination]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginationPolicy {
    /// Polls of the loan or the borrower while a callback is late.
    #[serde(with = "millis", rename = "poll_interval_ms")]
    pub poll_interval: Duration,
    /// Reads of the loan while repaying.
    #[serde(with = "millis", rename = "repayment_poll_interval_ms")]
    pub repayment_poll_interval: Duration,
    /// The repayment virtual account's bank, unless the input names one.
    pub virtual_account_bank: BankCode,
    /// After the end of a due date (WIB), before an unpaid installment is overdue.
    #[serde(with = "millis", rename = "overdue_grace_ms")]
    pub overdue_grace: Duration,
    /// Deadlines.
    pub timeouts: OriginationTimeouts,
    /// Single-payment loans, when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_payment: Option<SinglePaymentLimits>,
    /// BNPL loans, when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bnpl: Option<BnplLimits>,
}

/// `[origination.timeouts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginationTimeouts {
    /// The onboarding workflow named by the input: its end.
    #[serde(with = "millis", rename = "onboarding_ms")]
    pub onboarding: Duration,
    /// `APPROVED_BY_PARTNER` → `APPROVED`.
    #[serde(with = "millis", rename = "borrower_approved_ms")]
    pub borrower_approved: Duration,
    /// Signing initiated → signed; else the loan is rejected.
    #[serde(with = "millis", rename = "signing_ms")]
    pub signing: Duration,
    /// Disbursement accepted → disbursed or failed; else needs attention.
    #[serde(with = "millis", rename = "disbursement_ms")]
    pub disbursement: Duration,
    /// After the last installment became overdue, an unpaid loan needs attention.
    #[serde(with = "millis", rename = "collection_ms")]
    pub collection: Duration,
}

/// `[origination.single_payment]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinglePaymentLimits {
    /// Smallest principal.
    pub min_principal: Decimal,
    /// Largest principal.
    pub max_principal: Decimal,
    /// Largest `interest_amount / principal_amount`.
    pub max_interest_rate: Decimal,
    /// Largest `fee_amount / principal_amount`.
    pub max_fee_rate: Decimal,
    /// Fewest days from the submit day to the due date.
    pub min_term_days: u32,
    /// Most days from the submit day to the due date.
    pub max_term_days: u32,
}

/// `[origination.bnpl]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BnplLimits {
    /// Smallest principal.
    pub min_principal: Decimal,
    /// Largest principal.
    pub max_principal: Decimal,
    /// Fewest installments.
    pub min_tenor: u32,
    /// Most installments.
    pub max_tenor: u32,
    /// Installment periods allowed.
    pub frequencies: Vec<Frequency>,
    /// Lowest flat rate per period.
    pub min_interest_rate: Decimal,
    /// Highest flat rate per period.
    pub max_interest_rate: Decimal,
    /// Most days from the submit day to the first due date.
    pub max_first_due_days: u32,
}

/// Parses `[origination]`; `None` after reporting its problems.
pub(super) fn parse(p: &mut Problems, mut s: Section<'_>) -> Option<OriginationPolicy> {
    let poll_interval = s.duration(p, "poll_interval", SECOND..=Duration::from_secs(3600));
    let repayment_poll_interval = s.duration(p, "repayment_poll_interval", SECOND..=30 * DAY);
    let virtual_account_bank =
        s.choice::<BankCode>(p, "virtual_account_bank", BankCode::KNOWN, true);
    let overdue_grace = s.duration(p, "overdue_grace", Duration::ZERO..=90 * DAY);
    let timeouts = s.table(p, "timeouts").and_then(|t| timeouts(p, t));
    let single_payment = s
        .optional_table(p, "single_payment")
        .map(|t| single_payment(p, t));
    let bnpl = s.optional_table(p, "bnpl").map(|t| bnpl(p, t));
    if single_payment.is_none() && bnpl.is_none() {
        p.push(
            &s.field("single_payment"),
            "or origination.bnpl is required: a definition that originates allows at least one product",
        );
    }
    s.finish(p);
    // Present but refused (`Some(None)`) fails the whole section; absent is fine.
    let (single_payment, bnpl) = match (single_payment, bnpl) {
        (Some(None), _) | (_, Some(None)) | (None, None) => return None,
        (single_payment, bnpl) => (single_payment.flatten(), bnpl.flatten()),
    };
    Some(OriginationPolicy {
        poll_interval: poll_interval?,
        repayment_poll_interval: repayment_poll_interval?,
        virtual_account_bank: virtual_account_bank?,
        overdue_grace: overdue_grace?,
        timeouts: timeouts?,
        single_payment,
        bnpl,
    })
}

fn timeouts(p: &mut Problems, mut s: Section<'_>) -> Option<OriginationTimeouts> {
    let range = SECOND..=365 * DAY;
    let onboarding = s.duration(p, "onboarding", range.clone());
    let borrower_approved = s.duration(p, "borrower_approved", range.clone());
    let signing = s.duration(p, "signing", range.clone());
    let disbursement = s.duration(p, "disbursement", range.clone());
    let collection = s.duration(p, "collection", range);
    s.finish(p);
    Some(OriginationTimeouts {
        onboarding: onboarding?,
        borrower_approved: borrower_approved?,
        signing: signing?,
        disbursement: disbursement?,
        collection: collection?,
    })
}

/// `min_principal` and `max_principal`, within Finfra's bounds and in order.
fn principal_bounds(p: &mut Problems, s: &mut Section<'_>) -> Option<(Decimal, Decimal)> {
    let min = principal_bound(p, s, "min_principal");
    let max = principal_bound(p, s, "max_principal");
    let (min, max) = (min?, max?);
    if max < min {
        p.push(
            &s.field("max_principal"),
            format!("must not be below {}", s.field("min_principal")),
        );
        return None;
    }
    Some((min, max))
}

fn principal_bound(p: &mut Problems, s: &mut Section<'_>, key: &'static str) -> Option<Decimal> {
    let value = s.decimal(p, key)?;
    if !(MIN_PRINCIPAL..=MAX_PRINCIPAL).contains(&value) || value.scale() > 2 {
        p.push(
            &s.field(key),
            format!(
                "must be an amount between {MIN_PRINCIPAL} and {MAX_PRINCIPAL} (Finfra's bounds)"
            ),
        );
        return None;
    }
    Some(value)
}

/// A rate between 0 and 1.
fn rate(p: &mut Problems, s: &mut Section<'_>, key: &'static str) -> Option<Decimal> {
    let value = s.decimal(p, key)?;
    if value > Decimal::ONE {
        p.push(&s.field(key), "must be a rate between 0 and 1");
        return None;
    }
    Some(value)
}

fn single_payment(p: &mut Problems, mut s: Section<'_>) -> Option<SinglePaymentLimits> {
    let principal = principal_bounds(p, &mut s);
    let max_interest_rate = rate(p, &mut s, "max_interest_rate");
    let max_fee_rate = rate(p, &mut s, "max_fee_rate");
    let min_term_days = s.integer(p, "min_term_days", 1..=3650);
    let max_term_days = s.integer(p, "max_term_days", 1..=3650);
    if let (Some(min), Some(max)) = (min_term_days, max_term_days)
        && max < min
    {
        p.push(
            &s.field("max_term_days"),
            format!("must not be below {}", s.field("min_term_days")),
        );
    }
    s.finish(p);
    let (min_principal, max_principal) = principal?;
    let (min_term_days, max_term_days) = (min_term_days?, max_term_days?);
    (min_term_days <= max_term_days).then_some(SinglePaymentLimits {
        min_principal,
        max_principal,
        max_interest_rate: max_interest_rate?,
        max_fee_rate: max_fee_rate?,
        min_term_days,
        max_term_days,
    })
}

fn bnpl(p: &mut Problems, mut s: Section<'_>) -> Option<BnplLimits> {
    let principal = principal_bounds(p, &mut s);
    let min_tenor = s.integer(p, "min_tenor", TENOR_RANGE);
    let max_tenor = s.integer(p, "max_tenor", TENOR_RANGE);
    if let (Some(min), Some(max)) = (min_tenor, max_tenor)
        && max < min
    {
        p.push(
            &s.field("max_tenor"),
            format!("must not be below {}", s.field("min_tenor")),
        );
    }
    let frequencies = s.choices::<Frequency>(p, "frequencies", Frequency::KNOWN);
    if frequencies.as_ref().is_some_and(Vec::is_empty) {
        p.push(
            &s.field("frequencies"),
            format!("must name at least one of {}", Frequency::KNOWN.join(", ")),
        );
    }
    let min_interest_rate = rate(p, &mut s, "min_interest_rate");
    let max_interest_rate = rate(p, &mut s, "max_interest_rate");
    if let (Some(min), Some(max)) = (min_interest_rate, max_interest_rate)
        && max < min
    {
        p.push(
            &s.field("max_interest_rate"),
            format!("must not be below {}", s.field("min_interest_rate")),
        );
    }
    let max_first_due_days = s.integer(p, "max_first_due_days", 1..=3650);
    s.finish(p);
    let (min_principal, max_principal) = principal?;
    let (min_tenor, max_tenor) = (min_tenor?, max_tenor?);
    let (min_interest_rate, max_interest_rate) = (min_interest_rate?, max_interest_rate?);
    let frequencies = frequencies.filter(|f| !f.is_empty())?;
    (min_tenor <= max_tenor && min_interest_rate <= max_interest_rate).then_some(BnplLimits {
        min_principal,
        max_principal,
        min_tenor,
        max_tenor,
        frequencies,
        min_interest_rate,
        max_interest_rate,
        max_first_due_days: max_first_due_days?,
    })
}
