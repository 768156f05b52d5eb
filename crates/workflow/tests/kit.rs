//! The kit drives any kind: a third, minimal kind written here against `workflow::kit`
//! alone ("approve this borrower and wait until Finfra says APPROVED") gets the retry rules,
//! reconciliation, read-before-you-believe, waits with polls, a stuck wait that resumes by
//! itself, and the operator commands without writing any of them. Between the markers below
//! is everything such a kind needs: its phases, its requests, how it reads the answers.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use finfra_api::callback::{CallbackData, CallbackTitle, StatusCallback};
use finfra_api::model::borrower::{Borrower, BorrowerStatus};
use finfra_api::retry::RetryPolicy;
use workflow::kit::{self, Machine, Phase as _, Run, Waiting};
use workflow::{
    Action, CallFailure, CallbackEvent, CorrelationKey, Event, Expected, FinfraRequest,
    FinfraResponse, Handled, Outcome, Reason, Status, Transition, UserId, WorkflowId,
};

// ---- the kind: begin ----

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Approve { run: Run },
    AwaitApproved { wait: Waiting },
    Stuck { stuck: Box<Step>, reason: Reason },
    Approved,
    Failed { reason: Reason },
    Cancelled { by: String },
}

#[derive(Debug, Clone, PartialEq)]
struct Approval {
    id: WorkflowId,
    user_id: UserId,
    step: Step,
}

impl kit::Phase for Step {
    fn name(&self) -> &'static str {
        match self {
            Self::Approve { .. } => "approve",
            Self::AwaitApproved { .. } => "await_approved",
            Self::Stuck { .. } => "needs_attention",
            Self::Approved => "approved",
            Self::Failed { .. } => "failed",
            Self::Cancelled { .. } => "cancelled",
        }
    }
    fn finished(&self) -> Option<Status> {
        match self {
            Self::Approved => Some(Status::Completed),
            Self::Failed { .. } => Some(Status::Failed),
            Self::Cancelled { .. } => Some(Status::Cancelled),
            _ => None,
        }
    }
    fn run(&self) -> Option<&Run> {
        match self {
            Self::Approve { run } => Some(run),
            _ => None,
        }
    }
    fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            Self::Approve { run } => Some(run),
            _ => None,
        }
    }
    fn wait(&self) -> Option<&Waiting> {
        match self {
            Self::AwaitApproved { wait } => Some(wait),
            _ => None,
        }
    }
    fn wait_mut(&mut self) -> Option<&mut Waiting> {
        match self {
            Self::AwaitApproved { wait } => Some(wait),
            _ => None,
        }
    }
    fn stuck(&self) -> Option<(&Self, &Reason)> {
        match self {
            Self::Stuck { stuck, reason } => Some((stuck, reason)),
            _ => None,
        }
    }
    fn stuck_mut(&mut self) -> Option<&mut Self> {
        match self {
            Self::Stuck { stuck, .. } => Some(stuck),
            _ => None,
        }
    }
    fn needs_attention(stuck: Self, reason: Reason, _since: DateTime<Utc>) -> Self {
        Self::Stuck {
            stuck: Box::new(stuck),
            reason,
        }
    }
    fn failed(_step: String, reason: Reason) -> Self {
        Self::Failed { reason }
    }
}

impl Approval {
    fn await_approved(&mut self, now: DateTime<Utc>) {
        let wait = Waiting::new(now, Duration::from_secs(600), Some(Duration::from_secs(60)));
        self.step = Step::AwaitApproved { wait };
    }
    fn after_read(&self, borrower: &Borrower, now: DateTime<Utc>) -> Transition<Self> {
        let mut next = self.clone();
        match borrower.status {
            BorrowerStatus::Approved => next.step = Step::Approved,
            BorrowerStatus::ApprovedByPartner => next.await_approved(now),
            _ => {
                return kit::call::resend(
                    self,
                    self.step.run().unwrap(),
                    &self.request().unwrap(),
                    now,
                    "not approved",
                );
            }
        }
        kit::advance(next, format!("the borrower is {}", borrower.status))
    }
}

