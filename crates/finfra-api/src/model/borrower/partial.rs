//! The borrower objects with every field optional.
//!
//! One shape, two uses: reading a borrower back (Finfra omits fields, returns empty
//! documents as `{}`, dates as timestamps, `prenuptial_agreement` as a boolean, `""`
//! for unknown values) and sending a `PATCH` (CONTRACT §3: "any subset of the create
//! body's fields"). Writing omits `None` and uses the request forms (dates `YYYY-MM-DD`,
//! `"true"`/`"false"`), so a patch built from these types is exact.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::lenient;
use crate::model::common::{
    AbbrevOpt, Address, BankAccount, Gender, MaritalStatus, MaskedOpt, Religion,
};

/// [`super::AuthorisedSignatory`] with every field optional.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartialAuthorisedSignatory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_place: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mother_maiden_name: Option<String>,
    #[serde(
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub marital_status: Option<MaritalStatus>,
    #[serde(
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub gender: Option<Gender>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domicile: Option<String>,
    #[serde(
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub religion: Option<Religion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub education: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<String>,
    /// `None` leaves the accounts alone in a patch; `Some(vec![])` clears them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<Vec<BankAccount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<PartialDocuments>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_income_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency_contact_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency_contact_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub housing_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_of_fund: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place_of_work: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_address: Option<String>,
    #[serde(with = "lenient::option_u32", skip_serializing_if = "Option::is_none")]
    pub number_of_dependents: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spouse_identification_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spouse_name: Option<String>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub spouse_date_of_birth: Option<NaiveDate>,
    #[serde(
        with = "lenient::option_bool_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub prenuptial_agreement: Option<bool>,
}

impl fmt::Debug for PartialAuthorisedSignatory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialAuthorisedSignatory")
            .field("first_name", &MaskedOpt(&self.first_name))
            .field("last_name", &MaskedOpt(&self.last_name))
            .field("birth_date", &self.birth_date)
            .field("birth_place", &self.birth_place)
            .field("email", &MaskedOpt(&self.email))
            .field("mother_maiden_name", &MaskedOpt(&self.mother_maiden_name))
            .field("marital_status", &self.marital_status)
            .field("gender", &self.gender)
            .field("title", &self.title)
            .field("domicile", &self.domicile)
            .field("religion", &self.religion)
            .field("job", &self.job)
            .field("education", &self.education)
            .field("address", &self.address)
            .field("mobile_number", &MaskedOpt(&self.mobile_number))
            .field("bank_account", &self.bank_account)
            .field("documents", &self.documents)
            .field("business_type", &self.business_type)
            .field("monthly_income_range", &self.monthly_income_range)
            .field(
                "emergency_contact_name",
                &MaskedOpt(&self.emergency_contact_name),
            )
            .field(
                "emergency_contact_number",
                &MaskedOpt(&self.emergency_contact_number),
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

/// [`super::Documents`] with every document optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartialDocuments {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ktp: Option<PartialDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selfie: Option<PartialDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npwp: Option<PartialDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selfie_with_ktp: Option<PartialDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_images: Option<PartialDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finance_report: Option<PartialDocument>,
}

/// Any one KYC document, every field optional; `{}` (an empty document, as Finfra
/// returns a missing selfie) reads as all `None`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartialDocument {
    /// NIK for the KTP, NPWP number for the NPWP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuing_city: Option<String>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<NaiveDate>,
}

impl PartialDocument {
    /// Whether the document is absent in all but name (`{}`).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Debug for PartialDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialDocument")
            .field("number", &MaskedOpt(&self.number))
            .field("file", &AbbrevOpt(&self.file))
            .field("issuing_city", &self.issuing_city)
            .field("expiry_date", &self.expiry_date)
            .finish()
    }
}

/// [`super::Entity`] with every field optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartialEntity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npwp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_ext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_entity: Option<String>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub establishment_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub establishment_place: Option<String>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub deed_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deed_number: Option<String>,
    /// The whole list: a patch that sends it replaces every management entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managements: Option<Vec<PartialManagement>>,
}

/// [`super::Management`] with every field optional.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartialManagement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub gender: Option<Gender>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_number: Option<String>,
}

impl fmt::Debug for PartialManagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialManagement")
            .field("name", &MaskedOpt(&self.name))
            .field("position", &self.position)
            .field("email_address", &MaskedOpt(&self.email_address))
            .field("mobile_number", &MaskedOpt(&self.mobile_number))
            .field("address", &MaskedOpt(&self.address))
            .field("gender", &self.gender)
            .field("identity_number", &MaskedOpt(&self.identity_number))
            .finish()
    }
}
