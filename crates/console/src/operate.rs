//! Operators' commands to one workflow, the one path for the CLI (`finflow cancel`,
//! `resolve`, `retry`, `approve`, `reject-command`) and the console's forms: the same
//! checks, the same rows.
//!
//! 1. A finished workflow takes no command; one that never started is cancelled at once
//!    (nothing was sent to Finfra) and cannot be resolved.
//! 2. The workflow's own state machine is asked whether it accepts the command now
//!    (`Engine::check_command`): a refusal is returned and nothing is recorded.
//! 3. Four-eyes: when `[operators] four_eyes` is on and `Engine::needs_approval` says the
//!    command can make money move or stop it after signing, it is stored as pending
//!    approval ([`store::Store::request_command`]); otherwise it is queued in the inbox
//!    ([`store::Store::record_command`]) for the next worker that holds the workflow.
//! 4. An approval asks the state machine again (the workflow may have moved on since the
//!    request), then queues the command in the same transaction that marks it approved.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{
    COMMAND_CANCEL, COMMAND_RESOLVE, CommandRequest, INITIAL_STATE, Status, Store, StoreError,
    Workflow, command_payload,
};
use workflow::{Engine, EngineError, Event, Stored};

/// `[operators]` in `finflow.toml`: the rules for people's commands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    /// Commands that can make money move or stop it after signing wait for a second
    /// person's approval (default true).
    pub four_eyes: bool,
    /// How long such a command waits for a decision before it expires, in seconds
    /// (default 86400: a day).
    pub approval_ttl_secs: u64,
}

impl Default for OperatorsConfig {
    fn default() -> Self {
        Self {
            four_eyes: true,
            approval_ttl_secs: 86_400,
        }
    }
}

impl OperatorsConfig {
    /// How long a pending command waits.
    #[must_use]
    pub fn approval_ttl(&self) -> Duration {
        Duration::from_secs(self.approval_ttl_secs.max(1))
    }
}

/// Which command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Stop the workflow.
    Cancel,
    /// Move it out of `needs_attention` with what a person decided (`None`: nothing).
    Resolve(Option<Value>),
}

impl Command {
    /// A retry: a resolve with `{"retry": true}`.
    #[must_use]
    pub fn retry() -> Self {
        Self::Resolve(Some(json!({ "retry": true })))
    }

    /// The inbox title.
    #[must_use]
    pub fn title(&self) -> &'static str {
        match self {
            Self::Cancel => COMMAND_CANCEL,
            Self::Resolve(_) => COMMAND_RESOLVE,
        }
    }

    /// What a person calls it: `cancel`, `retry` or `resolve`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Resolve(Some(data)) if is_retry(data) => "retry",
            Self::Resolve(_) => "resolve",
        }
    }

    fn data(&self) -> Option<&Value> {
        match self {
            Self::Cancel => None,
            Self::Resolve(data) => data.as_ref(),
        }
    }

    fn event(&self, by: &str, reason: &str) -> Event {
        match self {
            Self::Cancel => Event::Cancel {
                by: by.to_owned(),
                reason: reason.to_owned(),
            },
            Self::Resolve(data) => Event::Resolve {
                by: by.to_owned(),
                reason: reason.to_owned(),
                data: data.clone().unwrap_or(Value::Null),
            },
        }
    }

    /// The command a stored title and payload describe (for a request's re-check).
    #[must_use]
    pub fn from_stored(title: &str, payload: &Value) -> Option<Self> {
        match title {
            COMMAND_CANCEL => Some(Self::Cancel),
            COMMAND_RESOLVE => Some(Self::Resolve(payload.get("data").cloned())),
            _ => None,
        }
    }
}

