//! [`Action`]: what a workflow asks the executor to do next. It is a pure function of the
//! state (every machine derives it from its state alone), so the executor may persist it
//! or recompute it, and a replay always asks for the same thing.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use finfra_api::callback::CallbackTitle;
use finfra_api::model::mask;

use crate::ids::{LoanUniqueId, OperationKey, UserId};
use crate::request::FinfraRequest;
use crate::serde_util::millis;

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Make one Finfra call now, then deliver `Event::CallSucceeded` or `CallFailed`.
    Call {
        /// The workflow's step (a state name), for the journal.
        step: String,
        /// Why this call: the step's own request, a reconciliation, or a poll.
        purpose: CallPurpose,
        /// The call.
        request: FinfraRequest,
        /// The logical operation this call belongs to: the same on every attempt and
        /// reconciliation of one operation. `None` for reads of a step that changes nothing.
        operation_key: Option<OperationKey>,
        /// 1-based attempt of the operation (reconciliation reads count their own).
        attempt: u32,
    },
    /// Wait for a callback, until `deadline`. Deliver `Event::Callback` when one of
    /// `events` arrives (or has arrived: the inbox keeps early ones), else `Event::Wake` at
    /// `wake_at`.
    Wait {
        /// The step.
        step: String,
        /// Callbacks that end the wait; any one of them.
        events: Vec<Expected>,
        /// When the workflow stops waiting and asks for a person (or gives up).
        deadline: DateTime<Utc>,
        /// When to wake the workflow if nothing arrives: the next poll or the deadline,
        /// whichever is first.
        wake_at: DateTime<Utc>,
        /// The fallback poll, when there is one: for displays. The executor does not run
        /// it on its own: woken at `wake_at`, the workflow asks for it with a `Call`.
        poll: Option<Poll>,
    },
    /// Nothing to do before `at` (a backoff, a `Retry-After`, a pending check): deliver
    /// `Event::Wake` then.
    SleepUntil {
        /// The step.
        step: String,
        /// When.
        at: DateTime<Utc>,
        /// Why, for the journal: `retry`, `rate_limited`, `recheck`, `reconcile_retry`.
        reason: SleepReason,
    },
    /// Finished as intended (which may be a business "no": see `Outcome`).
    Complete {
        /// What was achieved.
        outcome: Outcome,
    },
    /// Finished without achieving its purpose.
    Fail {
        /// Why.
        reason: Reason,
    },
    /// Finished because an operator cancelled it.
    Cancelled {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Stuck: a person must look. Nothing happens until `Event::Resolve` or `Cancel`, or
    /// one of `listening` arrives.
    NeedsAttention {
        /// The step it is stuck at.
        step: String,
        /// Why, and what `resolve` accepts.
        reason: Reason,
        /// Callbacks the stuck step still listens for (a wait that ran out): deliver
        /// `Event::Callback` when one arrives; it may resume the workflow by itself.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listening: Vec<Expected>,
    },
}

/// The action's kind, a stable name for the journal, SQL and table tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Call,
    Wait,
    SleepUntil,
    Complete,
    Fail,
    Cancelled,
    NeedsAttention,
}

impl Action {
    /// The action's kind.
    #[must_use]
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Call { .. } => ActionKind::Call,
            Self::Wait { .. } => ActionKind::Wait,
            Self::SleepUntil { .. } => ActionKind::SleepUntil,
            Self::Complete { .. } => ActionKind::Complete,
            Self::Fail { .. } => ActionKind::Fail,
            Self::Cancelled { .. } => ActionKind::Cancelled,
            Self::NeedsAttention { .. } => ActionKind::NeedsAttention,
        }
    }

    /// When the executor should next run the workflow on its own: now for a call, `wake_at`
    /// for a wait, `at` for a sleep, never for a finished or stuck workflow.
    #[must_use]
    pub fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Call { .. } => Some(now),
            Self::Wait { wake_at, .. } => Some(*wake_at),
            Self::SleepUntil { at, .. } => Some(*at),
            Self::Complete { .. }
            | Self::Fail { .. }
            | Self::Cancelled { .. }
            | Self::NeedsAttention { .. } => None,
        }
    }

    /// Whether the workflow is over (completed, failed or cancelled).
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Complete { .. } | Self::Fail { .. } | Self::Cancelled { .. }
        )
    }

    /// The Finfra call, for a `Call`.
    #[must_use]
    pub fn request(&self) -> Option<&FinfraRequest> {
        match self {
            Self::Call { request, .. } => Some(request),
            _ => None,
        }
    }
}

