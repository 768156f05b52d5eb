//! Borrower bodies: create (`POST /api/core/users`, and the KYC path variant), the
//! borrower as Finfra returns it, the partial update, and block.
//!
//! Write and read shapes differ on purpose (CONTRACT §1): [`CreateBorrower`] has the
//! request's required fields as plain values; [`Borrower`] reads Finfra's rendering, in
//! which almost anything may be missing, empty or differently typed.

mod entity;
mod partial;
mod signatory;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lenient::{self, string_enum};

pub use entity::{Entity, Management};
pub use partial::{
    PartialAuthorisedSignatory, PartialDocument, PartialDocuments, PartialEntity, PartialManagement,
};
pub use signatory::{AuthorisedSignatory, Documents, FileDocument, KtpDocument, NpwpDocument};

string_enum! {
    /// `PERSONAL` (an individual) or `BUSINESS` (an entity); drives Finfra's KYC workflow.
    pub enum BorrowerType {
        Personal => "PERSONAL",
        Business => "BUSINESS",
    }
}

string_enum! {
    /// A borrower's status (CONTRACT §3 lifecycle).
    pub enum BorrowerStatus {
        /// Created; KYC checks running.
        Pending => "PENDING",
        /// KYC documents submitted and under review; the partner may approve.
        Verified => "VERIFIED",
        /// Approved by the partner; Finfra's final review pending.
        ApprovedByPartner => "APPROVED_BY_PARTNER",
        /// Loans may be created.
        Approved => "APPROVED",
        Rejected => "REJECTED",
        Blocked => "BLOCKED",
    }
}

/// Body of `POST /api/core/users` and `POST /api/core/{kycIdPath}/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBorrower {
    pub r#type: BorrowerType,
    /// Required for `BUSINESS`, absent for `PERSONAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Entity>,
    pub authorised_signatory: AuthorisedSignatory,
}

/// A borrower as `GET /api/core/users/{userId}` (and approve, and patch) return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Borrower {
    /// 24 lowercase hex characters.
    pub id: String,
    /// The partner's UUID.
    pub partner_id: String,
    pub status: BorrowerStatus,
    pub r#type: BorrowerType,
    /// Not in the reference's (PERSONAL) example; read when Finfra sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<PartialEntity>,
    #[serde(default)]
    pub authorised_signatory: PartialAuthorisedSignatory,
    #[serde(with = "lenient::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// Body of `PATCH /api/core/users/{userId}`: any subset of the create body's fields.
///
/// CONTRACT §3 does not say whether nested objects merge or replace; we send only the
/// fields set here, nested ones included, and read the updated borrower back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BorrowerPatch {
    #[serde(
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub r#type: Option<BorrowerType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<PartialEntity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorised_signatory: Option<PartialAuthorisedSignatory>,
}

