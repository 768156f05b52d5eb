//! The retry rules of a step that makes one Finfra call: its [`Run`] (operation key,
//! attempts, [`Stage`]) and what follows each failure, from the failure and the
//! definition's `RetryPolicy`, so no machine repeats them per step:
//!
//! | what happened | next |
//! |---|---|
//! | `429` | sleep exactly `Retry-After` (or back off on the count of 429s); 429s do not use up attempts |
//! | retryable failure (5xx on a read, timeout before sending, 503, ...) | sleep `finfra_api::retry::decide`'s backoff with jitter seeded from (workflow, step, attempt), then send again |
//! | lost answer of a request whose [`Effect`](crate::request::Effect) needs reconciling (create, approve, block, disburse) | stage [`Stage::Reconcile`]: the machine's reconcile read, then the machine says applied or not; not applied → send again (counts as an attempt) |
//! | a 2xx we could not decode, of such a request | it *was* applied: reconcile to learn the details |
//! | attempts used up | `needs_attention` `retries_exhausted` |
//! | final 4xx of a request built from the input | `failed` `finfra_rejected` with Finfra's message |
//! | final 4xx otherwise, 401/403, 409 the step does not expect | `needs_attention` |
//! | `CallInterrupted` (the worker died mid-call) | reconcile if the request needs it, else send again |
//!
//! Machines give 409s and other statuses with a meaning of their own (a borrower that
//! exists, an expired upload URL) their own handling before calling [`send_failed`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use finfra_api::retry::{self, Jitter, RetryDecision, RetryPolicy};

use crate::action::{Reason, SleepReason};
use crate::failure::{CallFailure, FailureKind};
use crate::ids::{OperationKey, WorkflowId, seed};
use crate::machine::Status;
use crate::request::FinfraRequest;

/// `now + d`, saturating at the end of time instead of overflowing.
#[must_use]
pub fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Where a step's call stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// The request is to be sent (or is being sent).
    Send,
    /// An attempt failed; send again at `at`.
    Backoff {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: SleepReason,
    },
    /// The outcome of a sent request is unknown (the `ambiguous` sub-state): the reconcile
    /// read is to be sent (or is being sent).
    Reconcile,
    /// A reconcile read failed; read again at `at`.
    ReconcileBackoff {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A step's Finfra call: its operation key, attempts and stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// 1-based number of the send in progress (or next).
    pub attempt: u32,
    /// Failed sends that count against `RetryPolicy::max_attempts` (429s do not).
    pub failures: u32,
    /// 429s answered to this operation's sends.
    pub throttles: u32,
    /// Failed reconcile reads in the current ambiguous episode.
    pub reads: u32,
    /// Where it stands.
    #[serde(flatten)]
    pub stage: Stage,
    /// The operation's key: created when the step began, the same on every attempt.
    pub operation_key: Option<OperationKey>,
    /// The last failure, for people (`last_error` in SQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<CallFailure>,
    /// An earlier send of this operation may have been applied (its answer was lost, a
    /// `5xx` after sending, a worker died mid-call): a `4xx` to a later send is not taken at
    /// its word but read first (see "read before you believe" in the kit's docs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
    /// The reconcile in progress follows a `4xx` to a repeat: if the read shows the request
    /// was not applied, that answer stands (judged as on a first send) rather than the
    /// request being sent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl Run {
    /// A fresh run: first attempt, to be sent now.
    #[must_use]
    pub fn new(operation_key: Option<OperationKey>) -> Self {
        Self {
            attempt: 1,
            failures: 0,
            throttles: 0,
            reads: 0,
            stage: Stage::Send,
            operation_key,
            last_failure: None,
            uncertain: false,
            refused: false,
        }
    }

    /// The coarse status this run gives its workflow.
    #[must_use]
    pub fn status(&self) -> Status {
        match self.stage {
            Stage::Send => Status::Running,
            Stage::Backoff {
                reason: SleepReason::Recheck,
                ..
            } => Status::Waiting,
            Stage::Backoff { .. } => Status::Retrying,
            Stage::Reconcile | Stage::ReconcileBackoff { .. } => Status::Ambiguous,
        }
    }

    /// Whether a request of this step is outstanding (sent or about to be) in this stage.
    #[must_use]
    pub fn in_flight(&self) -> bool {
        matches!(self.stage, Stage::Send | Stage::Reconcile)
    }

    /// The same operation, restarted by an operator: attempts counted afresh, and a run
    /// that did not know whether its request was applied still reconciles first.
    #[must_use]
    pub fn restarted(&self) -> Self {
        let stage = match self.stage {
            Stage::Send | Stage::Backoff { .. } => Stage::Send,
            Stage::Reconcile | Stage::ReconcileBackoff { .. } => Stage::Reconcile,
        };
        Self {
            attempt: self.attempt + 1,
            failures: 0,
            throttles: 0,
            reads: 0,
            stage,
            operation_key: self.operation_key.clone(),
            last_failure: self.last_failure.clone(),
            uncertain: self.uncertain,
            refused: false,
        }
    }
}

