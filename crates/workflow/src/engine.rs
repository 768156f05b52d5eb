//! [`Engine`]: every workflow kind behind one JSON-in, JSON-out interface, for the executor
//! and the CLI, which hold a kind name and a stored JSON state rather than Rust types.

use chrono::{DateTime, Utc};
use std::sync::Arc;

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
use crate::stored::{self, Pin, Pins, Stored};

/// One decision, with the state as the JSON to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new state, to store as the workflow's context: slim (see [`crate::stored`]).
    pub state: Value,
    /// The definition the state names by pin, which the store must hold before the
    /// context is written (`None` for a kind without one).
    pub pin: Option<Arc<Pin>>,
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
    /// The context names a pinned definition this process does not know: load it from the
    /// store's `definitions` ([`Engine::pin_stored`]) and ask again.
    #[error("the pinned definition {digest} is not loaded")]
    UnknownDefinition {
        /// Its pin.
        digest: String,
    },
    /// The request could not be read again from the stored input.
    #[error("the {kind} input no longer reads against its pinned definition: {source}")]
    Rebuild {
        /// The kind.
        kind: Kind,
        /// Every problem.
        #[source]
        source: InputErrors,
    },
    /// A stored definition does not read as a definition.
    #[error("the stored definition {digest} cannot be read")]
    StoredDefinition {
        /// Its pin.
        digest: String,
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
    pins: Arc<Pins>,
}

impl Engine {
    /// An engine over `definitions`, each pinned.
    #[must_use]
    pub fn new(definitions: Registry) -> Self {
        let pins = Pins::default();
        for definition in definitions.iter() {
            pins.of(definition);
        }
        Self {
            definitions,
            pins: Arc::new(pins),
        }
    }

    /// Every definition pinned in this process (the registry's, and those loaded since),
    /// for the worker to store at start.
    #[must_use]
    pub fn pins(&self) -> Vec<Arc<Pin>> {
        self.pins.all()
    }

