//! Lifecycle events: what a step tells the world outside finflow (the `events` feed and the
//! webhooks built on it). One pure function, [`lifecycle_events`], compares what the
//! workflow knew before a step with what it knows after it (its facts, its state, its
//! status) and reads the decided action; the executor puts the result into the step's
//! commit, so an event exists exactly when the step that caused it committed.
//!
//! The event types are a contract (stored in `events.event_type`, sent to webhooks): see
//! [`EventType`] and the README's table. Payloads carry ids, amounts and stable codes only:
//! no names, NIKs, phone numbers or free text.
//!
//! Because the function compares before and after, a step that repeats what is already
//! known (a duplicate callback, a re-read after a crash) emits nothing.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::action::{Action, Outcome};
use crate::machine::{Kind, Observations, Summary};

/// The type of a lifecycle event: its stored and sent name is a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `borrower.approved`: an onboarding completed with the borrower `APPROVED`.
    BorrowerApproved,
    /// `borrower.declined`: an onboarding completed with the credit policy declining.
    BorrowerDeclined,
    /// `borrower.failed`: an onboarding failed (or its input was invalid).
    BorrowerFailed,
    /// `loan.created`: Finfra has the loan.
    LoanCreated,
    /// `loan.signed`: the borrower signed.
    LoanSigned,
    /// `loan.disbursed`: the money left.
    LoanDisbursed,
    /// `loan.disbursement_failed`: Finfra refused or failed a disbursement.
    LoanDisbursementFailed,
    /// `loan.payment_applied`: a repayment was applied.
    LoanPaymentApplied,
    /// `loan.overdue`: an installment became overdue.
    LoanOverdue,
    /// `loan.paid`: fully repaid; the origination completed.
    LoanPaid,
    /// `loan.rejected`: the loan was rejected at Finfra (signing timeout, or by Finfra).
    LoanRejected,
    /// `loan.cancelled`: an operator cancelled the origination.
    LoanCancelled,
    /// `workflow.needs_attention`: the workflow stopped until a person acts.
    WorkflowNeedsAttention,
    /// `workflow.failed`: a workflow failed and no kind-specific type says so.
    WorkflowFailed,
    /// `workflow.cancelled`: a workflow other than an origination was cancelled.
    WorkflowCancelled,
    /// `reconcile.finding`: a reconciliation run found a difference on a page it read.
    ReconcileFinding,
}

impl EventType {
    /// Every type, in the README's order.
    pub const ALL: &'static [EventType] = &[
        Self::BorrowerApproved,
        Self::BorrowerDeclined,
        Self::BorrowerFailed,
        Self::LoanCreated,
        Self::LoanSigned,
        Self::LoanDisbursed,
        Self::LoanDisbursementFailed,
        Self::LoanPaymentApplied,
        Self::LoanOverdue,
        Self::LoanPaid,
        Self::LoanRejected,
        Self::LoanCancelled,
        Self::WorkflowNeedsAttention,
        Self::WorkflowFailed,
        Self::WorkflowCancelled,
        Self::ReconcileFinding,
    ];

    /// The stored and sent name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BorrowerApproved => "borrower.approved",
            Self::BorrowerDeclined => "borrower.declined",
            Self::BorrowerFailed => "borrower.failed",
            Self::LoanCreated => "loan.created",
            Self::LoanSigned => "loan.signed",
            Self::LoanDisbursed => "loan.disbursed",
            Self::LoanDisbursementFailed => "loan.disbursement_failed",
            Self::LoanPaymentApplied => "loan.payment_applied",
            Self::LoanOverdue => "loan.overdue",
            Self::LoanPaid => "loan.paid",
            Self::LoanRejected => "loan.rejected",
            Self::LoanCancelled => "loan.cancelled",
            Self::WorkflowNeedsAttention => "workflow.needs_attention",
            Self::WorkflowFailed => "workflow.failed",
            Self::WorkflowCancelled => "workflow.cancelled",
            Self::ReconcileFinding => "reconcile.finding",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?} (known: {known})", known = known_types())]
