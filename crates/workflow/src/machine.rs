//! The contract every workflow kind implements ([`Workflow`]), and the types of a decision.

pub use crate::kind::{Kind, UnknownKind};
pub use crate::summary::{Status, Summary};

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::action::Action;
use crate::definition::{Definition, DefinitionRef, Registry};
use crate::event::Event;
use crate::ids::{UserId, WorkflowId};

/// Every problem with a workflow's input, each named by its field path
/// (`borrower.authorised_signatory.documents.ktp.number: must be 16 digits`). The same type
/// as `finfra_api::validate`'s, whose checks it reuses.
pub type InputErrors = finfra_api::validate::ValidationErrors;

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
    /// What the step saw of the world besides its own state, written with it.
    pub observations: Observations,
}

/// What a step saw of the world besides its own state, committed with the step: findings
/// of a reconciliation run, the loans it compared, and the workflows it tells to read
/// Finfra now. Empty for every other kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Discrepancies found.
    pub findings: Vec<crate::reconcile::Finding>,
    /// The loans compared (their `unique_id`): open findings of theirs that this step did
    /// not find again are resolved.
    pub seen: Vec<String>,
    /// Workflows behind Finfra: each is told to read Finfra now.
    pub nudge: Vec<String>,
    /// The run compared its last loan: what it kept to know which loans it saw can go.
    pub complete: bool,
}

/// What the store knows about a new workflow's subject from earlier workflows, given to
/// [`Workflow::start`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prior {
    /// The Finfra id of the borrower an earlier, completed onboarding of the same NIK
    /// created: a new onboarding adopts it (reading the borrower first) instead of creating
    /// one, which Finfra would refuse with `409`.
    pub returning_borrower: Option<UserId>,
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
    type State: Clone + fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + 'static;

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

    /// The state's fields the stored context leaves out because they never change after
    /// start (the request): [`Self::rebuild`] gives them back (see [`crate::stored`]).
    const REBUILT: &'static [&'static str];

    /// The fields named by [`Self::REBUILT`], from the submitted `input` read as it was at
    /// start (`started_at`) against the definition the workflow pinned (`None` for a kind
    /// without one).
    ///
    /// # Errors
    ///
    /// The input no longer reads (a hand edit, or a build whose validation is stricter
    /// than the one that started the workflow).
    fn rebuild(
        input: &Value,
        pinned: Option<&Definition>,
        started_at: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, Value)>, InputErrors>;

    /// The first transition of a new workflow: the definition is pinned in the state (stored
    /// by pin, see [`crate::stored`]).
    fn start(
        id: &WorkflowId,
        input: Self::Input,
        prior: &Prior,
        now: DateTime<Utc>,
    ) -> Transition<Self::State>;

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
