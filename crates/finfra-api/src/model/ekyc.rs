//! e-KYC bodies (CONTRACT §4): OCR of the KTP, biometric (liveness and face match), the
//! KYC session's submission, the RDF biometric check and the hub (VERIHUBS, ASLIRI, ...)
//! checks.
//!
//! The `kyc_id` Finfra returns is the handle for the whole e-KYC flow: it goes back in
//! the `kyc-id` header and in `/api/core/{kycIdPath}/users`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::lenient::{self, string_enum};
use crate::model::common::{Address, Gender};
use crate::model::document::DocumentType;

string_enum! {
    /// The `data-source` header of the OCR call (the reference spells `izidata` in lower
    /// case and the others in upper case; we send them as documented).
    pub enum DataSource {
        Izidata => "izidata",
        Verihubs => "VERIHUBS",
        Asliri => "ASLIRI",
        Vida => "VIDA",
    }
}

/// Body of `POST /api/core/users/ocr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcrRequest {
    /// `KTP` in practice.
    pub document_type: DocumentType,
    /// Base64 or a URL.
    pub file: String,
}

/// Answer of the OCR call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrResponse {
    /// The KYC session (a JWT): send it as `kyc-id` from now on.
    pub kyc_id: String,
    #[serde(
        default,
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_source: Option<DataSource>,
    #[serde(default)]
    pub extracted: OcrExtracted,
    /// 0.0 to 1.0.
    pub confidence: f64,
}

/// What the OCR read off the card; any of it may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OcrExtracted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nik: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_place: Option<String>,
    #[serde(
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub gender: Option<Gender>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// Body of `POST /api/core/users/biometric` (with the `kyc-id` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BiometricRequest {
    /// Base64 or a URL.
    pub selfie: String,
}

string_enum! {
    /// Outcome of the liveness check.
    pub enum Liveness {
        Passed => "PASSED",
        Failed => "FAILED",
    }
}

/// Answer of the biometric call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiometricResponse {
    pub kyc_id: String,
    pub liveness: Liveness,
    /// 0.0 to 1.0.
    pub face_match_score: f64,
}

string_enum! {
    /// State of a KYC session's submission.
    pub enum KycSubmissionStatus {
        Draft => "DRAFT",
        Submitted => "SUBMITTED",
        Processing => "PROCESSING",
        Completed => "COMPLETED",
        Rejected => "REJECTED",
    }
}

/// Answer of `POST /api/core/kyc/{kycIdPath}/submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KycSubmitted {
    pub kyc_id: String,
    pub status: KycSubmissionStatus,
}

/// Answer of `GET /api/core/kyc/{kycIdPath}/submission`: the one way to learn a
/// borrower's id without waiting for the `user_created` callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KycSubmission {
    pub kyc_id: String,
    pub status: KycSubmissionStatus,
    /// `null` until a borrower exists on the session.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub reasons: Vec<String>,
}

string_enum! {
    /// Result of the RDF biometric verification.
    pub enum RdfBiometricStatus {
        Verified => "VERIFIED",
        Failed => "FAILED",
        Pending => "PENDING",
    }
}

/// Answer of `POST /api/core/users/{userId}/rdf/verify-biometric`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdfBiometricResult {
    pub user_id: String,
    pub status: RdfBiometricStatus,
}

string_enum! {
    /// The hub a borrower is checked against; the `{callbackTitle}` path segment of
    /// `GET /api/core/users/{userId}/status/{callbackTitle}`.
    pub enum HubProvider {
        Verihubs => "VERIHUBS",
        Asliri => "ASLIRI",
    }
}

string_enum! {
    /// Result of a hub check; poll while `PENDING`.
    pub enum HubCheckStatus {
        Passed => "PASSED",
        Failed => "FAILED",
        Pending => "PENDING",
    }
}

/// Answer of the hub check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubCheckResult {
    pub user_id: String,
    pub provider: HubProvider,
    pub status: HubCheckStatus,
    /// Absent while the check is pending.
    #[serde(
        default,
        with = "lenient::option_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub checked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ocr_round_trip() {
        let req = OcrRequest {
            document_type: DocumentType::Ktp,
            file: "https://x/ktp.jpg".into(),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"document_type": "KTP", "file": "https://x/ktp.jpg"})
        );
        let res: OcrResponse = serde_json::from_value(json!({
            "kyc_id": "eyJhbGciOiJIUzI1NiJ9.e30.x",
            "data_source": "izidata",
            "extracted": {"nik": "3275062009921981", "full_name": "BUDI", "birth_date": "1992-09-20T00:00:00.000Z",
                          "birth_place": "JAKARTA", "gender": "MALE", "address": {"city": "BANDUNG"}},
            "confidence": 0.93
        }))
        .unwrap();
        assert_eq!(res.data_source, Some(DataSource::Izidata));
        assert_eq!(
            res.extracted.birth_date,
            NaiveDate::from_ymd_opt(1992, 9, 20)
        );
        assert_eq!(res.extracted.address.unwrap().city, "BANDUNG");
    }

    #[test]
    fn submission_and_checks() {
        let s: KycSubmission = serde_json::from_value(json!({
            "kyc_id": "k", "status": "PROCESSING", "user_id": null, "reasons": null
        }))
        .unwrap();
        assert_eq!(
            (s.status, s.user_id, s.reasons.len()),
            (KycSubmissionStatus::Processing, None, 0)
        );
        let h: HubCheckResult = serde_json::from_value(json!({
            "user_id": "u", "provider": "DUKCAPIL", "status": "PENDING", "checked_at": null
        }))
        .unwrap();
        assert_eq!(h.provider, HubProvider::Unknown("DUKCAPIL".into()));
        assert_eq!(h.status, HubCheckStatus::Pending);
        let b: BiometricResponse = serde_json::from_value(json!({
            "kyc_id": "k", "liveness": "PASSED", "face_match_score": 1
        }))
        .unwrap();
        assert_eq!(b.liveness, Liveness::Passed);
    }
}
