//! `originate-loan`: a single-payment or BNPL loan from creation to full repayment, per
//! CONTRACT §5: check the borrower, create the loan, have it signed, disburse it exactly
//! once, open the repayment virtual account, apply repayments, complete on `PAID`.
//!
//! # Route
//!
//! | state | does | next |
//! |---|---|---|
//! | `await_onboarding` | input `{"onboarding": K}`: wait for the `onboard-borrower` workflow `K` to finish (see "Waiting for an onboarding") | `check_borrower`; `failed` `borrower_declined` / `onboarding_failed` / `onboarding_cancelled`; `needs_attention` `onboarding_timeout` |
//! | `check_borrower` | `GET` the borrower: of the definition's borrower type and `APPROVED` | `create_loan`, `await_borrower_approved` (`APPROVED_BY_PARTNER`), or `failed` `borrower_not_approved` / `borrower_type_mismatch` / `borrower_not_found` |
//! | `await_borrower_approved` | wait `user_approved`, polling the borrower | `create_loan`, `failed`, `needs_attention` `borrower_approval_timeout` |
//! | `create_loan` | create with `unique_id` = the step's operation key; a lost answer reads the loan (`404` = not created: send again); `409` = it exists: read it, carry on | `initiate_signing` (or wherever the loan's facts say) |
//! | `initiate_signing` | open the borrower's signing session (`signing_url` recorded); `409` reads the loan | `await_signed` |
//! | `await_signed` | wait `loan_signed` / `bnpl_signed` (or `_rejected`), polling the loan | `disburse_loan`; at the signing timeout `reject_loan` |
//! | `reject_loan` | reject at Finfra (signing timeout, or a cancel); never re-sent without reading the loan | `rejected` (signing timeout) or `cancelled` |
//! | `disburse_loan` | disburse **exactly once** (see `calls`: any doubt → read the loan; send again only if it shows no disbursement in progress) | `await_disbursement` |
//! | `await_disbursement` | wait `loan_disbursed` or `loan_disbursement_failed`, polling the loan | `request_virtual_account`; `needs_attention` `disbursement_failed` (resolve re-disburses, through a read) or `disbursement_timeout` |
//! | `request_virtual_account` | the repayment account (bank: input, else definition) | `repaying` |
//! | `repaying` | apply virtual-account payments (once each, in installment order), flag overdue installments by durable timer, poll the loan | `paid` once Finfra says `PAID` and the payments seen add up to the total (or [`SETTLEMENT_GRACE`] after `PAID`: a payment webhook may arrive after `loan_paid`); `needs_attention` `repayment_overdue` at the collection deadline |
//!
//! Terminal: `paid` (status `completed`), `rejected` (status `failed`: the loan was rejected
//! at Finfra, for a signing timeout or by someone else; it is a failure to originate, not a
//! decision of the lender's), `failed`, `cancelled`; and `needs_attention`, stuck until
//! `resolve` or `cancel`. Every state name is stored and is a contract.
//!
//! # Money safety
//!
//! The loan's `unique_id` is fixed at start (the create step's operation key, `op-…`), so
//! a create repeated after an unknown outcome answers `409` and the workflow carries on
//! with the existing loan. The disbursement is entered once (`disbursement.requested`,
//! persisted with the decision, before the request leaves); every later request is
//! preceded by a read of the loan that shows no disbursement in progress; a `loan_disbursed`
//! (or any fact showing the disbursement accepted) ends the step whatever else happened.
//! Repayments are applied once per payment `id`, and a read of the loan can only raise
//! what is counted as paid (see `facts`).
//!
//! # Cancel
//!
//! Accepted until the workflow decides to disburse: before the loan can exist it ends
//! `cancelled` at once; once it may exist, the loan is rejected at Finfra first. From
//! `disburse_loan` on (including `needs_attention` after a refused disbursement) a cancel
//! is refused ([`crate::Engine::check_command`] says why): money may have left, and Finfra
//! rejects no loan once disbursement started.
//!
//! # Resolve
//!
//! In `needs_attention` only: `{"retry": true}` (or `{}`): the stuck step again (a request
//! whose outcome was unknown is reconciled first; a disbursement always reads the loan
//! first; after a refused disbursement, a new one through that read; a wait starts afresh
//! with a read at once); `{"user_id": "<24 hex>"}`: the borrower, when the onboarding's end
//! never arrived.
//!
//! # Waiting for an onboarding
//!
//! The machine reads no store. It waits for
//! [`WorkflowFinished::expected`](crate::event::WorkflowFinished::expected)`(onboard-borrower, K)`:
//! title `workflow_finished`, key `external_id` = `"onboard-borrower/K"`, delivered as
//! `Event::Callback(CallbackEvent::Workflow(WorkflowFinished))`. For that, the executor
//! and the store must, in the transaction that commits a terminal decision of any
//! workflow `W` (kind `k`, business key `K`):
//!
//! 1. build `WorkflowFinished::new(W.id, k, K, &decision.summary, &decision.action)`;
//! 2. insert it once as an *announcement* inbox row: source `internal`, event id `W.id`,
//!    title `workflow_finished`, `external_id` `"k/K"`, payload the struct as JSON, marked
//!    processed (it wakes nobody itself);
//! 3. for each workflow `V` waiting on (`workflow_finished`, `external_id`, `"k/K"`),
//!    insert a copy for `V` (event id `"W.id:V.id"`, matched to `V`) and wake `V`;
//!
//! and, in the transaction that commits a wait on (`workflow_finished`, `external_id`,
//! `"k/K"`) for a workflow `V`, when the announcement row exists, insert the same copy
//! for `V` and make `V` due at once (the inbox's "early event" rule, per waiter, since
//! several loans may wait for one onboarding). The executor's `callback_event` maps source
//! `internal` rows to `CallbackEvent::Workflow(serde_json::from_value(payload))`. Until
//! then the wait ends at the definition's `origination.timeouts.onboarding` in
//! `needs_attention`, and `resolve {"user_id": ...}` carries on.
//!
//! # SQL
//!
//! The summary's facts: `loan_unique_id`, `loan_type`, `user_id`, `borrower_status`,
//! `loan_status`, `total_amount`, `disbursement_status`, `disbursement_reference`,
//! `disbursement_failures`, `virtual_account_bank`, `virtual_account_number`,
//! `virtual_account_external_id`, `payments`, `amount_paid`, `amount_outstanding`,
//! `amount_overpaid`, `overdue_installments`, `ever_overdue_installments`. The stored state
//! has everything at `$.loan` (statuses reached, the schedule, each payment, each refused
//! disbursement, the signing URL) and the state name at `$.phase.state`.