impl Machine for Approval {
    type Phase = Step;
    fn phase(&self) -> &Step {
        &self.step
    }
    fn phase_mut(&mut self) -> &mut Step {
        &mut self.step
    }
    fn workflow_id(&self) -> &WorkflowId {
        &self.id
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
    fn finished_action(&self) -> Action {
        match &self.step {
            Step::Failed { reason } => Action::Fail {
                reason: reason.clone(),
            },
            Step::Cancelled { by } => Action::Cancelled {
                by: by.clone(),
                reason: String::new(),
            },
            _ => Action::Complete {
                outcome: Outcome::BorrowerApproved {
                    user_id: self.user_id.clone(),
                },
            },
        }
    }
    fn inconsistent_hint(&self) -> &'static str {
        "cancel"
    }
    fn request(&self) -> Option<FinfraRequest> {
        Some(FinfraRequest::ApproveBorrower {
            user_id: self.user_id.clone(),
        })
    }
    fn reconcile_read(&self) -> Option<FinfraRequest> {
        Some(FinfraRequest::GetBorrower {
            user_id: self.user_id.clone(),
        })
    }
    fn expected(&self) -> Vec<Expected> {
        vec![Expected::new(
            CallbackTitle::UserApproved,
            CorrelationKey::UserId,
            self.user_id.as_str(),
        )]
    }
    fn poll_request(&self) -> Option<FinfraRequest> {
        self.reconcile_read()
    }
    fn poll_every(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn cancel(&self, by: &str, _reason: &str) -> Transition<Self> {
        let mut next = self.clone();
        next.step = Step::Cancelled { by: by.to_owned() };
        kit::advance(next, "cancelled")
    }
    fn restart(&mut self, now: DateTime<Utc>) {
        match &mut self.step {
            Step::Approve { run } => *run = run.restarted(),
            _ => self.await_approved(now),
        }
    }
    fn resolve_user_id(
        &self,
        _: &Step,
        _: UserId,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
    ) -> Transition<Self> {
        kit::ignore(self, "resolve refused: the borrower is known")
    }
    fn succeeded(&self, response: &FinfraResponse, now: DateTime<Utc>) -> Transition<Self> {
        match response {
            FinfraResponse::ApproveBorrower(borrower) => self.after_read(borrower, now),
            other => kit::unexpected(self, other, now),
        }
    }
    fn reconciled(
        &self,
        _: &Run,
        _: &FinfraRequest,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self> {
        match response {
            FinfraResponse::GetBorrower(borrower) => self.after_read(borrower, now),
            other => kit::unexpected(self, other, now),
        }
    }
    fn record(&mut self, callback: &CallbackEvent, _now: DateTime<Utc>) -> Option<String> {
        let CallbackEvent::Status(status) = callback else {
            return None;
        };
        let ours = status.user_id.as_deref() == Some(self.user_id.as_str());
        (ours && status.callback_title == CallbackTitle::UserApproved).then(|| {
            self.step = Step::Approved;
            "recorded user_approved".to_owned()
        })
    }
    fn settle(&mut self, _now: DateTime<Utc>) -> bool {
        matches!(self.step, Step::Approved)
    }
    fn polled(
        &self,
        wait: &Waiting,
        response: &FinfraResponse,
        now: DateTime<Utc>,
    ) -> Transition<Self> {
        match response {
            FinfraResponse::GetBorrower(b) if b.status == BorrowerStatus::Approved => {
                self.after_read(b, now)
            }
            _ => kit::with_wait(
                self,
                kit::wait::poll_answered(wait, now, self.poll_every()),
                "not yet",
            ),
        }
    }
    fn timed_out(&self, now: DateTime<Utc>) -> Transition<Self> {
        kit::attention(
            self.clone(),
            Reason::new("approval_timeout", "not APPROVED in time").with_hint(kit::RETRY_HINT),
            now,
        )
    }
}

// ---- the kind: end ----

const USER: &str = "6a41ff87dda4eefd0b7b0300";

fn t(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).single().unwrap() + TimeDelta::seconds(n)
}

fn start() -> Approval {
    Approval {
        id: WorkflowId::new("wf-kit").unwrap(),
        user_id: UserId::new(USER).unwrap(),
        step: Step::Approve {
            run: Run::new(None),
        },
    }
}

fn borrower(status: BorrowerStatus) -> Borrower {
    serde_json::from_value(json!({
        "id": USER, "partner_id": "p", "status": status.as_str(), "type": "PERSONAL",
        "authorised_signatory": {}, "created_at": "2026-01-05T08:00:00Z"
    }))
    .unwrap()
}

fn approved_callback() -> Event {
    Event::Callback(CallbackEvent::Status(StatusCallback {
        event_id: "evt-1".to_owned(),
        callback_title: CallbackTitle::UserApproved,
        occurred_at: t(0),
        user_id: Some(USER.to_owned()),
        identity_number: None,
        kyc_id: None,
        loan_unique_id: None,
        status: "APPROVED".to_owned(),
        data: CallbackData::default(),
    }))
}

fn drive(state: &Approval, events: &[(Event, i64)]) -> Transition<Approval> {
    let mut t0 = kit::resume(state, "start");
    for (event, at) in events {
        t0 = kit::decide(&t0.state, event, t(*at));
    }
    t0
}

fn read_of(action: &Action) -> Option<&'static str> {
    action.request().map(FinfraRequest::name)
}

