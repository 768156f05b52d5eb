//! Repayment (CONTRACT §5, §7): virtual accounts, payments into them applied to the
//! installments in order, and `loan_paid` when nothing is left. Also the loan list.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::loans::{LoanStatus, VirtualAccount};
use super::{State, Transition, money};
use crate::callbacks::{VaPayment, va_payment_callback};
use crate::error::{ApiError, ApiResult, SandboxError};
use crate::ledger::bump;

/// Account number prefixes per bank, as Xendit's look.
fn bank_prefix(bank_code: &str) -> &'static str {
    match bank_code {
        "BCA" => "10766",
        "BNI" => "8808",
        "BRI" => "26215",
        "MANDIRI" => "88908",
        _ => "8214",
    }
}

/// Filters of `GET /api/core/loans`, parsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoanFilter {
    pub user_id: Option<String>,
    pub unique_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub min_amount: Option<Decimal>,
    pub max_amount: Option<Decimal>,
    /// 1-based.
    pub page_number: usize,
    pub page_size: usize,
}

impl State {
    /// `POST /api/core/virtual-account/request` (CONTRACT §5): a loan not `DISBURSED` gets
    /// `400` naming its status, whether or not it has an account (a `PAID` loan has one: the
    /// request is a repeat, counted in the ledger); a `DISBURSED` loan gets its one account,
    /// the same however often it is asked for and whatever the `bank_code`.
    ///
    /// A `+paynow` borrower pays the whole loan into the new account before this returns, so
    /// the loan is `PAID` by the time the answer leaves (or is lost to an ambiguous fault).
    pub fn request_virtual_account(
        &mut self,
        unique_id: &str,
        bank_code: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let loan = self.loan(unique_id)?;
        let status = loan.status;
        if status != LoanStatus::Disbursed {
            if status == LoanStatus::Paid {
                bump(
                    &mut self.ledger.virtual_account_requests_after_paid,
                    unique_id,
                );
            }
            return Err(ApiError::bad_request(format!(
                "Loan is {}, not DISBURSED",
                status.as_str()
            )));
        }
        if let Some(va) = &loan.virtual_account {
            return Ok(loan.render_va(va));
        }
        let expected = loan.outstanding();
        let borrower = self.borrowers.get(&loan.user_id);
        let name = borrower
            .map(|b| b.input.full_name.to_uppercase())
            .unwrap_or_default();
        let pays_now = borrower.is_some_and(|b| b.tags().paynow);
        let external_id = format!("va-{}", self.hex(20));
        let account_number = format!("{}{}", bank_prefix(bank_code), self.digits(10));
        let va = VirtualAccount {
            external_id: external_id.clone(),
            bank_code: bank_code.to_owned(),
            account_number,
            name,
            expected_amount: expected,
            expiration_date: now + Duration::from_secs(365 * 24 * 3600),
        };
        self.va_index
            .insert(external_id.clone(), unique_id.to_owned());
        let loan = self.loan_mut(unique_id)?;
        let rendered = loan.render_va(&va);
        loan.virtual_account = Some(va);
        if pays_now {
            // Nothing is paid before the account exists, so this is the whole loan; it
            // cannot fail on a DISBURSED loan that has just got its account.
            if let Err(e) = self.pay_virtual_account(&external_id, expected, now) {
                tracing::warn!(loan = unique_id, error.message = %e, "+paynow payment refused");
            }
        }
        // Does nothing once paid.
        self.start_auto_repay(unique_id);
        Ok(rendered)
    }

    /// Starts the simulated borrower's repayments (`Timing::auto_repay`) once the loan is
    /// `DISBURSED` and has a virtual account: called when either becomes true, it acts once
    /// per loan.
    pub(super) fn start_auto_repay(&mut self, unique_id: &str) {
        let Some(every) = self.config.timing.auto_repay else {
            return;
        };
        let Some(loan) = self.loans.get_mut(unique_id) else {
            return;
        };
        if loan.auto_repaying
            || loan.status != LoanStatus::Disbursed
            || loan.virtual_account.is_none()
        {
            return;
        }
        loan.auto_repaying = true;
        self.later(
            every,
            Transition::Repay {
                unique_id: unique_id.to_owned(),
            },
        );
    }

