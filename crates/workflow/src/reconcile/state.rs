//! The state of a `reconcile-loans` run, its phases, and the machine the kit drives.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use finfra_api::model::loan::{ListLoansQuery, Loan, LoanPage};
use finfra_api::retry::RetryPolicy;

use crate::action::{Action, Expected, Outcome, Reason};
use crate::event::CallbackEvent;
use crate::failure::CallFailure;
use crate::ids::{UserId, WorkflowId};
use crate::kit::{self, Machine, Phase as _, Run, Waiting};
use crate::machine::{Observations, Status, Transition};
use crate::request::FinfraRequest;
use crate::response::FinfraResponse;

use super::compare::{self, Finding, FindingKind, KnownLoan};

/// What a run compares: Finfra's `GET /api/core/loans` filters, and the page size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// Loans created from this day (Finfra's `startDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    /// Loans created up to this day (Finfra's `endDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
    /// One borrower's loans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// One loan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// Smallest principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<Decimal>,
    /// Largest principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Decimal>,
    /// Loans per page (one step each): 1 to 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_page_size() -> u32 {
    finfra_api::model::loan::MAX_PAGE_SIZE
}

impl ReconcileRequest {
    /// Finfra's query for page `page`.
    #[must_use]
    pub fn query(&self, page: u32) -> ListLoansQuery {
        ListLoansQuery {
            user_id: self.user_id.clone(),
            unique_id: self.unique_id.clone(),
            page_number: Some(page),
            page_size: Some(self.page_size),
            start_date: self.from,
            end_date: self.to,
            start_range_amount: self.min_amount,
            end_range_amount: self.max_amount,
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// Reading page `page` (1-based) of Finfra's loans.
    FetchPage { page: u32, run: Run },
    /// Reading, one by one, the loans finflow created that no page showed.
    CheckLoan { index: usize, run: Run },
    /// Compared everything.
    Done,
    /// Stopped for a person.
    NeedsAttention {
        stuck: Box<Phase>,
        reason: Reason,
        since: DateTime<Utc>,
    },
    /// Gave up.
    Failed { step: String, reason: Reason },
    /// An operator cancelled it.
    Cancelled { by: String, reason: String },
}

impl kit::Phase for Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::FetchPage { .. } => "fetch_page",
            Self::CheckLoan { .. } => "check_loan",
            Self::Done => "done",
            Self::NeedsAttention { .. } => "needs_attention",
            Self::Failed { .. } => "failed",
            Self::Cancelled { .. } => "cancelled",
        }
    }
    fn finished(&self) -> Option<Status> {
        match self {
            Self::Done => Some(Status::Completed),
            Self::Failed { .. } => Some(Status::Failed),
            Self::Cancelled { .. } => Some(Status::Cancelled),
            _ => None,
        }
    }
    fn run(&self) -> Option<&Run> {
        match self {
            Self::FetchPage { run, .. } | Self::CheckLoan { run, .. } => Some(run),
            _ => None,
        }
    }
    fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            Self::FetchPage { run, .. } | Self::CheckLoan { run, .. } => Some(run),
            _ => None,
        }
    }
    fn wait(&self) -> Option<&Waiting> {
        None
    }
    fn wait_mut(&mut self) -> Option<&mut Waiting> {
        None
    }
    fn stuck(&self) -> Option<(&Self, &Reason)> {
        match self {
            Self::NeedsAttention { stuck, reason, .. } => Some((stuck, reason)),
            _ => None,
        }
    }
    fn stuck_mut(&mut self) -> Option<&mut Self> {
        match self {
            Self::NeedsAttention { stuck, .. } => Some(stuck),
            _ => None,
        }
    }
    fn needs_attention(stuck: Self, reason: Reason, since: DateTime<Utc>) -> Self {
        Self::NeedsAttention {
            stuck: Box::new(stuck),
            reason,
            since,
        }
    }
    fn failed(step: String, reason: Reason) -> Self {
        Self::Failed { step, reason }
    }
}

/// What a run has found so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Pages read.
    pub pages: u32,
    /// Loans compared.
    pub loans: u64,
    /// Findings, by kind.
    pub findings: BTreeMap<FindingKind, u64>,
    /// Findings about money (a second disbursement reference, a disbursement finflow never
    /// asked for): the run stops for a person at its end.
    pub money: u64,
    /// Workflows told to read Finfra now.
    pub nudged: u64,
}

impl Tally {
    fn add(&mut self, findings: &[Finding]) {
        for f in findings {
            *self.findings.entry(f.kind).or_default() += 1;
            self.money += u64::from(f.money);
        }
    }