/// What the generic rules need to know about the step.
#[derive(Debug, Clone, Copy)]
pub struct StepCtx<'a> {
    /// The workflow (seeds the jitter).
    pub workflow: &'a WorkflowId,
    /// The step's state name.
    pub step: &'a str,
    /// The definition's retry policy.
    pub policy: &'a RetryPolicy,
    /// The decision's clock.
    pub now: DateTime<Utc>,
}

impl StepCtx<'_> {
    pub(super) fn jitter(&self, what: &str, n: u32) -> Jitter {
        Jitter::from_seed(seed(&[
            self.workflow.as_str(),
            self.step,
            what,
            &n.to_string(),
        ]))
    }
}

/// How a step gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// The workflow fails: the input is at fault, no person can fix this run.
    Fail(Reason),
    /// A person must look; `resolve` with `{"retry": true}` tries again.
    Attention(Reason),
}

/// What follows a failure, per the rules in the module docs.
pub type Next = Result<Run, GiveUp>;

/// The step's request failed.
///
/// # Errors
///
/// [`GiveUp`] when no further attempt is possible or sensible.
pub fn send_failed(
    run: &Run,
    request: &FinfraRequest,
    failure: &CallFailure,
    ctx: StepCtx<'_>,
) -> Next {
    let mut next = run.clone();
    next.last_failure = Some(failure.clone());
    next.uncertain |= failure.ambiguous;
    let effect = request.effect();
    if failure.kind == FailureKind::Decode && effect.needs_reconcile() {
        // A 2xx: applied, but we could not read what Finfra said. Read its state instead.
        next.stage = Stage::Reconcile;
        next.reads = 0;
        return Ok(next);
    }
    let class = if effect.needs_reconcile() {
        failure.class
    } else {
        // Safe to send again whatever the HTTP method: a lost answer is just a failure.
        failure.class.as_idempotent()
    };
    if failure.status == Some(429) {
        next.throttles += 1;
        let unlimited = RetryPolicy {
            max_attempts: u32::MAX,
            ..ctx.policy.clone()
        };
        let jitter = ctx.jitter("throttle", next.throttles);
        return match retry::decide(
            class.into(),
            failure.retry_after,
            next.throttles,
            &unlimited,
            jitter,
        ) {
            RetryDecision::RetryAt(delay) => {
                next.attempt += 1;
                next.stage = Stage::Backoff {
                    at: after(ctx.now, delay),
                    reason: SleepReason::RateLimited,
                };
                Ok(next)
            }
            RetryDecision::Reconcile | RetryDecision::GiveUp => Err(give_up(request, failure, ctx)),
        };
    }
    next.failures += 1;
    let jitter = ctx.jitter("send", next.attempt);
    match retry::decide(
        class.into(),
        failure.retry_after,
        next.failures,
        ctx.policy,
        jitter,
    ) {
        RetryDecision::RetryAt(delay) => {
            next.attempt += 1;
            next.stage = Stage::Backoff {
                at: after(ctx.now, delay),
                reason: SleepReason::Retry,
            };
            Ok(next)
        }
        RetryDecision::Reconcile => {
            next.stage = Stage::Reconcile;
            next.reads = 0;
            Ok(next)
        }
        RetryDecision::GiveUp => Err(give_up(request, failure, ctx)),
    }
}

/// The step's reconcile read failed. Reads are safe to repeat; giving up leaves the
/// operation's outcome unknown, for a person.
///
/// # Errors
///
/// [`GiveUp::Attention`] when the reads are used up or cannot succeed.
pub fn read_failed(
    run: &Run,
    read: &FinfraRequest,
    failure: &CallFailure,
    ctx: StepCtx<'_>,
) -> Next {
    let mut next = run.clone();
    next.last_failure = Some(failure.clone());
    let throttled = failure.status == Some(429);
    if !throttled {
        next.reads += 1;
    }
    let policy = if throttled {
        RetryPolicy {
            max_attempts: u32::MAX,
            ..ctx.policy.clone()
        }
    } else {
        ctx.policy.clone()
    };
    let jitter = ctx.jitter("reconcile", next.reads);
    let class = failure.class.as_idempotent();
    match retry::decide(
        class.into(),
        failure.retry_after,
        next.reads.max(1),
        &policy,
        jitter,
    ) {
        RetryDecision::RetryAt(delay) => {
            next.stage = Stage::ReconcileBackoff {
                at: after(ctx.now, delay),
            };
            Ok(next)
        }
        RetryDecision::Reconcile | RetryDecision::GiveUp => Err(GiveUp::Attention(
            Reason::new(
                "reconcile_failed",
                format!(
                    "{}: could not learn whether the request was applied: {} failed ({})",
                    ctx.step,
                    read.name(),
                    failure.describe()
                ),
            )
            .with_hint(RETRY_HINT),
        )),
    }
}

