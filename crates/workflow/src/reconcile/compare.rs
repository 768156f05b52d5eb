//! One loan at Finfra against finflow's record of it: the findings, and whether the
//! workflow that holds it should read Finfra now. Pure, so every rule has a test.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use finfra_api::model::loan::{Loan, LoanStatus};

/// finflow's record of one loan: an `originate-loan` workflow and its facts, as the store
/// read them for a page of Finfra's loans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownLoan {
    /// The workflow that created it.
    pub workflow_id: String,
    /// The loan's `unique_id`.
    pub loan_unique_id: String,
    /// The workflow's status (`waiting`, `completed`, ...).
    pub status: String,
    /// The loan's status as the workflow last learnt it (`None`: not created as far as it
    /// knows).
    pub loan_status: Option<String>,
    /// The disbursement reference the workflow recorded.
    pub disbursement_reference: Option<String>,
    /// Whether the workflow has asked Finfra to disburse.
    pub disbursement_requested: bool,
    /// What the workflow counts as paid.
    pub amount_paid: Option<Decimal>,
}

impl KnownLoan {
    fn finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }
}

/// A kind of discrepancy between Finfra's books and finflow's (a contract: stored in
/// `reconciliation_findings.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The loan's status differs (Finfra `DISBURSED` while the workflow waits for it, ...).
    StatusDiffers,
    /// The amounts paid differ.
    AmountPaidDiffers,
    /// Finfra shows a disbursement reference the workflow has not recorded (it asked for the
    /// disbursement; the callback may be lost).
    DisbursementReferenceMissing,
    /// Finfra's disbursement reference is not the one the workflow recorded: money may have
    /// left twice.
    DisbursementReferenceDiffers,
    /// Finfra shows the loan disbursing or disbursed although its workflow never asked.
    DisbursedWithoutRequest,
    /// A loan at Finfra that no finflow workflow created (made by hand or by another system).
    Orphan,
    /// A loan finflow created that Finfra does not know.
    MissingAtFinfra,
}

impl FindingKind {
    /// Every kind, for gauges.
    pub const ALL: &'static [FindingKind] = &[
        Self::StatusDiffers,
        Self::AmountPaidDiffers,
        Self::DisbursementReferenceMissing,
        Self::DisbursementReferenceDiffers,
        Self::DisbursedWithoutRequest,
        Self::Orphan,
        Self::MissingAtFinfra,
    ];

    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusDiffers => "status_differs",
            Self::AmountPaidDiffers => "amount_paid_differs",
            Self::DisbursementReferenceMissing => "disbursement_reference_missing",
            Self::DisbursementReferenceDiffers => "disbursement_reference_differs",
            Self::DisbursedWithoutRequest => "disbursed_without_request",
            Self::Orphan => "orphan",
            Self::MissingAtFinfra => "missing_at_finfra",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The loan.
    pub loan_unique_id: String,
    /// The workflow that holds it, if any.
    pub workflow_id: Option<String>,
    /// What differs.
    pub kind: FindingKind,
    /// finflow's value.
    pub ours: Option<String>,
    /// Finfra's value.
    pub theirs: Option<String>,
    /// Whether money may have moved where it should not have: the run stops for a person.
    pub money: bool,
}

/// What one loan's comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compared {
    /// The discrepancies.
    pub findings: Vec<Finding>,
    /// The workflow is behind Finfra and still running: it should read Finfra now.
    pub nudge: Option<String>,
}

fn money_moved(loan: &Loan) -> bool {
    matches!(
        loan.status,
        LoanStatus::Disbursing | LoanStatus::Disbursed | LoanStatus::Paid
    )
}

fn paid(loan: &Loan) -> Decimal {
    loan.schedule.iter().map(|i| i.paid_amount).sum()
}

/// Compares Finfra's `loan` with finflow's record of it (`None`: no workflow has it).
#[must_use]
pub fn compare(loan: &Loan, ours: Option<&KnownLoan>) -> Compared {
    let reference = loan.disbursement.as_ref().and_then(|d| d.reference.clone());
    let Some(ours) = ours else {
        return Compared {
            findings: vec![Finding {
                loan_unique_id: loan.unique_id.clone(),
                workflow_id: None,
                kind: FindingKind::Orphan,
                ours: None,
                theirs: Some(loan.status.as_str().to_owned()),
                money: money_moved(loan),
            }],
            nudge: None,
        };
    };
    let finding = |kind, mine: Option<String>, theirs: Option<String>, money| Finding {
        loan_unique_id: loan.unique_id.clone(),
        workflow_id: Some(ours.workflow_id.clone()),
        kind,
        ours: mine,
        theirs,
        money,
    };
    let mut findings = Vec::new();
    if ours.loan_status.as_deref() != Some(loan.status.as_str()) {
        findings.push(finding(
            FindingKind::StatusDiffers,
            ours.loan_status.clone(),
            Some(loan.status.as_str().to_owned()),
            false,
        ));
    }
    let theirs_paid = paid(loan);
    let ours_paid = ours.amount_paid.unwrap_or_default();
    if theirs_paid != ours_paid {
        findings.push(finding(
            FindingKind::AmountPaidDiffers,
            Some(ours_paid.to_string()),
            Some(theirs_paid.to_string()),
            false,
        ));
    }
    match (&ours.disbursement_reference, &reference) {
        (Some(mine), Some(theirs)) if mine != theirs => findings.push(finding(
            FindingKind::DisbursementReferenceDiffers,
            Some(mine.clone()),
            Some(theirs.clone()),
            true,
        )),
        (None, theirs) if money_moved(loan) && !ours.disbursement_requested => {
            findings.push(finding(
                FindingKind::DisbursedWithoutRequest,
                None,
                theirs
                    .clone()
                    .or_else(|| Some(loan.status.as_str().to_owned())),
                true,
            ));
        }
        (None, Some(theirs)) => findings.push(finding(
            FindingKind::DisbursementReferenceMissing,
            None,
            Some(theirs.clone()),
            false,
        )),
        _ => {}
    }
    let behind = !findings.is_empty() && !ours.finished();
    Compared {
        findings,
        nudge: behind.then(|| ours.workflow_id.clone()),
    }
}

