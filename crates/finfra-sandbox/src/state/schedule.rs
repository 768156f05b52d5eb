//! Repayment schedule math (CONTRACT §5), pure and exact.
//!
//! BNPL: total interest = principal × rate × tenor, rounded half-up to the cent. Every
//! installment carries principal ÷ tenor and principal × rate, both rounded *down* to the
//! cent; the last installment takes the remainders, so the installments add up to the total
//! exactly. Due dates are `first_due_date` plus k weeks, 2k weeks or k months, each computed
//! from the first date, so month ends clamp without drifting (Jan 31 → Feb 28 → Mar 31).

use chrono::{Days, Months, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// How often a BNPL installment falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Frequency {
    Weekly,
    Biweekly,
    Monthly,
}

impl Frequency {
    pub const NAMES: &'static [&'static str] = &["WEEKLY", "BIWEEKLY", "MONTHLY"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "WEEKLY" => Some(Self::Weekly),
            "BIWEEKLY" => Some(Self::Biweekly),
            "MONTHLY" => Some(Self::Monthly),
            _ => None,
        }
    }
}

/// One planned installment, before any payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub sequence: u32,
    pub due_date: NaiveDate,
    pub principal: Decimal,
    pub interest: Decimal,
    /// For a single-payment loan this includes the fee.
    pub total: Decimal,
}

/// The `k`-th due date after `first` (k = 0 is `first`). `None` past the calendar's end.
pub(crate) fn due_date(first: NaiveDate, frequency: Frequency, k: u32) -> Option<NaiveDate> {
    match frequency {
        Frequency::Weekly => first.checked_add_days(Days::new(7 * u64::from(k))),
        Frequency::Biweekly => first.checked_add_days(Days::new(14 * u64::from(k))),
        // chrono clamps to the month's last day, from `first` each time: no drift.
        Frequency::Monthly => first.checked_add_months(Months::new(k)),
    }
}

fn round_down_cent(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::ToZero)
}

fn round_half_up_cent(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The BNPL total interest and installments. `tenor` ≥ 1; `None` if a due date falls off
/// the calendar.
pub(crate) fn bnpl(
    principal: Decimal,
    rate: Decimal,
    tenor: u32,
    frequency: Frequency,
    first_due_date: NaiveDate,
) -> Option<(Decimal, Vec<Planned>)> {
    if tenor == 0 {
        return None;
    }
    let n = Decimal::from(tenor);
    let total_interest = round_half_up_cent(principal * rate * n);
    let each_principal = round_down_cent(principal / n);
    let each_interest = round_down_cent(principal * rate);
    let before_last = Decimal::from(tenor - 1);
    let mut plan = Vec::with_capacity(tenor as usize);
    for k in 0..tenor {
        let last = k + 1 == tenor;
        let principal_k = if last {
            principal - each_principal * before_last
        } else {
            each_principal
        };
        let interest_k = if last {
            total_interest - each_interest * before_last
        } else {
            each_interest
        };
        plan.push(Planned {
            sequence: k + 1,
            due_date: due_date(first_due_date, frequency, k)?,
            principal: principal_k,
            interest: interest_k,
            total: principal_k + interest_k,
        });
    }
    Some((total_interest, plan))
}

/// A single-payment loan: one installment carrying the whole total (fee included).
pub(crate) fn single(
    principal: Decimal,
    interest: Decimal,
    fee: Decimal,
    due_date: NaiveDate,
) -> Vec<Planned> {
    vec![Planned {
        sequence: 1,
        due_date,
        principal,
        interest,
        total: principal + interest + fee,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn monthly_due_dates_clamp_month_ends_without_drifting() {
        let first = date("2025-01-31");
        let dates: Vec<_> = (0..4)
            .map(|k| due_date(first, Frequency::Monthly, k).unwrap().to_string())
            .collect();
        assert_eq!(
            dates,
            ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"]
        );
        // Leap year.
        assert_eq!(
            due_date(date("2024-01-31"), Frequency::Monthly, 1).unwrap(),
            date("2024-02-29")
        );
    }

    #[test]
    fn weekly_and_biweekly_due_dates() {
        let first = date("2025-12-25");
        assert_eq!(
            due_date(first, Frequency::Weekly, 1).unwrap(),
            date("2026-01-01")
        );
        assert_eq!(
            due_date(first, Frequency::Biweekly, 2).unwrap(),
            date("2026-01-22")
        );
    }

    #[test]
    fn remainders_go_to_the_last_installment() {
        // 1,000,000 over 3 at 1.75%: 333,333.33 principal each, last 333,333.34;
        // interest 17,500.00 each, total 52,500.00.
        let (interest, plan) = bnpl(
            d("1000000"),
            d("0.0175"),
            3,
            Frequency::Monthly,
            date("2025-01-31"),
        )
        .unwrap();
        assert_eq!(interest, d("52500.00"));
        let principals: Vec<_> = plan.iter().map(|p| p.principal).collect();
        assert_eq!(principals, [d("333333.33"), d("333333.33"), d("333333.34")]);
        assert!(plan.iter().all(|p| p.interest == d("17500.00")));
        assert_eq!(plan[2].total, d("350833.34"));
        let sum: Decimal = plan.iter().map(|p| p.total).sum();
        assert_eq!(sum, d("1052500.00"));
    }

    #[test]
    fn interest_is_rounded_half_up_in_total_and_down_per_installment() {
        // 100,001 × 0.0333 = 3,330.0333 per period → 3,330.03 each;
        // × 7 = 23,310.2331 → 23,310.23 total; last interest = 23,310.23 − 6 × 3,330.03.
        let (interest, plan) = bnpl(
            d("100001"),
            d("0.0333"),
            7,
            Frequency::Weekly,
            date("2025-03-01"),
        )
        .unwrap();
        assert_eq!(interest, d("23310.23"));
        assert_eq!(plan[0].interest, d("3330.03"));
        assert_eq!(plan[6].interest, d("3330.05"));
        assert_eq!(plan[0].principal, d("14285.85"));
        assert_eq!(plan[6].principal, d("14285.90"));
        let sum: Decimal = plan.iter().map(|p| p.total).sum();
        assert_eq!(sum, d("100001") + interest);
        assert_eq!(plan[6].due_date, date("2025-04-12"));
    }

    #[test]
    fn half_up_at_the_midpoint() {
        // 250,000 × 0.0000001 × 1 = 0.025 → 0.03 (half up, not banker's 0.02).
        let (interest, _) = bnpl(
            d("250000"),
            d("0.0000001"),
            1,
            Frequency::Monthly,
            date("2025-01-01"),
        )
        .unwrap();
        assert_eq!(interest, d("0.03"));
    }

    #[test]
    fn a_single_payment_carries_the_fee() {
        let plan = single(
            d("5000000.00"),
            d("250000.00"),
            d("10000.50"),
            date("2025-06-30"),
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].total, d("5260000.50"));
    }

    #[test]
    fn every_tenor_adds_up() {
        for tenor in 1..=36 {
            let (interest, plan) = bnpl(
                d("1234567.89"),
                d("0.0199"),
                tenor,
                Frequency::Biweekly,
                date("2025-01-31"),
            )
            .unwrap();
            let sum: Decimal = plan.iter().map(|p| p.total).sum();
            assert_eq!(sum, d("1234567.89") + interest, "tenor {tenor}");
            assert!(
                plan.iter()
                    .all(|p| p.principal.scale() <= 2 && p.interest.scale() <= 2)
            );
        }
    }
}