    /// One payment of the simulated borrower: what is left of the first installment not
    /// fully paid, through [`State::pay_virtual_account`] like any other payment (webhook,
    /// `loan_paid` after the last); the next one `auto_repay` later while anything is left.
    /// A loan that is no longer `DISBURSED` (paid off by other payments meanwhile) stops it.
    pub(super) fn auto_repay(&mut self, unique_id: &str, now: DateTime<Utc>) {
        let Some(loan) = self.loans.get(unique_id) else {
            return;
        };
        let (Some(va), LoanStatus::Disbursed) = (&loan.virtual_account, loan.status) else {
            return;
        };
        let Some(amount) = loan
            .schedule
            .iter()
            .map(|i| i.plan.total - i.paid)
            .find(|left| *left > Decimal::ZERO)
        else {
            return;
        };
        let external_id = va.external_id.clone();
        if let Err(e) = self.pay_virtual_account(&external_id, amount, now) {
            // Only a loan that changed under it fails here, and then there is nothing to pay.
            tracing::debug!(loan = unique_id, error.message = %e, "auto-repay stopped");
            return;
        }
        let more = self
            .loans
            .get(unique_id)
            .is_some_and(|l| l.status == LoanStatus::Disbursed);
        if let (true, Some(every)) = (more, self.config.timing.auto_repay) {
            self.later(
                every,
                Transition::Repay {
                    unique_id: unique_id.to_owned(),
                },
            );
        }
    }

    /// A borrower pays `amount` into a virtual account (control API): applied to the
    /// installments in order, announced by the virtual-account webhook, and by `loan_paid`
    /// (`bnpl_paid`) when the loan is fully repaid.
    pub fn pay_virtual_account(
        &mut self,
        external_id: &str,
        amount: Decimal,
        now: DateTime<Utc>,
    ) -> Result<Value, SandboxError> {
        let unique_id = self.va_index.get(external_id).cloned().ok_or_else(|| {
            SandboxError::NotFound(format!("Virtual account {external_id} not found"))
        })?;
        if amount <= Decimal::ZERO || amount.scale() > 2 {
            return Err(SandboxError::Invalid(
                "amount must be positive with at most 2 decimals".into(),
            ));
        }
        let payment_id = format!("pay-{}", self.hex(20));
        let loan = self
            .loans
            .get_mut(&unique_id)
            .ok_or_else(|| SandboxError::NotFound(format!("Loan {unique_id} not found")))?;
        if loan.status != LoanStatus::Disbursed {
            return Err(SandboxError::Conflict(format!(
                "Loan is {}, payments need DISBURSED",
                loan.status.as_str()
            )));
        }
        if amount > loan.outstanding() {
            return Err(SandboxError::Invalid(format!(
                "amount {} exceeds the outstanding {}",
                money(amount),
                money(loan.outstanding())
            )));
        }
        let va = loan
            .virtual_account
            .clone()
            .ok_or_else(|| SandboxError::Conflict("Loan has no virtual account".into()))?;
        let mut left = amount;
        for installment in &mut loan.schedule {
            let due = installment.plan.total - installment.paid;
            let applied = due.min(left);
            installment.paid += applied;
            left -= applied;
            if left.is_zero() {
                break;
            }
        }
        let paid_off = loan.outstanding().is_zero();
        if paid_off {
            loan.status = LoanStatus::Paid;
        }
        let outstanding = loan.outstanding();
        bump(&mut self.ledger.payments_applied, &unique_id);
        let n = va_payment_callback(
            VaPayment {
                payment_id: &payment_id,
                external_id,
                account_number: &va.account_number,
                bank_code: &va.bank_code,
                amount: &money(amount),
            },
            now,
        );
        self.notify(n);
        if paid_off {
            self.loan_event(&unique_id, "paid", Map::new(), now);
        }
        Ok(json!({
            "payment_id": payment_id,
            "external_id": external_id,
            "loan_unique_id": unique_id,
            "amount": money(amount),
            "outstanding_amount": money(outstanding),
            "loan_status": if paid_off { "PAID" } else { "DISBURSED" },
        }))
    }

    /// `GET /api/core/loans`: filtered, in creation order, one page.
    pub fn list_loans(&self, f: &LoanFilter) -> Value {
        let matching: Vec<&super::Loan> = self
            .loans
            .iter()
            .filter(|l| f.user_id.as_ref().is_none_or(|u| &l.user_id == u))
            .filter(|l| f.unique_id.as_ref().is_none_or(|u| &l.unique_id == u))
            .filter(|l| f.from.is_none_or(|t| l.created_at >= t))
            .filter(|l| f.until.is_none_or(|t| l.created_at < t))
            .filter(|l| f.min_amount.is_none_or(|a| l.principal >= a))
            .filter(|l| f.max_amount.is_none_or(|a| l.principal <= a))
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip((f.page_number - 1).saturating_mul(f.page_size))
            .take(f.page_size)
            .map(|l| l.render())
            .collect();
        json!({
            "data": page,
            "page_number": f.page_number,
            "page_size": f.page_size,
            "total_items": matching.len(),
        })
    }
}
