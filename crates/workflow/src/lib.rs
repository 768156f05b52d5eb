//! finflow's workflows as pure state machines: `(state, event, now) -> (state, action)`, and
//! the definitions (`workflows/*.toml`) they run on.
//!
//! This crate decides; `worker` acts. Nothing here does I/O (apart from
//! [`Registry::load_dir`] at start-up), reads a clock (`now` is an argument) or draws a
//! random number (retry jitter is seeded from the workflow id, the step and the attempt).
//! So every decision is unit-tested without a network or a database, and replaying an event
//! on a stored state after a crash decides exactly the same.
//!
//! # The contract with the executor
//!
//! A workflow is a kind (`onboard-borrower`, `originate-loan`), a state
//! (stored as JSON) and a current [`Action`] that is a pure function of the state. The
//! executor uses [`Engine`] (kind names and JSON) or the typed [`Workflow`] trait:
//!
//! 1. **Submit**: [`Engine::validate`] lists every problem of an input (store nothing if
//!    any). **Start** (when a worker first picks the workflow up): [`Engine::start`]
//!    validates again, pins the definition, and returns the first [`Decision`]; [`Prior`]
//!    tells it what the store knows from earlier workflows (a returning borrower).
//! 2. **Persist** each decision in one transaction: `decision.state` as the context (slim:
//!    it names the definition by its pin, which `decision.pin` says the store must hold, and
//!    leaves the request in the input; every later call reads a [`Stored`] context with its
//!    input, see [`stored`]),
//!    `decision.summary` into the SQL columns (`state` name, `status`, definition name and
//!    version, `attempt`, `last_error`, the facts), a journal row (the event's name, the
//!    action's kind, [`FinfraRequest::summary`] / [`FinfraResponse::summary`], which mask
//!    personal data, the `operation_key`, the note), and the wake-up
//!    [`Action::next_run_at`]. For a `Wait`, also what it waits for (`events`, to match the
//!    inbox) and its `deadline`.
//! 3. **Act**, then turn the result into the next [`Event`] and go to 2:
//!
//! | action | the executor | next event |
//! |---|---|---|
//! | `Call { request, .. }` | runs the `finfra_api` method named by the request (one variant, one method; the answer is the [`FinfraResponse`] variant of the same name), checking the fleet-wide rate limiter first | `CallSucceeded(response)` or `CallFailed(CallFailure::from(&error))`; on a `429` it also pauses the fleet for `retry_after` |
//! | `Wait { events, wake_at, .. }` | matches the callback inbox on `events` (title + correlation field = value), including callbacks that arrived earlier; sleeps until `wake_at` | `Callback(..)` for a match, else `Wake` at `wake_at` |
//! | `SleepUntil { at, .. }` | nothing until `at` | `Wake` |
//! | `Complete`, `Fail`, `Cancelled` | finishes the workflow | none |
//! | `NeedsAttention { reason, .. }` | parks it (`reason.hint` says what `resolve` accepts) | `Resolve` or `Cancel` from an operator |
//!
//! Operator commands arrive as `Cancel { by, reason }` (any state) and
//! `Resolve { by, reason, data }` (from `needs_attention`); [`Engine::check_command`] tells
//! the CLI beforehand whether the workflow would refuse one, and why.
//!
//! **Crash safety.** Every `Call` a decision returns may be executed. But a `Call` found
//! *persisted* when a worker picks a workflow up (its previous worker died, or lost its
//! lease, between persisting the decision and persisting the outcome) may or may not have
//! reached Finfra: deliver [`Event::CallInterrupted`] and run what comes back, never the
//! stored call itself. The machine then reconciles a non-idempotent request (reads Finfra's
//! state first) and simply repeats a read. As a second line of defence, any event other
//! than the awaited answer that reaches a step whose non-idempotent request is outstanding
//! is treated the same way. `Event::Start` on a running workflow means "resume" and is
//! equally safe. [`Handled`] says what to do with a transition: `Advanced` (persist, act),
//! `Resumed` (nothing changed; act on the current action: the answer to `Start` and
//! `CallInterrupted`), `Ignored` (nothing changed; keep the schedule, run nothing again).
//!
//! **Retries** are decided here, once for every kind (the [`kit`]): a `429` sleeps exactly
//! `Retry-After`; other transient failures back off per the definition's [`RetryPolicy`]
//! (`finfra_api::retry::decide`, jitter seeded); a lost answer of a request whose
//! [`Effect`] needs it is reconciled (status `ambiguous`) before any re-send; exhausted
//! attempts and anything no retry fixes end in `needs_attention` or `failed` with a
//! [`Reason`] (a stable `code`, a message without personal data). Each logical operation has
//! an [`OperationKey`] created once and reused on every attempt.
//!
//! # A worked sequence
//!
//! An e-KYC onboarding on `personal-single-payment` (times in seconds):
//!
//! ```text
//! t   event                                   → state                 status     action
//! 0   (start)                                 → ekyc_ocr              running    Call ocr
//! 1   CallSucceeded(Ocr{kyc_id, conf 0.97})   → ekyc_biometric        running    Call biometric_kyc
//! 2   CallSucceeded(BiometricKyc{PASSED})     → create_borrower       running    Call create_borrower_for_kyc  (op-1f3c…, attempt 1)
//! 3   CallFailed(429, Retry-After 2s)         → create_borrower       retrying   SleepUntil t=5 (rate_limited)
//! 5   Wake                                    → create_borrower       running    Call create_borrower_for_kyc  (op-1f3c…, attempt 2)
//! 6   CallFailed(timeout after sending)       → create_borrower       ambiguous  Call get_kyc_submission (reconcile)
//! 7   CallSucceeded(GetKycSubmission{user_id: null, DRAFT})
//!                                             → create_borrower       running    Call create_borrower_for_kyc  (op-1f3c…, attempt 3)
//! 8   CallFailed(409 "already created for this KYC session": it was applied)
//!                                             → submit_kyc            running    Call submit_kyc
//! 9   CallSucceeded(SubmitKyc)                → await_user_created    waiting    Wait [user_created|user_verified|user_rejected by identity_number], poll get_kyc_submission at t=39, deadline t=1809
//! 12  Callback(user_created, user_id 6a41…)   → hub_check             running    Call hub_status VERIHUBS
//! 13  CallSucceeded(HubStatus PASSED)         → rdf_biometric         running    Call verify_biometric_rdf
//! 14  CallSucceeded(Rdf VERIFIED)             → await_user_verified   waiting    Wait [user_verified|… by user_id], poll get_borrower at t=44
//! 44  Wake                                    → await_user_verified   waiting    Call get_borrower (poll: the callback is late)
//! 45  CallSucceeded(GetBorrower VERIFIED)     → credit_score          running    Call score_report
//! 46  CallSucceeded(ScoreReport 712)          → credit_history        running    Call credit_history
//! 47  CallSucceeded(CreditHistory)            → approve_borrower      running    Call approve_borrower (the policy approves)
//! 48  CallSucceeded(ApproveBorrower APPROVED_BY_PARTNER)
//!                                             → await_user_approved   waiting    Wait [user_approved|… by user_id]
//! 51  Callback(user_approved)                 → approved              completed  Complete BorrowerApproved{6a41…}
//! 52  Callback(user_approved) (a duplicate)   → approved              completed  (ignored)
//! ```
//!
//! The executor's step, in code:
//!
//! ```no_run
//! use chrono::{DateTime, Utc};
//! use workflow::{Action, Engine, EngineError, Event, Handled, Stored};
//!
//! fn step(engine: &Engine, kind: &str, stored: Stored<'_>, event: &Event, now: DateTime<Utc>)
//!     -> Result<(), EngineError>
//! {
//!     let decision = engine.decide(kind, stored, event, now)?;
//!     // One transaction: context = decision.state; state/status/... = decision.summary;
//!     // journal += (event.name(), decision.action.kind(), decision.note, summaries);
//!     // next_run_at = decision.action.next_run_at(now).
//!     if decision.handled == Handled::Ignored {
//!         return Ok(()); // nothing changed: keep the schedule, run nothing again
//!     }
//!     match &decision.action {
//!         Action::Call { request, .. } => { /* run it now; feed CallSucceeded / CallFailed */ }
//!         Action::Wait { events, wake_at, .. } => { /* inbox match on events, or Wake at wake_at */ }
//!         Action::SleepUntil { at, .. } => { /* Wake at `at` */ }
//!         Action::Complete { .. } | Action::Fail { .. } | Action::Cancelled { .. } => { /* done */ }
//!         Action::NeedsAttention { .. } => { /* parked until Resolve or Cancel */ }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Modules
//!
//! - [`machine`]: the [`Workflow`] trait, [`Transition`], [`Status`], [`Kind`].
//! - [`engine`]: every kind behind JSON, for the executor and the CLI.
//! - [`action`], [`event`], [`request`], [`response`], [`failure`]: the protocol's types.
//! - [`kit`]: what every kind does alike, written once: the decision's skeleton, the call
//!   step with the retry rules and read-before-you-believe, the wait step, the action of a
//!   state. A kind implements [`kit::Phase`] and [`kit::Machine`].
//! - [`definition`]: `workflows/*.toml`, their format and validation.
//! - [`stored`]: the slim stored context: the definition by pin, the request from the input.
//! - [`onboard`]: `onboard-borrower`; its state names and `resolve` data are documented there.
//! - [`originate`]: `originate-loan`; its states, money-safety rules, `resolve` data, and
//!   what the executor must do to deliver the end of an onboarding, are documented there.
//! - [`ids`]: `WorkflowId`, `UserId`, `Nik`, `KycId`, `LoanUniqueId`, `OperationKey`.
//!
//! [`RetryPolicy`]: finfra_api::retry::RetryPolicy

