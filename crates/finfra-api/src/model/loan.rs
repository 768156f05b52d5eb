//! Loan bodies (CONTRACT §5): create (single payment and BNPL), the loan object with its
//! schedule, the list query and page, signing, disbursement and rejection.
//!
//! Money is `Decimal`, written as a decimal string with at most 2 decimals (see
//! `crate::lenient::money`); `interest_rate` is a rate, written exactly as given.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::lenient::{self, string_enum};
use crate::model::common::BankAccount;
use crate::model::virtual_account::VirtualAccount;

/// Smallest principal Finfra accepts, in IDR (CONTRACT §5).
pub const MIN_PRINCIPAL: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);
/// Largest principal Finfra accepts, in IDR (CONTRACT §5).
pub const MAX_PRINCIPAL: Decimal = Decimal::from_parts(2_000_000_000, 0, 0, false, 0);
/// Largest `pageSize` of the loan list (CONTRACT §5).
pub const MAX_PAGE_SIZE: u32 = 100;
/// BNPL tenor bounds, in installments.
pub const TENOR_RANGE: std::ops::RangeInclusive<u32> = 1..=36;

string_enum! {
    /// Installment period of a BNPL loan.
    pub enum Frequency {
        Weekly => "WEEKLY",
        Biweekly => "BIWEEKLY",
        Monthly => "MONTHLY",
    }
}

string_enum! {
    /// `SINGLE_PAYMENT` or `BNPL`.
    pub enum LoanType {
        SinglePayment => "SINGLE_PAYMENT",
        Bnpl => "BNPL",
    }
}

string_enum! {
    /// A loan's status (CONTRACT §5 lifecycle, the same for both loan types).
    pub enum LoanStatus {
        Pending => "PENDING",
        Signing => "SIGNING",
        Signed => "SIGNED",
        Disbursing => "DISBURSING",
        Disbursed => "DISBURSED",
        DisbursementFailed => "DISBURSEMENT_FAILED",
        Paid => "PAID",
        Rejected => "REJECTED",
    }
}

string_enum! {
    /// `signing.status` of a loan.
    pub enum SigningStatus {
        Pending => "PENDING",
        Signing => "SIGNING",
        Signed => "SIGNED",
    }
}

string_enum! {
    /// `disbursement.status` of a loan.
    pub enum DisbursementStatus {
        Pending => "PENDING",
        Disbursing => "DISBURSING",
        Disbursed => "DISBURSED",
        Failed => "FAILED",
    }
}

string_enum! {
    /// Repayment state of one installment.
    pub enum InstallmentStatus {
        Unpaid => "UNPAID",
        Partial => "PARTIAL",
        Paid => "PAID",
    }
}

/// Body of `POST /api/core/loans/{userId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSinglePaymentLoan {
    /// Chosen by us; makes creation idempotent (a repeat gets `409`).
    pub unique_id: String,
    #[serde(with = "lenient::money")]
    pub principal_amount: Decimal,
    #[serde(with = "lenient::money")]
    pub interest_amount: Decimal,
    #[serde(
        default,
        with = "lenient::option_money",
        skip_serializing_if = "Option::is_none"
    )]
    pub fee_amount: Option<Decimal>,
    #[serde(with = "lenient::date")]
    pub due_date: NaiveDate,
    pub purpose: String,
    pub disbursement_account: BankAccount,
}

/// Body of `POST /api/core/loans/{userId}/bnpl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBnplLoan {
    pub unique_id: String,
    #[serde(with = "lenient::money")]
    pub principal_amount: Decimal,
    /// Number of installments, 1 to 36.
    pub tenor: u32,
    pub frequency: Frequency,
    /// Flat rate per installment period, e.g. `0.0175`.
    #[serde(with = "lenient::decimal")]
    pub interest_rate: Decimal,
    #[serde(with = "lenient::date")]
    pub first_due_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    pub disbursement_account: BankAccount,
}