pub struct UnknownEventType(pub String);

fn known_types() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// One event a step emits: its type and its payload (a JSON object).
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    pub event_type: EventType,
    pub payload: Value,
}

impl LifecycleEvent {
    fn new(event_type: EventType, payload: Value) -> Self {
        Self {
            event_type,
            payload,
        }
    }
}

/// What the workflow knew before the step.
#[derive(Debug, Clone, Copy)]
pub struct Before<'a> {
    /// The stored facts (`workflows.facts`; `{}` before the first step).
    pub facts: &'a Value,
    /// The stored state (`workflows.context`).
    pub state: &'a Value,
    /// Whether it was stored `needs_attention`.
    pub needs_attention: bool,
}

/// What the step decided.
#[derive(Debug, Clone, Copy)]
pub struct After<'a> {
    /// The decision's summary (state name, status, facts).
    pub summary: &'a Summary,
    /// The decision's state.
    pub state: &'a Value,
    /// The decision's action.
    pub action: &'a Action,
    /// What the step saw besides its state: a reconciliation's findings.
    pub observations: &'a Observations,
}

/// The events of one step of a workflow of `kind` (a stored kind name; an unknown one gets
/// only the generic `workflow.*` events), in the order they happened.
#[must_use]
pub fn lifecycle_events(kind: &str, before: &Before<'_>, after: &After<'_>) -> Vec<LifecycleEvent> {
    let kind = kind.parse::<Kind>().ok();
    let mut events = Vec::new();
    if kind == Some(Kind::OriginateLoan) {
        loan_progress(before, after, &mut events);
    }
    // What a reconciliation run found on this page, one event per finding.
    for f in &after.observations.findings {
        events.push(LifecycleEvent::new(
            EventType::ReconcileFinding,
            json!({
                "loan_unique_id": f.loan_unique_id,
                "workflow_id": f.workflow_id,
                "kind": f.kind.as_str(),
                "money": f.money,
            }),
        ));
    }
    let facts = &after.summary.facts;
    let state = after.summary.state.as_str();
    match after.action {
        Action::Complete { outcome } => events.push(match outcome {
            Outcome::BorrowerApproved { user_id } => {
                LifecycleEvent::new(EventType::BorrowerApproved, json!({ "user_id": user_id }))
            }
            Outcome::BorrowerDeclined { user_id, reasons } => LifecycleEvent::new(
                EventType::BorrowerDeclined,
                json!({ "user_id": user_id, "reasons": reasons.len() }),
            ),
            Outcome::LoanPaid {
                unique_id,
                user_id,
                total_paid,
            } => LifecycleEvent::new(
                EventType::LoanPaid,
                json!({ "loan_unique_id": unique_id, "user_id": user_id, "total_paid": total_paid }),
            ),
            // A run's end is no lender's event: its findings were announced page by page.
            Outcome::Reconciled { .. } => return events,
        }),
        Action::Fail { reason } => {
            let (event_type, mut payload) = match kind {
                Some(Kind::OnboardBorrower) => (
                    EventType::BorrowerFailed,
                    json!({ "user_id": facts.get("user_id").cloned().unwrap_or(Value::Null) }),
                ),
                Some(Kind::OriginateLoan) if state == crate::originate::state::REJECTED => (
                    EventType::LoanRejected,
                    json!({ "loan_unique_id": loan_id(facts) }),
                ),
                Some(Kind::OriginateLoan) => (
                    EventType::WorkflowFailed,
                    json!({ "loan_unique_id": loan_id(facts) }),
                ),
                Some(Kind::ReconcileLoans) | None => (EventType::WorkflowFailed, json!({})),
            };
            insert(&mut payload, "state", json!(state));
            insert(&mut payload, "reason", json!(reason.code));
            events.push(LifecycleEvent::new(event_type, payload));
        }
        Action::Cancelled { .. } => events.push(match kind {
            Some(Kind::OriginateLoan) => LifecycleEvent::new(
                EventType::LoanCancelled,
                json!({ "loan_unique_id": loan_id(facts), "state": state }),
            ),
            Some(Kind::OnboardBorrower | Kind::ReconcileLoans) | None => {
                LifecycleEvent::new(EventType::WorkflowCancelled, json!({ "state": state }))
            }
        }),
        Action::NeedsAttention { step, reason, .. } if !before.needs_attention => {
            events.push(LifecycleEvent::new(
                EventType::WorkflowNeedsAttention,
                json!({ "step": step, "reason": reason.code }),
            ));
        }
        Action::NeedsAttention { .. }
        | Action::Call { .. }
        | Action::Wait { .. }
        | Action::SleepUntil { .. } => {}
    }
    events
}

