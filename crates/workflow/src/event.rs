//! [`Event`]: what happened, as the executor tells a workflow. Every decision is
//! `(state, event, now) -> (state, action)`; the executor turns each action's result (a
//! Finfra answer, a failure, a callback, a timer, an operator's command) into one event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use finfra_api::callback::{CallbackTitle, InvoiceCallback, StatusCallback, VirtualAccountPayment};

use crate::action::{Action, CorrelationKey, Expected, Outcome, Reason};
use crate::failure::CallFailure;
use crate::kind::Kind;
use crate::response::FinfraResponse;
use crate::summary::{Status, Summary};

/// One thing that happened to a workflow.
// One event is built per step and moved once: boxing the large answers would cost every
// caller an allocation and a `Box::new` for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// Begin: the first event of a freshly initialised workflow. On a workflow that is
    /// already under way it means "resume": the current action is issued again, safely
    /// (a non-idempotent call that may have been sent is reconciled, not re-sent).
    Start,
    /// The call of the last `Action::Call` succeeded with this answer.
    CallSucceeded(FinfraResponse),
    /// The call of the last `Action::Call` failed.
    CallFailed(CallFailure),
    /// The executor does not know what became of the last `Action::Call`: the worker that
    /// made it died, or lost its lease, before recording the outcome. The call may or may
    /// not have reached Finfra.
    CallInterrupted,
    /// A callback from Finfra that matches what the workflow waits for.
    Callback(CallbackEvent),
    /// A time the workflow asked for has come: the `at` of `Action::SleepUntil`, or the
    /// `wake_at` of `Action::Wait` (a poll is due or the deadline has passed; the workflow
    /// tells which from `now`).
    Wake,
    /// Finfra's books show the workflow behind (a reconciliation run found it): a wait
    /// with a poll reads Finfra now instead of at its next poll; anything else ignores it.
    PollNow {
        /// Who asked (the run).
        by: String,
    },
    /// An operator cancels the workflow.
    Cancel {
        /// Who (an operator's name, a system).
        by: String,
        /// Why, for the record.
        reason: String,
    },
    /// An operator moves a workflow out of `needs_attention`, with what a person decided or
    /// found out (e.g. `{"user_id": "..."}` when a callback was lost for good, or
    /// `{"retry": true}`). Each workflow documents the `data` it accepts.
    Resolve {
        /// Who.
        by: String,
        /// Why, for the record.
        reason: String,
        /// What the person supplies.
        #[serde(default)]
        data: Value,
    },
}

impl Event {
    /// The event's name, as serialized in `event`: for the journal.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::CallSucceeded(_) => "call_succeeded",
            Self::CallFailed(_) => "call_failed",
            Self::CallInterrupted => "call_interrupted",
            Self::Callback(_) => "callback",
            Self::Wake => "wake",
            Self::PollNow { .. } => "poll_now",
            Self::Cancel { .. } => "cancel",
            Self::Resolve { .. } => "resolve",
        }
    }
}

/// A callback from Finfra, as the receiver stored it: the body of one of the callback paths
/// (`finfra_api::callback`'s types, not copies of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "path", content = "body", rename_all = "snake_case")]
pub enum CallbackEvent {
    /// `POST /api/core/ftm/users/{callbackTitle}/status`.
    Status(StatusCallback),
    /// `POST /api/core/payment-gateway/virtual-account/status`.
    VirtualAccountPayment(VirtualAccountPayment),
    /// `POST /api/core/payment-gateway/invoices/status`.
    Invoice(InvoiceCallback),
    /// Not from Finfra: another workflow of this engine finished (see [`WorkflowFinished`]).
    Workflow(WorkflowFinished),
}

impl CallbackEvent {
    /// The id the inbox deduplicates on: `event_id` of a status callback, the payment's or
    /// invoice's `id`.
    #[must_use]
    pub fn event_id(&self) -> &str {
        match self {
            Self::Status(s) => &s.event_id,
            Self::VirtualAccountPayment(p) => &p.id,
            Self::Invoice(i) => &i.id,
            Self::Workflow(w) => &w.workflow_id,
        }
    }

