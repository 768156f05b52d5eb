//! `onboard-borrower`: a PERSONAL or BUSINESS borrower from the create-borrower body to
//! `APPROVED` at Finfra (or declined by the credit policy and blocked).
//!
//! # Route
//!
//! | state | does | next |
//! |---|---|---|
//! | `ekyc_ocr` | OCR of the KTP image (opens the KYC session); confidence and NIK checked | `ekyc_biometric`, or `failed` `ocr_rejected` |
//! | `ekyc_biometric` | liveness and face match | documents / create, or `failed` `liveness_failed` / `face_mismatch` |
//! | `create_document`, `upload_document` | the two-step upload, per input document | the next document, then `create_borrower` |
//! | `create_borrower` | create (on the KYC session with e-KYC); `409` = already exists, carry on | `submit_kyc` or `await_user_created` |
//! | `submit_kyc` | submit the KYC session | `await_user_created` |
//! | `await_user_created` | wait `user_created` by NIK; with e-KYC, poll the KYC submission | `hub_check`..., or `needs_attention` `user_created_timeout` |
//! | `hub_check` | each of the definition's hubs; rechecked while `PENDING` | the next, `rdf_biometric`, or `failed` `hub_check_failed` |
//! | `rdf_biometric` | RDF biometric verification, rechecked while `PENDING` | `await_user_verified` or `failed` `rdf_biometric_failed` |
//! | `await_user_verified` | wait `user_verified`, polling the borrower; a `REJECTED` seen by the poll waits for its reason (the KYC submission, or `user_rejected` for as long as Finfra retries it) | `credit_score`, or `failed` `kyc_rejected` |
//! | `credit_score`, `credit_history` | the bureaus; then the definition's credit policy | `approve_borrower` or `block_borrower` |
//! | `approve_borrower` | approve (never re-sent without reading the borrower) | `await_user_approved` |
//! | `await_user_approved` | wait `user_approved`, polling the borrower | `approved` |
//! | `block_borrower` | block with the policy's reasons | `declined` |
//!
//! Terminal: `approved` and `declined` (status `completed`: the workflow did its job; a
//! credit "no" is an answer, not an error), `failed`, `cancelled`. And `needs_attention`,
//! stuck until `resolve` or `cancel`. Every state name above is stored and is a contract.
//!
//! A step whose call is being retried has status `retrying`; one whose non-idempotent
//! call's outcome is unknown has status `ambiguous` while it reconciles (`create_borrower`
//! reads the KYC submission, or sends again and takes `409` as applied; `approve_borrower`
//! and `block_borrower` read the borrower; `submit_kyc` reads the submission).
//!
//! # Resolve
//!
//! `resolve` accepts, in `needs_attention` only: `{"retry": true}` (or `{}`): the stuck
//! step again, reconciling first if its outcome was unknown, a wait with a fresh deadline
//! and an immediate poll; `{"user_id": "<24 hex>"}`: the borrower's id when `user_created`
//! was lost for good (before the id is known), carrying on with the checks.
//!
//! # SQL
//!
//! The stored state has the borrower's facts at `$.borrower`: `user_id`, `status` (the most
//! advanced known), `statuses[]` (each status reached, when and how learnt), `hub_checks`,
//! `rdf`, `credit`, `decision`; and the state name at `$.phase.state`.

mod calls;
mod commands;
pub mod input;
mod machine;
mod policy;
mod route;
mod schema;
pub mod state;
mod waits;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::action::Action;
use crate::definition::{Definition, DefinitionRef, Registry, Resolver};
use crate::event::Event;
use crate::ids::WorkflowId;
use crate::kit::{self, Phase as _, Run};
use crate::machine::{InputErrors, Kind, Prior, Summary, Transition, Workflow};

pub use input::{DocumentUpload, EkycInput, OnboardInput, OnboardRequest};
pub use state::{BorrowerRecord, OnboardState, Phase, Step};

/// The `onboard-borrower` workflow.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnboardBorrower;

impl Workflow for OnboardBorrower {
    const KIND: Kind = Kind::OnboardBorrower;
    type Input = OnboardInput;
    type State = OnboardState;

    fn validate_input(
        input: &Value,
        definitions: &Registry,
        now: DateTime<Utc>,
    ) -> Result<OnboardInput, InputErrors> {
        input::validate(input, definitions.into(), now)
    }

    fn definition(input: &OnboardInput) -> DefinitionRef {
        input.definition.reference()
    }

    const REBUILT: &'static [&'static str] = &["request"];

    fn rebuild(
        input: &Value,
        pinned: Option<&Definition>,
        started_at: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, Value)>, InputErrors> {
        let pinned = pinned.ok_or_else(crate::stored::no_definition)?;
        let input = input::validate(input, Resolver::Pinned(pinned), started_at)?;
        Ok(vec![crate::stored::field("request", &input.request)])
    }

    fn start(
        id: &WorkflowId,
        input: OnboardInput,
        prior: &Prior,
        now: DateTime<Utc>,
    ) -> Transition<OnboardState> {
        let kind = input.request.body.r#type.clone();
        let mut state = OnboardState {
            workflow_id: id.clone(),
            definition: input.definition,
            started_at: now,
            request: input.request,
            borrower: state::BorrowerRecord::new(kind),
            // Replaced by `begin` below; a placeholder that is never persisted.
            phase: Phase::EkycOcr {
                run: Run::new(None),
            },
        };
        let returning = match &prior.returning_borrower {
            Some(user_id) => {
                route::adopt(&mut state, user_id.clone());
                format!(" (returning borrower {user_id}: no new borrower is created)")
            }
            None => {
                route::begin(&mut state);
                String::new()
            }
        };
        let note = format!(
            "started with definition {}: {}{returning}",
            state.definition.reference(),
            state.phase.name()
        );
        kit::advance(state, note)
    }

    fn decide(state: &OnboardState, event: &Event, now: DateTime<Utc>) -> Transition<OnboardState> {
        kit::decide(state, event, now)
    }

    fn action(state: &OnboardState) -> Action {
        kit::action(state)
    }

    fn summary(state: &OnboardState) -> Summary {
        let borrower = &state.borrower;
        let facts = json!({
            "user_id": borrower.user_id,
            "borrower_type": borrower.r#type,
            "borrower_status": borrower.status,
            "credit_score": borrower.credit.as_ref().map(|c| c.score),
            "approved": borrower.decision.as_ref().map(|d| d.approved),
        });
        kit::summary(state, state.definition.reference(), facts)
    }
}
