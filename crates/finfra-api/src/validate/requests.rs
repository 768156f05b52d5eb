//! Validation of the small request bodies: e-KYC, credit, documents, loans, virtual
//! accounts, and the loan list query.

use rust_decimal::Decimal;

use super::borrower::check_bank_account;
use super::fields::{document_id, money_non_negative, principal, required, unique_id, user_id};
use super::{Checker, Validate, ValidationErrors};
use crate::model::credit::{ClikCreditReportRequest, ScoreReportRequest};
use crate::model::document::{CreateDocument, DocumentPatch};
use crate::model::ekyc::{BiometricRequest, OcrRequest};
use crate::model::loan::{
    CreateBnplLoan, CreateSinglePaymentLoan, InitiateSigning, ListLoansQuery, MAX_PAGE_SIZE,
    RejectLoan, TENOR_RANGE,
};
use crate::model::virtual_account::VirtualAccountRequest;

impl Validate for OcrRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.known("document_type", &self.document_type);
        c.str("file", &self.file, required);
        c.finish()
    }
}

impl Validate for BiometricRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("selfie", &self.selfie, required);
        c.finish()
    }
}

impl Validate for ScoreReportRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("user_id", &self.user_id, user_id);
        c.finish()
    }
}

impl Validate for ClikCreditReportRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("user_id", &self.user_id, user_id);
        c.finish()
    }
}

impl Validate for CreateDocument {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.known("type", &self.r#type);
        // `description` is free text and optional; "" is a valid description.
        c.finish()
    }
}

/// The batch body of `PATCH /api/documents`; paths are `[i].field`.
impl Validate for [DocumentPatch] {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        if self.is_empty() {
            // The body is a bare array: there is no field name to blame.
            c.error("body", "must contain at least one document");
        }
        c.each("", self, |c, patch| {
            c.str("id", &patch.id, document_id);
            c.known("type", &patch.r#type);
        });
        c.finish()
    }
}

/// Interest and fees may be zero; the principal may not.
fn check_non_negative(c: &mut Checker, field: &str, value: &Decimal) {
    c.check(field, money_non_negative(value));
}

impl Validate for CreateSinglePaymentLoan {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("unique_id", &self.unique_id, unique_id);
        c.check("principal_amount", principal(&self.principal_amount));
        check_non_negative(&mut c, "interest_amount", &self.interest_amount);
        if let Some(fee) = &self.fee_amount {
            check_non_negative(&mut c, "fee_amount", fee);
        }
        c.str("purpose", &self.purpose, required);
        c.at("disbursement_account", |c| {
            check_bank_account(c, &self.disbursement_account)
        });
        c.finish()
    }
}

impl Validate for CreateBnplLoan {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("unique_id", &self.unique_id, unique_id);
        c.check("principal_amount", principal(&self.principal_amount));
        if !TENOR_RANGE.contains(&self.tenor) {
            let message = format!(
                "must be between {} and {}",
                TENOR_RANGE.start(),
                TENOR_RANGE.end()
            );
            c.error("tenor", message);
        }
        c.known("frequency", &self.frequency);
        if self.interest_rate.is_sign_negative() && !self.interest_rate.is_zero() {
            c.error("interest_rate", "must not be negative");
        }
        c.opt_str("merchant_name", &self.merchant_name, required);
        c.at("disbursement_account", |c| {
            check_bank_account(c, &self.disbursement_account)
        });
        c.finish()
    }
}

impl Validate for InitiateSigning {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("unique_id", &self.unique_id, unique_id);
        c.finish()
    }
}

impl Validate for RejectLoan {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("reason", &self.reason, required);
        c.finish()
    }
}

impl Validate for VirtualAccountRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.str("loan_unique_id", &self.loan_unique_id, unique_id);
        c.known("bank_code", &self.bank_code);
        c.finish()
    }
}

