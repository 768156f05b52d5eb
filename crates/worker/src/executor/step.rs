//! The executor: advances one workflow as far as it can go without waiting.
//!
//! It is the only code that does I/O for a workflow. One `advance`:
//!
//! 1. claims the workflow in the store (only one worker holds it; a stale wake-up finds
//!    nothing due and ends here, and one for a workflow this process is advancing already
//!    ends before the claim: `advancing.rs`);
//! 2. turns what woke it into an [`Event`]: the first start, each matched inbox row (a
//!    Finfra callback, the end of a workflow it waits for, a person's cancel or resolve), a
//!    timer, or, for a workflow whose stored action is a call, `CallInterrupted` (a worker
//!    died between recording the decision to call and recording the answer);
//! 3. asks the pure workflow to decide, and commits the decision (state, journal row, waits,
//!    next wake-up) in one transaction **before** acting on it;
//! 4. for a call: waits for the fleet's rate governor (`governor.rs`: a token of the shared
//!    rate, and no known `Retry-After` window, checked from memory as the request leaves),
//!    sends it while renewing its lease, turns the answer into the next event and goes back
//!    to 3 inline; for a wait or a sleep, it releases the workflow and returns. The commit
//!    itself is built by `record.rs`.
//!
//! A decision that finishes a workflow is announced, in its commit, to the workflows
//! waiting for it (an `originate-loan` waits for its `onboard-borrower`): see
//! `store::Announcement`.
//!
//! A decision to call is committed before the request leaves, so a crash at any instant
//! leaves either "not decided" (the event is delivered again) or "decided, maybe sent",
//! which the workflow reconciles by reading Finfra before sending a non-idempotent request
//! again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use finfra_api::FinfraClient;
use serde_json::{Value, json};
use store::{Claimed, InboxRow, JournalEntry, Outcome, Source, Store, StoreError};
use uuid::Uuid;
use workflow::{
    Action, CallFailure, CallbackEvent, Decision, Engine, EngineError, Event, FailureKind,
    FinfraRequest, FinfraResponse, Handled, Prior, Stored, UserId, WorkflowId,
};

use super::advancing::{Advancing, Here};
use super::call;
use super::governor::Governor;
use super::record::{self, journal, outcome_of};

pub use store::{COMMAND_CANCEL, COMMAND_RESOLVE, command_payload};

/// At most this many of finflow's loans that no page of a run showed are read one by one
/// at its end.
const UNSEEN_LIMIT: u32 = 1_000;

/// What one `advance` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// The workflow was not due, another worker holds it, or this process is advancing it
    /// already.
    NotDue,
    /// It waits (for a callback, a time or a person).
    Parked,
    /// It reached a terminal status.
    Finished,
    /// Another worker took it over (our lease expired) or an operator changed it; our
    /// last step was not recorded and will be reconciled by its new holder.
    LeaseLost,
}

/// Why an `advance` stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The store failed; the workflow stays as its last commit left it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stored workflow cannot be read by this build (unknown kind, unreadable state).
    #[error("workflow {id}: {source}")]
    Engine {
        /// Which workflow.
        id: Uuid,
        /// What the engine said.
        #[source]
        source: EngineError,
    },
    /// The workflow's id is not one the engine accepts.
    #[error("workflow {id}: {source}")]
    InvalidId {
        /// Which workflow.
        id: Uuid,
        /// What is wrong with it.
        #[source]
        source: workflow::InvalidId,
    },
}

/// Everything one worker process needs to advance workflows.
#[derive(Clone)]
pub struct Executor {
    store: Store,
    pub(super) client: FinfraClient,
    engine: Engine,
    worker_id: String,
    lease: Duration,
    /// The shared rate-limiter scope of this Finfra client, e.g. `finfra:<client id>`.
    scope: String,
    /// When this process's Finfra requests may leave: the pace of `finfra.rate_limit`
    /// shared with the fleet, and the pause after a `429` (this process's own at once, the
    /// fleet's as announced), all from memory (see `governor`).
    pub(super) governor: Governor,
    /// The workflows this process is advancing: a wake-up for one of them is dropped
    /// (`advancing`).
    advancing: Arc<Advancing>,
}