mod calls;
mod commands;
pub(crate) use commands::needs_approval;
pub mod facts;
pub mod input;
mod machine;
mod route;
pub mod state;
mod waits;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::action::Action;
use crate::definition::{Definition, DefinitionRef, Registry, Resolver};
use crate::event::Event;
use crate::ids::{LoanUniqueId, WorkflowId};
use crate::kit::{self, Phase as _};
use crate::machine::{InputErrors, Kind, Prior, Summary, Transition, Workflow};

pub use facts::LoanRecord;
pub use input::OriginateInput;
pub use machine::PAYMENT_TITLE;
pub use route::SETTLEMENT_GRACE;
pub use state::{BorrowerRef, LoanRequest, LoanTerms, OriginateState, Phase, RejectWhy, Step};

/// The `originate-loan` workflow.
#[derive(Debug, Clone, Copy, Default)]
pub struct OriginateLoan;

impl OriginateLoan {
    /// The `unique_id` the loan of workflow `id` gets at Finfra (the create step's
    /// operation key): known before anything is sent.
    #[must_use]
    pub fn unique_id(id: &WorkflowId) -> LoanUniqueId {
        LoanUniqueId::from(&route::create_key(id))
    }
}

impl Workflow for OriginateLoan {
    const KIND: Kind = Kind::OriginateLoan;
    type Input = OriginateInput;
    type State = OriginateState;

    fn validate_input(
        input: &Value,
        definitions: &Registry,
        now: DateTime<Utc>,
    ) -> Result<OriginateInput, InputErrors> {
        input::validate(input, definitions.into(), now)
    }

    fn definition(input: &OriginateInput) -> DefinitionRef {
        input.definition.reference()
    }

    const REBUILT: &'static [&'static str] = &["request", "policy"];

    fn rebuild(
        input: &Value,
        pinned: Option<&Definition>,
        started_at: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, Value)>, InputErrors> {
        let pinned = pinned.ok_or_else(crate::stored::no_definition)?;
        let input = input::validate(input, Resolver::Pinned(pinned), started_at)?;
        Ok(vec![
            crate::stored::field("request", &input.request),
            crate::stored::field("policy", &input.policy),
        ])
    }

    fn start(
        id: &WorkflowId,
        input: OriginateInput,
        _prior: &Prior,
        now: DateTime<Utc>,
    ) -> Transition<OriginateState> {
        let loan = LoanRecord::new(Self::unique_id(id), input.request.terms.loan_type());
        let mut state = OriginateState {
            workflow_id: id.clone(),
            definition: input.definition,
            policy: input.policy,
            started_at: now,
            request: input.request,
            loan,
            // Replaced by `begin` below; a placeholder that is never persisted.
            phase: Phase::Paid,
        };
        route::begin(&mut state, now);
        let note = format!(
            "started with definition {}: loan {}, {}",
            state.definition.reference(),
            state.loan.unique_id,
            state.phase.name()
        );
        kit::advance(state, note)
    }

    fn decide(
        state: &OriginateState,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Transition<OriginateState> {
        kit::decide(state, event, now)
    }

    fn action(state: &OriginateState) -> Action {
        kit::action(state)
    }

    fn summary(state: &OriginateState) -> Summary {
        kit::summary(state, state.definition.reference(), state.facts())
    }
}