/// The events of cancelling a workflow of `kind` that never started (the store cancels it
/// without a step: nothing was sent to Finfra): as a step that decided `Cancelled` from
/// state `new` would emit.
#[must_use]
pub fn cancelled_before_start(kind: &str) -> Vec<LifecycleEvent> {
    let empty = Value::Object(Map::new());
    let summary = Summary {
        state: "new".to_owned(),
        status: crate::machine::Status::Cancelled,
        definition: crate::definition::DefinitionRef {
            name: String::new(),
            version: 0,
            digest: String::new(),
        },
        attempt: 1,
        last_error: None,
        facts: empty.clone(),
    };
    let action = Action::Cancelled {
        by: String::new(),
        reason: String::new(),
    };
    lifecycle_events(
        kind,
        &Before {
            facts: &empty,
            state: &empty,
            needs_attention: false,
        },
        &After {
            summary: &summary,
            state: &empty,
            action: &action,
            observations: &Observations::default(),
        },
    )
}

fn insert(payload: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = payload {
        map.insert(key.to_owned(), value);
    }
}

fn loan_id(facts: &Value) -> Value {
    facts.get("loan_unique_id").cloned().unwrap_or(Value::Null)
}

/// How far a loan status is along the way (`None`: off it, i.e. rejected or unknown).
fn loan_rank(facts: &Value) -> Option<u8> {
    Some(match facts.get("loan_status")?.as_str()? {
        "PENDING" => 1,
        "SIGNING" => 2,
        "SIGNED" => 3,
        "DISBURSING" | "DISBURSEMENT_FAILED" => 4,
        "DISBURSED" => 5,
        "PAID" => 6,
        _ => return None,
    })
}

fn count(facts: &Value, key: &str) -> u64 {
    facts.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn list<'a>(state: &'a Value, pointer: &str) -> &'a [Value] {
    state
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn decimal(value: Option<&Value>) -> Decimal {
    match value {
        Some(Value::String(s)) => s.parse().unwrap_or(Decimal::ZERO),
        Some(Value::Number(n)) => n.to_string().parse().unwrap_or(Decimal::ZERO),
        _ => Decimal::ZERO,
    }
}