/// Why a call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPurpose {
    /// The step's own request.
    Perform,
    /// Learning whether an earlier request whose answer was lost was applied.
    Reconcile,
    /// Checking on something the workflow waits for, because its callback is late.
    Poll,
}

/// Why a workflow sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SleepReason {
    /// Backing off after a failed attempt.
    Retry,
    /// Finfra's `Retry-After` after a `429`.
    RateLimited,
    /// A check answered `PENDING`: ask again later.
    Recheck,
    /// Backing off after a failed reconciliation read.
    ReconcileRetry,
}

/// A callback that ends a wait: a title and the correlation key that makes it ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The callback title, e.g. `user_created`.
    pub title: CallbackTitle,
    /// The field of the callback body that must equal `value`.
    pub key: CorrelationKey,
    /// The value; in clear, because the inbox matches on it (a NIK for `user_created`).
    pub value: String,
}

impl Expected {
    /// A callback `title` whose `key` is `value`.
    #[must_use]
    pub fn new(title: CallbackTitle, key: CorrelationKey, value: impl Into<String>) -> Self {
        Self {
            title,
            key,
            value: value.into(),
        }
    }
}

impl fmt::Display for Expected {
    /// `user_created where identity_number = ************1981`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match self.key {
            CorrelationKey::IdentityNumber | CorrelationKey::KycId => mask(&self.value),
            CorrelationKey::UserId | CorrelationKey::LoanUniqueId | CorrelationKey::ExternalId => {
                self.value.clone()
            }
        };
        write!(f, "{} where {} = {value}", self.title, self.key.as_str())
    }
}

pub use finfra_api::callback::CorrelationKey;

/// The poll a wait falls back on when its callback is late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    /// What is read.
    pub request: FinfraRequest,
    /// How often.
    #[serde(with = "millis", rename = "every_ms")]
    pub every: Duration,
    /// When next.
    pub next_at: DateTime<Utc>,
}

/// Why a workflow failed or needs attention: a stable code for SQL and alerts, a message
/// for people (no personal data), and for attention, what `resolve` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable snake_case, e.g. `kyc_rejected`, `retries_exhausted`, `user_created_timeout`.
    pub code: String,
    /// What happened.
    pub message: String,
    /// For `needs_attention`: what a person can do, e.g. which `resolve` data is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Reason {
    /// A reason without a hint.
    #[must_use]
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            hint: None,
        }
    }

    /// The same reason, with what a person can do about it.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What a completed workflow achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The borrower is `APPROVED` at Finfra: loans may be created for them.
    BorrowerApproved {
        /// Finfra's id of the borrower.
        user_id: UserId,
    },
    /// The credit policy said no; the borrower was blocked at Finfra with the reasons.
    BorrowerDeclined {
        /// Finfra's id of the borrower.
        user_id: UserId,
        /// Each rule of the credit policy the borrower failed.
        reasons: Vec<String>,
    },
    /// The loan was disbursed and fully repaid (`PAID` at Finfra).
    LoanPaid {
        /// The loan's `unique_id`.
        unique_id: LoanUniqueId,
        /// The borrower.
        user_id: UserId,
        /// What the borrower paid in total, as far as finflow knows (overpayments included).
        total_paid: Decimal,
    },
    /// A reconciliation run compared Finfra's books with finflow's.
    Reconciled {
        /// Loans compared.
        loans: u64,
        /// Discrepancies found.
        findings: u64,
    },
}