fn is_retry(data: &Value) -> bool {
    data.get("retry").and_then(Value::as_bool) == Some(true)
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Queued {
    /// The workflow had not started: cancelled at once.
    CancelledAtOnce,
    /// Queued in the inbox (its row id) for a running worker.
    Queued { inbox_id: i64 },
    /// Waiting for a second person (the request's id), with why.
    PendingApproval { request_id: i64, why: String },
}

/// Why a command was not taken.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// Refused, with the reason for the person (finished, not started, not accepted now,
    /// own approval, expired).
    #[error("refused: {0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The stored workflow cannot be read by this build.
    #[error("cannot check the command: {0}")]
    Engine(#[source] EngineError),
}

impl From<StoreError> for OperateError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(why) => Self::Refused(why),
            StoreError::NotFound(id) => Self::Refused(format!("workflow {id} not found")),
            other => Self::Store(other),
        }
    }
}

/// `kind "key" (id)`, how messages name a workflow.
#[must_use]
pub fn named(w: &Workflow) -> String {
    format!("{} {:?} ({})", w.kind, w.business_key, w.id)
}

/// Loads from the store the definition `workflow`'s context names when this process has
/// not pinned it (a worker started it on definitions this process did not load), so that
/// [`check`] can read the workflow.
///
/// # Errors
/// A store failure, or a pin the store does not hold.
pub async fn load_definition(
    store: &Store,
    engine: &Engine,
    workflow: &Workflow,
) -> Result<(), OperateError> {
    let Some(digest) = engine.unknown_pin(&workflow.context) else {
        return Ok(());
    };
    let unknown = || {
        OperateError::Engine(EngineError::UnknownDefinition {
            digest: digest.to_owned(),
        })
    };
    let body = store.definition(digest).await?.ok_or_else(unknown)?;
    engine
        .pin_stored(digest, &body)
        .map_err(OperateError::Engine)?;
    Ok(())
}

/// Whether `workflow` accepts `command` now, and whether it would need approval: the
/// check the console uses to show only the actions a workflow accepts.
///
/// # Errors
/// [`OperateError::Refused`] with the reason; [`OperateError::Engine`] for a state this
/// build cannot read.
pub fn check(
    store: &Store,
    engine: &Engine,
    workflow: &Workflow,
    command: &Command,
    by: &str,
    reason: &str,
) -> Result<Option<String>, OperateError> {
    let name = named(workflow);
    if workflow.status.is_terminal() {
        return Err(OperateError::Refused(format!(
            "{name} is already {}: a finished workflow takes no more commands",
            workflow.status
        )));
    }
    if workflow.status == Status::Pending && workflow.state == INITIAL_STATE {
        return match command {
            Command::Cancel => Ok(None),
            Command::Resolve(_) => Err(OperateError::Refused(format!(
                "{name} has not started yet: there is nothing to resolve (a worker starts it; a cancel stops it)"
            ))),
        };
    }
    let event = command.event(by, reason);
    let input = store.input(workflow)?;
    let stored = Stored::new(&workflow.context, &input);
    match engine.check_command(&workflow.kind, stored, &event, Utc::now()) {
        Ok(()) => {}
        Err(EngineError::Refused(why)) => {
            let what = command.title();
            let why = why.0.as_str();
            // The machine's note names the command already ("resolve refused: ...").
            let why = [" refused: ", " ignored: "]
                .iter()
                .find_map(|sep| why.strip_prefix(&format!("{what}{sep}")))
                .unwrap_or(why);
            return Err(OperateError::Refused(format!(
                "{} of {name}: {why}",
                command.label()
            )));
        }
        Err(other) => return Err(OperateError::Engine(other)),
    }
    engine
        .needs_approval(&workflow.kind, stored, &event)
        .map_err(OperateError::Engine)
}

