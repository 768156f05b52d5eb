//! What the workflow knows about the loan: `$.loan` in the stored context, and the facts
//! the summary gives SQL.
//!
//! Everything Finfra says, whichever way it comes (an answer, a poll, a callback in any
//! order, more than once), is recorded here as a fact, once; the route (`flow`) then asks
//! what the facts allow. So a duplicate changes nothing, a `loan_disbursed` that overtakes
//! `loan_signed` still proves the loan was signed, and a payment is applied once.
//!
//! Repayments are applied in order, installment by installment (partial, then paid), the
//! way Finfra applies them. Two lower bounds of what was paid are kept: the payments
//! finflow saw (deduplicated on the payment `id`) and the most Finfra's loan detail ever
//! showed as paid (which also counts payments whose callback was lost). What is paid is the
//! larger: never a payment counted twice, never one missed once Finfra shows it.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use finfra_api::callback::{LoanEvent, StatusCallback, VirtualAccountPayment};
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::loan::{DisbursementStatus, Loan, LoanStatus, LoanType, SigningStatus};
use finfra_api::model::virtual_account::{BankCode, VirtualAccount};

use crate::ids::{LoanUniqueId, UserId};

/// Where a fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A callback.
    Callback,
    /// A poll while a callback was late, or a reconcile read.
    Read,
    /// The answer to one of our requests.
    Response,
}

/// A loan status the workflow saw, once each, in the order seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReached {
    /// The status.
    pub status: LoanStatus,
    /// When the workflow learnt it.
    pub at: DateTime<Utc>,
    /// How.
    pub source: Source,
}

/// One installment as Finfra scheduled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedInstallment {
    /// 1-based.
    pub sequence: u32,
    /// When due.
    pub due_date: NaiveDate,
    /// Principal, interest (and fee) due.
    pub total: Decimal,
}

/// The borrower's signing session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningFacts {
    /// Where the borrower signs (for the lender's app to send them to).
    pub signing_url: Option<String>,
    /// When the session expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A disbursement the bank refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisbursementFailure {
    /// Its reference, when known.
    pub reference: Option<String>,
    /// The bank's reason.
    pub reason: String,
    /// When the workflow learnt it.
    pub at: DateTime<Utc>,
}

/// The money-moving part of the loan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisbursementFacts {
    /// A disbursement request was sent, or may have been: from here on a cancel is refused.
    pub requested: bool,
    /// The reference of the latest disbursement Finfra accepted.
    pub reference: Option<String>,
    /// Its status: `DISBURSING`, `DISBURSED` or `FAILED`.
    pub status: Option<DisbursementStatus>,
    /// When the bank paid out.
    pub disbursed_at: Option<DateTime<Utc>>,
    /// Each disbursement the bank refused, oldest first.
    pub failures: Vec<DisbursementFailure>,
}

impl DisbursementFacts {
    /// Whether `reference` names a disbursement already known to have been refused.
    #[must_use]
    pub fn is_failed_reference(&self, reference: Option<&str>) -> bool {
        reference.is_some_and(|r| {
            self.failures
                .iter()
                .any(|f| f.reference.as_deref() == Some(r))
        })
    }

    /// Finfra accepted a disbursement (`200`, or a read showing `DISBURSING`); news?
    fn accepted(&mut self, reference: Option<String>) -> bool {
        if self.is_failed_reference(reference.as_deref())
            || self.status == Some(DisbursementStatus::Disbursed)
        {
            return false;
        }
        let same = self.status == Some(DisbursementStatus::Disbursing)
            && (reference.is_none() || reference == self.reference);
        if same {
            return false;
        }
        if reference.is_some() || self.status == Some(DisbursementStatus::Failed) {
            self.reference = reference;
        }
        self.status = Some(DisbursementStatus::Disbursing);
        true
    }

    /// The bank paid out; news?
    fn disbursed(&mut self, reference: Option<String>, at: DateTime<Utc>) -> bool {
        if self.status == Some(DisbursementStatus::Disbursed) {
            return false;
        }
        if reference.is_some() {
            self.reference = reference;
        }
        self.status = Some(DisbursementStatus::Disbursed);
        self.disbursed_at = Some(at);
        true
    }