    /// Findings of every kind.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.findings.values().sum()
    }
}

/// A `reconcile-loans` run: `$.phase.state` is the state name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileState {
    pub workflow_id: WorkflowId,
    pub started_at: DateTime<Utc>,
    pub request: ReconcileRequest,
    pub tally: Tally,
    /// Loans finflow created in the run's window that no page showed: each is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<KnownLoan>,
    pub phase: Phase,
}

type T = Transition<ReconcileState>;

impl ReconcileState {
    /// The facts SQL sees (`workflows.facts`).
    #[must_use]
    pub fn facts(&self) -> Value {
        json!({
            "from": self.request.from,
            "to": self.request.to,
            "pages": self.tally.pages,
            "loans": self.tally.loans,
            "findings": self.tally.total(),
            "findings_by_kind": self.tally.findings,
            "money_findings": self.tally.money,
            "nudged": self.tally.nudged,
        })
    }

    /// After the last loan: done, or stopped for a person when money may have moved.
    fn finish(&mut self, now: DateTime<Utc>) {
        self.unseen.clear();
        self.phase = if self.tally.money > 0 {
            Phase::NeedsAttention {
                stuck: Box::new(Phase::Done),
                reason: Reason::new(
                    "money_findings",
                    format!(
                        "{} finding(s) where money may have moved without finflow: see reconciliation_findings",
                        self.tally.money
                    ),
                )
                .with_hint("look into each money finding, then resolve with {\"retry\": true} to close the run"),
                since: now,
            }
        } else {
            Phase::Done
        };
    }

    fn observe(&mut self, found: &mut Observations, compared: compare::Compared) {
        self.tally.add(&compared.findings);
        if let Some(id) = compared.nudge {
            self.tally.nudged += 1;
            found.nudge.push(id);
        }
        found.findings.extend(compared.findings);
    }

    /// A page of Finfra's loans, with finflow's records of them.
    fn page(&self, page: u32, loans: &LoanPage, known: &KnownLoans, now: DateTime<Utc>) -> T {
        let mut next = self.clone();
        let mut found = Observations::default();
        for loan in &loans.data {
            let ours = known
                .loans
                .iter()
                .find(|k| k.loan_unique_id == loan.unique_id);
            next.observe(&mut found, compare::compare(loan, ours));
            found.seen.push(loan.unique_id.clone());
        }
        next.tally.pages += 1;
        next.tally.loans += loans.data.len() as u64;
        let size = u64::from(self.request.page_size);
        let last = (loans.data.len() as u64) < size || u64::from(page) * size >= loans.total_items;
        if !last {
            next.phase = Phase::FetchPage {
                page: page + 1,
                run: Run::new(None),
            };
        } else if known.unseen.is_empty() {
            next.finish(now);
        } else {
            next.unseen.clone_from(&known.unseen);
            next.phase = Phase::CheckLoan {
                index: 0,
                run: Run::new(None),
            };
        }
        let note = format!(
            "page {page}: {} loan(s), {} finding(s)",
            loans.data.len(),
            found.findings.len()
        );
        found.complete = !matches!(
            next.phase,
            Phase::FetchPage { .. } | Phase::CheckLoan { .. }
        );
        let mut t = kit::advance(next, note);
        t.observations = found;
        t
    }

    /// One unseen loan read (`None`: Finfra does not know it).
    fn checked(&self, index: usize, loan: Option<&Loan>, now: DateTime<Utc>) -> T {
        let mut next = self.clone();
        let mut found = Observations::default();
        let Some(ours) = self.unseen.get(index) else {
            return kit::attention(
                self.clone(),
                Reason::new(
                    "inconsistent_state",
                    "the run has no unseen loan at this index",
                )
                .with_hint("cancel the run and start another"),
                now,
            );
        };
        match loan {
            Some(loan) => {
                next.observe(&mut found, compare::compare(loan, Some(ours)));
                next.tally.loans += 1;
            }
            None => {
                let missing = compare::missing(ours);
                next.tally.add(std::slice::from_ref(&missing));
                found.findings.push(missing);
            }
        }
        found.seen.push(ours.loan_unique_id.clone());
        if index + 1 < self.unseen.len() {
            next.phase = Phase::CheckLoan {
                index: index + 1,
                run: Run::new(None),
            };
        } else {
            next.finish(now);
        }
        let note = match loan {
            Some(_) => format!("loan {} read", ours.loan_unique_id),
            None => format!("loan {} is unknown to Finfra", ours.loan_unique_id),
        };
        found.complete = !matches!(
            next.phase,
            Phase::FetchPage { .. } | Phase::CheckLoan { .. }
        );
        let mut t = kit::advance(next, note);
        t.observations = found;
        t
    }
}