/// The reconcile read showed the request was not applied: send it again, as the next
/// attempt of the same operation.
///
/// # Errors
///
/// [`GiveUp::Attention`] when the attempts are used up.
pub fn resend(run: &Run, request: &FinfraRequest, ctx: StepCtx<'_>) -> Next {
    if run.failures >= ctx.policy.max_attempts {
        let last = run
            .last_failure
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), CallFailure::describe);
        return Err(GiveUp::Attention(exhausted(
            request,
            run.failures,
            &last,
            ctx,
        )));
    }
    let mut next = run.clone();
    next.attempt += 1;
    next.reads = 0;
    next.stage = Stage::Send;
    Ok(next)
}

/// The executor lost the outcome of the step's call (`Event::CallInterrupted`, or any
/// event that shows the call it asked for is no longer outstanding).
#[must_use]
pub fn interrupted(run: &Run, request: &FinfraRequest) -> Run {
    let mut next = run.clone();
    if run.stage == Stage::Send {
        next.uncertain = true;
    }
    match run.stage {
        Stage::Send if request.effect().needs_reconcile() => {
            // Counted as a failure so that a crash loop cannot reconcile forever.
            next.failures += 1;
            next.stage = Stage::Reconcile;
            next.reads = 0;
        }
        Stage::Send => next.attempt += 1,
        Stage::Reconcile | Stage::Backoff { .. } | Stage::ReconcileBackoff { .. } => {}
    }
    next
}

/// A wake-up: a backoff that is over sends again. `None` when nothing was due.
#[must_use]
pub fn woken(run: &Run, now: DateTime<Utc>) -> Option<Run> {
    let mut next = run.clone();
    match run.stage {
        Stage::Backoff { at, .. } if at <= now => next.stage = Stage::Send,
        Stage::ReconcileBackoff { at } if at <= now => next.stage = Stage::Reconcile,
        Stage::Backoff { .. } | Stage::ReconcileBackoff { .. } | Stage::Send | Stage::Reconcile => {
            return None;
        }
    }
    Some(next)
}

/// Whether a failure is Finfra refusing the request as it stands (a final `4xx`), as
/// opposed to a failure of the way to Finfra or of our credentials.
#[must_use]
pub fn is_refusal(failure: &CallFailure) -> bool {
    matches!(failure.status, Some(400..=499))
        && !failure.retryable
        && !matches!(failure.status, Some(401 | 403 | 429))
}

/// What `resolve` accepts to try a stuck step again.
pub const RETRY_HINT: &str = "resolve with {\"retry\": true} to try the step again";

fn exhausted(request: &FinfraRequest, failures: u32, last: &str, ctx: StepCtx<'_>) -> Reason {
    Reason::new(
        "retries_exhausted",
        format!(
            "{}: {} failed {failures} times, last: {last}",
            ctx.step,
            request.name()
        ),
    )
    .with_hint(RETRY_HINT)
}