    /// The bank refused a disbursement; news? A refusal of an older disbursement than the
    /// current one is kept as history without touching the current one.
    fn failed(&mut self, reference: Option<String>, reason: String, at: DateTime<Utc>) -> bool {
        if self.status == Some(DisbursementStatus::Disbursed)
            || self.is_failed_reference(reference.as_deref())
        {
            return false;
        }
        let current = match (&reference, &self.reference) {
            (Some(r), Some(cur)) => r == cur,
            _ => true,
        };
        if current && self.status == Some(DisbursementStatus::Failed) && reference.is_none() {
            return false;
        }
        self.failures.push(DisbursementFailure {
            reference: reference.clone().or_else(|| self.reference.clone()),
            reason,
            at,
        });
        if current {
            self.status = Some(DisbursementStatus::Failed);
        }
        true
    }
}

/// The repayment virtual account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAccountFacts {
    /// Payment callbacks carry it.
    pub external_id: String,
    /// What the borrower pays into.
    pub account_number: String,
    /// Its bank.
    pub bank_code: BankCode,
    /// What Finfra expects in total.
    pub expected_amount: Decimal,
}

/// A repayment applied, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentApplied {
    /// The payment callback's `id`: the dedupe key.
    pub id: String,
    /// How much.
    pub amount: Decimal,
    /// When the borrower paid.
    pub paid_at: DateTime<Utc>,
}

/// An installment that was unpaid past its due date and the grace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueInstallment {
    /// Which.
    pub sequence: u32,
    /// When it was due.
    pub due_date: NaiveDate,
    /// When the workflow found it overdue.
    pub flagged_at: DateTime<Utc>,
    /// What was still owed on it then.
    pub outstanding: Decimal,
    /// When it was paid in full afterwards.
    pub cured_at: Option<DateTime<Utc>>,
}

/// Repayments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repayment {
    /// Every payment seen, in the order applied.
    pub payments: Vec<PaymentApplied>,
    /// The most Finfra's loan detail showed as paid.
    pub finfra_paid: Decimal,
    /// Installments found overdue, in the order found.
    pub overdue: Vec<OverdueInstallment>,
}

/// What the workflow knows about the borrower and the loan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoanRecord {
    /// The loan's `unique_id`, chosen at start.
    pub unique_id: LoanUniqueId,
    /// `SINGLE_PAYMENT` or `BNPL`.
    pub r#type: LoanType,
    /// The borrower, once known.
    pub user_id: Option<UserId>,
    /// The borrower's status when last read.
    pub borrower_status: Option<BorrowerStatus>,
    /// Whether Finfra has the loan (created, or found).
    pub created: bool,
    /// Every loan status seen.
    pub statuses: Vec<StatusReached>,
    /// What the borrower owes in total.
    pub total_amount: Option<Decimal>,
    /// The repayment schedule.
    pub schedule: Vec<PlannedInstallment>,
    /// The signing session.
    pub signing: Option<SigningFacts>,
    /// The disbursement.
    pub disbursement: DisbursementFacts,
    /// The repayment account.
    pub virtual_account: Option<VirtualAccountFacts>,
    /// Repayments.
    pub repayment: Repayment,
    /// Finfra's reason when the loan was rejected.
    pub rejection_reason: Option<String>,
    /// The status callbacks applied (their `event_id`s).
    pub events: Vec<String>,
}

/// The instant an installment due on `due_date` becomes overdue: the end of that day in
/// WIB (UTC+7, Indonesia's western time, no daylight saving) plus `grace`.
#[must_use]
pub fn overdue_at(due_date: NaiveDate, grace: std::time::Duration) -> DateTime<Utc> {
    let end_of_day_wib = due_date
        .checked_add_days(Days::new(1))
        .unwrap_or(due_date)
        .and_time(NaiveTime::MIN)
        .and_utc()
        - TimeDelta::hours(7);
    crate::kit::after(end_of_day_wib, grace)
}

