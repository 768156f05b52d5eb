//! [`Event`]: what happened, as the executor tells a workflow. Every decision is
//! `(state, event, now) -> (state, action)`; the executor turns each action's result (a
//! Finfra answer, a failure, a callback, a timer, an operator's command) into one event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use finfra_api::callback::{CallbackTitle, InvoiceCallback, StatusCallback, VirtualAccountPayment};

use crate::failure::CallFailure;
use crate::response::FinfraResponse;

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
        }
    }

    /// The title of a status callback.
    #[must_use]
    pub fn title(&self) -> Option<&CallbackTitle> {
        match self {
            Self::Status(s) => Some(&s.callback_title),
            Self::VirtualAccountPayment(_) | Self::Invoice(_) => None,
        }
    }
}

impl From<StatusCallback> for CallbackEvent {
    fn from(callback: StatusCallback) -> Self {
        Self::Status(callback)
    }
}