/// A loan as Finfra returns it (create, detail, list, reject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loan {
    pub unique_id: String,
    pub user_id: String,
    pub r#type: LoanType,
    pub status: LoanStatus,
    #[serde(with = "lenient::money")]
    pub principal_amount: Decimal,
    #[serde(with = "lenient::money")]
    pub interest_amount: Decimal,
    /// BNPL loans carry no fee; tolerated as absent or `null`.
    #[serde(
        default,
        with = "lenient::option_money",
        skip_serializing_if = "Option::is_none"
    )]
    pub fee_amount: Option<Decimal>,
    #[serde(with = "lenient::money")]
    pub total_amount: Decimal,
    /// `IDR`.
    pub currency: String,
    #[serde(with = "lenient::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disbursement: Option<Disbursement>,
    #[serde(default)]
    pub virtual_account: Option<VirtualAccount>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub schedule: Vec<Installment>,
}

/// The `signing` part of a loan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signing {
    pub status: SigningStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_url: Option<String>,
    #[serde(
        default,
        with = "lenient::option_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub signed_at: Option<DateTime<Utc>>,
}

/// The `disbursement` part of a loan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disbursement {
    pub status: DisbursementStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(
        default,
        with = "lenient::option_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub disbursed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// One installment of the repayment schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installment {
    /// 1-based.
    pub sequence: u32,
    #[serde(with = "lenient::date")]
    pub due_date: NaiveDate,
    #[serde(with = "lenient::money")]
    pub principal: Decimal,
    #[serde(with = "lenient::money")]
    pub interest: Decimal,
    #[serde(with = "lenient::money")]
    pub total: Decimal,
    #[serde(with = "lenient::money")]
    pub paid_amount: Decimal,
    pub status: InstallmentStatus,
}

/// Query of `GET /api/core/loans`; serializes to the reference's camelCase parameter
/// names, leaving out what is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListLoansQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// 1-based; Finfra's default is 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_number: Option<u32>,
    /// 1 to 100; Finfra's default is 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(with = "lenient::option_date", skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// Lower bound on `principal_amount`.
    #[serde(
        with = "lenient::option_money",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_range_amount: Option<Decimal>,
    /// Upper bound on `principal_amount`.
    #[serde(
        with = "lenient::option_money",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_range_amount: Option<Decimal>,
}

/// Answer of `GET /api/core/loans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanPage {
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub data: Vec<Loan>,
    pub page_number: u32,
    pub page_size: u32,
    pub total_items: u64,
}

/// Body of `POST /api/core/loans/signing/initiate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiateSigning {
    pub unique_id: String,
}

/// Answer of the signing initiation: send the borrower to `signing_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSession {
    pub unique_id: String,
    /// `SIGNING`.
    pub status: LoanStatus,
    pub signing_url: String,
    #[serde(with = "lenient::timestamp")]
    pub expires_at: DateTime<Utc>,
}

