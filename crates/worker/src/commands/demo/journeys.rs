//! The demo's journeys: for each, a borrower to onboard (`worker::sample`) and a loan for
//! them that names the onboarding by its business key. The mix is drawn from the seed: the
//! products in turn, a tenth rejected at KYC (`+reject`), some declined by the credit policy
//! (`+lowscore`, `+overdue`), the rest clean; loan
//! amounts, tenors and frequencies within each product's `[origination]` limits.
//!
//! No `+hubpending` or `+rdfpending`: a check answering `PENDING` is asked again only after
//! the definition's `poll_interval` (30 s), too long for a demo meant to end in seconds.

use chrono::{Days, NaiveDate};
use serde_json::{Value, json};
use worker::sample::{Applicant, Product, Tag};

/// The workflow kinds a journey submits.
pub const ONBOARD: &str = "onboard-borrower";
pub const ORIGINATE: &str = "originate-loan";

/// One borrower's journey: onboarded, then lent to.
#[derive(Debug, Clone)]
pub struct Journey {
    /// The business key of both workflows (they differ by kind).
    pub key: String,
    pub applicant: Applicant,
    /// The `loan` object of the `originate-loan` input.
    loan: Value,
    account_number: String,
}

impl Journey {
    pub fn product(&self) -> Product {
        self.applicant.product
    }

    /// The `onboard-borrower` input.
    pub fn onboarding_input(&self) -> Value {
        self.applicant.input()
    }

    /// The `originate-loan` input: the loan for the borrower of the onboarding with the same
    /// business key, which it waits for.
    pub fn loan_input(&self) -> Value {
        json!({
            "definition": self.product().definition(),
            "borrower": {"onboarding": self.key},
            "loan": self.loan,
            "disbursement_account": {
                "holder_name": self.applicant.full_name(),
                "number": self.account_number,
                "swift_code": "BNINIDJA"
            }
        })
    }
}

/// SplitMix64: a tiny seeded generator whose sequence is fixed forever, so a `--seed` gives
/// the same journeys on every build.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % n).unwrap_or(0)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// How many of `n` journeys get each tag: at least one KYC rejection and one policy decline
/// as soon as there are enough journeys to show them.
fn tags(n: usize) -> Vec<Tag> {
    let share = |percent: usize| (n * percent + 50) / 100;
    let wanted = [
        (Tag::Reject, if n >= 2 { share(10).max(1) } else { 0 }),
        (Tag::LowScore, if n >= 3 { share(8).max(1) } else { 0 }),
        (Tag::Overdue, share(3)),
    ];
    let mut deck: Vec<Tag> = wanted
        .into_iter()
        .flat_map(|(tag, count)| std::iter::repeat_n(tag, count))
        .take(n)
        .collect();
    deck.resize(n, Tag::Clean);
    deck
}

/// `n` journeys (`n` ≤ [`worker::sample::MAX_INDEX`] + 1) over `products`, keys
/// `demo-{run}-007-personal-bnpl-reject`, dates counted from `today`.
pub fn plan(
    n: usize,
    seed: u64,
    run: &str,
    products: &[Product],
    today: NaiveDate,
) -> Vec<Journey> {
    let mut rng = Rng::new(seed);
    let mut tags = tags(n);
    rng.shuffle(&mut tags);
    let mut kinds: Vec<Product> = (0..n).map(|i| products[i % products.len()]).collect();
    rng.shuffle(&mut kinds);
    tags.into_iter()
        .zip(kinds)
        .enumerate()
        .map(|(index, (tag, product))| {
            let key = format!(
                "demo-{run}-{index:03}-{}{}",
                product.definition(),
                tag.email_tag().replace('+', "-")
            );
            Journey {
                applicant: Applicant::new(index, product, tag, key.clone()),
                key,
                loan: loan(product, &mut rng, today),
                // Any number not starting with 999 (which the sandbox's bank refuses).
                account_number: format!("1{:011}", 23_123_123 + index),
            }
        })
        .collect()
}

