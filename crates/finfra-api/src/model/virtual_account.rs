//! Virtual accounts for repayment (CONTRACT §5): the request and the account Finfra
//! opens. Payments into the account arrive as callbacks (`crate::callback`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::lenient::{self, string_enum};

string_enum! {
    /// Bank of a virtual account.
    pub enum BankCode {
        Bca => "BCA",
        Bni => "BNI",
        Bri => "BRI",
        Mandiri => "MANDIRI",
        Permata => "PERMATA",
    }
}

/// Body of `POST /api/core/virtual-account/request`. Asking again returns the same
/// account, whatever `bank_code` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAccountRequest {
    pub loan_unique_id: String,
    pub bank_code: BankCode,
}

/// A loan's repayment virtual account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAccount {
    /// Payment callbacks carry this id.
    pub external_id: String,
    pub loan_unique_id: String,
    pub bank_code: BankCode,
    pub account_number: String,
    /// Name shown to the payer.
    pub name: String,
    #[serde(with = "lenient::money")]
    pub expected_amount: Decimal,
    /// A timestamp; read leniently because the name suggests a date.
    #[serde(with = "lenient::timestamp")]
    pub expiration_date: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_and_account() {
        let req = VirtualAccountRequest {
            loan_unique_id: "loan-000123".into(),
            bank_code: BankCode::Mandiri,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"loan_unique_id": "loan-000123", "bank_code": "MANDIRI"})
        );
        let va: VirtualAccount = serde_json::from_value(json!({
            "external_id": "va-1", "loan_unique_id": "loan-000123", "bank_code": "BSI",
            "account_number": "8808123456789", "name": "FINFRA BUDI", "expected_amount": "5150000.00",
            "expiration_date": "2026-12-31"
        }))
        .unwrap();
        assert_eq!(va.bank_code, BankCode::Unknown("BSI".into()));
        assert_eq!(va.expected_amount, Decimal::new(515_000_000, 2));
        let out = serde_json::to_value(&va).unwrap();
        assert_eq!(out["expected_amount"], json!("5150000.00"));
        assert_eq!(out["bank_code"], json!("BSI"));
    }
}