/// finflow's records of a page of loans, joined by the executor to Finfra's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownLoans {
    /// The `originate-loan` workflows of the page's loans.
    pub loans: Vec<KnownLoan>,
    /// On the last page only: loans finflow created in the run's window that no page of
    /// this run showed.
    #[serde(default)]
    pub unseen: Vec<KnownLoan>,
}

impl Machine for ReconcileState {
    type Phase = Phase;

    fn phase(&self) -> &Phase {
        &self.phase
    }
    fn phase_mut(&mut self) -> &mut Phase {
        &mut self.phase
    }
    fn workflow_id(&self) -> &WorkflowId {
        &self.workflow_id
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    fn finished_action(&self) -> Action {
        match &self.phase {
            Phase::Failed { reason, .. } => Action::Fail {
                reason: reason.clone(),
            },
            Phase::Cancelled { by, reason } => Action::Cancelled {
                by: by.clone(),
                reason: reason.clone(),
            },
            _ => Action::Complete {
                outcome: Outcome::Reconciled {
                    loans: self.tally.loans,
                    findings: self.tally.total(),
                },
            },
        }
    }
    fn inconsistent_hint(&self) -> &'static str {
        "cancel the run and start another"
    }
    fn request(&self) -> Option<FinfraRequest> {
        match &self.phase {
            Phase::FetchPage { page, .. } => Some(FinfraRequest::ListLoans {
                query: self.request.query(*page),
            }),
            Phase::CheckLoan { index, .. } => {
                self.unseen.get(*index).map(|loan| FinfraRequest::GetLoan {
                    unique_id: loan.loan_unique_id.clone(),
                })
            }
            _ => None,
        }
    }
    fn reconcile_read(&self) -> Option<FinfraRequest> {
        // Every request of a run is a read.
        None
    }
    fn expected(&self) -> Vec<Expected> {
        Vec::new()
    }
    fn poll_request(&self) -> Option<FinfraRequest> {
        None
    }
    fn poll_every(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn cancel(&self, by: &str, reason: &str) -> Transition<Self> {
        let mut next = self.clone();
        next.phase = Phase::Cancelled {
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        kit::advance(next, format!("cancelled by {by}: {reason}"))
    }
    fn restart(&mut self, _now: DateTime<Utc>) {
        if let Some(run) = self.phase.run_mut() {
            *run = run.restarted();
        }
    }
    fn resolve_user_id(
        &self,
        _stuck: &Phase,
        _user_id: UserId,
        _by: &str,
        _reason: &str,
        _now: DateTime<Utc>,
    ) -> Transition<Self> {
        kit::ignore(
            self,
            "resolve refused: a reconciliation run takes no user id",
        )
    }
    fn succeeded(&self, response: &FinfraResponse, now: DateTime<Utc>) -> Transition<Self> {
        match (&self.phase, response) {
            (Phase::FetchPage { page, .. }, FinfraResponse::ListLoans(loans, known)) => {
                self.page(*page, loans, known, now)
            }
            (Phase::CheckLoan { index, .. }, FinfraResponse::GetLoan(loan)) => {
                self.checked(*index, Some(loan), now)
            }
            _ => kit::unexpected(self, response, now),
        }
    }
    fn reconciled(
        &self,
        _run: &Run,
        _request: &FinfraRequest,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self> {
        kit::unexpected(self, response, now)
    }
    fn own_failure(
        &self,
        _run: &Run,
        _request: &FinfraRequest,
        failure: &CallFailure,
        now: DateTime<Utc>,
    ) -> Option<Transition<Self>> {
        match &self.phase {
            Phase::CheckLoan { index, .. } if failure.status == Some(404) => {
                Some(self.checked(*index, None, now))
            }
            _ => None,
        }
    }
    fn record(&mut self, _callback: &CallbackEvent, _now: DateTime<Utc>) -> Option<String> {
        None
    }
    fn settle(&mut self, _now: DateTime<Utc>) -> bool {
        false
    }
    fn polled(&self, _wait: &Waiting, response: &FinfraResponse, now: DateTime<Utc>) -> T {
        kit::unexpected(self, response, now)
    }
    fn timed_out(&self, _now: DateTime<Utc>) -> T {
        kit::ignore(self, "a reconciliation run has no deadline")
    }
}
