//! Loans (CONTRACT §5): creation with amounts and schedule, signing, disbursement, rejection.
//! Repayment lives in `repayment.rs`.
//!
//! ```text
//! PENDING --signing/initiate--> SIGNING --(borrower signs, async)--> SIGNED
//! SIGNED --disbursement--> DISBURSING --(bank, async)--> DISBURSED --(fully repaid)--> PAID
//! DISBURSING --(bank refuses)--> DISBURSEMENT_FAILED --disbursement--> DISBURSING
//! PENDING | SIGNING | SIGNED --reject--> REJECTED
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::schedule::{self, Planned};
use super::{BorrowerStatus, State, Transition, money, timestamp};
use crate::callbacks::{StatusEvent, status_callback};
use crate::error::{ApiError, ApiResult, SandboxError};
use crate::ledger::bump;
use crate::magic;
use crate::validate::loan::{AccountInput, BnplInput, SingleLoanInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoanKind {
    SinglePayment,
    Bnpl,
}

impl LoanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanKind::SinglePayment => "SINGLE_PAYMENT",
            LoanKind::Bnpl => "BNPL",
        }
    }

    /// Callback title: CONTRACT §7, `loan_` titles arrive as `bnpl_` for BNPL loans.
    pub fn title(self, event: &str) -> String {
        match self {
            LoanKind::SinglePayment => format!("loan_{event}"),
            LoanKind::Bnpl => format!("bnpl_{event}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoanStatus {
    Pending,
    Signing,
    Signed,
    Disbursing,
    Disbursed,
    DisbursementFailed,
    Paid,
    Rejected,
}

impl LoanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanStatus::Pending => "PENDING",
            LoanStatus::Signing => "SIGNING",
            LoanStatus::Signed => "SIGNED",
            LoanStatus::Disbursing => "DISBURSING",
            LoanStatus::Disbursed => "DISBURSED",
            LoanStatus::DisbursementFailed => "DISBURSEMENT_FAILED",
            LoanStatus::Paid => "PAID",
            LoanStatus::Rejected => "REJECTED",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Signing {
    pub url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub signed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Disbursement {
    /// `PENDING`, `DISBURSING`, `DISBURSED` or `FAILED`.
    pub status: &'static str,
    pub reference: Option<String>,
    pub disbursed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct VirtualAccount {
    pub external_id: String,
    pub bank_code: String,
    pub account_number: String,
    pub name: String,
    pub expected_amount: Decimal,
    pub expiration_date: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Installment {
    pub plan: Planned,
    pub paid: Decimal,
}

impl Installment {
    pub fn status(&self) -> &'static str {
        if self.paid >= self.plan.total {
            "PAID"
        } else if self.paid > Decimal::ZERO {
            "PARTIAL"
        } else {
            "UNPAID"
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Loan {
    pub unique_id: String,
    pub user_id: String,
    pub kind: LoanKind,
    pub status: LoanStatus,
    pub principal: Decimal,
    pub interest: Decimal,
    pub fee: Decimal,
    pub created_at: DateTime<Utc>,
    pub signing: Signing,
    pub disbursement: Disbursement,
    pub virtual_account: Option<VirtualAccount>,
    pub schedule: Vec<Installment>,
    pub account: AccountInput,
    /// The simulated borrower (`Timing::auto_repay`) has started paying this loan.
    pub auto_repaying: bool,
}

impl Loan {
    pub fn total(&self) -> Decimal {
        self.principal + self.interest + self.fee
    }

    pub fn paid(&self) -> Decimal {
        self.schedule.iter().map(|i| i.paid).sum()
    }

    pub fn outstanding(&self) -> Decimal {
        self.total() - self.paid()
    }

    /// The loan object of CONTRACT §5.
    pub fn render(&self) -> Value {
        let signing_status = match (self.signing.signed_at, &self.signing.url) {
            (Some(_), _) => "SIGNED",
            (None, Some(_)) => "SIGNING",
            (None, None) => "PENDING",
        };
        json!({
            "unique_id": self.unique_id,
            "user_id": self.user_id,
            "type": self.kind.as_str(),
            "status": self.status.as_str(),
            "principal_amount": money(self.principal),
            "interest_amount": money(self.interest),
            "fee_amount": money(self.fee),
            "total_amount": money(self.total()),
            "currency": "IDR",
            "created_at": timestamp(self.created_at),
            "signing": {
                "status": signing_status,
                "signing_url": self.signing.url,
                "signed_at": self.signing.signed_at.map(timestamp),
            },
            "disbursement": {
                "status": self.disbursement.status,
                "reference": self.disbursement.reference,
                "disbursed_at": self.disbursement.disbursed_at.map(timestamp),
                "failure_reason": self.disbursement.failure_reason,
            },
            "virtual_account": self.virtual_account.as_ref().map(|va| self.render_va(va)),
            "schedule": self.schedule.iter().map(|i| json!({
                "sequence": i.plan.sequence,
                "due_date": i.plan.due_date.to_string(),
                "principal": money(i.plan.principal),
                "interest": money(i.plan.interest),
                "total": money(i.plan.total),
                "paid_amount": money(i.paid),
                "status": i.status(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The virtual-account object, as `POST /api/core/virtual-account/request` answers it.
    pub fn render_va(&self, va: &VirtualAccount) -> Value {
        json!({
            "external_id": va.external_id,
            "loan_unique_id": self.unique_id,
            "bank_code": va.bank_code,
            "account_number": va.account_number,
            "name": va.name,
            "expected_amount": money(va.expected_amount),
            "expiration_date": timestamp(va.expiration_date),
        })
    }
}

fn not_found(unique_id: &str) -> ApiError {
    ApiError::not_found(format!("Loan {unique_id} not found"))
}

impl State {
    pub fn loan(&self, unique_id: &str) -> ApiResult<&Loan> {
        self.loans
            .get(unique_id)
            .ok_or_else(|| not_found(unique_id))
    }

    pub(super) fn loan_mut(&mut self, unique_id: &str) -> ApiResult<&mut Loan> {
        self.loans
            .get_mut(unique_id)
            .ok_or_else(|| not_found(unique_id))
    }

    /// A loan status callback (`loan_*` or `bnpl_*`).
    pub(super) fn loan_event(
        &mut self,
        unique_id: &str,
        event: &str,
        data: Map<String, Value>,
        now: DateTime<Utc>,
    ) {
        let Some(loan) = self.loans.get(unique_id) else {
            return;
        };
        let n = status_callback(
            StatusEvent {
                title: loan.kind.title(event),
                user_id: &loan.user_id,
                loan_unique_id: Some(&loan.unique_id),
                status: loan.status.as_str(),
                data,
                ..StatusEvent::default()
            },
            now,
        );
        self.notify(n);
    }

    /// Checks shared by both create endpoints, in the order a client can act on: the
    /// borrower exists (`404`), the `unique_id` is new (`409`, which makes a retried create
    /// recognisable even if the borrower changed since), the borrower is `APPROVED` (`400`).
    fn check_new_loan(&self, user_id: &str, unique_id: &str) -> ApiResult<()> {
        let borrower = self.borrower(user_id)?;
        if self.loans.contains(unique_id) {
            return Err(ApiError::conflict(format!(
                "Loan with unique_id {unique_id} already exists"
            )));
        }
        if borrower.status != BorrowerStatus::Approved {
            return Err(ApiError::bad_request("Borrower is not approved"));
        }
        Ok(())
    }

    fn insert_loan(&mut self, loan: Loan, now: DateTime<Utc>) -> Value {
        let id = loan.unique_id.clone();
        let rendered = loan.render();
        bump(&mut self.ledger.loans_created, &id);
        self.loans.insert(id.clone(), loan);
        self.loan_event(&id, "created", Map::new(), now);
        rendered
    }

    fn new_loan(
        user_id: &str,
        unique_id: String,
        kind: LoanKind,
        (principal, interest, fee): (Decimal, Decimal, Decimal),
        plan: Vec<Planned>,
        account: AccountInput,
        now: DateTime<Utc>,
    ) -> Loan {
        Loan {
            unique_id,
            user_id: user_id.to_owned(),
            kind,
            status: LoanStatus::Pending,
            principal,
            interest,
            fee,
            created_at: now,
            signing: Signing::default(),
            disbursement: Disbursement {
                status: "PENDING",
                ..Disbursement::default()
            },
            virtual_account: None,
            schedule: plan
                .into_iter()
                .map(|plan| Installment {
                    plan,
                    paid: Decimal::ZERO,
                })
                .collect(),
            account,
            auto_repaying: false,
        }
    }

    /// `POST /api/core/loans/{userId}`.
    pub fn create_single_loan(
        &mut self,
        user_id: &str,
        input: SingleLoanInput,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        self.check_new_loan(user_id, &input.unique_id)?;
        let plan = schedule::single(input.principal, input.interest, input.fee, input.due_date);
        let loan = Self::new_loan(
            user_id,
            input.unique_id,
            LoanKind::SinglePayment,
            (input.principal, input.interest, input.fee),
            plan,
            input.account,
            now,
        );
        Ok(self.insert_loan(loan, now))
    }

    /// `POST /api/core/loans/{userId}/bnpl`.
    pub fn create_bnpl_loan(
        &mut self,
        user_id: &str,
        input: BnplInput,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        self.check_new_loan(user_id, &input.unique_id)?;
        let (interest, plan) = schedule::bnpl(
            input.principal,
            input.rate,
            input.tenor,
            input.frequency,
            input.first_due_date,
        )
        .ok_or_else(|| {
            ApiError::bad_request("Validation failed: first_due_date is too far in the future")
        })?;
        let loan = Self::new_loan(
            user_id,
            input.unique_id,
            LoanKind::Bnpl,
            (input.principal, interest, Decimal::ZERO),
            plan,
            input.account,
            now,
        );
        Ok(self.insert_loan(loan, now))
    }

    /// `POST /api/core/loans/signing/initiate`.
    pub fn initiate_signing(&mut self, unique_id: &str, now: DateTime<Utc>) -> ApiResult<Value> {
        let url = format!(
            "{}/_sandbox/loans/{unique_id}/sign",
            self.base_url.as_str().trim_end_matches('/')
        );
        let auto_sign = self.config.timing.auto_sign;
        let loan = self.loan_mut(unique_id)?;
        match loan.status {
            LoanStatus::Pending => {
                loan.status = LoanStatus::Signing;
                loan.signing.url = Some(url);
                loan.signing.expires_at = Some(now + Duration::from_secs(24 * 3600));
                if let Some(delay) = auto_sign {
                    self.later(
                        delay,
                        Transition::Signed {
                            unique_id: unique_id.to_owned(),
                        },
                    );
                }
            }
            // Asking again while SIGNING returns the same session.
            LoanStatus::Signing => {}
            LoanStatus::Rejected => return Err(ApiError::conflict("Loan is rejected")),
            _ => return Err(ApiError::conflict("Loan agreement is already signed")),
        }
        let loan = self.loan(unique_id)?;
        Ok(json!({
            "unique_id": unique_id,
            "status": "SIGNING",
            "signing_url": loan.signing.url,
            "expires_at": loan.signing.expires_at.map(timestamp),
        }))
    }

    /// The borrower signs (control API, or auto-sign).
    pub fn sign_loan(&mut self, unique_id: &str, now: DateTime<Utc>) -> Result<(), SandboxError> {
        let loan = self
            .loans
            .get_mut(unique_id)
            .ok_or_else(|| SandboxError::NotFound(format!("Loan {unique_id} not found")))?;
        match loan.status {
            LoanStatus::Signing => {
                loan.status = LoanStatus::Signed;
                loan.signing.signed_at = Some(now);
                self.loan_event(unique_id, "signed", Map::new(), now);
                Ok(())
            }
            LoanStatus::Pending => Err(SandboxError::Conflict(
                "Signing has not been initiated for this loan".into(),
            )),
            LoanStatus::Rejected => Err(SandboxError::Conflict("Loan is rejected".into())),
            _ => Err(SandboxError::Conflict("Loan is already signed".into())),
        }
    }

    /// `POST /api/core/loans/{loanUniqueId}/disbursement`: irreversible, money leaves once per
    /// `200`.
    pub fn disburse(&mut self, unique_id: &str) -> ApiResult<Value> {
        let reference = format!("DISB-{}", self.hex(16).to_uppercase());
        let auto = self.config.timing.auto_disburse;
        let loan = self.loan_mut(unique_id)?;
        match loan.status {
            LoanStatus::Pending | LoanStatus::Signing => {
                return Err(ApiError::bad_request("Loan agreement is not signed"));
            }
            LoanStatus::Disbursing | LoanStatus::Disbursed | LoanStatus::Paid => {
                let status = loan.status.as_str();
                bump(&mut self.ledger.disbursement_conflicts, unique_id);
                return Err(ApiError::conflict(format!("Loan is already {status}")));
            }
            LoanStatus::Rejected => return Err(ApiError::conflict("Loan is rejected")),
            LoanStatus::Signed | LoanStatus::DisbursementFailed => {}
        }
        loan.status = LoanStatus::Disbursing;
        loan.disbursement = Disbursement {
            status: "DISBURSING",
            reference: Some(reference.clone()),
            disbursed_at: None,
            failure_reason: None,
        };
        let refused = magic::bank_refuses(&loan.account.number);
        bump(&mut self.ledger.disbursements_accepted, unique_id);
        // A refusing bank answers on its own; a paying one only with auto-disburse on.
        let settle = if refused {
            Some((
                auto.unwrap_or(Duration::ZERO),
                Some(magic::BANK_REFUSAL_REASON.to_owned()),
            ))
        } else {
            auto.map(|d| (d, None))
        };
        if let Some((delay, refused)) = settle {
            self.later(
                delay,
                Transition::Settled {
                    unique_id: unique_id.to_owned(),
                    reference: reference.clone(),
                    refused,
                },
            );
        }
        Ok(json!({"unique_id": unique_id, "status": "DISBURSING", "reference": reference}))
    }

    /// The bank's answer to the disbursement with `reference`; stale answers (the loan moved
    /// on, or a newer disbursement replaced it) are ignored.
    pub(super) fn settle(
        &mut self,
        unique_id: &str,
        reference: &str,
        refused: Option<String>,
        now: DateTime<Utc>,
    ) {
        let current = self.loans.get(unique_id).is_some_and(|l| {
            l.status == LoanStatus::Disbursing
                && l.disbursement.reference.as_deref() == Some(reference)
        });
        if !current {
            return;
        }
        // Both only fail when the loan is not DISBURSING, which was just checked.
        let _ = match refused {
            Some(reason) => self.fail_disbursement(unique_id, &reason, now),
            None => self.complete_disbursement(unique_id, now),
        };
    }

    /// The bank pays out: `DISBURSING` → `DISBURSED`.
    pub fn complete_disbursement(
        &mut self,
        unique_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SandboxError> {
        let loan = self.disbursing(unique_id)?;
        loan.status = LoanStatus::Disbursed;
        loan.disbursement.status = "DISBURSED";
        loan.disbursement.disbursed_at = Some(now);
        let reference = loan.disbursement.reference.clone();
        let data = [("reference".to_owned(), json!(reference))];
        self.loan_event(unique_id, "disbursed", data.into_iter().collect(), now);
        self.start_auto_repay(unique_id);
        Ok(())
    }

    /// The bank refuses: `DISBURSING` → `DISBURSEMENT_FAILED`.
    pub fn fail_disbursement(
        &mut self,
        unique_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SandboxError> {
        let loan = self.disbursing(unique_id)?;
        loan.status = LoanStatus::DisbursementFailed;
        loan.disbursement.status = "FAILED";
        loan.disbursement.failure_reason = Some(reason.to_owned());
        let reference = loan.disbursement.reference.clone();
        let data = [
            ("reason".to_owned(), json!(reason)),
            ("reference".to_owned(), json!(reference)),
        ];
        self.loan_event(
            unique_id,
            "disbursement_failed",
            data.into_iter().collect(),
            now,
        );
        Ok(())
    }

    fn disbursing(&mut self, unique_id: &str) -> Result<&mut Loan, SandboxError> {
        let loan = self
            .loans
            .get_mut(unique_id)
            .ok_or_else(|| SandboxError::NotFound(format!("Loan {unique_id} not found")))?;
        if loan.status == LoanStatus::Disbursing {
            Ok(loan)
        } else {
            Err(SandboxError::Conflict(format!(
                "Loan is {}, not DISBURSING",
                loan.status.as_str()
            )))
        }
    }

    /// `POST /api/core/loans/{loanUniqueId}/reject`.
    pub fn reject_loan(
        &mut self,
        unique_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let loan = self.loan_mut(unique_id)?;
        match loan.status {
            LoanStatus::Pending | LoanStatus::Signing | LoanStatus::Signed => {}
            LoanStatus::Rejected => return Err(ApiError::conflict("Loan is already rejected")),
            _ => {
                return Err(ApiError::conflict(
                    "Loan cannot be rejected once disbursement has started",
                ));
            }
        }
        loan.status = LoanStatus::Rejected;
        let data = [("reason".to_owned(), json!(reason))];
        self.loan_event(unique_id, "rejected", data.into_iter().collect(), now);
        Ok(self.loan(unique_id)?.render())
    }
}
