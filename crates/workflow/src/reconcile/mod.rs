//! `reconcile-loans`: Finfra's books against finflow's, page by page.
//!
//! | state | does | next |
//! |---|---|---|
//! | `fetch_page` | `GET /api/core/loans` page N with the run's filters; each loan compared with the `originate-loan` workflow that created it ([`compare`]); findings written with the step; a workflow behind Finfra is told to read Finfra now | `fetch_page` N+1; after the last page `check_loan`, or the end |
//! | `check_loan` | `GET /api/core/loans/details/{id}` of each loan finflow created in the window that no page showed: `404` is `missing_at_finfra` | the next one, or the end |
//!
//! The end is `done` (status `completed`), or `needs_attention` `money_findings` when a
//! finding says money may have moved without finflow (a second disbursement reference, a
//! disbursement finflow never asked for, a disbursed orphan): a person looks, then resolves
//! with `{"retry": true}` to close the run. A run never changes anything at Finfra.
//!
//! Every page is one step, committed before the next is read, so a run over 100,000 loans
//! that is killed resumes at its page. Its requests go through the same rate governor,
//! `429` handling and retry rules as every other workflow's.

pub mod compare;
mod state;

use chrono::{DateTime, Utc};
use serde_json::Value;

use finfra_api::validate::FieldError;

use crate::action::Action;
use crate::definition::{DefinitionRef, Registry};
use crate::event::Event;
use crate::ids::WorkflowId;
use crate::kit;
use crate::machine::{InputErrors, Kind, Prior, Summary, Transition, Workflow};

pub use compare::{Finding, FindingKind, KnownLoan};
pub use state::{KnownLoans, Phase, ReconcileRequest, ReconcileState, Tally};

/// The `reconcile-loans` kind.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileLoans;

/// A run pins no definition file: its rules are the code's.
fn definition() -> DefinitionRef {
    DefinitionRef {
        name: Kind::ReconcileLoans.as_str().to_owned(),
        version: 1,
        digest: "builtin".to_owned(),
    }
}

fn validate(input: &Value) -> Result<ReconcileRequest, InputErrors> {
    let request: ReconcileRequest = serde_json::from_value(input.clone()).map_err(|e| {
        InputErrors::from(FieldError {
            path: String::new(),
            message: e.to_string(),
        })
    })?;
    let mut errors = Vec::new();
    let mut problem = |path: &str, message: &str| {
        errors.push(FieldError {
            path: path.to_owned(),
            message: message.to_owned(),
        });
    };
    if !(1..=finfra_api::model::loan::MAX_PAGE_SIZE).contains(&request.page_size) {
        problem("page_size", "must be 1 to 100");
    }
    if let (Some(from), Some(to)) = (request.from, request.to)
        && from > to
    {
        problem("to", "must not be before `from`");
    }
    if request.unique_id.as_ref().is_some_and(|id| id.len() < 6) {
        problem("unique_id", "must be at least 6 characters");
    }
    if let (Some(min), Some(max)) = (request.min_amount, request.max_amount)
        && min > max
    {
        problem("max_amount", "must not be below `min_amount`");
    }
    if errors.is_empty() {
        Ok(request)
    } else {
        Err(errors.into())
    }
}

impl Workflow for ReconcileLoans {
    const KIND: Kind = Kind::ReconcileLoans;
    type Input = ReconcileRequest;
    type State = ReconcileState;

    fn validate_input(
        input: &Value,
        _definitions: &Registry,
        _now: DateTime<Utc>,
    ) -> Result<ReconcileRequest, InputErrors> {
        validate(input)
    }

    fn definition(_input: &ReconcileRequest) -> DefinitionRef {
        definition()
    }

    const REBUILT: &'static [&'static str] = &["request"];

    fn rebuild(
        input: &Value,
        _pinned: Option<&crate::definition::Definition>,
        _started_at: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, Value)>, InputErrors> {
        Ok(vec![crate::stored::field("request", &validate(input)?)])
    }

    fn start(
        id: &WorkflowId,
        input: ReconcileRequest,
        _prior: &Prior,
        now: DateTime<Utc>,
    ) -> Transition<ReconcileState> {
        let state = ReconcileState {
            workflow_id: id.clone(),
            started_at: now,
            request: input,
            tally: Tally::default(),
            unseen: Vec::new(),
            phase: Phase::FetchPage {
                page: 1,
                run: kit::Run::new(None),
            },
        };
        kit::advance(state, "started: reading page 1 of Finfra's loans")
    }

    fn decide(
        state: &ReconcileState,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Transition<ReconcileState> {
        kit::decide(state, event, now)
    }

    fn action(state: &ReconcileState) -> Action {
        kit::action(state)
    }

    fn summary(state: &ReconcileState) -> Summary {
        kit::summary(state, definition(), state.facts())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inputs_are_checked_field_by_field() {
        assert!(validate(&json!({})).is_ok());
        let errors = validate(&json!({"from": "2026-12-03", "to": "2026-12-01", "page_size": 500, "unique_id": "abc"}))
            .unwrap_err();
        assert!(
            errors.has("to") && errors.has("page_size") && errors.has("unique_id"),
            "{errors}"
        );
        let unknown = validate(&json!({"pagesize": 10})).unwrap_err();
        assert!(unknown.to_string().contains("pagesize"), "{unknown}");
    }
}