/// A loan finflow created that Finfra answered `404` for.
#[must_use]
pub fn missing(ours: &KnownLoan) -> Finding {
    Finding {
        loan_unique_id: ours.loan_unique_id.clone(),
        workflow_id: Some(ours.workflow_id.clone()),
        kind: FindingKind::MissingAtFinfra,
        ours: ours.loan_status.clone(),
        theirs: None,
        money: ours.disbursement_reference.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn loan(status: &str, reference: Option<&str>, paid: &str) -> Loan {
        serde_json::from_value(json!({
            "unique_id": "op-0001", "user_id": "u", "type": "SINGLE_PAYMENT",
            "status": status, "principal_amount": "1000000", "interest_amount": "10000",
            "fee_amount": "0", "total_amount": "1010000", "currency": "IDR",
            "created_at": "2026-12-01T00:00:00Z",
            "disbursement": {"status": if reference.is_some() { "DISBURSED" } else { "PENDING" },
                             "reference": reference},
            "schedule": [{"sequence": 1, "due_date": "2027-01-01", "principal": "1000000",
                          "interest": "10000", "total": "1010000", "paid_amount": paid,
                          "status": "UNPAID"}]
        }))
        .unwrap()
    }

    fn ours(status: &str, loan_status: &str, reference: Option<&str>, paid: &str) -> KnownLoan {
        KnownLoan {
            workflow_id: "wf-1".to_owned(),
            loan_unique_id: "op-0001".to_owned(),
            status: status.to_owned(),
            loan_status: Some(loan_status.to_owned()),
            disbursement_reference: reference.map(str::to_owned),
            disbursement_requested: reference.is_some() || loan_status == "DISBURSING",
            amount_paid: Some(paid.parse().unwrap()),
        }
    }

    fn kinds(c: &Compared) -> Vec<FindingKind> {
        c.findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn books_that_agree_find_nothing() {
        let c = compare(
            &loan("DISBURSED", Some("ref-1"), "0"),
            Some(&ours("waiting", "DISBURSED", Some("ref-1"), "0")),
        );
        assert_eq!(c, Compared::default());
    }

    #[test]
    fn a_workflow_behind_finfra_is_nudged() {
        let c = compare(
            &loan("PAID", Some("ref-1"), "1010000"),
            Some(&ours("waiting", "DISBURSED", Some("ref-1"), "0")),
        );
        assert_eq!(
            kinds(&c),
            [FindingKind::StatusDiffers, FindingKind::AmountPaidDiffers]
        );
        assert_eq!(c.nudge.as_deref(), Some("wf-1"));
        assert!(c.findings.iter().all(|f| !f.money));
    }

    #[test]
    fn a_lost_disbursement_callback_is_a_missing_reference() {
        let c = compare(
            &loan("DISBURSED", Some("ref-1"), "0"),
            Some(&ours("waiting", "DISBURSING", None, "0")),
        );
        assert_eq!(
            kinds(&c),
            [
                FindingKind::StatusDiffers,
                FindingKind::DisbursementReferenceMissing
            ]
        );
        assert!(c.nudge.is_some());
    }

    #[test]
    fn a_second_reference_is_about_money() {
        let c = compare(
            &loan("DISBURSED", Some("ref-2"), "0"),
            Some(&ours("waiting", "DISBURSED", Some("ref-1"), "0")),
        );
        assert_eq!(kinds(&c), [FindingKind::DisbursementReferenceDiffers]);
        assert!(c.findings[0].money);
    }

    #[test]
    fn a_disbursement_finflow_never_asked_for_is_about_money() {
        let mut mine = ours("waiting", "SIGNED", None, "0");
        mine.disbursement_requested = false;
        let c = compare(&loan("DISBURSED", Some("ref-1"), "0"), Some(&mine));
        assert_eq!(
            kinds(&c),
            [
                FindingKind::StatusDiffers,
                FindingKind::DisbursedWithoutRequest
            ]
        );
        assert!(c.findings[1].money);
    }

    #[test]
    fn a_finished_workflow_is_reported_not_nudged() {
        let c = compare(
            &loan("PAID", Some("ref-1"), "1010000"),
            Some(&ours("completed", "PAID", Some("ref-1"), "1000000")),
        );
        assert_eq!(kinds(&c), [FindingKind::AmountPaidDiffers]);
        assert_eq!(c.nudge, None);
    }

    #[test]
    fn a_loan_no_workflow_created_is_an_orphan() {
        let c = compare(&loan("PENDING", None, "0"), None);
        assert_eq!(kinds(&c), [FindingKind::Orphan]);
        assert!(!c.findings[0].money);
        let c = compare(&loan("DISBURSED", Some("ref-9"), "0"), None);
        assert!(c.findings[0].money, "a disbursed orphan moved money");
    }

    #[test]
    fn a_loan_finfra_does_not_know() {
        let f = missing(&ours("waiting", "SIGNED", None, "0"));
        assert_eq!(f.kind, FindingKind::MissingAtFinfra);
        assert!(!f.money);
    }
}
