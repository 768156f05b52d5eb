//! The `entity` object of a BUSINESS borrower and its `managements[]`, in their strict
//! write shape (reading uses [`super::PartialEntity`]).

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::lenient;
use crate::model::common::{Address, Gender, Masked};

/// The business entity. Required when the borrower `type` is `BUSINESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// Registered company name.
    pub name: String,
    pub address: Address,
    /// International format, e.g. `+6287711998822`.
    pub phone_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
    pub email: String,
    /// e.g. `OTHER`; a free string.
    pub business_type: String,
    /// e.g. `PRIVATE_PERSON_NAME`; a free string.
    pub industry: String,
    /// ISO 3166-1 alpha-2.
    pub nationality: String,
    /// ISO 3166-1 alpha-2.
    pub residence: String,
    /// Company tax id, 15 or 16 digits without separators.
    pub npwp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_ext: Option<String>,
    /// e.g. `PT`, `CV`.
    pub legal_entity: String,
    #[serde(with = "lenient::date")]
    pub establishment_date: NaiveDate,
    pub establishment_place: String,
    #[serde(with = "lenient::date")]
    pub deed_date: NaiveDate,
    pub deed_number: String,
    /// Must not be empty.
    pub managements: Vec<Management>,
}

/// One person of the entity's management.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Management {
    pub name: String,
    /// e.g. `OWNER_MANAGEMENT`; a free string.
    pub position: String,
    pub email_address: String,
    /// International format.
    pub mobile_number: String,
    /// Residential address, a single line here (not an address object).
    pub address: String,
    pub gender: Gender,
    /// NIK, 16 digits.
    pub identity_number: String,
}

impl fmt::Debug for Management {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Management")
            .field("name", &Masked(&self.name))
            .field("position", &self.position)
            .field("email_address", &Masked(&self.email_address))
            .field("mobile_number", &Masked(&self.mobile_number))
            .field("address", &Masked(&self.address))
            .field("gender", &self.gender)
            .field("identity_number", &Masked(&self.identity_number))
            .finish()
    }
}