impl LoanRecord {
    pub(crate) fn new(unique_id: LoanUniqueId, r#type: LoanType) -> Self {
        Self {
            unique_id,
            r#type,
            user_id: None,
            borrower_status: None,
            created: false,
            statuses: Vec::new(),
            total_amount: None,
            schedule: Vec::new(),
            signing: None,
            disbursement: DisbursementFacts::default(),
            virtual_account: None,
            repayment: Repayment::default(),
            rejection_reason: None,
            events: Vec::new(),
        }
    }

    /// Records that the loan reached `status`, and the statuses that must have come before
    /// it (CONTRACT §5's lifecycle: a `loan_disbursed` proves the loan was signed); whether
    /// that is news. So a late `loan_signed` after `loan_disbursed` is no news.
    pub(crate) fn reach(&mut self, status: LoanStatus, at: DateTime<Utc>, source: Source) -> bool {
        let before: &[LoanStatus] = match status {
            LoanStatus::Pending | LoanStatus::Unknown(_) => &[],
            LoanStatus::Signing | LoanStatus::Rejected => &[LoanStatus::Pending],
            LoanStatus::Signed => &[LoanStatus::Pending, LoanStatus::Signing],
            LoanStatus::Disbursing => {
                &[LoanStatus::Pending, LoanStatus::Signing, LoanStatus::Signed]
            }
            LoanStatus::Disbursed | LoanStatus::DisbursementFailed => &[
                LoanStatus::Pending,
                LoanStatus::Signing,
                LoanStatus::Signed,
                LoanStatus::Disbursing,
            ],
            LoanStatus::Paid => &[
                LoanStatus::Pending,
                LoanStatus::Signing,
                LoanStatus::Signed,
                LoanStatus::Disbursing,
                LoanStatus::Disbursed,
            ],
        };
        let mut news = false;
        for status in before.iter().cloned().chain(std::iter::once(status)) {
            if !self.has_reached(&status) {
                self.statuses.push(StatusReached { status, at, source });
                news = true;
            }
        }
        news
    }

    /// Whether the loan was seen in `status`.
    #[must_use]
    pub fn has_reached(&self, status: &LoanStatus) -> bool {
        self.statuses.iter().any(|s| &s.status == status)
    }

    /// Whether the borrower signed (any status after `SIGNED` proves it).
    #[must_use]
    pub fn is_signed(&self) -> bool {
        [
            LoanStatus::Signed,
            LoanStatus::Disbursing,
            LoanStatus::Disbursed,
            LoanStatus::DisbursementFailed,
            LoanStatus::Paid,
        ]
        .iter()
        .any(|s| self.has_reached(s))
            || self.disbursement.status.is_some()
    }

