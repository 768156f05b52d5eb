//! Sample borrowers for the sandbox: `onboard-borrower` inputs for the four shipped products
//! with a realistic mix of outcomes, each chosen through the sandbox's magic values
//! (signatory email tags, the NIK in the KTP image), every one with a NIK, a phone number and
//! an email of its own. `finflow demo` submits them; the end-to-end tests do too.
//!
//! Only for the sandbox: the tags mean nothing to the real Finfra, and the documents are
//! placeholders.

use serde_json::{Value, json};

/// The four shipped products (definitions of the same names in `workflows/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    PersonalSinglePayment,
    PersonalBnpl,
    BusinessSinglePayment,
    BusinessBnpl,
}

impl Product {
    pub const ALL: [Product; 4] = [
        Product::PersonalSinglePayment,
        Product::PersonalBnpl,
        Product::BusinessSinglePayment,
        Product::BusinessBnpl,
    ];

    /// The definition's name.
    pub fn definition(self) -> &'static str {
        match self {
            Self::PersonalSinglePayment => "personal-single-payment",
            Self::PersonalBnpl => "personal-bnpl",
            Self::BusinessSinglePayment => "business-single-payment",
            Self::BusinessBnpl => "business-bnpl",
        }
    }

    pub fn is_business(self) -> bool {
        matches!(self, Self::BusinessSinglePayment | Self::BusinessBnpl)
    }

    /// Whether its loans are BNPL (else single payment).
    pub fn is_bnpl(self) -> bool {
        matches!(self, Self::PersonalBnpl | Self::BusinessBnpl)
    }
}

/// A sandbox magic value in the signatory's email, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// No tag: the ordinary path.
    Clean,
    /// `+hubpending`: hub checks answer `PENDING` once (polled again), then pass.
    HubPending,
    /// `+rdfpending`: RDF biometric `PENDING` once, then verified (only where the product
    /// checks RDF: the personal ones).
    RdfPending,
    /// `+reject`: Finfra rejects the KYC.
    Reject,
    /// `+lowscore`: credit score 420; our policy declines and blocks the borrower.
    LowScore,
    /// `+overdue`: overdue loans, 95 days past due; our policy declines.
    Overdue,
}

impl Tag {
    /// What goes after the local part of the email (`budi+reject@...`).
    pub fn email_tag(self) -> &'static str {
        match self {
            Self::Clean => "",
            Self::HubPending => "+hubpending",
            Self::RdfPending => "+rdfpending",
            Self::Reject => "+reject",
            Self::LowScore => "+lowscore",
            Self::Overdue => "+overdue",
        }
    }

    /// What the tag asks the sandbox for, on `product`.
    pub fn intent(self, product: Product) -> Intent {
        match self {
            Self::Clean | Self::HubPending | Self::RdfPending => {
                if product == Product::BusinessSinglePayment {
                    Intent::ScoreDecides
                } else {
                    Intent::Approve
                }
            }
            Self::Reject => Intent::KycRejected,
            Self::LowScore | Self::Overdue => Intent::PolicyDeclined,
        }
    }
}

/// What the input asks the sandbox for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    /// No bad tag: KYC passes and the default score (600..=900) passes the policy...
    Approve,
    /// ...except business-single-payment's `min_score = 650`, which the score derived from
    /// the NIK may miss: then only the sandbox's record says whether it was declined.
    ScoreDecides,
    /// `+reject`: Finfra rejects the KYC.
    KycRejected,
    /// `+lowscore` or `+overdue`: our credit policy declines and blocks the borrower.
    PolicyDeclined,
}

/// One borrower to onboard.
#[derive(Debug, Clone)]
pub struct Applicant {
    pub business_key: String,
    pub product: Product,
    pub tag: Tag,
    pub intent: Intent,
    pub nik: String,
    pub email: String,
    pub phone: String,
    index: usize,
}

/// The largest `index` an [`Applicant`] may have: NIKs, phones and emails are distinct below it.
pub const MAX_INDEX: usize = 9_998;