/// Answer of `POST /api/core/loans/{loanUniqueId}/disbursement`. The outcome comes later
/// as a `loan_disbursed` or `loan_disbursement_failed` callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisbursementAccepted {
    pub unique_id: String,
    /// `DISBURSING`.
    pub status: LoanStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Body of `POST /api/core/loans/{loanUniqueId}/reject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectLoan {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_fixtures::ymd;
    use serde_json::json;

    fn account() -> BankAccount {
        BankAccount {
            holder_name: "Budi Santoso".into(),
            number: "123123123213".into(),
            swift_code: "BNINIDJA".into(),
        }
    }

    #[test]
    fn single_payment_writes_money_as_strings() {
        let loan = CreateSinglePaymentLoan {
            unique_id: "loan-000123".into(),
            principal_amount: Decimal::new(500_000_000, 2),
            interest_amount: Decimal::from(150_000),
            fee_amount: None,
            due_date: ymd(2026, 12, 31),
            purpose: "Working capital".into(),
            disbursement_account: account(),
        };
        assert_eq!(
            serde_json::to_value(&loan).unwrap(),
            json!({
                "unique_id": "loan-000123", "principal_amount": "5000000.00", "interest_amount": "150000",
                "due_date": "2026-12-31", "purpose": "Working capital",
                "disbursement_account": {"holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"}
            })
        );
    }

    #[test]
    fn bnpl_writes_rate_exactly() {
        let loan = CreateBnplLoan {
            unique_id: "bnpl_0001".into(),
            principal_amount: Decimal::new(300_000_000, 2),
            tenor: 6,
            frequency: Frequency::Monthly,
            interest_rate: Decimal::new(175, 4),
            first_due_date: ymd(2026, 1, 31),
            merchant_name: Some("Toko Maju".into()),
            disbursement_account: account(),
        };
        let v = serde_json::to_value(&loan).unwrap();
        assert_eq!(v["interest_rate"], json!("0.0175"));
        assert_eq!(v["principal_amount"], json!("3000000.00"));
        assert_eq!(v["frequency"], json!("MONTHLY"));
        assert_eq!(v["tenor"], json!(6));
        assert_eq!(v["first_due_date"], json!("2026-01-31"));
    }

    #[test]
    fn reads_a_loan_with_schedule() {
        let loan: Loan = serde_json::from_value(json!({
            "unique_id": "loan-000123", "user_id": "6a41ff87dda4eefd0b7b0300", "type": "SINGLE_PAYMENT",
            "status": "DISBURSED", "principal_amount": "5000000.00", "interest_amount": "150000.00",
            "fee_amount": 0, "total_amount": 5150000, "currency": "IDR",
            "created_at": "2026-01-01T00:00:00Z",
            "signing": {"status": "SIGNED", "signing_url": null, "signed_at": "2026-01-01T01:00:00Z"},
            "disbursement": {"status": "DISBURSED", "reference": "TRX-1", "disbursed_at": "2026-01-01T02:00:00Z", "failure_reason": null},
            "virtual_account": null,
            "schedule": [{"sequence": 1, "due_date": "2026-12-31", "principal": "5000000.00", "interest": "150000.00",
                          "total": "5150000.00", "paid_amount": "0.00", "status": "UNPAID"}]
        }))
        .unwrap();
        assert_eq!(loan.status, LoanStatus::Disbursed);
        assert_eq!(loan.total_amount, Decimal::from(5_150_000));
        assert_eq!(loan.fee_amount, Some(Decimal::ZERO));
        assert_eq!(loan.schedule[0].status, InstallmentStatus::Unpaid);
        assert_eq!(
            loan.disbursement.as_ref().unwrap().status,
            DisbursementStatus::Disbursed
        );
        let out = serde_json::to_value(&loan).unwrap();
        assert_eq!(out["total_amount"], json!("5150000"));
        assert_eq!(out["schedule"][0]["total"], json!("5150000.00"));
    }

    #[test]
    fn list_query_uses_camel_case_and_skips_none() {
        let q = ListLoansQuery {
            user_id: Some("6a41ff87dda4eefd0b7b0300".into()),
            page_number: Some(2),
            page_size: Some(50),
            start_date: Some(ymd(2026, 1, 1)),
            end_range_amount: Some(Decimal::new(1_000_000_000, 2)),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"userId": "6a41ff87dda4eefd0b7b0300", "pageNumber": 2, "pageSize": 50,
                   "startDate": "2026-01-01", "endRangeAmount": "10000000.00"})
        );
        assert_eq!(
            serde_json::to_value(ListLoansQuery::default()).unwrap(),
            json!({})
        );
        let all = ListLoansQuery {
            user_id: Some("u".into()),
            unique_id: Some("x".into()),
            page_number: Some(1),
            page_size: Some(1),
            start_date: Some(ymd(2026, 1, 1)),
            end_date: Some(ymd(2026, 1, 2)),
            start_range_amount: Some(Decimal::ONE),
            end_range_amount: Some(Decimal::TWO),
        };
        let keys: Vec<String> = serde_json::to_value(&all)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut want = [
            "userId",
            "uniqueId",
            "pageNumber",
            "pageSize",
            "startDate",
            "endDate",
            "startRangeAmount",
            "endRangeAmount",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn loan_status_unknown_round_trips() {
        let s: LoanStatus = serde_json::from_value(json!("RESTRUCTURED")).unwrap();
        assert_eq!(s, LoanStatus::Unknown("RESTRUCTURED".into()));
        assert_eq!(serde_json::to_value(&s).unwrap(), json!("RESTRUCTURED"));
        assert_eq!(
            serde_json::to_value(LoanStatus::DisbursementFailed).unwrap(),
            json!("DISBURSEMENT_FAILED")
        );
    }
}