    /// The title of a status callback.
    #[must_use]
    pub fn title(&self) -> Option<&CallbackTitle> {
        match self {
            Self::Status(s) => Some(&s.callback_title),
            Self::VirtualAccountPayment(_) | Self::Invoice(_) | Self::Workflow(_) => None,
        }
    }
}

impl From<StatusCallback> for CallbackEvent {
    fn from(callback: StatusCallback) -> Self {
        Self::Status(callback)
    }
}

/// The end of a workflow, announced to the workflows that wait for it: `originate-loan`
/// waits for the `onboard-borrower` workflow its input names.
///
/// A wait for it is an [`Expected`] (built by [`WorkflowFinished::expected`]) whose title is
/// [`WorkflowFinished::TITLE`] and whose key is the `external_id` column holding
/// `"<kind>/<business key>"` ([`WorkflowFinished::correlation`]): the store's inbox and
/// waits match it like a callback, with no new correlation column. The executor delivers it
/// as `Event::Callback(CallbackEvent::Workflow(..))`, the inbox row's payload being this
/// struct as JSON (what [`WorkflowFinished::new`] builds from the finished workflow's last
/// decision). See `crate::originate` for what the store must do to deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowFinished {
    /// The finished workflow's id: the inbox's event id (one per finished workflow and
    /// waiter).
    pub workflow_id: String,
    /// Its kind, e.g. `onboard-borrower`.
    pub kind: String,
    /// Its business key.
    pub business_key: String,
    /// `completed`, `failed` or `cancelled`.
    pub status: Status,
    /// Its final state name, e.g. `approved`, `declined`, `failed`.
    pub state: String,
    /// What it achieved, when completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why, when it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl WorkflowFinished {
    /// The title a wait for a workflow's end matches on.
    pub const TITLE: &'static str = "workflow_finished";

    /// The correlation value of a workflow: `"<kind>/<business key>"` (kinds have no `/`,
    /// so the first one separates).
    #[must_use]
    pub fn correlation(kind: Kind, business_key: &str) -> String {
        format!("{}/{business_key}", kind.as_str())
    }

    /// The wait for the end of the workflow `(kind, business_key)`.
    #[must_use]
    pub fn expected(kind: Kind, business_key: &str) -> Expected {
        Expected::new(
            CallbackTitle::from(Self::TITLE),
            CorrelationKey::ExternalId,
            Self::correlation(kind, business_key),
        )
    }

    /// The correlation value it is announced under: `"<kind>/<business key>"`, what
    /// [`Self::expected`] waits for.
    #[must_use]
    pub fn announced_as(&self) -> String {
        format!("{}/{}", self.kind, self.business_key)
    }

    /// The announcement of a workflow's last decision, when that decision finished it
    /// (`Complete`, `Fail` or `Cancelled`); `None` otherwise. For the executor, in the
    /// transaction that commits that decision.
    #[must_use]
    pub fn new(
        workflow_id: &str,
        kind: &str,
        business_key: &str,
        summary: &Summary,
        action: &Action,
    ) -> Option<Self> {
        let (outcome, reason) = match action {
            Action::Complete { outcome } => (Some(outcome.clone()), None),
            Action::Fail { reason } => (None, Some(reason.clone())),
            Action::Cancelled { by, reason } => (
                None,
                Some(Reason::new(
                    "cancelled",
                    format!("cancelled by {by}: {reason}"),
                )),
            ),
            Action::Call { .. }
            | Action::Wait { .. }
            | Action::SleepUntil { .. }
            | Action::NeedsAttention { .. } => return None,
        };
        Some(Self {
            workflow_id: workflow_id.to_owned(),
            kind: kind.to_owned(),
            business_key: business_key.to_owned(),
            status: summary.status,
            state: summary.state.clone(),
            outcome,
            reason,
        })
    }
}