/// The workflow being advanced, and where its row stands.
pub(super) struct Held {
    pub(super) id: Uuid,
    pub(super) kind: String,
    pub(super) business_key: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) version: i64,
    /// The slim context: read with `input` (see `workflow::stored`).
    pub(super) state: Value,
    pub(super) input: Value,
    /// The request rebuilt from `input`, once per claim.
    pub(super) rebuilt: workflow::Rebuilt,
    /// The state as the last committed decision left it (`workflow::Typed`).
    pub(super) typed: workflow::Typed,
    /// The stored facts and whether it is stored `needs_attention`: what the lifecycle
    /// events of the next step are measured against.
    pub(super) facts: Value,
    pub(super) needs_attention: bool,
    /// The row's `next_run_at`: since when it is due, kept by calls made inline.
    pub(super) due_since: Option<DateTime<Utc>>,
    /// The callbacks the last commit found waiting, for which it kept the workflow instead
    /// of releasing it (`StepCommit::hold_for_events`): the next thing to do.
    pub(super) kept: Vec<InboxRow>,
    /// Its place among the workflows this process is advancing.
    pub(super) here: Here,
}

impl Executor {
    /// An executor for `worker_id` (unique per process: host and pid).
    pub fn new(
        store: Store,
        client: FinfraClient,
        engine: Engine,
        worker_id: impl Into<String>,
        lease: Duration,
        scope: impl Into<String>,
    ) -> Self {
        let governor = Governor::default();
        governor.hold_client(client.clone());
        Self {
            store,
            client,
            engine,
            worker_id: worker_id.into(),
            lease,
            scope: scope.into(),
            governor,
            advancing: Arc::default(),
        }
    }

    /// This worker's identity, as stored in leases and the journal.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// How long a claim lasts.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The workflows.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether this process is advancing workflow `id` now: a wake-up for it changes nothing
    /// (what woke it is seen by that advance's next releasing commit; see `advancing`).
    pub fn is_advancing(&self, id: Uuid) -> bool {
        self.advancing.contains(id)
    }

    /// Advances workflow `id` until it waits, finishes or needs a person; `NotDue` at once,
    /// without a claim, while this process advances it already ([`Self::is_advancing`]).
    ///
    /// # Errors
    /// The store failed, or the stored workflow cannot be read by this build.
    pub async fn advance(&self, id: Uuid) -> Result<Advanced, ExecutorError> {
        if self.is_advancing(id) {
            return Ok(Advanced::NotDue);
        }
        let Some(claimed) = self.store.claim(id, &self.worker_id, self.lease).await? else {
            return Ok(Advanced::NotDue);
        };
        self.advance_claimed(claimed).await
    }