pub mod action;
pub mod definition;
pub mod engine;
pub mod event;
pub mod failure;
pub mod ids;
mod kind;
pub mod kit;
pub mod lifecycle;
pub mod machine;
pub mod onboard;
pub mod originate;
pub mod reconcile;
pub mod request;
mod resolution;
pub mod response;
mod serde_util;
pub mod stored;
mod summary;

pub use action::{
    Action, ActionKind, CallPurpose, CorrelationKey, Expected, Outcome, Poll, Reason, SleepReason,
};
pub use definition::{Definition, DefinitionError, DefinitionErrors, DefinitionRef, Registry};
pub use engine::{Decision, Engine, EngineError};
pub use event::{CallbackEvent, Event, WorkflowFinished};
pub use failure::{CallFailure, FailureClass, FailureKind};
pub use ids::{InvalidId, KycId, LoanUniqueId, Nik, OperationKey, UserId, WorkflowId};
pub use lifecycle::{
    After, Before, EventType, LifecycleEvent, UnknownEventType, cancelled_before_start,
    lifecycle_events,
};
pub use machine::{
    CommandRefused, Handled, InputErrors, Kind, Observations, Prior, Status, Summary, Transition,
    Workflow,
};
pub use onboard::OnboardBorrower;
pub use originate::OriginateLoan;
pub use reconcile::ReconcileLoans;
pub use request::{Effect, FileSource, FinfraRequest};
pub use response::FinfraResponse;
pub use stored::{Pin, Rebuilt, Stored, Typed};
