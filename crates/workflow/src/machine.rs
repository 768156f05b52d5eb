//! The contract every workflow kind implements ([`Workflow`]), and the types of a decision.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::action::Action;
use crate::definition::{DefinitionRef, Registry};
use crate::event::Event;
use crate::ids::WorkflowId;

/// Every problem with a workflow's input, each named by its field path
/// (`borrower.authorised_signatory.documents.ktp.number: must be 16 digits`). The same type
/// as `finfra_api::validate`'s, whose checks it reuses.
pub type InputErrors = finfra_api::validate::ValidationErrors;

/// The kinds of workflow, by their stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `onboard-borrower`.
    #[serde(rename = "onboard-borrower")]
    OnboardBorrower,
    /// `originate-loan`.
    #[serde(rename = "originate-loan")]
    OriginateLoan,
}

impl Kind {
    /// Every kind.
    pub const ALL: &'static [Kind] = &[Kind::OnboardBorrower, Kind::OriginateLoan];

    /// The stored name: a contract (changing it needs a migration).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnboardBorrower => "onboard-borrower",
            Self::OriginateLoan => "originate-loan",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workflow kind that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workflow kind {0:?} (known: onboard-borrower, originate-loan)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// The coarse status of a workflow, for SQL (`status` column) and operators. The fine
/// one is the state name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A call is to be made (or is being made).
    Running,
    /// Backing off before sending again.
    Retrying,
    /// A non-idempotent call's outcome is unknown: reconciling before sending again.
    Ambiguous,
    /// Waiting for a callback, a poll or a recheck.
    Waiting,
    /// Stuck until an operator resolves or cancels it.
    NeedsAttention,
    /// Finished as intended.
    Completed,
    /// Finished without achieving its purpose.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

impl Status {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Ambiguous => "ambiguous",
            Self::Waiting => "waiting",
            Self::NeedsAttention => "needs_attention",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the workflow is over.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the executor does with a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handled {
    /// The state moved on (or recorded something new): persist it and act on `action`.
    Advanced,
    /// Nothing changed, but the executor asked where the workflow stands (`Start`,
    /// `CallInterrupted`): act on `action`, the current one (a `Call` in it is safe to run:
    /// a read, or a request that is safe to repeat).
    Resumed,
    /// Nothing changed: a duplicate, late or irrelevant event, or a refused command. The
    /// state is the same and `action` the current one; keep the schedule already in place
    /// (do not run a `Call` again: it is in flight or its answer is on its way).
    Ignored,
}

/// The result of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<S> {
    /// The new state (the same state when `handled` is `Ignored`).
    pub state: S,
    /// What to do next: always the state's current action.
    pub action: Action,
    /// Why, for the journal: no personal data.
    pub note: String,
    /// Whether anything changed.
    pub handled: Handled,
}

/// What SQL and the CLI see of a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The state name (stable snake_case: a contract).
    pub state: String,
    /// The coarse status.
    pub status: Status,
    /// The definition the workflow pinned.
    pub definition: DefinitionRef,
    /// The current step's attempt (1 when not retrying).
    pub attempt: u32,
    /// The last failure or the reason it is stuck, if any.
    pub last_error: Option<String>,
    /// Business facts for SQL views, per kind (for onboarding: `user_id`,
    /// `borrower_status`, `credit_score`; for loans: `loan_unique_id`, `loan_status`,
    /// `disbursement_reference`, `amount_paid`, ...).
    pub facts: Value,
}

/// A command (cancel, resolve) a workflow would ignore, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandRefused(pub String);

/// One kind of workflow: a pure state machine.
///
/// The executor's loop, for one workflow: `start` once, then for each event, `decide`;
/// persist the new state, the journal row and the action's schedule in one transaction;
/// run the action; turn its result into the next event. `decide` never does I/O and reads
/// no clock but `now`, so a replay gives the same transition.
pub trait Workflow {
    /// The stored kind.
    const KIND: Kind;
    /// The validated input.
    type Input: Clone + fmt::Debug;
    /// The state, persisted as JSON.
    type State: Clone + fmt::Debug + PartialEq + Serialize + DeserializeOwned;

    /// Checks a submitted input against the definitions loaded, listing every problem.
    ///
    /// # Errors
    ///
    /// [`InputErrors`] with every problem, by field path.
    fn validate_input(
        input: &Value,
        definitions: &Registry,
        now: DateTime<Utc>,
    ) -> Result<Self::Input, InputErrors>;

    /// The definition a validated input pinned.
    fn definition(input: &Self::Input) -> DefinitionRef;

    /// The first transition of a new workflow: the definition is copied into the state.
    fn start(id: &WorkflowId, input: Self::Input, now: DateTime<Utc>) -> Transition<Self::State>;

    /// The next transition.
    fn decide(state: &Self::State, event: &Event, now: DateTime<Utc>) -> Transition<Self::State>;

    /// The current action, from the state alone.
    fn action(state: &Self::State) -> Action;

    /// What SQL sees.
    fn summary(state: &Self::State) -> Summary;

    /// Whether a command would be accepted, for a CLI to answer before queueing it.
    ///
    /// # Errors
    ///
    /// [`CommandRefused`] saying why the workflow would ignore it.
    fn check_command(
        state: &Self::State,
        command: &Event,
        now: DateTime<Utc>,
    ) -> Result<(), CommandRefused> {
        let transition = Self::decide(state, command, now);
        match transition.handled {
            Handled::Advanced | Handled::Resumed => Ok(()),
            Handled::Ignored => Err(CommandRefused(transition.note)),
        }
    }
}