/// Paths use the query's wire names (`pageSize`), which is what Finfra would report.
impl Validate for ListLoansQuery {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.opt_str("userId", &self.user_id, user_id);
        c.opt_str("uniqueId", &self.unique_id, unique_id);
        if self.page_number == Some(0) {
            c.error("pageNumber", "must be 1 or more");
        }
        if let Some(size) = self.page_size
            && !(1..=MAX_PAGE_SIZE).contains(&size)
        {
            c.error("pageSize", format!("must be between 1 and {MAX_PAGE_SIZE}"));
        }
        if let (Some(start), Some(end)) = (self.start_date, self.end_date)
            && start > end
        {
            c.error("endDate", "must not be before startDate");
        }
        if let Some(v) = &self.start_range_amount {
            check_non_negative(&mut c, "startRangeAmount", v);
        }
        if let Some(v) = &self.end_range_amount {
            check_non_negative(&mut c, "endRangeAmount", v);
        }
        if let (Some(start), Some(end)) = (self.start_range_amount, self.end_range_amount)
            && start > end
        {
            c.error("endRangeAmount", "must not be less than startRangeAmount");
        }
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::common::BankAccount;
    use crate::model::document::DocumentType;
    use crate::model::loan::Frequency;
    use crate::model::test_fixtures::ymd;
    use crate::model::virtual_account::BankCode;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn paths<T: Validate + ?Sized>(body: &T) -> Vec<String> {
        match body.validate() {
            Ok(()) => vec![],
            Err(errs) => errs.errors().iter().map(|e| e.path.clone()).collect(),
        }
    }

    fn account() -> BankAccount {
        BankAccount {
            holder_name: "Budi Santoso".into(),
            number: "123123123213".into(),
            swift_code: "BNINIDJA".into(),
        }
    }

    fn single() -> CreateSinglePaymentLoan {
        CreateSinglePaymentLoan {
            unique_id: "loan-000123".into(),
            principal_amount: d("5000000.00"),
            interest_amount: d("150000"),
            fee_amount: Some(d("0")),
            due_date: ymd(2026, 12, 31),
            purpose: "Working capital".into(),
            disbursement_account: account(),
        }
    }

    fn bnpl() -> CreateBnplLoan {
        CreateBnplLoan {
            unique_id: "bnpl_0001".into(),
            principal_amount: d("3000000"),
            tenor: 6,
            frequency: Frequency::Monthly,
            interest_rate: d("0.0175"),
            first_due_date: ymd(2026, 1, 31),
            merchant_name: None,
            disbursement_account: account(),
        }
    }

    #[test]
    fn single_payment_loan() {
        assert!(paths(&single()).is_empty());
        let mut loan = single();
        loan.unique_id = "abc".into();
        loan.principal_amount = d("99999");
        loan.interest_amount = d("-1");
        loan.fee_amount = Some(d("0.001"));
        loan.purpose = String::new();
        loan.disbursement_account.swift_code = "BNI".into();
        assert_eq!(
            paths(&loan),
            [
                "unique_id",
                "principal_amount",
                "interest_amount",
                "fee_amount",
                "purpose",
                "disbursement_account.swift_code"
            ]
        );
        loan = single();
        loan.principal_amount = d("2000000000.01");
        assert_eq!(paths(&loan), ["principal_amount"]);
        loan.principal_amount = d("100000.001");
        assert_eq!(
            loan.validate().unwrap_err().to_string(),
            "principal_amount: must have at most 2 decimal places"
        );
    }

    #[test]
    fn bnpl_loan() {
        assert!(paths(&bnpl()).is_empty());
        let mut loan = bnpl();
        loan.tenor = 37;
        loan.frequency = Frequency::Unknown("DAILY".into());
        loan.interest_rate = d("-0.01");
        loan.merchant_name = Some(" ".into());
        assert_eq!(
            paths(&loan),
            ["tenor", "frequency", "interest_rate", "merchant_name"]
        );
        loan.tenor = 0;
        assert_eq!(
            loan.validate().unwrap_err().errors()[0].message,
            "must be between 1 and 36"
        );
        let mut loan = bnpl();
        loan.tenor = 36;
        loan.interest_rate = Decimal::ZERO;
        assert!(paths(&loan).is_empty());
    }

