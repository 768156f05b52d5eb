//! The `authorised_signatory` object of a create-borrower request and its documents:
//! the person behind a PERSONAL borrower, or the signatory of a BUSINESS one.
//!
//! These are the strict *write* shapes: required fields are not `Option`. Reading a
//! borrower back uses [`super::PartialAuthorisedSignatory`], because Finfra's responses
//! leave fields out and return empty documents as `{}`.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::lenient;
use crate::model::common::{
    Abbrev, Address, BankAccount, Gender, MaritalStatus, Masked, MaskedOpt, Religion,
};

/// The individual: the borrower (PERSONAL) or the entity's signatory (BUSINESS).
///
/// Only the enumerations the reference closes (gender, marital status) are enums with a
/// fixed set; religion keeps an `Unknown` escape; job, education, income range, housing
/// status and source of funds are free strings because the reference only gives one
/// example value for each.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorisedSignatory {
    pub first_name: String,
    pub last_name: String,
    #[serde(with = "lenient::date")]
    pub birth_date: NaiveDate,
    pub birth_place: String,
    pub email: String,
    pub mother_maiden_name: String,
    pub marital_status: MaritalStatus,
    pub gender: Gender,
    /// Salutation, e.g. `BPK` (Bapak), `IBU`.
    pub title: String,
    /// ISO 3166-1 alpha-2.
    pub domicile: String,
    pub religion: Religion,
    /// e.g. `PRIVATE_SECTOR_EMPLOYEE`.
    pub job: String,
    /// e.g. `ELEMENTARY_SCHOOL`.
    pub education: String,
    pub address: Address,
    /// International format, e.g. `+6281234567890`.
    pub mobile_number: String,
    #[serde(
        default,
        deserialize_with = "lenient::null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub bank_account: Vec<BankAccount>,
    pub documents: Documents,
    /// If self-employed, e.g. `OTHER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_type: Option<String>,
    /// e.g. `LESS_THAN_3_MILLION`.
    pub monthly_income_range: String,
    pub emergency_contact_name: String,
    /// E.164, or an Indonesian local number such as `08123456789` (the reference's own
    /// example uses that form).
    pub emergency_contact_number: String,
    /// e.g. `OWN_HOME`.
    pub housing_status: String,
    /// e.g. `SALARY`.
    pub source_of_fund: String,
    pub place_of_work: String,
    /// May legitimately be `""` (the Get Borrower example has it so).
    pub work_address: String,
    #[serde(
        default,
        with = "lenient::option_u32",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_dependents: Option<u32>,
    /// Spouse NIK, when married.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spouse_identification_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spouse_name: Option<String>,
    #[serde(
        default,
        with = "lenient::option_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub spouse_date_of_birth: Option<NaiveDate>,
    /// Written as the string `"true"`/`"false"`, as the request requires.
    #[serde(
        default,
        with = "lenient::option_bool_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub prenuptial_agreement: Option<bool>,
}

impl fmt::Debug for AuthorisedSignatory {
    // Names, phone numbers, e-mail and NIKs are masked (STYLE: PII is masked); the rest
    // is what one needs to debug a rejected request.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorisedSignatory")
            .field("first_name", &Masked(&self.first_name))
            .field("last_name", &Masked(&self.last_name))
            .field("birth_date", &self.birth_date)
            .field("birth_place", &self.birth_place)
            .field("email", &Masked(&self.email))
            .field("mother_maiden_name", &Masked(&self.mother_maiden_name))
            .field("marital_status", &self.marital_status)
            .field("gender", &self.gender)
            .field("title", &self.title)
            .field("domicile", &self.domicile)
            .field("religion", &self.religion)
            .field("job", &self.job)
            .field("education", &self.education)
            .field("address", &self.address)
            .field("mobile_number", &Masked(&self.mobile_number))
            .field("bank_account", &self.bank_account)
            .field("documents", &self.documents)
            .field("business_type", &self.business_type)
            .field("monthly_income_range", &self.monthly_income_range)
            .field(
                "emergency_contact_name",
                &Masked(&self.emergency_contact_name),
            )
            .field(
                "emergency_contact_number",
                &Masked(&self.emergency_contact_number),
            )
            .field("housing_status", &self.housing_status)
            .field("source_of_fund", &self.source_of_fund)
            .field("place_of_work", &self.place_of_work)
            .field("work_address", &self.work_address)
            .field("number_of_dependents", &self.number_of_dependents)
            .field(
                "spouse_identification_number",
                &MaskedOpt(&self.spouse_identification_number),
            )
            .field("spouse_name", &MaskedOpt(&self.spouse_name))
            .field("spouse_date_of_birth", &self.spouse_date_of_birth)
            .field("prenuptial_agreement", &self.prenuptial_agreement)
            .finish()
    }
}

/// KYC documents of a create request. `file` values are base64 or a URL (or, as the Get
/// Borrower example shows, the id of a document created with `POST /api/documents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Documents {
    pub ktp: KtpDocument,
    pub selfie: FileDocument,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npwp: Option<NpwpDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfie_with_ktp: Option<FileDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_images: Option<FileDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finance_report: Option<FileDocument>,
}

/// The KTP (national ID card).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtpDocument {
    /// The 16-digit NIK.
    pub number: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_city: Option<String>,
    #[serde(
        default,
        with = "lenient::option_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_date: Option<NaiveDate>,
}

impl fmt::Debug for KtpDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KtpDocument")
            .field("number", &Masked(&self.number))
            .field("file", &Abbrev(&self.file))
            .field("issuing_city", &self.issuing_city)
            .field("expiry_date", &self.expiry_date)
            .finish()
    }
}

/// The NPWP (tax id) document.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpwpDocument {
    /// 15 or 16 digits, without separators.
    pub number: String,
    pub file: String,
}

impl fmt::Debug for NpwpDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NpwpDocument")
            .field("number", &Masked(&self.number))
            .field("file", &Abbrev(&self.file))
            .finish()
    }
}

/// A document that is only a file (selfie, selfie with KTP, stock images, finance report).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDocument {
    pub file: String,
}

impl FileDocument {
    pub fn new(file: impl Into<String>) -> Self {
        Self { file: file.into() }
    }
}

impl fmt::Debug for FileDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDocument")
            .field("file", &Abbrev(&self.file))
            .finish()
    }
}