/// Optional body of `POST /api/core/users/{userId}/block`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockBorrower {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::{Value, json};

    use super::*;
    use crate::model::common::{MaritalStatus, Religion};
    use crate::model::test_fixtures::reference_create_borrower;

    const GET_BORROWER: &str = include_str!("../../../tests/fixtures/get_borrower_example.json");
    const CREATE_BORROWER: &str =
        include_str!("../../../tests/fixtures/create_borrower_example.json");

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn create_borrower_serializes_exactly_as_the_reference_example() {
        let want: Value = serde_json::from_str(CREATE_BORROWER).unwrap();
        let got = serde_json::to_value(reference_create_borrower()).unwrap();
        assert_eq!(got, want);
        // The quirks, spelled out: plain dates and the boolean as a string.
        let s = &got["authorised_signatory"];
        assert_eq!(s["birth_date"], json!("1995-11-01"));
        assert_eq!(s["spouse_date_of_birth"], json!("1999-03-01"));
        assert_eq!(s["documents"]["ktp"]["expiry_date"], json!("2099-11-01"));
        assert_eq!(s["prenuptial_agreement"], json!("true"));
        assert!(got.get("entity").is_none());
    }

    #[test]
    fn create_borrower_example_round_trips() {
        let parsed: CreateBorrower = serde_json::from_str(CREATE_BORROWER).unwrap();
        assert_eq!(parsed, reference_create_borrower());
    }

    #[test]
    fn reads_the_reference_get_borrower_example_verbatim() {
        let b: Borrower = serde_json::from_str(GET_BORROWER).unwrap();
        assert_eq!(b.id, "6a41ff87dda4eefd0b7b0300");
        assert_eq!(b.partner_id, "1507b694-e78e-4fc9-ac28-68d72fba45e9");
        assert_eq!(b.status, BorrowerStatus::ApprovedByPartner);
        assert_eq!(b.r#type, BorrowerType::Personal);
        assert_eq!(b.created_at.to_rfc3339(), "2026-06-29T05:15:51.591+00:00");
        assert_eq!(b.entity, None);

        let s = &b.authorised_signatory;
        // Timestamps where the request had dates.
        assert_eq!(s.birth_date, Some(ymd(1987, 11, 23)));
        assert_eq!(s.spouse_date_of_birth, Some(ymd(1989, 8, 22)));
        // A JSON boolean where the request had a string.
        assert_eq!(s.prenuptial_agreement, Some(false));
        assert_eq!(s.work_address.as_deref(), Some(""));
        assert_eq!(s.title, None);
        assert_eq!(s.marital_status, Some(MaritalStatus::Married));
        assert_eq!(s.religion, Some(Religion::Christian));
        assert_eq!(s.number_of_dependents, Some(2));
        assert_eq!(s.business_type.as_deref(), Some("RESTAURANT"));
        let address = s.address.as_ref().unwrap();
        assert_eq!(address.country, None);
        assert_eq!(address.rt, "002");
        assert_eq!(s.bank_account.as_ref().unwrap()[0].swift_code, "BBIJIDJA");

        // Empty documents `{}` read as present-but-empty.
        let docs = s.documents.as_ref().unwrap();
        let ktp = docs.ktp.as_ref().unwrap();
        assert_eq!(ktp.number.as_deref(), Some("3573032311870003"));
        assert_eq!(ktp.file.as_deref(), Some("6a41fddddda4eefd0b7b0274"));
        assert_eq!(ktp.expiry_date, None);
        for empty in [&docs.selfie, &docs.npwp, &docs.selfie_with_ktp] {
            let doc = empty.as_ref().unwrap();
            assert!(doc.is_empty());
            assert_eq!(doc.file, None);
        }
        assert_eq!(docs.stock_images, None);
    }

    #[test]
    fn borrower_read_tolerates_empty_strings_and_nulls() {
        let b: Borrower = serde_json::from_value(json!({
            "id": "6a41ff87dda4eefd0b7b0300",
            "partner_id": "1507b694-e78e-4fc9-ac28-68d72fba45e9",
            "status": "SOMETHING_NEW",
            "type": "PERSONAL",
            "authorised_signatory": {
                "birth_date": "", "gender": "", "marital_status": null,
                "prenuptial_agreement": "true", "spouse_date_of_birth": null,
                "number_of_dependents": "4", "bank_account": null
            },
            "created_at": "2026-06-29T05:15:51Z"
        }))
        .unwrap();
        assert_eq!(b.status, BorrowerStatus::Unknown("SOMETHING_NEW".into()));
        let s = b.authorised_signatory;
        assert_eq!(
            (s.birth_date, s.gender, s.marital_status),
            (None, None, None)
        );
        assert_eq!(s.prenuptial_agreement, Some(true));
        assert_eq!(s.number_of_dependents, Some(4));
        assert_eq!(s.bank_account, None);
    }

    #[test]
    fn debug_masks_pii() {
        let dbg = format!("{:?}", reference_create_borrower());
        for secret in [
            "3275062009921981",
            "3275062309984412",
            "Budi",
            "Santoso",
            "+6281234567890",
            "08123456789",
            "Humairah",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        }
        assert!(dbg.contains("1981"));
        let b: Borrower = serde_json::from_str(GET_BORROWER).unwrap();
        let dbg = format!("{b:?}");
        for secret in [
            "3573032311870003",
            "FERDIAN",
            "+6281339933711",
            "sarengmalang",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        }
    }

    #[test]
    fn patch_writes_only_what_is_set() {
        let patch = BorrowerPatch {
            authorised_signatory: Some(PartialAuthorisedSignatory {
                mobile_number: Some("+6281200000000".into()),
                spouse_date_of_birth: Some(ymd(1990, 1, 2)),
                prenuptial_agreement: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"authorised_signatory": {
                "mobile_number": "+6281200000000",
                "spouse_date_of_birth": "1990-01-02",
                "prenuptial_agreement": "false"
            }})
        );
        assert_eq!(
            serde_json::to_value(BorrowerPatch::default()).unwrap(),
            json!({})
        );
        assert_eq!(
            serde_json::to_value(BlockBorrower::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn statuses_round_trip() {
        for wire in BorrowerStatus::KNOWN {
            let s: BorrowerStatus = serde_json::from_value(json!(wire)).unwrap();
            assert!(!s.is_unknown());
            assert_eq!(serde_json::to_value(&s).unwrap(), json!(wire));
        }
        let s: BorrowerStatus = serde_json::from_value(json!("ON_HOLD")).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), json!("ON_HOLD"));
    }
}