#[test]
fn a_lost_answer_is_read_before_anything_is_sent_again() {
    let lost = drive(
        &start(),
        &[(Event::CallFailed(CallFailure::timeout(true, false)), 0)],
    );
    assert_eq!(lost.state.step.status(), Status::Ambiguous);
    assert_eq!(read_of(&lost.action), Some("get_borrower"));
    let applied = kit::decide(
        &lost.state,
        &Event::CallSucceeded(FinfraResponse::GetBorrower(borrower(
            BorrowerStatus::ApprovedByPartner,
        ))),
        t(1),
    );
    assert_eq!(applied.state.step.name(), "await_approved");
}

#[test]
fn a_refusal_after_an_unknown_outcome_is_read_first_and_stands_only_if_nothing_was_applied() {
    // Interrupted, read: not applied, sent again; the repeat is refused.
    let resent = drive(
        &start(),
        &[
            (Event::CallInterrupted, 0),
            (
                Event::CallSucceeded(FinfraResponse::GetBorrower(borrower(
                    BorrowerStatus::Verified,
                ))),
                1,
            ),
        ],
    );
    assert_eq!(read_of(&resent.action), Some("approve_borrower"));
    let refused = kit::decide(
        &resent.state,
        &Event::CallFailed(CallFailure::rejected(400, "KYC not complete")),
        t(2),
    );
    assert_eq!(
        read_of(&refused.action),
        Some("get_borrower"),
        "{}",
        refused.note
    );
    // The read shows the first send was applied after all: on, no attention.
    let on = kit::decide(
        &refused.state,
        &Event::CallSucceeded(FinfraResponse::GetBorrower(borrower(
            BorrowerStatus::ApprovedByPartner,
        ))),
        t(3),
    );
    assert_eq!(on.state.step.name(), "await_approved");
    // Or it shows nothing was applied: the refusal stands, for a person (not sent a third time).
    let stands = kit::decide(
        &refused.state,
        &Event::CallSucceeded(FinfraResponse::GetBorrower(borrower(
            BorrowerStatus::Verified,
        ))),
        t(3),
    );
    assert!(
        matches!(stands.action, Action::NeedsAttention { .. }),
        "{}",
        stands.note
    );
}

#[test]
fn a_stuck_wait_resumes_by_itself_when_its_callback_arrives() {
    let waiting = drive(
        &start(),
        &[(
            Event::CallSucceeded(FinfraResponse::ApproveBorrower(borrower(
                BorrowerStatus::ApprovedByPartner,
            ))),
            0,
        )],
    );
    let stuck = kit::decide(&waiting.state, &Event::Wake, t(601));
    let Action::NeedsAttention { listening, .. } = &stuck.action else {
        panic!("expected needs attention: {}", stuck.note)
    };
    assert_eq!(listening.len(), 1, "the stuck wait keeps listening");
    let resumed = kit::decide(&stuck.state, &approved_callback(), t(700));
    assert_eq!(resumed.handled, Handled::Advanced);
    assert_eq!(resumed.state.step.name(), "approved", "{}", resumed.note);
    assert!(
        resumed.note.contains("resumed by itself"),
        "{}",
        resumed.note
    );
}

#[test]
fn commands_are_the_kits() {
    let waiting = drive(
        &start(),
        &[(
            Event::CallSucceeded(FinfraResponse::ApproveBorrower(borrower(
                BorrowerStatus::ApprovedByPartner,
            ))),
            0,
        )],
    );
    let stuck = kit::decide(&waiting.state, &Event::Wake, t(601));
    let retry = Event::Resolve {
        by: "ops".into(),
        reason: "again".into(),
        data: json!({"retry": true}),
    };
    let again = kit::decide(&stuck.state, &retry, t(602));
    assert_eq!(again.state.step.name(), "await_approved");
    let refused = kit::decide(&again.state, &retry, t(603));
    assert_eq!(
        refused.handled,
        Handled::Ignored,
        "resolve outside needs_attention"
    );
    let done = kit::decide(&again.state, &approved_callback(), t(604));
    let late = kit::decide(
        &done.state,
        &Event::Cancel {
            by: "ops".into(),
            reason: "late".into(),
        },
        t(605),
    );
    assert_eq!(late.handled, Handled::Ignored, "{}", late.note);
}