    /// The pin `context` names when this process does not know it (another process
    /// pinned it): read its body from the store's `definitions` and [`Self::pin_stored`] it
    /// before asking the engine about this workflow.
    #[must_use]
    pub fn unknown_pin<'c>(&self, context: &'c Value) -> Option<&'c str> {
        match context.get("definition") {
            Some(Value::String(digest)) if self.pins.get(digest).is_none() => Some(digest),
            _ => None,
        }
    }

    /// Adds a definition read from the store's `definitions` table, under the pin that
    /// names it there.
    ///
    /// # Errors
    ///
    /// [`EngineError::StoredDefinition`] when `body` does not read as a definition.
    pub fn pin_stored(&self, digest: &str, body: &Value) -> Result<Arc<Pin>, EngineError> {
        let definition = <crate::definition::Definition as serde::Deserialize>::deserialize(body)
            .map_err(|source| EngineError::StoredDefinition {
            digest: digest.to_owned(),
            source,
        })?;
        let mut pin = Pin::new(definition);
        pin.mark_stored();
        pin.digest = digest.to_owned();
        Ok(self.pins.insert(digest.to_owned(), pin))
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
        // Nothing keeps this first state: it is proposed to a holder that is dropped.
        self.start_kept(kind, id, input, prior, now, &stored::Typed::default())
    }

    /// As [`Self::start`], the first state proposed to its holder's `typed` (see
    /// [`crate::Typed`]): every decision the holder commits then has its state kept.
    ///
    /// # Errors
    ///
    /// As [`Self::start`].
    pub fn start_kept(
        &self,
        kind: &str,
        id: &WorkflowId,
        input: &Value,
        prior: &Prior,
        now: DateTime<Utc>,
        typed: &stored::Typed,
    ) -> Result<Decision, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => {
                let input = OnboardBorrower::validate_input(input, &self.definitions, now)
                    .map_err(EngineError::Input)?;
                let pin = self.pins.of(&input.definition);
                decision::<OnboardBorrower>(
                    OnboardBorrower::start(id, input, prior, now),
                    Some(pin),
                    Some(typed),
                )
            }
            Kind::OriginateLoan => {
                let input = OriginateLoan::validate_input(input, &self.definitions, now)
                    .map_err(EngineError::Input)?;
                let pin = self.pins.of(&input.definition);
                decision::<OriginateLoan>(
                    OriginateLoan::start(id, input, prior, now),
                    Some(pin),
                    Some(typed),
                )
            }
            Kind::ReconcileLoans => {
                let input = ReconcileLoans::validate_input(input, &self.definitions, now)
                    .map_err(EngineError::Input)?;
                decision::<ReconcileLoans>(
                    ReconcileLoans::start(id, input, prior, now),
                    None,
                    Some(typed),
                )
            }
        }
    }

    /// The next decision for a stored workflow.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownKind`], [`EngineError::State`], [`EngineError::Rebuild`], or
    /// [`EngineError::UnknownDefinition`] (load it, then ask again).
    pub fn decide(
        &self,
        kind: &str,
        stored: Stored<'_>,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Result<Decision, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => self.next::<OnboardBorrower>(stored, event, now),
            Kind::OriginateLoan => self.next::<OriginateLoan>(stored, event, now),
            Kind::ReconcileLoans => self.next::<ReconcileLoans>(stored, event, now),
        }
    }

    fn next<W: Workflow>(
        &self,
        stored: Stored<'_>,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Result<Decision, EngineError> {
        let (state, pin) = match stored.typed.and_then(stored::Typed::take::<W::State>) {
            Some(kept) => {
                #[cfg(debug_assertions)]
                {
                    let (read, _) = stored::read::<W>(&self.pins, stored)?;
                    assert_eq!(
                        kept.0, read,
                        "the state kept in memory differs from the context it was stored as"
                    );
                }
                kept
            }
            None => stored::read::<W>(&self.pins, stored)?,
        };
        decision::<W>(W::decide(&state, event, now), pin, stored.typed)
    }

    /// The current action of a stored workflow (what the executor should be doing).
    ///
    /// # Errors
    ///
    /// As [`Self::decide`].
    pub fn action(&self, kind: &str, stored: Stored<'_>) -> Result<Action, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => Ok(OnboardBorrower::action(
                &self.read::<OnboardBorrower>(stored)?,
            )),
            Kind::OriginateLoan => Ok(OriginateLoan::action(&self.read::<OriginateLoan>(stored)?)),
            Kind::ReconcileLoans => Ok(ReconcileLoans::action(
                &self.read::<ReconcileLoans>(stored)?,
            )),
        }
    }

    /// The summary of a stored workflow.
    ///
    /// # Errors
    ///
    /// As [`Self::decide`].
    pub fn summary(&self, kind: &str, stored: Stored<'_>) -> Result<Summary, EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => Ok(OnboardBorrower::summary(
                &self.read::<OnboardBorrower>(stored)?,
            )),
            Kind::OriginateLoan => Ok(OriginateLoan::summary(&self.read::<OriginateLoan>(stored)?)),
            Kind::ReconcileLoans => Ok(ReconcileLoans::summary(
                &self.read::<ReconcileLoans>(stored)?,
            )),
        }
    }

    /// Whether the workflow would accept `command` (a cancel or a resolve), for the CLI to
    /// say so before queueing it.
    ///
    /// # Errors
    ///
    /// [`EngineError::Refused`] with the reason, or an error of [`Self::decide`].
    pub fn check_command(
        &self,
        kind: &str,
        stored: Stored<'_>,
        command: &Event,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        match kind.parse::<Kind>()? {
            Kind::OnboardBorrower => {
                let state = self.read::<OnboardBorrower>(stored)?;
                Ok(OnboardBorrower::check_command(&state, command, now)?)
            }
            Kind::OriginateLoan => {
                let state = self.read::<OriginateLoan>(stored)?;
                Ok(OriginateLoan::check_command(&state, command, now)?)
            }
            Kind::ReconcileLoans => {
                let state = self.read::<ReconcileLoans>(stored)?;
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
    /// As [`Self::decide`].
    pub fn needs_approval(
        &self,
        kind: &str,
        stored: Stored<'_>,
        command: &Event,
    ) -> Result<Option<String>, EngineError> {
        match kind.parse::<Kind>()? {
            // An onboarding moves no money; nor does a reconciliation run, which only reads.
            Kind::OnboardBorrower | Kind::ReconcileLoans => Ok(None),
            Kind::OriginateLoan => {
                let state = self.read::<OriginateLoan>(stored)?;
                Ok(crate::originate::needs_approval(&state, command))
            }
        }
    }

    fn read<W: Workflow>(&self, stored: Stored<'_>) -> Result<W::State, EngineError> {
        stored::read::<W>(&self.pins, stored).map(|(state, _)| state)
    }
}

/// The decision of `transition`; its state proposed to `typed`, when its holder keeps one.
fn decision<W: Workflow>(
    transition: Transition<W::State>,
    pin: Option<Arc<Pin>>,
    typed: Option<&stored::Typed>,
) -> Result<Decision, EngineError> {
    let summary = W::summary(&transition.state);
    let state = stored::slim::<W>(&transition.state, pin.as_deref())?;
    if let Some(typed) = typed {
        typed.propose(transition.state, pin.clone());
    }
    Ok(Decision {
        state,
        pin,
        summary,
        action: transition.action,
        note: transition.note,
        handled: transition.handled,
        observations: transition.observations,
    })
}