/// Checks `command` against `workflow` and queues it, cancels at once, or stores it as
/// pending approval (see the module's steps). `by` and `reason` are journaled with it.
///
/// # Errors
/// [`OperateError::Refused`] when the workflow does not take it (nothing recorded);
/// otherwise a store or engine error.
pub async fn request(
    store: &Store,
    engine: &Engine,
    operators: &OperatorsConfig,
    workflow: &Workflow,
    command: &Command,
    by: &str,
    reason: &str,
) -> Result<Queued, OperateError> {
    if reason.trim().is_empty() {
        return Err(OperateError::Refused(
            "a reason is required: it is journaled with who".to_owned(),
        ));
    }
    load_definition(store, engine, workflow).await?;
    let approval = check(store, engine, workflow, command, by, reason)?;
    if workflow.status == Status::Pending && workflow.state == INITIAL_STATE {
        // Nothing was sent to Finfra yet: cancelled at once (only a cancel gets here).
        let events: Vec<store::NewEvent> = workflow::cancelled_before_start(&workflow.kind)
            .into_iter()
            .map(|e| store::NewEvent {
                event_type: e.event_type.as_str().to_owned(),
                payload: e.payload,
            })
            .collect();
        store.cancel(workflow.id, by, reason, &events).await?;
        return Ok(Queued::CancelledAtOnce);
    }
    let payload = command_payload(by, reason, command.data());
    match approval {
        Some(why) if operators.four_eyes => {
            let request_id = store
                .request_command(
                    workflow.id,
                    command.title(),
                    &payload,
                    by,
                    reason,
                    &why,
                    operators.approval_ttl(),
                )
                .await?;
            Ok(Queued::PendingApproval { request_id, why })
        }
        _ => {
            let inbox_id = store
                .record_command(workflow.id, command.title(), &payload)
                .await?;
            Ok(Queued::Queued { inbox_id })
        }
    }
}

/// Approves request `request_id` as `approver`: the workflow's state machine is asked again,
/// then the command is queued. A command the workflow no longer accepts is rejected with
/// the reason.
///
/// # Errors
/// [`OperateError::Refused`]: unknown, decided, expired, the approver's own, or no longer
/// accepted; otherwise a store or engine error.
pub async fn approve(
    store: &Store,
    engine: &Engine,
    request_id: i64,
    approver: &str,
    reason: &str,
) -> Result<CommandRequest, OperateError> {
    if reason.trim().is_empty() {
        return Err(OperateError::Refused(
            "a reason is required: it is journaled with who".to_owned(),
        ));
    }
    let request = store
        .command_request(request_id)
        .await?
        .ok_or_else(|| OperateError::Refused(format!("no command request {request_id}")))?;
    if request.requested_by == approver {
        return Err(OperateError::Refused(format!(
            "{approver} asked for command request {request_id} and cannot approve it: four-eyes needs a second person"
        )));
    }
    let workflow = store.get(request.workflow_id).await?.ok_or_else(|| {
        OperateError::Refused(format!("workflow {} not found", request.workflow_id))
    })?;
    let command = Command::from_stored(&request.title, &request.payload).ok_or_else(|| {
        OperateError::Refused(format!(
            "command request {request_id} has an unknown command"
        ))
    })?;
    load_definition(store, engine, &workflow).await?;
    if let Err(OperateError::Refused(why)) = check(
        store,
        engine,
        &workflow,
        &command,
        &request.requested_by,
        &request.reason,
    ) {
        // The workflow moved on: the request is closed with the reason, nothing queued.
        if request.status == store::RequestStatus::Pending && !workflow.status.is_terminal() {
            store
                .reject_command(request_id, approver, &format!("no longer accepted: {why}"))
                .await?;
            return Err(OperateError::Refused(format!(
                "command request {request_id} is no longer accepted, and was closed: {why}"
            )));
        }
    }
    Ok(store.approve_command(request_id, approver, reason).await?)
}

/// Rejects request `request_id` as `by`, with `reason`.
///
/// # Errors
/// As [`approve`].
pub async fn reject(
    store: &Store,
    request_id: i64,
    by: &str,
    reason: &str,
) -> Result<CommandRequest, OperateError> {
    if reason.trim().is_empty() {
        return Err(OperateError::Refused(
            "a reason is required: it is journaled with who".to_owned(),
        ));
    }
    Ok(store.reject_command(request_id, by, reason).await?)
}