/// `n` applicants, the products in turn and, per product, a tenth each rejected at KYC,
/// low-scored and overdue (two tenths declined), some with hub checks or RDF answering
/// `PENDING` first (so the checks are polled again), the rest clean. Business keys
/// `e2e-007-personal-bnpl-reject`.
pub fn mix(n: usize) -> Vec<Applicant> {
    (0..n)
        .map(|index| {
            let product = Product::ALL[index % Product::ALL.len()];
            let tag = match (index / Product::ALL.len()) % 10 {
                4 => Tag::HubPending,
                5 if !product.is_business() => Tag::RdfPending,
                6 => Tag::Reject,
                7 => Tag::LowScore,
                8 => Tag::Overdue,
                _ => Tag::Clean,
            };
            let key = format!(
                "e2e-{index:03}-{}{}",
                product.definition(),
                tag.email_tag().replace('+', "-")
            );
            Applicant::new(index, product, tag, key)
        })
        .collect()
}

/// A valid, distinct NIK per index: region `327506`, a birth date (day + 40 for women) and
/// a serial.
fn nik(index: usize) -> String {
    let (day, month, year) = birth(index);
    let day = if female(index) { day + 40 } else { day };
    format!("327506{day:02}{month:02}{:02}{:04}", year % 100, index + 1)
}

fn birth(index: usize) -> (usize, usize, usize) {
    (1 + index % 28, 1 + (index / 28) % 12, 1960 + index % 40)
}

fn female(index: usize) -> bool {
    index % 2 == 1
}

impl Applicant {
    /// The applicant number `index` (at most [`MAX_INDEX`]; it makes the NIK, phone and
    /// email), for `product`, with `tag`, under `business_key`.
    ///
    /// # Panics
    /// When `index` is above [`MAX_INDEX`].
    pub fn new(index: usize, product: Product, tag: Tag, business_key: String) -> Self {
        assert!(index <= MAX_INDEX, "applicant index {index} > {MAX_INDEX}");
        Self {
            business_key,
            product,
            tag,
            intent: tag.intent(product),
            nik: nik(index),
            email: format!("applicant{index}{}@example.com", tag.email_tag()),
            phone: format!("+62812{:08}", 10_000_000 + index),
            index,
        }
    }

    /// The signatory's full name, as the disbursement account holder.
    pub fn full_name(&self) -> String {
        format!("{} Santoso", self.first_name())
    }

