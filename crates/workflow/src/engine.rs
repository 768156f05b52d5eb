//! [`Engine`]: every workflow kind behind one JSON-in, JSON-out interface, for the executor
//! and the CLI, which hold a kind name and a stored JSON state rather than Rust types.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::action::Action;
use crate::definition::{DefinitionRef, Registry};
use crate::event::Event;
use crate::ids::WorkflowId;
use crate::machine::{
    CommandRefused, Handled, InputErrors, Kind, Observations, Prior, Summary, Transition,
    UnknownKind, Workflow,
};
use crate::onboard::OnboardBorrower;
use crate::originate::OriginateLoan;
use crate::reconcile::ReconcileLoans;

/// One decision, with the state as the JSON to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new state, to store as the workflow's context.
    pub state: Value,
    /// Its summary: the state name, status, definition and facts for SQL columns.
    pub summary: Summary,
    /// What to do next.
    pub action: Action,
    /// Why, for the journal.
    pub note: String,
    /// Whether anything changed.
    pub handled: Handled,
    /// What the step saw besides its state (a reconciliation's findings).
    pub observations: Observations,
}

/// What can go wrong between the engine and its callers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such kind.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    /// The input is invalid: every problem, by field path.
    #[error("invalid input: {0}")]
    Input(#[source] InputErrors),
    /// A stored state does not read as the kind's state (a bug or a hand edit).
    #[error("the stored {kind} state cannot be read")]
    State {
        /// The kind.
        kind: Kind,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A command the workflow would ignore.
    #[error("refused: {0}")]
    Refused(#[from] CommandRefused),
}

/// The workflows, with the definitions loaded at start-up.
#[derive(Debug, Clone)]
pub struct Engine {
    definitions: Registry,
}

impl Engine {
    /// An engine over `definitions`.
    #[must_use]
    pub fn new(definitions: Registry) -> Self {
        Self { definitions }
    }

    /// The definitions.
    #[must_use]
    pub fn definitions(&self) -> &Registry {
        &self.definitions
    }

    /// Checks an input at submit time; the definition it would pin.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownKind`], or [`EngineError::Input`] with every problem.
    pub fn validate(
        &self,
        kind: &str,
        input: &Value,
        now: DateTime<Utc>,
    ) -> Result<DefinitionRef, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => OnboardBorrower::validate_input(input, &self.definitions, now)
                .map(|i| OnboardBorrower::definition(&i))
                .map_err(EngineError::Input),
            Kind::OriginateLoan => OriginateLoan::validate_input(input, &self.definitions, now)
                .map(|i| OriginateLoan::definition(&i))
                .map_err(EngineError::Input),
            Kind::ReconcileLoans => ReconcileLoans::validate_input(input, &self.definitions, now)
                .map(|i| ReconcileLoans::definition(&i))
                .map_err(EngineError::Input),
        }
    }

    /// Validates the input again (definitions may have changed since submit) and makes the
    /// first decision: the definition is pinned now.
    ///
    /// # Errors
    ///
    /// As [`Self::validate`]; a workflow whose input no longer validates should be failed
    /// with the errors.
    pub fn start(
        &self,
        kind: &str,
        id: &WorkflowId,
        input: &Value,
        prior: &Prior,
        now: DateTime<Utc>,
    ) -> Result<Decision, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => {
                let input = OnboardBorrower::validate_input(input, &self.definitions, now)
                    .map_err(EngineError::Input)?;
                decision::<OnboardBorrower>(OnboardBorrower::start(id, input, prior, now))
            }
            Kind::OriginateLoan => {
                let input = OriginateLoan::validate_input(input, &self.definitions, now)
                    .map_err(EngineError::Input)?;
                decision::<OriginateLoan>(OriginateLoan::start(id, input, prior, now))
            }
            Kind::ReconcileLoans => {
                let input = ReconcileLoans::validate_input(input, &self.definitions, now)
                    .map_err(EngineError::Input)?;
                decision::<ReconcileLoans>(ReconcileLoans::start(id, input, prior, now))
            }
        }
    }

    /// The next decision for a stored state.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownKind`] or [`EngineError::State`].
    pub fn decide(
        &self,
        kind: &str,
        state: &Value,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Result<Decision, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => {
                let state = read::<OnboardBorrower>(state)?;
                decision::<OnboardBorrower>(OnboardBorrower::decide(&state, event, now))
            }
            Kind::OriginateLoan => {
                let state = read::<OriginateLoan>(state)?;
                decision::<OriginateLoan>(OriginateLoan::decide(&state, event, now))
            }
            Kind::ReconcileLoans => {
                let state = read::<ReconcileLoans>(state)?;
                decision::<ReconcileLoans>(ReconcileLoans::decide(&state, event, now))
            }
        }
    }

    /// The current action of a stored state (what the executor should be doing).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownKind`] or [`EngineError::State`].
    pub fn action(&self, kind: &str, state: &Value) -> Result<Action, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => Ok(OnboardBorrower::action(&read::<OnboardBorrower>(state)?)),
            Kind::OriginateLoan => Ok(OriginateLoan::action(&read::<OriginateLoan>(state)?)),
            Kind::ReconcileLoans => Ok(ReconcileLoans::action(&read::<ReconcileLoans>(state)?)),
        }
    }

    /// The summary of a stored state.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownKind`] or [`EngineError::State`].
    pub fn summary(&self, kind: &str, state: &Value) -> Result<Summary, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => Ok(OnboardBorrower::summary(&read::<OnboardBorrower>(state)?)),
            Kind::OriginateLoan => Ok(OriginateLoan::summary(&read::<OriginateLoan>(state)?)),
            Kind::ReconcileLoans => Ok(ReconcileLoans::summary(&read::<ReconcileLoans>(state)?)),
        }
    }

    /// Whether the workflow would accept `command` (a cancel or a resolve), for the CLI to
    /// say so before queueing it.
    ///
    /// # Errors
    ///
    /// [`EngineError::Refused`] with the reason, or a state/kind error.
    pub fn check_command(
        &self,
        kind: &str,
        state: &Value,
        command: &Event,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => {
                let state = read::<OnboardBorrower>(state)?;
                Ok(OnboardBorrower::check_command(&state, command, now)?)
            }
            Kind::OriginateLoan => {
                let state = read::<OriginateLoan>(state)?;
                Ok(OriginateLoan::check_command(&state, command, now)?)
            }
            Kind::ReconcileLoans => {
                let state = read::<ReconcileLoans>(state)?;
                Ok(ReconcileLoans::check_command(&state, command, now)?)
            }
        }
    }

    /// Whether `command` (a cancel or a resolve, already accepted by
    /// [`Self::check_command`]) needs a second person's approval before it is applied:
    /// `Some(why)` for a command that can make money move or stop it after signing (any
    /// resolve or retry of a loan, a cancel of a signed loan), `None` otherwise. The one
    /// four-eyes rule, for the CLI and the console alike.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownKind`] or [`EngineError::State`].
    pub fn needs_approval(
        &self,
        kind: &str,
        state: &Value,
        command: &Event,
    ) -> Result<Option<String>, EngineError> {
        match kind.parse::<Kind>()? {
            // An onboarding moves no money; nor does a reconciliation run, which only reads.
            Kind::OnboardBorrower | Kind::ReconcileLoans => Ok(None),
            Kind::OriginateLoan => {
                let state = read::<OriginateLoan>(state)?;
                Ok(crate::originate::needs_approval(&state, command))
            }
        }
    }
}

fn read<W: Workflow>(state: &Value) -> Result<W::State, EngineError> {
    // Straight from the borrowed JSON: no copy of the whole state per decision.
    W::State::deserialize(state).map_err(|source| EngineError::State {
        kind: W::KIND,
        source,
    })
}

fn decision<W: Workflow>(transition: Transition<W::State>) -> Result<Decision, EngineError> {
    let summary = W::summary(&transition.state);
    let state = serde_json::to_value(&transition.state).map_err(|source| EngineError::State {
        kind: W::KIND,
        source,
    })?;
    Ok(Decision {
        state,
        summary,
        action: transition.action,
        note: transition.note,
        handled: transition.handled,
        observations: transition.observations,
    })
}
