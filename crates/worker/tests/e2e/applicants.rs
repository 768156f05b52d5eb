//! The borrowers of an end-to-end run: a realistic mix of products and of outcomes, each
//! chosen through the sandbox's magic values (signatory email tags, the NIK in the KTP
//! image), with distinct, valid NIKs.

use serde_json::{Value, json};

/// The four shipped products (definitions of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// What the input asks the sandbox for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub nik: String,
    pub email: String,
    pub intent: Intent,
    index: usize,
}

/// `n` applicants, the products in turn and, per product, a tenth each rejected at KYC,
/// low-scored and overdue (two tenths declined), some with hub checks or RDF answering
/// `PENDING` first (so the checks are polled again), the rest clean.
pub fn mix(n: usize) -> Vec<Applicant> {
    (0..n)
        .map(|index| {
            let product = Product::ALL[index % Product::ALL.len()];
            let clean = if product == Product::BusinessSinglePayment {
                Intent::ScoreDecides
            } else {
                Intent::Approve
            };
            let (tags, intent) = match (index / Product::ALL.len()) % 10 {
                4 => ("+hubpending", clean),
                5 if !product.is_business() => ("+rdfpending", clean),
                6 => ("+reject", Intent::KycRejected),
                7 => ("+lowscore", Intent::PolicyDeclined),
                8 => ("+overdue", Intent::PolicyDeclined),
                _ => ("", clean),
            };
            Applicant {
                business_key: format!(
                    "e2e-{index:03}-{}{}",
                    product.definition(),
                    tags.replace('+', "-")
                ),
                product,
                nik: nik(index),
                email: format!("applicant{index}{tags}@example.com"),
                intent,
                index,
            }
        })
        .collect()
}

/// A valid, distinct NIK: region `327506`, a birth date (day + 40 for women) and a serial.
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

    fn body(&self) -> Value {
        let (day, month, year) = birth(self.index);
        let (first_name, gender, title) = if female(self.index) {
            ("Sari", "FEMALE", "IBU")
        } else {
            ("Budi", "MALE", "BPK")
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
                "mobile_number": "+6281234567890",
                "bank_account": [{
                    "holder_name": format!("{first_name} Santoso"), "number": "123123123213",
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
                    "name": format!("{first_name} Santoso"), "position": "OWNER_MANAGEMENT",
                    "email_address": "owner@majujaya.co.id", "mobile_number": "+6281234567890",
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