    fn first_name(&self) -> &'static str {
        if female(self.index) { "Sari" } else { "Budi" }
    }

    /// The `onboard-borrower` input.
    pub fn input(&self) -> Value {
        let mut input = json!({
            "definition": self.product.definition(),
            "borrower": self.body(),
        });
        match self.product {
            Product::PersonalSinglePayment | Product::PersonalBnpl => {
                // The sandbox's OCR reads the first 16 digits of the image as the NIK.
                input["ekyc"] = json!({
                    "ktp_image": format!("https://files.example/ktp-{}.jpg", self.nik),
                    "selfie": format!("https://files.example/selfie-{}.jpg", self.index),
                });
            }
            Product::BusinessSinglePayment => {
                input["documents"] = json!([npwp(), finance_report()]);
            }
            Product::BusinessBnpl => input["documents"] = json!([npwp()]),
        }
        input
    }

    /// The create-borrower body (the input's `borrower`): the reference's example, with
    /// this applicant's NIK, name, birth date, email and phone.
    pub fn body(&self) -> Value {
        let (day, month, year) = birth(self.index);
        let first_name = self.first_name();
        let (gender, title) = if female(self.index) {
            ("FEMALE", "IBU")
        } else {
            ("MALE", "BPK")
        };
        let mut body = json!({
            "type": if self.product.is_business() { "BUSINESS" } else { "PERSONAL" },
            "authorised_signatory": {
                "first_name": first_name, "last_name": "Santoso",
                "birth_date": format!("{year}-{month:02}-{day:02}"),
                "birth_place": "Jakarta", "email": self.email, "mother_maiden_name": "Sari",
                "marital_status": "MARRIED", "gender": gender, "title": title, "domicile": "ID",
                "religion": "ISLAM", "job": "PRIVATE_SECTOR_EMPLOYEE",
                "education": "ELEMENTARY_SCHOOL",
                "address": {
                    "street_address": "Jl. Sudirman No. 1", "rt": "01", "rw": "01",
                    "province": "JAWA_BARAT", "city": "Bandung", "district": "Coblong",
                    "village": "Dago", "postal_code": "40135", "country": "ID"
                },
                "mobile_number": self.phone,
                "bank_account": [{
                    "holder_name": self.full_name(), "number": "123123123213",
                    "swift_code": "BNINIDJA"
                }],
                "documents": {
                    "ktp": {
                        "number": self.nik, "file": "https://files.example/ktp.jpg",
                        "issuing_city": "Jakarta", "expiry_date": "2099-11-01"
                    },
                    "selfie": {"file": "https://files.example/selfie.jpg"}
                },
                "monthly_income_range": "LESS_THAN_3_MILLION",
                "emergency_contact_name": "Humairah", "emergency_contact_number": "08123456789",
                "housing_status": "OWN_HOME", "source_of_fund": "SALARY",
                "place_of_work": "Finfra", "work_address": "Mega Kuningan",
                "number_of_dependents": 2, "spouse_name": "Mia",
                "spouse_identification_number": "3275062309984412",
                "spouse_date_of_birth": "1999-03-01", "prenuptial_agreement": "true"
            }
        });
        if self.product.is_business() {
            body["entity"] = json!({
                "name": "PT Maju Jaya", "phone_number": "+6287711998822",
                "email": "finance@majujaya.co.id", "business_type": "OTHER",
                "industry": "PRIVATE_PERSON_NAME", "nationality": "ID", "residence": "ID",
                "npwp": "012345678901000", "legal_entity": "PT",
                "establishment_date": "2015-03-01", "establishment_place": "Bandung",
                "deed_date": "2015-02-20", "deed_number": "AHU-0012345",
                "address": {
                    "street_address": "Jl. Asia Afrika 8", "rt": "02", "rw": "03",
                    "province": "JAWA_BARAT", "city": "Bandung", "district": "Sumur Bandung",
                    "village": "Braga", "postal_code": "40111"
                },
                "managements": [{
                    "name": self.full_name(), "position": "OWNER_MANAGEMENT",
                    "email_address": "owner@majujaya.co.id", "mobile_number": self.phone,
                    "address": "Jl. Sudirman No. 1, Bandung", "gender": gender,
                    "identity_number": self.nik
                }]
            });
        }
        body
    }
}

fn npwp() -> Value {
    json!({
        "type": "NPWP", "base64": "JVBERi0xLjQKJUVPRgo=", "content_type": "application/pdf",
        "filename": "npwp.pdf", "number": "012345678901000"
    })
}

fn finance_report() -> Value {
    json!({
        "type": "FINANCE_REPORT", "base64": "JVBERi0xLjQKJUVPRgo=",
        "content_type": "application/pdf", "filename": "finance-2025.pdf",
        "description": "2025"
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn niks_phones_and_emails_are_distinct_and_valid() {
        let (mut niks, mut phones, mut emails) = (HashSet::new(), HashSet::new(), HashSet::new());
        for index in (0..2_000).chain([MAX_INDEX - 1, MAX_INDEX]) {
            let a = Applicant::new(index, Product::PersonalBnpl, Tag::Clean, index.to_string());
            assert!(finfra_api::validate::nik(&a.nik).is_ok(), "{}", a.nik);
            assert!(finfra_api::validate::phone(&a.phone).is_ok(), "{}", a.phone);
            assert!(niks.insert(a.nik) && phones.insert(a.phone) && emails.insert(a.email));
        }
    }

    #[test]
    fn tags_reach_the_email_and_the_intent() {
        let a = Applicant::new(3, Product::BusinessBnpl, Tag::Reject, "k".into());
        assert_eq!(a.email, "applicant3+reject@example.com");
        assert_eq!(a.intent, Intent::KycRejected);
        assert_eq!(
            Tag::Clean.intent(Product::BusinessSinglePayment),
            Intent::ScoreDecides
        );
        assert_eq!(
            Tag::Overdue.intent(Product::PersonalBnpl),
            Intent::PolicyDeclined
        );
    }
}