    #[test]
    fn small_bodies() {
        assert!(
            paths(&InitiateSigning {
                unique_id: "loan-000123".into()
            })
            .is_empty()
        );
        assert_eq!(
            paths(&InitiateSigning {
                unique_id: "loan 1".into()
            }),
            ["unique_id"]
        );
        assert!(
            paths(&RejectLoan {
                reason: "duplicate application".into()
            })
            .is_empty()
        );
        assert_eq!(
            paths(&RejectLoan {
                reason: String::new()
            }),
            ["reason"]
        );
        assert!(
            paths(&VirtualAccountRequest {
                loan_unique_id: "loan-000123".into(),
                bank_code: BankCode::Bca
            })
            .is_empty()
        );
        assert_eq!(
            paths(&VirtualAccountRequest {
                loan_unique_id: "x".into(),
                bank_code: BankCode::Unknown("BSI".into())
            }),
            ["loan_unique_id", "bank_code"]
        );
        assert!(
            paths(&ScoreReportRequest {
                user_id: "6a41ff87dda4eefd0b7b0300".into()
            })
            .is_empty()
        );
        assert_eq!(
            paths(&ClikCreditReportRequest {
                user_id: "nope".into()
            }),
            ["user_id"]
        );
        assert!(
            paths(&OcrRequest {
                document_type: DocumentType::Ktp,
                file: "x".into()
            })
            .is_empty()
        );
        assert_eq!(
            paths(&OcrRequest {
                document_type: DocumentType::Unknown("PASSPORT".into()),
                file: String::new()
            }),
            ["document_type", "file"]
        );
        assert_eq!(
            paths(&BiometricRequest {
                selfie: String::new()
            }),
            ["selfie"]
        );
        assert!(
            paths(&CreateDocument {
                r#type: DocumentType::Selfie,
                description: Some(String::new())
            })
            .is_empty()
        );
        assert_eq!(
            paths(&CreateDocument {
                r#type: DocumentType::Unknown("X".into()),
                description: None
            }),
            ["type"]
        );
    }

    #[test]
    fn document_patches() {
        let good = DocumentPatch {
            id: "doc_01j4abc".into(),
            r#type: DocumentType::Ktp,
            description: None,
        };
        let bad = DocumentPatch {
            id: "doc1".into(),
            r#type: DocumentType::Unknown("X".into()),
            description: None,
        };
        assert!(paths(&[good.clone()][..]).is_empty());
        let batch = vec![good, bad];
        assert_eq!(paths(batch.as_slice()), ["[1].id", "[1].type"]);
        // Method syntax works on a Vec through deref.
        assert!(batch.validate().is_err());
        let empty: Vec<DocumentPatch> = vec![];
        assert_eq!(paths(empty.as_slice()), ["body"]);
    }

    #[test]
    fn list_query() {
        assert!(paths(&ListLoansQuery::default()).is_empty());
        let good = ListLoansQuery {
            page_number: Some(1),
            page_size: Some(100),
            start_date: Some(ymd(2026, 1, 1)),
            end_date: Some(ymd(2026, 1, 1)),
            start_range_amount: Some(d("0")),
            end_range_amount: Some(d("100000")),
            ..Default::default()
        };
        assert!(paths(&good).is_empty());
        let bad = ListLoansQuery {
            user_id: Some("X".into()),
            unique_id: Some("abc".into()),
            page_number: Some(0),
            page_size: Some(101),
            start_date: Some(ymd(2026, 1, 2)),
            end_date: Some(ymd(2026, 1, 1)),
            start_range_amount: Some(d("5")),
            end_range_amount: Some(d("4.999")),
        };
        assert_eq!(
            paths(&bad),
            [
                "userId",
                "uniqueId",
                "pageNumber",
                "pageSize",
                "endDate",
                "endRangeAmount",
                "endRangeAmount"
            ]
        );
        let zero = ListLoansQuery {
            page_size: Some(0),
            ..Default::default()
        };
        assert_eq!(paths(&zero), ["pageSize"]);
    }
}