/// Terms within the shipped definitions' `[origination]` limits.
fn loan(product: Product, rng: &mut Rng, today: NaiveDate) -> Value {
    let day = |n: u64| (today + Days::new(n)).format("%Y-%m-%d").to_string();
    // Interest and fee as a share of the principal, in whole rupiah.
    let part = |principal: u64, per_mille: u64| format!("{}.00", principal * per_mille / 1000);
    match product {
        Product::PersonalSinglePayment => {
            let principal = rng.pick(&[1_000_000, 2_500_000, 5_000_000, 7_500_000]);
            json!({
                "type": "SINGLE_PAYMENT", "principal_amount": format!("{principal}.00"),
                "interest_amount": part(principal, 50), "fee_amount": part(principal, 10),
                "due_date": day(rng.pick(&[30, 45, 60])), "purpose": "Home renovation"
            })
        }
        Product::BusinessSinglePayment => {
            let principal = rng.pick(&[25_000_000, 50_000_000, 100_000_000, 250_000_000]);
            json!({
                "type": "SINGLE_PAYMENT", "principal_amount": format!("{principal}.00"),
                "interest_amount": part(principal, 80), "fee_amount": part(principal, 10),
                "due_date": day(rng.pick(&[60, 90, 120])), "purpose": "Working capital"
            })
        }
        Product::PersonalBnpl => json!({
            "type": "BNPL",
            "principal_amount": format!("{}.00", rng.pick(&[600_000, 1_500_000, 3_000_000, 6_000_000])),
            "tenor": rng.pick(&[3, 4, 6]),
            "frequency": rng.pick(&["WEEKLY", "BIWEEKLY", "MONTHLY"]),
            "interest_rate": rng.pick(&["0.0125", "0.0175", "0.025"]),
            "first_due_date": day(rng.pick(&[14, 30])),
            "merchant_name": rng.pick(&["Toko Maju", "Elektronik Jaya", "Mebel Sentosa"])
        }),
        Product::BusinessBnpl => json!({
            "type": "BNPL",
            "principal_amount": format!("{}.00", rng.pick(&[10_000_000, 25_000_000, 50_000_000])),
            "tenor": rng.pick(&[3, 6]),
            "frequency": rng.pick(&["BIWEEKLY", "MONTHLY"]),
            "interest_rate": rng.pick(&["0.01", "0.015", "0.02"]),
            "first_due_date": day(rng.pick(&[30, 45])),
            "merchant_name": rng.pick(&["Grosir Sumber Rejeki", "Bahan Bangunan Abadi"])
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn engine() -> workflow::Engine {
        workflow::Engine::new(worker::inprocess::bundled().expect("bundled"))
    }

    #[test]
    fn every_input_validates_against_the_shipped_definitions() {
        let now = chrono::Utc::now();
        let engine = engine();
        for seed in 0..5 {
            for journey in plan(40, seed, "t", &Product::ALL, now.date_naive()) {
                engine
                    .validate(ONBOARD, &journey.onboarding_input(), now)
                    .unwrap_or_else(|e| panic!("{}: onboarding refused: {e}", journey.key));
                engine
                    .validate(ORIGINATE, &journey.loan_input(), now)
                    .unwrap_or_else(|e| panic!("{}: loan refused: {e}", journey.key));
            }
        }
    }

    #[test]
    fn the_mix_has_rejections_declines_and_every_product() {
        let today = chrono::Utc::now().date_naive();
        for n in [6, 40] {
            let journeys = plan(n, 3, "t", &Product::ALL, today);
            assert_eq!(journeys.len(), n);
            let tags: Vec<Tag> = journeys.iter().map(|j| j.applicant.tag).collect();
            assert!(tags.contains(&Tag::Reject), "{tags:?}");
            assert!(tags.contains(&Tag::LowScore), "{tags:?}");
            let products: HashSet<Product> = journeys.iter().map(Journey::product).collect();
            assert_eq!(products.len(), 4);
            let keys: HashSet<&str> = journeys.iter().map(|j| j.key.as_str()).collect();
            assert_eq!(keys.len(), n);
        }
    }

    #[test]
    fn a_seed_gives_the_same_journeys() {
        let today = chrono::Utc::now().date_naive();
        let inputs = |seed| {
            plan(12, seed, "t", &Product::ALL, today)
                .iter()
                .map(|j| (j.onboarding_input(), j.loan_input()))
                .collect::<Vec<_>>()
        };
        assert_eq!(inputs(9), inputs(9));
        assert_ne!(inputs(9), inputs(10));
    }
}