    /// Whether the loan was rejected at Finfra.
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        self.has_reached(&LoanStatus::Rejected)
    }

    /// Whether the money was paid out.
    #[must_use]
    pub fn is_disbursed(&self) -> bool {
        self.disbursement.status == Some(DisbursementStatus::Disbursed)
            || self.has_reached(&LoanStatus::Paid)
    }

    /// Whether Finfra accepted a disbursement that has not failed: sending another is
    /// forbidden (and would get `409`).
    #[must_use]
    pub fn disbursement_in_progress(&self) -> bool {
        self.disbursement.status == Some(DisbursementStatus::Disbursing) || self.is_disbursed()
    }

    /// Whether the current disbursement was refused by the bank.
    #[must_use]
    pub fn disbursement_failed(&self) -> bool {
        self.disbursement.status == Some(DisbursementStatus::Failed) && !self.is_disbursed()
    }

    /// Whether the loan is repaid in full at Finfra.
    #[must_use]
    pub fn is_paid(&self) -> bool {
        self.has_reached(&LoanStatus::Paid)
    }

    /// The loan's status as far as the facts go.
    #[must_use]
    pub fn status(&self) -> Option<LoanStatus> {
        Some(if self.is_paid() {
            LoanStatus::Paid
        } else if self.is_rejected() {
            LoanStatus::Rejected
        } else if self.is_disbursed() {
            LoanStatus::Disbursed
        } else if self.disbursement_failed() {
            LoanStatus::DisbursementFailed
        } else if self.disbursement_in_progress() {
            LoanStatus::Disbursing
        } else if self.is_signed() {
            LoanStatus::Signed
        } else if self.has_reached(&LoanStatus::Signing) {
            LoanStatus::Signing
        } else if self.created {
            LoanStatus::Pending
        } else {
            return None;
        })
    }

    /// Records what a loan object (an answer or a read) says; whether that is news.
    pub(crate) fn observe(&mut self, loan: &Loan, at: DateTime<Utc>, source: Source) -> bool {
        let mut news = !self.created;
        self.created = true;
        if self.total_amount.is_none() {
            self.total_amount = Some(loan.total_amount);
        }
        if self.schedule.is_empty() {
            self.schedule = loan
                .schedule
                .iter()
                .map(|i| PlannedInstallment {
                    sequence: i.sequence,
                    due_date: i.due_date,
                    total: i.total,
                })
                .collect();
            self.schedule.sort_by_key(|i| i.sequence);
        }
        if !matches!(loan.status, LoanStatus::Unknown(_)) {
            news |= self.reach(loan.status.clone(), at, source);
        }
        if let Some(signing) = &loan.signing {
            if signing.status == SigningStatus::Signed {
                news |= self.reach(LoanStatus::Signed, at, source);
            }
            if self.signing.is_none() && signing.signing_url.is_some() {
                self.signing = Some(SigningFacts {
                    signing_url: signing.signing_url.clone(),
                    expires_at: None,
                });
            }
        }
        let disbursement = loan.disbursement.as_ref();
        let reference = disbursement.and_then(|d| d.reference.clone());
        match (disbursement.map(|d| &d.status), &loan.status) {
            (Some(DisbursementStatus::Disbursed), _)
            | (_, LoanStatus::Disbursed | LoanStatus::Paid) => {
                let when = disbursement.and_then(|d| d.disbursed_at).unwrap_or(at);
                news |= self.disbursement.disbursed(reference, when);
            }
            (Some(DisbursementStatus::Failed), _) | (_, LoanStatus::DisbursementFailed) => {
                let reason = disbursement
                    .and_then(|d| d.failure_reason.clone())
                    .unwrap_or_else(|| "no reason given".to_owned());
                news |= self.disbursement.failed(reference, reason, at);
            }
            (Some(DisbursementStatus::Disbursing), _) | (_, LoanStatus::Disbursing) => {
                news |= self.disbursement.accepted(reference);
            }
            _ => {}
        }
        if let Some(va) = &loan.virtual_account {
            news |= self.learn_virtual_account(va);
        }
        let finfra_paid: Decimal = loan.schedule.iter().map(|i| i.paid_amount).sum();
        if finfra_paid > self.repayment.finfra_paid {
            self.repayment.finfra_paid = finfra_paid;
            news = true;
        }
        news
    }

    /// Records Finfra's answer to the disbursement request.
    pub(crate) fn disbursement_accepted(&mut self, reference: Option<String>) -> bool {
        self.disbursement.requested = true;
        self.disbursement.accepted(reference)
    }

    /// Records the repayment account; whether that is news.
    pub(crate) fn learn_virtual_account(&mut self, va: &VirtualAccount) -> bool {
        if self.virtual_account.is_some() {
            return false;
        }
        self.virtual_account = Some(VirtualAccountFacts {
            external_id: va.external_id.clone(),
            account_number: va.account_number.clone(),
            bank_code: va.bank_code.clone(),
            expected_amount: va.expected_amount,
        });
        true
    }

    /// Records what a loan callback says, once; a note when it is news. Callbacks about
    /// other loans, and user callbacks, are not recorded.
    pub(crate) fn record_status(
        &mut self,
        callback: &StatusCallback,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let kind = callback.callback_title.loan_event()?;
        if callback.loan_unique_id.as_deref() != Some(self.unique_id.as_str())
            || self.events.contains(&callback.event_id)
        {
            return None;
        }
        self.events.push(callback.event_id.clone());
        let data = &callback.data;
        let mut news = self.reach(kind.event.status(), at, Source::Callback);
        news |= match kind.event {
            LoanEvent::Created | LoanEvent::Signed | LoanEvent::Paid => false,
            LoanEvent::Disbursed => self.disbursement.disbursed(data.reference.clone(), at),
            LoanEvent::DisbursementFailed => self.disbursement.failed(
                data.reference.clone(),
                data.reason
                    .clone()
                    .unwrap_or_else(|| "no reason given".to_owned()),
                at,
            ),
            LoanEvent::Rejected => {
                if self.rejection_reason.is_none() {
                    self.rejection_reason.clone_from(&data.reason);
                }
                false
            }
        };
        news.then(|| format!("recorded {}", callback.callback_title))
    }

    /// Applies a repayment, once (deduplicated on its `id`); a note when it is news.
    pub(crate) fn record_payment(&mut self, payment: &VirtualAccountPayment) -> Option<String> {
        let ours = self
            .virtual_account
            .as_ref()
            .is_some_and(|va| va.external_id == payment.external_id);
        if !ours || self.repayment.payments.iter().any(|p| p.id == payment.id) {
            return None;
        }
        self.repayment.payments.push(PaymentApplied {
            id: payment.id.clone(),
            amount: payment.amount,
            paid_at: payment.transaction_timestamp,
        });
        Some(format!(
            "payment {} of {} applied: {} paid, {} outstanding",
            payment.id,
            payment.amount,
            self.paid(),
            self.outstanding().unwrap_or_default()
        ))
    }

    /// When the workflow learnt that the loan is `PAID`.
    #[must_use]
    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.statuses
            .iter()
            .find(|s| s.status == LoanStatus::Paid)
            .map(|s| s.at)
    }

    /// Whether the payments seen on the virtual account add up to the total: each payment
    /// Finfra applied is on this loan's record.
    #[must_use]
    pub fn payments_cover_total(&self) -> bool {
        let seen: Decimal = self.repayment.payments.iter().map(|p| p.amount).sum();
        self.total_amount.is_some_and(|total| seen >= total)
    }

    /// What was paid: the larger of the payments seen and what Finfra showed.
    #[must_use]
    pub fn paid(&self) -> Decimal {
        let seen: Decimal = self.repayment.payments.iter().map(|p| p.amount).sum();
        seen.max(self.repayment.finfra_paid)
    }

    /// What is still owed, once the total is known.
    #[must_use]
    pub fn outstanding(&self) -> Option<Decimal> {
        self.total_amount
            .map(|total| (total - self.paid()).max(Decimal::ZERO))
    }

    /// What was paid beyond the total.
    #[must_use]
    pub fn overpaid(&self) -> Decimal {
        self.total_amount.map_or(Decimal::ZERO, |total| {
            (self.paid() - total).max(Decimal::ZERO)
        })
    }

    /// Whether the payments cover the total (Finfra's `PAID` is what completes).
    #[must_use]
    pub fn covered(&self) -> bool {
        self.outstanding().is_some_and(|o| o.is_zero())
    }

    /// What each installment has received, in order: payments fill installment 1, then 2...
    #[must_use]
    pub fn allocation(&self) -> Vec<(u32, Decimal)> {
        let mut left = self.paid();
        self.schedule
            .iter()
            .map(|i| {
                let applied = left.min(i.total);
                left -= applied;
                (i.sequence, applied)
            })
            .collect()
    }

    /// Flags installments overdue at `now`, marks flagged ones paid since as cured; whether
    /// that is news, and the next time one becomes overdue.
    pub(crate) fn review_overdue(
        &mut self,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> (bool, Option<DateTime<Utc>>) {
        let allocation = self.allocation();
        let mut news = false;
        let mut next: Option<DateTime<Utc>> = None;
        for (installment, (_, applied)) in self.schedule.iter().zip(allocation) {
            let unpaid = applied < installment.total;
            let flagged = self
                .repayment
                .overdue
                .iter_mut()
                .find(|o| o.sequence == installment.sequence);
            match (flagged, unpaid) {
                (Some(o), false) if o.cured_at.is_none() => {
                    o.cured_at = Some(now);
                    news = true;
                }
                (Some(_), _) | (None, false) => {}
                (None, true) => {
                    let when = overdue_at(installment.due_date, grace);
                    if when <= now {
                        self.repayment.overdue.push(OverdueInstallment {
                            sequence: installment.sequence,
                            due_date: installment.due_date,
                            flagged_at: now,
                            outstanding: installment.total - applied,
                            cured_at: None,
                        });
                        news = true;
                    } else {
                        next = Some(next.map_or(when, |n| n.min(when)));
                    }
                }
            }
        }
        (news, next)
    }

    /// Installments overdue now (flagged and not paid since).
    #[must_use]
    pub fn overdue_now(&self) -> Vec<u32> {
        self.repayment
            .overdue
            .iter()
            .filter(|o| o.cured_at.is_none())
            .map(|o| o.sequence)
            .collect()
    }

    /// The facts SQL sees.
    #[must_use]
    pub fn facts(&self) -> Value {
        let va = self.virtual_account.as_ref();
        json!({
            "loan_unique_id": self.unique_id,
            "loan_type": self.r#type,
            "user_id": self.user_id,
            "borrower_status": self.borrower_status,
            "loan_status": self.status(),
            "total_amount": self.total_amount,
            "disbursement_status": self.disbursement.status,
            "disbursement_reference": self.disbursement.reference,
            "disbursement_requested": self.disbursement.requested,
            "disbursement_failures": self.disbursement.failures.len(),
            "virtual_account_bank": va.map(|v| &v.bank_code),
            "virtual_account_number": va.map(|v| &v.account_number),
            "virtual_account_external_id": va.map(|v| &v.external_id),
            "payments": self.repayment.payments.len(),
            "amount_paid": self.paid(),
            "amount_outstanding": self.outstanding(),
            "amount_overpaid": self.overpaid(),
            "overdue_installments": self.overdue_now(),
            "ever_overdue_installments": self.repayment.overdue.iter().map(|o| o.sequence).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn record() -> LoanRecord {
        let mut r = LoanRecord::new(LoanUniqueId::new("op-0123456789").unwrap(), LoanType::Bnpl);
        r.total_amount = Some(d("300.00"));
        r.schedule = (1..=3)
            .map(|sequence| PlannedInstallment {
                sequence,
                due_date: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
                    + Days::new(u64::from(sequence) * 30),
                total: d("100.00"),
            })
            .collect();
        r
    }

    #[test]
    fn payments_fill_installments_in_order() {
        let mut r = record();
        r.repayment.finfra_paid = d("150.00");
        assert_eq!(
            r.allocation(),
            [(1, d("100.00")), (2, d("50.00")), (3, Decimal::ZERO)]
        );
        assert_eq!(r.outstanding(), Some(d("150.00")));
        r.repayment.finfra_paid = d("320.00");
        assert!(r.covered());
        assert_eq!(r.overpaid(), d("20.00"));
    }

    #[test]
    fn overdue_is_the_end_of_the_due_day_in_wib_plus_grace() {
        let due = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let at = overdue_at(due, std::time::Duration::from_secs(86_400));
        assert_eq!(at.to_rfc3339(), "2026-03-02T17:00:00+00:00");
    }

    #[test]
    fn a_refusal_of_an_older_disbursement_does_not_fail_the_current_one() {
        let now = DateTime::<Utc>::MIN_UTC;
        let mut f = DisbursementFacts::default();
        assert!(f.accepted(Some("R1".into())));
        assert!(f.failed(Some("R1".into()), "bank".into(), now));
        assert_eq!(f.status, Some(DisbursementStatus::Failed));
        assert!(
            !f.failed(Some("R1".into()), "bank".into(), now),
            "a duplicate"
        );
        assert!(f.accepted(Some("R2".into())));
        assert!(!f.accepted(Some("R1".into())), "R1 failed: stale");
        assert_eq!(f.status, Some(DisbursementStatus::Disbursing));
        assert!(f.disbursed(Some("R2".into()), now));
        assert!(!f.failed(Some("R2".into()), "late".into(), now));
        assert_eq!(f.status, Some(DisbursementStatus::Disbursed));
    }
}
