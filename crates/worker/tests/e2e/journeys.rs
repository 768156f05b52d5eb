//! Whole journeys for `tests/e2e_journeys.rs`: a borrower onboarded, then a loan originated
//! for them, signed, disbursed and repaid. Every borrower is one the credit policy of their
//! product approves, so every loan can be paid. A quarter of them, of every product, pay the
//! whole loan the moment its virtual account exists (the sandbox's `+paynow`).

use std::collections::BTreeMap;

use chrono::{Days, Utc};
use serde_json::{Value, json};

use super::applicants::{Applicant, Intent, Product, mix};

/// The score `business-single-payment` asks for (`[credit] min_score`).
const BUSINESS_SINGLE_PAYMENT_MIN_SCORE: u16 = 650;

/// One journey: the onboarding and the loan that waits for it.
#[derive(Debug, Clone)]
pub struct Journey {
    pub applicant: Applicant,
    /// The `originate-loan` workflow's business key.
    pub loan_key: String,
    /// The borrower pays the whole loan inside the virtual-account request, before its
    /// answer leaves (signatory email tagged `+paynow`): a lost answer and the request sent
    /// again meet a loan already `PAID`.
    pub pays_at_once: bool,
}

impl Journey {
    pub fn product(&self) -> Product {
        self.applicant.product
    }

    /// The `originate-loan` input: the product's loan for the borrower onboarded under the
    /// applicant's business key, amounts varying a little per journey.
    pub fn loan_input(&self, index: usize) -> Value {
        let today = Utc::now().date_naive();
        let day = |n: u64| (today + Days::new(n)).format("%Y-%m-%d").to_string();
        let extra = index % 50 * 10_000;
        let loan = match self.product() {
            Product::PersonalSinglePayment | Product::BusinessSinglePayment => json!({
                "type": "SINGLE_PAYMENT",
                "principal_amount": format!("{}.00", 5_000_000 + extra),
                "interest_amount": "250000.00",
                "due_date": day(30),
                "purpose": "Working capital"
            }),
            Product::PersonalBnpl | Product::BusinessBnpl => json!({
                "type": "BNPL",
                "principal_amount": format!("{}.00", 3_000_000 + extra),
                "tenor": 3 + index % 2,
                "frequency": "MONTHLY",
                "interest_rate": "0.015",
                "first_due_date": day(20),
                "merchant_name": "Toko Maju"
            }),
        };
        json!({
            "definition": self.product().definition(),
            "borrower": { "onboarding": self.applicant.business_key },
            "loan": loan,
            "disbursement_account": {
                "holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"
            }
        })
    }
}

/// `n` journeys, the four products in turn, from the onboarding mix without its rejected
/// and declined applicants (some still have hub checks or RDF answering `PENDING` first).
/// The second of every four journeys of each product pays at once ([`Journey::pays_at_once`]).
pub fn journeys(n: usize) -> Vec<Journey> {
    let mut of_product = BTreeMap::<Product, usize>::new();
    mix(n * 3)
        .into_iter()
        .filter(|a| match a.intent {
            Intent::Approve => true,
            Intent::ScoreDecides => {
                finfra_sandbox::credit_score_of(&a.nik) >= BUSINESS_SINGLE_PAYMENT_MIN_SCORE
            }
            Intent::KycRejected | Intent::PolicyDeclined => false,
        })
        .take(n)
        .map(|mut applicant| {
            let seen = of_product.entry(applicant.product).or_default();
            let pays_at_once = *seen % 4 == 1;
            *seen += 1;
            if pays_at_once {
                applicant.email = applicant.email.replacen('@', "+paynow@", 1);
            }
            Journey {
                loan_key: format!("loan-{}", applicant.business_key),
                applicant,
                pays_at_once,
            }
        })
        .collect()
}