    /// Advances a workflow this worker has just claimed.
    ///
    /// # Errors
    /// As [`Self::advance`].
    #[tracing::instrument(
        name = "advance",
        skip_all,
        fields(
            workflow.id = %claimed.workflow.id,
            workflow.kind = %claimed.workflow.kind,
            workflow.business_key = %claimed.workflow.business_key,
            worker.id = %self.worker_id,
        )
    )]
    pub async fn advance_claimed(&self, claimed: Claimed) -> Result<Advanced, ExecutorError> {
        let Claimed {
            workflow,
            events,
            previous_status,
        } = claimed;
        let engine_error = |source| ExecutorError::Engine {
            id: workflow.id,
            source,
        };
        let mut held = Held {
            id: workflow.id,
            kind: workflow.kind.clone(),
            business_key: workflow.business_key.clone(),
            created_at: workflow.created_at,
            version: workflow.version,
            state: workflow.context.clone(),
            // Opened when sealed: the request is rebuilt from it once per claim.
            input: self.store.input(&workflow)?,
            rebuilt: workflow::Rebuilt::default(),
            typed: workflow::Typed::default(),
            facts: workflow.facts.clone(),
            needs_attention: previous_status == store::Status::NeedsAttention,
            due_since: workflow.next_run_at,
            kept: Vec::new(),
            here: self.advancing.enter(workflow.id),
        };
        let now = Utc::now();

        // A workflow not yet started: validate its input again and pin its definition.
        if workflow.state == store::INITIAL_STATE {
            let wf_id = WorkflowId::new(held.id.to_string()).map_err(|source| {
                ExecutorError::InvalidId {
                    id: held.id,
                    source,
                }
            })?;
            // An input still plain (submitted through SQL, which cannot seal) is sealed
            // before the first step, and its identity key keyed like every other.
            if Box::pin(self.store.seal_if_plain(&workflow)).await? {
                tracing::debug!("the input submitted plain is sealed");
            }
            // A returning borrower (an earlier onboarding of the same NIK completed) is
            // adopted, not created again.
            // Only a workflow that names a borrower by NIK can have one: no query for others.
            let returning = match store::identity_key(&held.kind, &held.input) {
                Some(_) => Box::pin(self.store.returning_borrower(held.id)).await?,
                None => None,
            };
            let prior = Prior {
                returning_borrower: returning.and_then(|earlier| UserId::new(earlier.user_id).ok()),
            };
            let decision = match self.engine.start_kept(
                &held.kind,
                &wf_id,
                &held.input,
                &prior,
                now,
                &held.typed,
            ) {
                Ok(decision) => decision,
                Err(EngineError::Input(errors)) => {
                    // Input submitted through SQL is only validated here: fail it, listing
                    // every problem, rather than leave it pending forever.
                    return self.fail_invalid(&mut held, &errors.to_string(), now).await;
                }
                Err(other) => return Err(engine_error(other)),
            };
            let entry = journal("start", "start", Outcome::Started, now);
            return self.run(&mut held, decision, entry, Vec::new()).await;
        }

        // The definition the context names, if another process pinned it.
        self.load_pin(&held).await?;

        // A stored call this worker did not make: its holder died (or lost the lease)
        // between deciding to call and recording the answer. The workflow hears that first,
        // and reconciles a request that may have been applied; the call is never re-run
        // as it was stored.
        let mut last = None;
        let current = self
            .engine
            .action(
                &held.kind,
                Stored::cached(&held.state, &held.input, &held.rebuilt, &held.typed),
            )
            .map_err(engine_error)?;
        if matches!(current, Action::Call { .. }) {
            let mut decision = self.decide(&held, &Event::CallInterrupted, now).await?;
            let entry = journal(
                &workflow.state,
                "call_interrupted",
                Outcome::Interrupted,
                now,
            );
            if !self
                .commit_or_lost(
                    &mut held,
                    &mut decision,
                    entry,
                    Vec::new(),
                    !events.is_empty(),
                )
                .await?
            {
                return Ok(Advanced::LeaseLost);
            }
            last = Some(decision);
        }

        if !events.is_empty() {
            match self.consume(&mut held, events).await? {
                Some(decision) => last = Some(decision),
                None => return Ok(Advanced::LeaseLost),
            }
        }

        match last {
            // Act on the last committed decision.
            Some(decision) => self.act(&mut held, decision).await,
            // Woken by a timer (a backoff is over, a poll or a deadline is due).
            None => {
                let decision = self.decide(&held, &Event::Wake, now).await?;
                let entry = journal(&workflow.state, "wake", Outcome::Woken, now);
                self.run(&mut held, decision, entry, Vec::new()).await
            }
        }
    }

    /// Each matched callback is its own event, oldest first, committed with its decision;
    /// the lease is kept until the last. Every row read is marked processed, used or not, so
    /// that it stops waking the workflow. The last decision committed, or `None` when the
    /// workflow was taken over meanwhile.
    async fn consume(
        &self,
        held: &mut Held,
        events: Vec<InboxRow>,
    ) -> Result<Option<Decision>, ExecutorError> {
        let mut last = None;
        let count = events.len();
        for (i, row) in events.into_iter().enumerate() {
            let now = Utc::now();
            crate::metrics::callback_consumed(row.source.as_str(), row.received_at);
            // A sealed payload is opened here (`store`'s personal data); one no key opens is
            // not usable, as an unreadable payload always was.
            let payload = self
                .store
                .open_payload(row.source.as_str(), &row.event_id, &row.payload)
                .unwrap_or_else(|error| {
                    tracing::warn!(
                        workflow.id = %held.id,
                        inbox.id = row.id,
                        error.message = %error,
                        "a sealed callback payload does not open: check the [privacy] keys"
                    );
                    Value::Null
                });
            let (event, mut entry) = match inbox_event(&row, payload) {
                Some(event) if row.source == Source::Operator => {
                    // Who asked and why, as they said it (the journal's worker is the one
                    // that applied it).
                    let mut entry = journal(&row.title, event.name(), Outcome::Command, now);
                    entry.request_summary = Some(row.payload.clone());
                    (event, entry)
                }
                Some(event) => (
                    event,
                    journal(&row.title, "callback", Outcome::Callback, now),
                ),
                None => {
                    let mut entry = journal(&row.title, "callback", Outcome::Ignored, now);
                    entry.error = Some("callback not usable by this workflow".to_owned());
                    (Event::Wake, entry)
                }
            };
            entry.response_summary =
                Some(json!({ "event_id": row.event_id, "source": row.source.as_str() }));
            let mut decision = self.decide(held, &event, now).await?;
            if row.source == Source::Operator && decision.handled == Handled::Ignored {
                entry.outcome = Outcome::CommandRefused;
                entry.error = Some(decision.note.clone());
            }
            if !self
                .commit_or_lost(held, &mut decision, entry, vec![row.id], i + 1 < count)
                .await?
            {
                return Ok(None);
            }
            last = Some(decision);
        }
        Ok(last)
    }

    /// Commits a decision (keeping the lease when it is a call to make inline, or when
    /// `more` events follow); `false` when the workflow was taken over meanwhile.
    async fn commit_or_lost(
        &self,
        held: &mut Held,
        decision: &mut Decision,
        entry: JournalEntry,
        processed: Vec<i64>,
        more: bool,
    ) -> Result<bool, ExecutorError> {
        let keep = more || matches!(decision.action, Action::Call { .. });
        match self.commit(held, decision, entry, processed, keep).await {
            Ok(()) => Ok(true),
            Err(ExecutorError::Store(StoreError::LeaseLost(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// finflow's records of the loans on a page of Finfra's, for the run comparing them; on
    /// the run's last page, also the loans finflow created in its window that no page
    /// showed.
    async fn known_loans(
        &self,
        held: &Held,
        request: &FinfraRequest,
        page: &finfra_api::model::loan::LoanPage,
    ) -> Result<workflow::reconcile::KnownLoans, ExecutorError> {
        let FinfraRequest::ListLoans { query } = request else {
            return Ok(workflow::reconcile::KnownLoans::default());
        };
        let ids: Vec<String> = page.data.iter().map(|l| l.unique_id.clone()).collect();
        let convert = |rows: Vec<store::KnownLoanRow>| -> Vec<workflow::reconcile::KnownLoan> {
            rows.into_iter()
                .map(|r| workflow::reconcile::KnownLoan {
                    workflow_id: r.workflow_id.to_string(),
                    loan_unique_id: r.loan_unique_id,
                    status: r.status,
                    loan_status: r.loan_status,
                    disbursement_reference: r.disbursement_reference,
                    disbursement_requested: r.disbursement_requested,
                    amount_paid: r.amount_paid,
                })
                .collect()
        };
        let loans = convert(self.store.known_loans(&ids).await?);
        let size = u64::from(
            query
                .page_size
                .unwrap_or(finfra_api::model::loan::MAX_PAGE_SIZE),
        );
        let number = u64::from(query.page_number.unwrap_or(1));
        let last = (page.data.len() as u64) < size || number * size >= page.total_items;
        // Only a run over every loan (no borrower, loan or amount filter) can tell that
        // one of finflow's loans is missing at Finfra.
        let whole = query.user_id.is_none()
            && query.unique_id.is_none()
            && query.start_range_amount.is_none()
            && query.end_range_amount.is_none();
        let unseen = if last && whole {
            convert(
                self.store
                    .unseen_loans(
                        held.id,
                        query.start_date,
                        query.end_date,
                        &ids,
                        UNSEEN_LIMIT,
                    )
                    .await?,
            )
        } else {
            Vec::new()
        };
        Ok(workflow::reconcile::KnownLoans { loans, unseen })
    }

    async fn decide(
        &self,
        held: &Held,
        event: &Event,
        now: DateTime<Utc>,
    ) -> Result<Decision, ExecutorError> {
        self.engine
            .decide(
                &held.kind,
                Stored::cached(&held.state, &held.input, &held.rebuilt, &held.typed),
                event,
                now,
            )
            .map_err(|source| ExecutorError::Engine {
                id: held.id,
                source,
            })
    }

    /// Loads from the store the definition `held`'s context names when this process has
    /// not pinned it (another worker started the workflow on other definitions).
    async fn load_pin(&self, held: &Held) -> Result<(), ExecutorError> {
        let Some(digest) = self.engine.unknown_pin(&held.state) else {
            return Ok(());
        };
        let engine_error = |source| ExecutorError::Engine {
            id: held.id,
            source,
        };
        let Some(body) = Box::pin(self.store.definition(digest)).await? else {
            return Err(engine_error(EngineError::UnknownDefinition {
                digest: digest.to_owned(),
            }));
        };
        self.engine
            .pin_stored(digest, &body)
            .map_err(engine_error)?;
        Ok(())
    }

    /// Stores the definition `decision`'s context names, once per process and pin, before
    /// the first commit that names it.
    async fn store_pin(&self, decision: &Decision) -> Result<(), ExecutorError> {
        let Some(pin) = decision.pin.as_deref().filter(|pin| !pin.is_stored()) else {
            return Ok(());
        };
        let definition = &pin.definition;
        Box::pin(self.store.store_definition(store::PinnedDefinition {
            digest: &pin.digest,
            name: &definition.name,
            version: i32::try_from(definition.version).unwrap_or(i32::MAX),
            file_digest: &definition.digest,
            body: &pin.json,
        }))
        .await?;
        pin.mark_stored();
        Ok(())
    }

    /// Commits `decision` (with `entry` describing what led to it), then acts on it.
    async fn run(
        &self,
        held: &mut Held,
        mut decision: Decision,
        entry: JournalEntry,
        processed: Vec<i64>,
    ) -> Result<Advanced, ExecutorError> {
        if !self
            .commit_or_lost(held, &mut decision, entry, processed, false)
            .await?
        {
            return Ok(Advanced::LeaseLost);
        }
        self.act(held, decision).await
    }

    /// Acts on a committed decision: runs calls inline until the workflow parks.
    async fn act(
        &self,
        held: &mut Held,
        mut decision: Decision,
    ) -> Result<Advanced, ExecutorError> {
        loop {
            let Action::Call {
                step,
                request,
                operation_key,
                attempt,
                purpose,
            } = decision.action.clone()
            else {
                if decision.action.is_terminal() {
                    return Ok(Advanced::Finished);
                }
                // It parked, but callbacks were waiting: its commit kept it for them.
                if held.kept.is_empty() {
                    return Ok(Advanced::Parked);
                }
                let events = std::mem::take(&mut held.kept);
                match self.consume(held, events).await? {
                    Some(next) => {
                        decision = next;
                        continue;
                    }
                    None => return Ok(Advanced::LeaseLost),
                }
            };
            let started = Utc::now();
            let (result, sent) = match self.fleet_pause(held).await? {
                // Nothing is sent inside another worker's Retry-After window: the workflow
                // hears a 429 that was never sent, which costs no attempt.
                Some(remaining) => (Err(CallFailure::rate_limited(Some(remaining))), false),
                None => {
                    let span = tracing::info_span!("step", step = %step, request = request.name());
                    (
                        tracing::Instrument::instrument(self.send(held, &request), span).await,
                        true,
                    )
                }
            };
            let result = match result {
                Ok(FinfraResponse::ListLoans(page, _)) => {
                    // Boxed, as the rest of this function's rare branches: every step's
                    // future holds a pointer, not their state.
                    let known = Box::pin(self.known_loans(held, &request, &page)).await?;
                    Ok(FinfraResponse::ListLoans(page, known))
                }
                other => other,
            };
            let finished = Utc::now();
            let mut entry = journal(&step, request.name(), Outcome::Ok, started);
            entry.finished_at = finished;
            entry.attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
            entry.operation_key = operation_key.as_ref().map(|k| k.as_str().to_owned());
            // The call's name is the row's `action`; its method and path follow from it.
            entry.request_summary = Some(json!({
                "purpose": purpose,
                "args": request.summary(),
            }));
            let event = match result {
                Ok(response) => {
                    entry.response_summary = Some(response.summary());
                    Event::CallSucceeded(response)
                }
                Err(failure) => {
                    // Only Finfra's own 429s pause the fleet. Re-pausing on the 429 a
                    // paused call hears would push the pause later by the time the check
                    // took, again and again for every workflow woken at its end: a pause
                    // that never ends.
                    if sent && failure.kind == FailureKind::RateLimited {
                        Box::pin(self.pause_fleet(&failure, finished)).await?;
                    }
                    entry.outcome = outcome_of(&failure);
                    entry.finfra_status = failure.status.map(i32::from);
                    entry.error = Some(failure.describe());
                    Event::CallFailed(failure)
                }
            };
            decision = self.decide(held, &event, Utc::now()).await?;
            let keep = matches!(decision.action, Action::Call { .. });
            match self
                .commit(held, &mut decision, entry.clone(), Vec::new(), keep)
                .await
            {
                Ok(()) => {}
                Err(ExecutorError::Store(StoreError::LeaseLost(id))) => {
                    // Keep what we learnt: the new holder reconciles, and the journal shows
                    // what this worker saw.
                    entry.error = Some(format!(
                        "{}; not applied: the workflow was taken over",
                        entry.error.unwrap_or_default()
                    ));
                    let _ = Box::pin(self.store.append_journal(id, &self.worker_id, &entry)).await;
                    return Ok(Advanced::LeaseLost);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request, renewing the lease while it is outstanding.
    async fn send(
        &self,
        held: &Held,
        request: &FinfraRequest,
    ) -> Result<FinfraResponse, CallFailure> {
        // Boxed: a wrapper that takes a future by value holds it twice (its argument and
        // the future it awaits), so unboxed, the call's state (2 KB) made this future 11 KB
        // through the two wrappers here, copied whole as each took it.
        let call = Box::pin(call::perform(&self.client, request));
        let call = crate::metrics::timed_finfra_call(request.name(), call);
        self.renewing(held, "during a call", call).await
    }

    /// Waits for the governor to let this request leave (its turn under the fleet's rate
    /// limit), renewing the lease meanwhile; then how long the fleet is still paused, if it
    /// is. The pause is checked after the wait, the last thing before sending, from memory.
    async fn fleet_pause(&self, held: &Held) -> Result<Option<Duration>, ExecutorError> {
        let admit = self.governor.admit(&self.store, &self.scope);
        Ok(self.renewing(held, "while waiting to call", admit).await?)
    }

    /// Awaits `work`, renewing `held`'s lease every third of a lease while it is outstanding
    /// (`doing` says when, in the warning of a renewal that failed). The interval starts a
    /// third of a lease in rather than with an "immediate" first tick to be taken first:
    /// that tick waits for the timer's next millisecond, and cost every call a millisecond
    /// or more.
    async fn renewing<T>(&self, held: &Held, doing: &str, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let period = self.lease / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = renew.tick() => {
                    // Boxed: every call's future holds a pointer, not a renewal's state.
                    let renewal =
                        self.store.renew_lease(held.id, &self.worker_id, held.version, self.lease);
                    if let Err(error) = Box::pin(renewal).await {
                        tracing::warn!(error.message = %error, "could not renew the lease {doing}");
                    }
                }
            }
        }
    }

    /// Records a `429` in the shared limiter: every worker waits until it is over, this
    /// one at once, the others as soon as the store announces it.
    async fn pause_fleet(
        &self,
        failure: &CallFailure,
        now: DateTime<Utc>,
    ) -> Result<(), ExecutorError> {
        // Without a Retry-After, pause the fleet for a second: the workflow itself backs off
        // exponentially on top of that.
        let wait = failure.retry_after.unwrap_or(Duration::from_secs(1));
        let until = workflow::kit::after(now, wait);
        let until = self.governor.pause(&self.store, &self.scope, until).await?;
        tracing::info!(pause.until = %until, "Finfra rate limited this client: fleet paused");
        Ok(())
    }

    /// Commits a decision. `keep_lease` when the next action is a call made inline.
    async fn commit(
        &self,
        held: &mut Held,
        decision: &mut Decision,
        entry: JournalEntry,
        processed: Vec<i64>,
        keep_lease: bool,
    ) -> Result<(), ExecutorError> {
        self.store_pin(decision).await?;
        let mut commit = record::step_commit(
            held,
            &self.worker_id,
            decision,
            entry,
            processed,
            keep_lease,
            Utc::now(),
        );
        // Callbacks found waiting at a release keep the workflow here: this worker goes on
        // with them (`act`) instead of claiming it again.
        commit.hold_for_events = commit.release_lease.then_some(self.lease);
        // Released, it may be due again at once with a wake-up of its own: not to be dropped.
        if commit.release_lease {
            held.here.leave();
        }
        let committed = self.store.commit_step(&commit).await?;
        if !committed.kept.is_empty() {
            held.here.rejoin();
        }
        crate::metrics::step_committed(
            &held.kind,
            commit.journal.outcome,
            commit.status,
            held.created_at,
        );
        // What was committed is what this worker now holds: moved, not copied again.
        held.typed.confirm();
        held.version = committed.version;
        held.due_since = committed.next_run_at;
        held.kept = committed.kept;
        held.state = commit.context;
        held.facts = commit.facts;
        held.needs_attention = commit.status == store::Status::NeedsAttention;
        Ok(())
    }

    /// Fails a workflow whose input does not validate, with every problem in `last_error`.
    async fn fail_invalid(
        &self,
        held: &mut Held,
        problems: &str,
        now: DateTime<Utc>,
    ) -> Result<Advanced, ExecutorError> {
        let commit = record::invalid_input(held, &self.worker_id, problems, now);
        held.here.leave();
        match self.store.commit_step(&commit).await {
            Ok(_) => {
                crate::metrics::step_committed(
                    &held.kind,
                    commit.journal.outcome,
                    commit.status,
                    held.created_at,
                );
                Ok(Advanced::Finished)
            }
            Err(StoreError::LeaseLost(_)) => Ok(Advanced::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a stored inbox row tells the workflow, when it is something a workflow can use: a
/// Finfra callback, the end of a workflow it waits for, or a person's command.
fn inbox_event(row: &InboxRow, payload: Value) -> Option<Event> {
    let callback = match row.source {
        Source::Status => CallbackEvent::Status(serde_json::from_value(payload).ok()?),
        Source::VirtualAccount => {
            CallbackEvent::VirtualAccountPayment(serde_json::from_value(payload).ok()?)
        }
        Source::Invoice => CallbackEvent::Invoice(serde_json::from_value(payload).ok()?),
        Source::Internal if row.title == store::NUDGE_TITLE => {
            let by = payload.get("by").and_then(Value::as_str)?.to_owned();
            return Some(Event::PollNow { by });
        }
        Source::Internal => CallbackEvent::Workflow(serde_json::from_value(payload).ok()?),
        Source::Didit => return None,
        Source::Operator => return command_event(&row.title, payload),
    };
    Some(Event::Callback(callback))
}

/// A command as [`Store::record_command`] stored it: `{"by", "reason", "data"}`.
fn command_event(title: &str, payload: Value) -> Option<Event> {
    let text = |field: &str| {
        payload
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (by, reason) = (text("by")?, text("reason").unwrap_or_default());
    match title {
        COMMAND_CANCEL => Some(Event::Cancel { by, reason }),
        COMMAND_RESOLVE => Some(Event::Resolve {
            by,
            reason,
            data: payload.get("data").cloned().unwrap_or(Value::Null),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The futures a step awaits stay small. The call is boxed beneath the wrappers that
    /// each hold the future they are given (the timing of Finfra calls, the lease's renewal
    /// while it is outstanding), and the rare branches (a renewal, a lease of tokens, the
    /// governor's start, a pause) are boxed where they are awaited: a step moves these
    /// futures into their wrappers, copying them whole each time. Before, in a release
    /// build: a call's future 24,448 bytes, the governor's admission 13,848 (the wait for
    /// it, `fleet_pause`, more), an advance 64,128; now 2,312, 472 (1,184) and 31,752.
    #[tokio::test]
    async fn a_steps_futures_hold_their_rare_branches_boxed() {
        store::testing::run(store::testing::TestBackend::Sqlite, false, sizes).await;
    }

    async fn sizes(db: store::testing::TestDb) {
        let client = FinfraClient::new(finfra_api::ClientConfig::new(
            "http://127.0.0.1:9".parse().expect("url"),
            finfra_api::auth::Credentials::new("id", "secret"),
        ))
        .expect("client");
        let workflows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
        let engine = Engine::new(workflow::Registry::load_dir(&workflows).expect("definitions"));
        let lease = Duration::from_secs(30);
        let executor = Executor::new(db.store.clone(), client, engine, "w", lease, "finfra:test");
        let id = Uuid::new_v4();
        let held = Held {
            id,
            kind: "onboard-borrower".into(),
            business_key: "b".into(),
            created_at: Utc::now(),
            version: 1,
            state: Value::Null,
            input: Value::Null,
            rebuilt: workflow::Rebuilt::default(),
            typed: workflow::Typed::default(),
            facts: Value::Null,
            needs_attention: false,
            due_since: None,
            kept: Vec::new(),
            here: executor.advancing.enter(id),
        };
        let request = FinfraRequest::ListLoans {
            query: Default::default(),
        };
        // Made and dropped, never polled: nothing is sent.
        let sizes = [
            (
                "a call",
                size_of_val(&executor.send(&held, &request)),
                4_096,
            ),
            (
                "an admission",
                size_of_val(&executor.fleet_pause(&held)),
                2_048,
            ),
            ("an advance", size_of_val(&executor.advance(id)), 49_152),
        ];
        for (what, size, most) in sizes {
            assert!(size <= most, "{what}'s future is {size} bytes, over {most}");
        }
    }
}
