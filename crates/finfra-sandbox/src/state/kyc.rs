//! e-KYC sessions (CONTRACT §4): OCR and biometric start or continue a session identified by
//! a JWT-shaped `kyc_id`; a borrower created on it links it; submission finalizes it.
//!
//! The submission status is derived, not stored: `DRAFT` until submitted, then `SUBMITTED`
//! while the borrower is being created, `PROCESSING` while it is `PENDING`, `REJECTED` if its
//! KYC failed, else `COMPLETED`. The borrower's KYC review does not wait for the submission:
//! CONTRACT §3 makes `PENDING → VERIFIED` depend on the checks only.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::{BorrowerStatus, State};
use crate::auth::jwt_like;
use crate::error::{ApiError, ApiResult};
use crate::magic;

#[derive(Debug, Clone)]
pub(crate) struct KycSession {
    pub borrower_id: Option<String>,
    pub submitted: bool,
}

/// The birth date and gender a NIK encodes (digits 7–12 are DDMMYY, day + 40 for women), or
/// a fixed date when they don't form one.
fn from_nik(nik: &str) -> (String, &'static str) {
    let part = |r: std::ops::Range<usize>| nik.get(r).and_then(|s| s.parse::<u32>().ok());
    let (Some(dd), Some(mm), Some(yy)) = (part(6..8), part(8..10), part(10..12)) else {
        return ("1990-01-01".into(), "MALE");
    };
    let (day, gender) = if dd > 40 {
        (dd - 40, "FEMALE")
    } else {
        (dd, "MALE")
    };
    // Two-digit years up to 30 are read as 20xx: borrowers are adults.
    let year = if yy <= 30 { 2000 + yy } else { 1900 + yy };
    let date = i32::try_from(year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, mm, day))
        .map_or_else(|| "1990-01-01".to_owned(), |d| d.to_string());
    (date, gender)
}

impl State {
    /// The session named by a `kyc-id` header, or a new one.
    fn session_for(&mut self, kyc_id: Option<&str>, now: DateTime<Utc>) -> ApiResult<String> {
        if let Some(id) = kyc_id {
            return if self.kyc.contains(id) {
                Ok(id.to_owned())
            } else {
                Err(ApiError::not_found("KYC session not found"))
            };
        }
        let claims = json!({"typ": "kyc", "iat": now.timestamp()});
        let id = jwt_like(&mut self.rng, &claims);
        self.kyc.insert(
            id.clone(),
            KycSession {
                borrower_id: None,
                submitted: false,
            },
        );
        Ok(id)
    }

    /// `POST /api/core/users/ocr`.
    pub fn ocr(
        &mut self,
        kyc_id: Option<&str>,
        data_source: Option<&str>,
        file: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let id = self.session_for(kyc_id, now)?;
        let nik = magic::ocr_nik(file);
        let (birth_date, gender) = from_nik(&nik);
        Ok(json!({
            "kyc_id": id,
            "data_source": data_source.unwrap_or("izidata"),
            "extracted": {
                "nik": nik,
                "full_name": "BUDI SANTOSO",
                "birth_date": birth_date,
                "birth_place": "JAKARTA",
                "gender": gender,
                "address": {
                    "street_address": "JL. SUDIRMAN NO. 1",
                    "rt": "001",
                    "rw": "002",
                    "province": "DKI_JAKARTA",
                    "city": "JAKARTA PUSAT",
                    "district": "TANAH ABANG",
                    "village": "KARET TENGSIN",
                    "postal_code": "10220"
                }
            },
            "confidence": magic::ocr_confidence(file),
        }))
    }

    /// `POST /api/core/users/biometric`.
    pub fn biometric(
        &mut self,
        kyc_id: Option<&str>,
        selfie: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let id = self.session_for(kyc_id, now)?;
        let (liveness, score) = magic::liveness(selfie);
        Ok(json!({"kyc_id": id, "liveness": liveness, "face_match_score": score}))
    }

    /// `POST /api/core/kyc/{kycIdPath}/submit`: idempotent once a borrower exists.
    pub fn submit_kyc(&mut self, kyc_id: &str) -> ApiResult<Value> {
        let session = self
            .kyc
            .get_mut(kyc_id)
            .ok_or_else(|| ApiError::not_found("KYC session not found"))?;
        if session.borrower_id.is_none() {
            return Err(ApiError::bad_request(
                "No borrower has been created for this KYC session",
            ));
        }
        session.submitted = true;
        Ok(json!({"kyc_id": kyc_id, "status": "SUBMITTED"}))
    }

    /// `GET /api/core/kyc/{kycIdPath}/submission`.
    pub fn kyc_submission(&self, kyc_id: &str) -> ApiResult<Value> {
        let session = self
            .kyc
            .get(kyc_id)
            .ok_or_else(|| ApiError::not_found("KYC session not found"))?;
        let borrower = session
            .borrower_id
            .as_deref()
            .and_then(|id| self.borrowers.get(id))
            .filter(|b| b.status != BorrowerStatus::Creating);
        let status = match (session.submitted, borrower.map(|b| b.status)) {
            (false, _) => "DRAFT",
            (true, None) => "SUBMITTED",
            (true, Some(BorrowerStatus::Pending)) => "PROCESSING",
            (true, Some(BorrowerStatus::Rejected)) => "REJECTED",
            (true, Some(_)) => "COMPLETED",
        };
        let reasons: Vec<&str> = borrower
            .and_then(|b| b.reject_reason.as_deref())
            .into_iter()
            .collect();
        Ok(json!({
            "kyc_id": kyc_id,
            "status": status,
            "user_id": borrower.map(|b| b.id.as_str()),
            "reasons": reasons,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nik_encodes_birth_date_and_gender() {
        assert_eq!(from_nik("3275062009921981"), ("1992-09-20".into(), "MALE"));
        assert_eq!(
            from_nik("3275066009051981"),
            ("2005-09-20".into(), "FEMALE")
        );
        assert_eq!(from_nik("3275069999991981").0, "1990-01-01");
    }
}