/// The loan's milestones reached in this step, from its facts and its stored record.
fn loan_progress(before: &Before<'_>, after: &After<'_>, events: &mut Vec<LifecycleEvent>) {
    let (old, new) = (before.facts, &after.summary.facts);
    let id = loan_id(new);
    let has_status = |f: &Value| f.get("loan_status").is_some_and(|s| !s.is_null());
    if !has_status(old) && has_status(new) {
        events.push(LifecycleEvent::new(
            EventType::LoanCreated,
            json!({
                "loan_unique_id": id,
                "user_id": new.get("user_id").cloned().unwrap_or(Value::Null),
                "loan_type": new.get("loan_type").cloned().unwrap_or(Value::Null),
                "total_amount": new.get("total_amount").cloned().unwrap_or(Value::Null),
            }),
        ));
    }
    let (was, is) = (loan_rank(old).unwrap_or(0), loan_rank(new).unwrap_or(0));
    if was < 3 && is >= 3 {
        events.push(LifecycleEvent::new(
            EventType::LoanSigned,
            json!({ "loan_unique_id": id }),
        ));
    }
    let failures = (
        count(old, "disbursement_failures"),
        count(new, "disbursement_failures"),
    );
    if failures.1 > failures.0 {
        events.push(LifecycleEvent::new(
            EventType::LoanDisbursementFailed,
            json!({ "loan_unique_id": id, "failures": failures.1 }),
        ));
    }
    let disbursed = |f: &Value| f.get("disbursement_status") == Some(&json!("DISBURSED"));
    if !disbursed(old) && disbursed(new) {
        events.push(LifecycleEvent::new(
            EventType::LoanDisbursed,
            json!({
                "loan_unique_id": id,
                "disbursement_reference": new.get("disbursement_reference").cloned().unwrap_or(Value::Null),
            }),
        ));
    }

    // Payments, each once, with the installment it starts to fill (installments in order).
    let known = list(before.state, "/loan/repayment/payments").len();
    let payments = list(after.state, "/loan/repayment/payments");
    let schedule = list(after.state, "/loan/schedule");
    let mut paid: Decimal = payments
        .iter()
        .take(known)
        .map(|p| decimal(p.get("amount")))
        .sum();
    for payment in payments.iter().skip(known) {
        let amount = decimal(payment.get("amount"));
        let mut due = Decimal::ZERO;
        let installment = schedule.iter().find_map(|i| {
            due += decimal(i.get("total"));
            (due > paid).then(|| i.get("sequence").cloned().unwrap_or(Value::Null))
        });
        let mut payload = Map::new();
        payload.insert("loan_unique_id".to_owned(), id.clone());
        payload.insert(
            "payment_id".to_owned(),
            payment.get("id").cloned().unwrap_or(Value::Null),
        );
        payload.insert("amount".to_owned(), json!(amount));
        payload.insert("installment".to_owned(), installment.unwrap_or(Value::Null));
        events.push(LifecycleEvent::new(
            EventType::LoanPaymentApplied,
            Value::Object(payload),
        ));
        paid += amount;
    }

    let flagged = list(before.state, "/loan/repayment/overdue").len();
    for overdue in list(after.state, "/loan/repayment/overdue")
        .iter()
        .skip(flagged)
    {
        events.push(LifecycleEvent::new(
            EventType::LoanOverdue,
            json!({
                "loan_unique_id": id,
                "installment": overdue.get("sequence").cloned().unwrap_or(Value::Null),
                "due_date": overdue.get("due_date").cloned().unwrap_or(Value::Null),
                "outstanding": overdue.get("outstanding").cloned().unwrap_or(Value::Null),
            }),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Reason;
    use crate::definition::DefinitionRef;
    use crate::ids::{LoanUniqueId, UserId};
    use crate::machine::Status;

    const ONBOARD: &str = "onboard-borrower";
    const ORIGINATE: &str = "originate-loan";
    const USER: &str = "6a41b2c3d4e5f60718293a4b";

    fn summary(state: &str, status: Status, facts: Value) -> Summary {
        Summary {
            state: state.to_owned(),
            status,
            definition: DefinitionRef {
                name: "personal-single-payment".to_owned(),
                version: 1,
                digest: "d".to_owned(),
            },
            attempt: 1,
            last_error: None,
            facts,
        }
    }

    fn wait() -> Action {
        Action::SleepUntil {
            step: "repaying".to_owned(),
            at: chrono::DateTime::UNIX_EPOCH,
            reason: crate::action::SleepReason::Recheck,
        }
    }

    /// The types one step emits, from `before` (facts, state, stuck) to `after`.
    fn emitted(
        kind: &str,
        before: (&Value, &Value, bool),
        after: (&Summary, &Value, &Action),
    ) -> Vec<LifecycleEvent> {
        lifecycle_events(
            kind,
            &Before {
                facts: before.0,
                state: before.1,
                needs_attention: before.2,
            },
            &After {
                summary: after.0,
                state: after.1,
                action: after.2,
                observations: &Observations::default(),
            },
        )
    }

    fn types(events: &[LifecycleEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.event_type.as_str()).collect()
    }

    fn loan(status: Option<&str>, disbursement: Option<&str>, failures: u64) -> Value {
        json!({
            "loan_unique_id": "op-0123456789",
            "user_id": USER,
            "loan_type": "BNPL",
            "total_amount": "300.00",
            "loan_status": status,
            "disbursement_status": disbursement,
            "disbursement_reference": disbursement.map(|_| "D-1"),
            "disbursement_failures": failures,
        })
    }

    fn record(payments: &[(&str, &str)], overdue: &[u32]) -> Value {
        json!({ "loan": {
            "schedule": [
                { "sequence": 1, "total": "100.00" },
                { "sequence": 2, "total": "100.00" },
                { "sequence": 3, "total": "100.00" },
            ],
            "repayment": {
                "payments": payments.iter().map(|(id, amount)| json!({ "id": id, "amount": amount })).collect::<Vec<_>>(),
                "overdue": overdue.iter().map(|s| json!({ "sequence": s, "due_date": "2026-03-01", "outstanding": "100.00" })).collect::<Vec<_>>(),
            },
        }})
    }

    /// One row per transition: what the facts were, what they become, what is emitted.
    #[test]
    fn each_finding_of_a_reconciliation_page_is_announced() {
        let facts = json!({"pages": 1});
        let summary = Summary {
            state: "fetch_page".to_owned(),
            status: Status::Running,
            definition: DefinitionRef {
                name: "reconcile-loans".to_owned(),
                version: 1,
                digest: "builtin".to_owned(),
            },
            attempt: 1,
            last_error: None,
            facts: facts.clone(),
        };
        let finding = |id: &str, kind, money| crate::reconcile::Finding {
            loan_unique_id: id.to_owned(),
            workflow_id: Some("wf-1".to_owned()),
            kind,
            ours: Some("SIGNED".to_owned()),
            theirs: Some("DISBURSED".to_owned()),
            money,
        };
        let observations = Observations {
            findings: vec![
                finding("op-1", crate::reconcile::FindingKind::StatusDiffers, false),
                finding(
                    "op-2",
                    crate::reconcile::FindingKind::DisbursementReferenceDiffers,
                    true,
                ),
            ],
            ..Observations::default()
        };
        let action = Action::Call {
            step: "fetch_page".to_owned(),
            purpose: crate::action::CallPurpose::Perform,
            request: crate::request::FinfraRequest::GetLoan {
                unique_id: "x".to_owned(),
            },
            operation_key: None,
            attempt: 1,
        };
        let empty = json!({});
        let events = lifecycle_events(
            "reconcile-loans",
            &Before {
                facts: &empty,
                state: &empty,
                needs_attention: false,
            },
            &After {
                summary: &summary,
                state: &facts,
                action: &action,
                observations: &observations,
            },
        );
        assert_eq!(events.len(), 2);
        assert!(
            events
                .iter()
                .all(|e| e.event_type == EventType::ReconcileFinding)
        );
        assert_eq!(events[1].payload["kind"], "disbursement_reference_differs");
        assert_eq!(events[1].payload["money"], true);
        assert_eq!(events[0].payload["loan_unique_id"], "op-1");
        assert!(
            events[0].payload.get("finflow_value").is_none(),
            "ids and codes only"
        );
    }

    #[test]
    fn each_loan_milestone_is_emitted_once_when_reached() {
        let empty = json!({});
        let none = record(&[], &[]);
        let table: Vec<(Value, Value, Vec<&str>)> = vec![
            (empty.clone(), loan(None, None, 0), vec![]),
            (
                loan(None, None, 0),
                loan(Some("PENDING"), None, 0),
                vec!["loan.created"],
            ),
            (
                loan(Some("PENDING"), None, 0),
                loan(Some("SIGNING"), None, 0),
                vec![],
            ),
            (
                loan(Some("SIGNING"), None, 0),
                loan(Some("SIGNED"), None, 0),
                vec!["loan.signed"],
            ),
            (
                loan(Some("SIGNED"), None, 0),
                loan(Some("DISBURSING"), Some("DISBURSING"), 0),
                vec![],
            ),
            (
                loan(Some("DISBURSING"), Some("DISBURSING"), 0),
                loan(Some("DISBURSEMENT_FAILED"), Some("FAILED"), 1),
                vec!["loan.disbursement_failed"],
            ),
            (
                loan(Some("DISBURSEMENT_FAILED"), Some("FAILED"), 1),
                loan(Some("DISBURSED"), Some("DISBURSED"), 1),
                vec!["loan.disbursed"],
            ),
            // Learned all at once from one read (the answer to the create was lost).
            (
                empty.clone(),
                loan(Some("DISBURSED"), Some("DISBURSED"), 0),
                vec!["loan.created", "loan.signed", "loan.disbursed"],
            ),
            // Known already: a repeated read or callback says nothing new.
            (
                loan(Some("DISBURSED"), Some("DISBURSED"), 0),
                loan(Some("DISBURSED"), Some("DISBURSED"), 0),
                vec![],
            ),
            (
                loan(Some("SIGNED"), None, 0),
                loan(Some("REJECTED"), None, 0),
                vec![],
            ),
        ];
        for (before, after, expected) in table {
            let s = summary("await_signed", Status::Waiting, after.clone());
            let got = emitted(ORIGINATE, (&before, &none, false), (&s, &none, &wait()));
            assert_eq!(types(&got), expected, "{before} -> {after}");
        }
    }

    #[test]
    fn each_payment_is_emitted_once_with_its_amount_and_installment() {
        let facts = loan(Some("DISBURSED"), Some("DISBURSED"), 0);
        let s = summary("repaying", Status::Waiting, facts.clone());
        let before = record(&[("p1", "50.00")], &[]);
        let after = record(&[("p1", "50.00"), ("p2", "100.00"), ("p3", "20.00")], &[]);
        let got = emitted(ORIGINATE, (&facts, &before, false), (&s, &after, &wait()));
        assert_eq!(
            types(&got),
            ["loan.payment_applied", "loan.payment_applied"]
        );
        assert_eq!(got[0].payload["payment_id"], "p2");
        assert_eq!(got[0].payload["amount"], "100.00");
        assert_eq!(got[0].payload["installment"], 1, "50 of 100 were paid");
        assert_eq!(got[1].payload["installment"], 2);
        assert_eq!(got[1].payload["loan_unique_id"], "op-0123456789");
        let again = emitted(ORIGINATE, (&facts, &after, false), (&s, &after, &wait()));
        assert!(again.is_empty(), "a repeated step emits nothing");
    }

    #[test]
    fn each_overdue_flag_is_emitted_once() {
        let facts = loan(Some("DISBURSED"), Some("DISBURSED"), 0);
        let s = summary("repaying", Status::Waiting, facts.clone());
        let before = record(&[], &[1]);
        let after = record(&[], &[1, 2]);
        let got = emitted(ORIGINATE, (&facts, &before, false), (&s, &after, &wait()));
        assert_eq!(types(&got), ["loan.overdue"]);
        assert_eq!(got[0].payload["installment"], 2);
    }

    #[test]
    fn each_end_has_one_event_of_its_kind() {
        let user = UserId::new(USER).expect("a user id");
        let unique = LoanUniqueId::new("op-0123456789").expect("a loan id");
        let empty = json!({});
        let paid = loan(Some("PAID"), Some("DISBURSED"), 0);
        let onboarded = json!({ "user_id": USER });
        let fail = |code: &str| Action::Fail {
            reason: Reason::new(code, "why"),
        };
        let cancelled = Action::Cancelled {
            by: "ops".to_owned(),
            reason: "asked".to_owned(),
        };
        let table: Vec<(&str, &str, Value, Action, &str)> = vec![
            (
                ONBOARD,
                "approved",
                onboarded.clone(),
                Action::Complete {
                    outcome: Outcome::BorrowerApproved {
                        user_id: user.clone(),
                    },
                },
                "borrower.approved",
            ),
            (
                ONBOARD,
                "declined",
                onboarded.clone(),
                Action::Complete {
                    outcome: Outcome::BorrowerDeclined {
                        user_id: user.clone(),
                        reasons: vec!["score".to_owned()],
                    },
                },
                "borrower.declined",
            ),
            (
                ONBOARD,
                "failed",
                onboarded.clone(),
                fail("kyc_rejected"),
                "borrower.failed",
            ),
            (
                ONBOARD,
                "cancelled",
                onboarded.clone(),
                cancelled.clone(),
                "workflow.cancelled",
            ),
            (
                ORIGINATE,
                "paid",
                paid.clone(),
                Action::Complete {
                    outcome: Outcome::LoanPaid {
                        unique_id: unique,
                        user_id: user,
                        total_paid: Decimal::new(30000, 2),
                    },
                },
                "loan.paid",
            ),
            (
                ORIGINATE,
                "rejected",
                paid.clone(),
                fail("signing_timeout"),
                "loan.rejected",
            ),
            (
                ORIGINATE,
                "failed",
                paid.clone(),
                fail("borrower_declined"),
                "workflow.failed",
            ),
            (
                ORIGINATE,
                "cancelled",
                paid.clone(),
                cancelled,
                "loan.cancelled",
            ),
            (
                "some-future-kind",
                "failed",
                empty,
                fail("x"),
                "workflow.failed",
            ),
        ];
        for (kind, state, facts, action, expected) in table {
            let status = if matches!(action, Action::Complete { .. }) {
                Status::Completed
            } else {
                Status::Failed
            };
            let s = summary(state, status, facts.clone());
            let got = emitted(kind, (&facts, &json!({}), false), (&s, &json!({}), &action));
            assert_eq!(types(&got), [expected], "{kind} {state}");
            let payload = got[0].payload.to_string();
            for private in ["ops", "asked", "why"] {
                assert!(!payload.contains(private), "{payload} holds {private}");
            }
        }
    }

    #[test]
    fn needs_attention_is_emitted_when_it_begins_only() {
        let stuck = Action::NeedsAttention {
            step: "await_disbursement".to_owned(),
            reason: Reason::new("disbursement_timeout", "no answer"),
            listening: Vec::new(),
        };
        let facts = json!({});
        let s = summary("needs_attention", Status::NeedsAttention, facts.clone());
        let got = emitted(ONBOARD, (&facts, &facts, false), (&s, &facts, &stuck));
        assert_eq!(types(&got), ["workflow.needs_attention"]);
        assert_eq!(got[0].payload["reason"], "disbursement_timeout");
        let again = emitted(ONBOARD, (&facts, &facts, true), (&s, &facts, &stuck));
        assert!(again.is_empty(), "still stuck: nothing new");
    }

    #[test]
    fn a_cancel_before_the_start_is_announced_like_any_cancel() {
        let loan = cancelled_before_start(ORIGINATE);
        assert_eq!(types(&loan), ["loan.cancelled"]);
        assert_eq!(
            loan[0].payload,
            json!({ "loan_unique_id": null, "state": "new" })
        );
        assert_eq!(
            types(&cancelled_before_start(ONBOARD)),
            ["workflow.cancelled"]
        );
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
        }
        let err = "loan.exploded".parse::<EventType>().unwrap_err();
        assert!(err.to_string().contains("loan.exploded"));
        assert!(err.to_string().contains("loan.paid"));
    }
}