fn give_up(request: &FinfraRequest, failure: &CallFailure, ctx: StepCtx<'_>) -> GiveUp {
    if failure.retryable {
        // Transient, but the attempts are used up.
        return GiveUp::Attention(exhausted(
            request,
            ctx.policy.max_attempts,
            &failure.describe(),
            ctx,
        ));
    }
    let what = format!(
        "{}: {} failed ({})",
        ctx.step,
        request.name(),
        failure.describe()
    );
    match failure.kind {
        FailureKind::Unauthorized | FailureKind::Auth => GiveUp::Attention(
            Reason::new("finfra_unauthorized", what)
                .with_hint("fix the Finfra credentials, then resolve with {\"retry\": true}"),
        ),
        FailureKind::Rejected if failure.status == Some(403) => GiveUp::Attention(
            Reason::new("finfra_unauthorized", what)
                .with_hint("check the partner's permissions, then resolve with {\"retry\": true}"),
        ),
        // The input is at fault: Finfra's message says how; no person can fix this run.
        FailureKind::Rejected if request.carries_input() => {
            GiveUp::Fail(Reason::new("finfra_rejected", what))
        }
        FailureKind::Rejected => {
            GiveUp::Attention(Reason::new("finfra_rejected", what).with_hint(RETRY_HINT))
        }
        FailureKind::Conflict => {
            GiveUp::Attention(Reason::new("finfra_conflict", what).with_hint(RETRY_HINT))
        }
        FailureKind::Invalid => GiveUp::Attention(Reason::new("request_invalid", what).with_hint(
            "a request built from Finfra's data failed validation: cancel, or resolve with {\"retry\": true}",
        )),
        FailureKind::Decode => {
            GiveUp::Attention(Reason::new("undecodable_response", what).with_hint(RETRY_HINT))
        }
        FailureKind::RateLimited
        | FailureKind::Server
        | FailureKind::Timeout
        | FailureKind::Connection
        | FailureKind::UnexpectedStatus
        | FailureKind::ResponseTooLarge
        | FailureKind::Config => {
            GiveUp::Attention(Reason::new("call_failed", what).with_hint(RETRY_HINT))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn ctx<'a>(wf: &'a WorkflowId, policy: &'a RetryPolicy, now: DateTime<Utc>) -> StepCtx<'a> {
        StepCtx {
            workflow: wf,
            step: "approve_borrower",
            policy,
            now,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    fn approve() -> FinfraRequest {
        FinfraRequest::ApproveBorrower {
            user_id: UserId::new("6a41ff87dda4eefd0b7b0300").unwrap(),
        }
    }

    fn get() -> FinfraRequest {
        FinfraRequest::GetBorrower {
            user_id: UserId::new("6a41ff87dda4eefd0b7b0300").unwrap(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn retry_after_is_honoured_exactly_and_does_not_use_attempts() {
        let wf = WorkflowId::new("wf").unwrap();
        let p = policy();
        let mut run = Run::new(None);
        for _ in 0..10 {
            let failure = CallFailure::rate_limited(Some(Duration::from_secs(7)));
            run = send_failed(&run, &get(), &failure, ctx(&wf, &p, now())).unwrap();
            assert_eq!(
                run.stage,
                Stage::Backoff {
                    at: now() + TimeDelta::seconds(7),
                    reason: SleepReason::RateLimited
                }
            );
            run = woken(&run, now() + TimeDelta::seconds(7)).unwrap();
        }
        assert_eq!(run.failures, 0);
    }

    #[test]
    fn lost_answers_of_unique_requests_reconcile_and_reads_retry() {
        let wf = WorkflowId::new("wf").unwrap();
        let p = policy();
        let run = Run::new(None);
        let ambiguous = send_failed(
            &run,
            &approve(),
            &CallFailure::timeout(true, false),
            ctx(&wf, &p, now()),
        )
        .unwrap();
        assert_eq!(ambiguous.stage, Stage::Reconcile);
        assert_eq!(ambiguous.status(), Status::Ambiguous);
        // The same failure on a read is a plain retry.
        let retried = send_failed(
            &run,
            &get(),
            &CallFailure::timeout(true, true),
            ctx(&wf, &p, now()),
        )
        .unwrap();
        assert!(matches!(
            retried.stage,
            Stage::Backoff {
                reason: SleepReason::Retry,
                ..
            }
        ));
        assert_eq!(retried.attempt, 2);
    }

    #[test]
    fn attempts_run_out_into_attention() {
        let wf = WorkflowId::new("wf").unwrap();
        let p = policy();
        let mut run = Run::new(None);
        for _ in 0..2 {
            run = send_failed(
                &run,
                &get(),
                &CallFailure::server(500, true),
                ctx(&wf, &p, now()),
            )
            .unwrap();
            run = woken(&run, DateTime::<Utc>::MAX_UTC).unwrap();
        }
        let Err(GiveUp::Attention(reason)) = send_failed(
            &run,
            &get(),
            &CallFailure::server(500, true),
            ctx(&wf, &p, now()),
        ) else {
            panic!("expected attention");
        };
        assert_eq!(reason.code, "retries_exhausted");
    }

    #[test]
    fn jitter_is_seeded_so_replays_agree() {
        let wf = WorkflowId::new("wf").unwrap();
        let p = policy();
        let run = Run::new(None);
        let a = send_failed(
            &run,
            &get(),
            &CallFailure::server(502, true),
            ctx(&wf, &p, now()),
        );
        let b = send_failed(
            &run,
            &get(),
            &CallFailure::server(502, true),
            ctx(&wf, &p, now()),
        );
        assert_eq!(a, b);
    }
}
