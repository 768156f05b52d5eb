//! Building blocks shared by several Finfra bodies: addresses, bank accounts, the
//! person enumerations, and the PII masking used by the hand-written `Debug` impls.
//!
//! `Address` and `BankAccount` serve both directions: every field is written as given,
//! and `#[serde(default)]` lets a response that leaves a field out still read (the Get
//! Borrower example omits `address.country`). Validation, not deserialization, is what
//! insists on required fields in requests.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lenient::string_enum;

string_enum! {
    /// `MALE` or `FEMALE`, as the reference documents.
    pub enum Gender {
        Male => "MALE",
        Female => "FEMALE",
    }
}

string_enum! {
    /// The signatory's marital status.
    pub enum MaritalStatus {
        Married => "MARRIED",
        Single => "SINGLE",
        Divorced => "DIVORCED",
        Widowed => "WIDOWED",
    }
}

string_enum! {
    /// Religion as the reference lists it (Indonesia's six recognised religions).
    pub enum Religion {
        Islam => "ISLAM",
        Christian => "CHRISTIAN",
        Catholic => "CATHOLIC",
        Hindu => "HINDU",
        Buddhist => "BUDDHIST",
        Confucian => "CONFUCIAN",
    }
}

/// A postal address (`address` object of the reference). `province` is a free string
/// (`JAWA_BARAT`, `DKI_JAKARTA`, ...): the reference gives examples, not a list.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub street_address: String,
    /// RT (neighbourhood unit), e.g. `"01"`; a string because leading zeros matter.
    pub rt: String,
    /// RW (community unit), e.g. `"003"`.
    pub rw: String,
    pub province: String,
    pub city: String,
    /// Kecamatan.
    pub district: String,
    /// Kelurahan.
    pub village: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2; documented for `authorised_signatory.address` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl fmt::Debug for Address {
    // A home address identifies a person as well as a name does: only the coarse parts
    // (province, city, country) are printed in clear.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("street_address", &Masked(&self.street_address))
            .field("rt", &Masked(&self.rt))
            .field("rw", &Masked(&self.rw))
            .field("province", &self.province)
            .field("city", &self.city)
            .field("district", &self.district)
            .field("village", &Masked(&self.village))
            .field("postal_code", &self.postal_code)
            .field("country", &self.country)
            .finish()
    }
}

/// A bank account (`bank_account[]` items, and the loans' `disbursement_account`).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BankAccount {
    pub holder_name: String,
    pub number: String,
    /// SWIFT/BIC of the bank, e.g. `BNINIDJA`.
    pub swift_code: String,
}

impl fmt::Debug for BankAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BankAccount")
            .field("holder_name", &Masked(&self.holder_name))
            .field("number", &Masked(&self.number))
            .field("swift_code", &self.swift_code)
            .finish()
    }
}

/// Masks PII for logs: every character but the last 4 becomes `*`; strings of 4
/// characters or fewer are masked entirely (keeping 4 would reveal all of them).
///
/// `mask("3275062009921981") == "************1981"`.
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count <= 4 {
        return "*".repeat(count);
    }
    let keep_from = count - 4;
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep_from { '*' } else { c })
        .collect()
}

/// Debug adapter printing a string masked, for hand-written `Debug` impls.
pub(crate) struct Masked<'a>(pub(crate) &'a str);

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&mask(self.0), f)
    }
}

/// Debug adapter for an optional masked string.
pub(crate) struct MaskedOpt<'a>(pub(crate) &'a Option<String>);

impl fmt::Debug for MaskedOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => f.debug_tuple("Some").field(&Masked(v)).finish(),
            None => f.write_str("None"),
        }
    }
}

/// Debug adapter for document `file` fields: short values (ids, URLs) print as they are,
/// long ones (base64 images) as their length, so one `{:?}` does not dump a megabyte.
pub(crate) struct Abbrev<'a>(pub(crate) &'a str);

impl fmt::Debug for Abbrev<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        if self.0.len() <= SHOWN {
            fmt::Debug::fmt(self.0, f)
        } else {
            write!(f, "<{} bytes>", self.0.len())
        }
    }
}

/// Debug adapter for an optional abbreviated string.
pub(crate) struct AbbrevOpt<'a>(pub(crate) &'a Option<String>);

impl fmt::Debug for AbbrevOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => f.debug_tuple("Some").field(&Abbrev(v)).finish(),
            None => f.write_str("None"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mask_keeps_last_four() {
        assert_eq!(mask("3275062009921981"), "************1981");
        assert_eq!(mask("+6281234567890"), "**********7890");
        assert_eq!(mask("Budi"), "****");
        assert_eq!(mask(""), "");
        assert_eq!(mask("Añjani Ü"), "****ni Ü");
    }

    #[test]
    fn address_reads_without_country_and_writes_without_it() {
        let a: Address = serde_json::from_value(json!({
            "street_address": "Jl. X", "rt": "002", "rw": "003", "province": "JAWA_TIMUR",
            "city": "MALANG", "district": "LOWOKWARU", "village": "T", "postal_code": "65142"
        }))
        .unwrap();
        assert_eq!(a.country, None);
        assert_eq!(a.rt, "002");
        let out = serde_json::to_value(&a).unwrap();
        assert!(out.get("country").is_none());
        assert_eq!(out["postal_code"], json!("65142"));
    }

    #[test]
    fn bank_account_debug_is_masked() {
        let b = BankAccount {
            holder_name: "Budi Santoso".into(),
            number: "123123123213".into(),
            swift_code: "BNINIDJA".into(),
        };
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("Budi"), "{dbg}");
        assert!(!dbg.contains("123123123213"), "{dbg}");
        assert!(dbg.contains("3213") && dbg.contains("BNINIDJA"), "{dbg}");
    }

    #[test]
    fn gender_round_trip() {
        assert_eq!(
            serde_json::to_value(Gender::Female).unwrap(),
            json!("FEMALE")
        );
        let g: Gender = serde_json::from_value(json!("NON_BINARY")).unwrap();
        assert_eq!(serde_json::to_value(g).unwrap(), json!("NON_BINARY"));
    }
}
