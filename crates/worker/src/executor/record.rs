//! From a decision to a record: the one place where what a workflow decided becomes the
//! [`StepCommit`] the store writes in one transaction (the stored status, the waits and
//! the wake-up its action implies, the journal row with the decision's note, the
//! announcement of its end, the lifecycle events `workflow::lifecycle_events` finds in the
//! step). Pure: no I/O, the clock passed in.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use store::{Announcement, JournalEntry, NewEvent, Outcome, StepCommit, Wait};
use workflow::{
    Action, After, Before, CallFailure, Decision, FailureKind, Summary, WorkflowFinished,
};

use super::step::Held;

/// The commit of `decision`, reached through what `entry` journals (an answer, a callback,
/// a timer, a command), consuming the inbox rows `processed`. `keep_lease` when the next
/// action is a call the same worker makes at once. The decision's state and facts are moved
/// into the commit, not copied: after it, the caller reads only the decision's action.
pub(super) fn step_commit(
    held: &Held,
    worker_id: &str,
    decision: &mut Decision,
    mut entry: JournalEntry,
    processed: Vec<i64>,
    keep_lease: bool,
    now: DateTime<Utc>,
) -> StepCommit {
    let action = &decision.action;
    let waits_for = |events: &[workflow::Expected]| {
        let waits = events
            .iter()
            .map(|e| Wait::new(e.title.to_string(), e.key, e.value.clone()))
            .collect();
        let titles = events
            .iter()
            .map(|e| e.title.to_string())
            .collect::<Vec<_>>();
        (waits, (!titles.is_empty()).then(|| titles.join(" or ")))
    };
    let (status, waits, waiting_for, deadline) = match action {
        Action::Call { .. } => (store::Status::Running, Vec::new(), None, None),
        Action::Wait {
            events, deadline, ..
        } => {
            let (waits, waiting_for) = waits_for(events);
            (store::Status::Waiting, waits, waiting_for, Some(*deadline))
        }
        Action::SleepUntil { .. } => (store::Status::Sleeping, Vec::new(), None, None),
        // A stuck wait keeps listening: what it waited for resumes it by itself.
        Action::NeedsAttention { listening, .. } => {
            let (waits, waiting_for) = waits_for(listening);
            (store::Status::NeedsAttention, waits, waiting_for, None)
        }
        Action::Complete { .. } => (store::Status::Completed, Vec::new(), None, None),
        Action::Fail { .. } => (store::Status::Failed, Vec::new(), None, None),
        Action::Cancelled { .. } => (store::Status::Cancelled, Vec::new(), None, None),
    };
    let next = json!({ "next": action.kind(), "note": decision.note });
    entry.response_summary = Some(match entry.response_summary.take() {
        Some(Value::Object(mut map)) => {
            map.insert("decision".to_owned(), next);
            Value::Object(map)
        }
        Some(other) => json!({ "answer": other, "decision": next }),
        None => json!({ "decision": next }),
    });
    if entry.error.is_none() {
        entry.error = match action {
            Action::Fail { reason } | Action::NeedsAttention { reason, .. } => {
                Some(reason.to_string())
            }
            _ => None,
        };
    }
    let next_run_at = next_run_at(held, action, keep_lease, now);
    // Everything that reads the decision's state and facts, before they move.
    let announce = finished_announcement(held, decision);
    let observed = observed(held, decision);
    let events = lifecycle(held, decision);
    let summary = &mut decision.summary;
    StepCommit {
        workflow_id: held.id,
        worker_id: worker_id.to_owned(),
        expected_version: held.version,
        status,
        state: summary.state.clone(),
        context: std::mem::take(&mut decision.state),
        facts: std::mem::take(&mut summary.facts),
        attempt: i32::try_from(summary.attempt).unwrap_or(i32::MAX),
        next_run_at,
        waiting_for,
        waits,
        deadline,
        last_error: summary.last_error.clone(),
        journal: entry,
        processed_events: processed,
        pin_definition_version: i32::try_from(summary.definition.version).ok(),
        pin_definition_name: Some(summary.definition.name.clone()),
        release_lease: !keep_lease,
        // The executor sets it: it holds the lease's length.
        hold_for_events: None,
        announce,
        observed,
        events,
    }
}

/// When the workflow is due next. A call this worker makes at once keeps the time the row
/// already says it became due: the row's `next_run_at` then stays as it is from one inline
/// step to the next, so on PostgreSQL such a step's update touches no index (a HOT update,
/// migration 0017). The workflow is due either way; the lease keeps others off it.
fn next_run_at(
    held: &Held,
    action: &Action,
    keep_lease: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let next = action.next_run_at(now)?;
    match held.due_since {
        Some(since) if keep_lease && next <= now && since <= next => Some(since),
        _ => Some(next),
    }
}

/// What a reconciliation step observed, as the store records it. Workflow ids that are not
/// UUIDs name no workflow of this store and are dropped.
/// A reconciliation run that ends, however (done, failed, cancelled), lets go of its list of
/// loans seen.
fn observed(held: &Held, decision: &Decision) -> store::Observed {
    let o = &decision.observations;
    let ended = held.kind == store::RECONCILE_KIND && decision.action.is_terminal();
    let uuid = |id: &str| uuid::Uuid::parse_str(id).ok();
    store::Observed {
        findings: o
            .findings
            .iter()
            .map(|f| store::NewFinding {
                loan_unique_id: f.loan_unique_id.clone(),
                workflow_id: f.workflow_id.as_deref().and_then(uuid),
                kind: f.kind.as_str().to_owned(),
                ours: f.ours.clone(),
                theirs: f.theirs.clone(),
                money: f.money,
            })
            .collect(),
        seen: o.seen.clone(),
        nudge: o.nudge.iter().filter_map(|id| uuid(id)).collect(),
        complete: o.complete || ended,
    }
}

/// The commit that fails a workflow whose input does not validate, with every problem in
/// `last_error` (input submitted through SQL is only validated when a worker starts it).
pub(super) fn invalid_input(
    held: &Held,
    worker_id: &str,
    problems: &str,
    now: DateTime<Utc>,
) -> StepCommit {
    let mut entry = journal("new", "start", Outcome::Failed, now);
    entry.error = Some(format!("invalid input: {problems}"));
    let facts = Value::Object(serde_json::Map::new());
    let failed = Action::Fail {
        reason: workflow::Reason::new("invalid_input", "invalid input"),
    };
    let summary = Summary {
        state: "invalid_input".to_owned(),
        status: workflow::Status::Failed,
        definition: workflow::DefinitionRef {
            name: String::new(),
            version: 0,
            digest: String::new(),
        },
        attempt: 1,
        last_error: None,
        facts: facts.clone(),
    };
    let events = lifecycle(
        held,
        &Decision {
            state: held.state.clone(),
            pin: None,
            summary,
            action: failed,
            note: String::new(),
            handled: workflow::Handled::Advanced,
            observations: workflow::Observations::default(),
        },
    );
    StepCommit {
        workflow_id: held.id,
        worker_id: worker_id.to_owned(),
        expected_version: held.version,
        status: store::Status::Failed,
        state: "invalid_input".to_owned(),
        context: held.state.clone(),
        facts,
        attempt: 1,
        next_run_at: None,
        waiting_for: None,
        waits: Vec::new(),
        deadline: None,
        last_error: Some(format!("invalid input: {problems}")),
        journal: entry,
        processed_events: Vec::new(),
        pin_definition_version: None,
        pin_definition_name: None,
        release_lease: true,
        hold_for_events: None,
        announce: invalid_input_announcement(held, problems),
        observed: store::Observed::default(),
        events,
    }
}

/// The lifecycle events of a step of `held` that decided `summary`, `state` and `action`.
fn lifecycle(held: &Held, decision: &Decision) -> Vec<NewEvent> {
    let before = Before {
        facts: &held.facts,
        state: &held.state,
        needs_attention: held.needs_attention,
    };
    let after = After {
        summary: &decision.summary,
        state: &decision.state,
        action: &decision.action,
        observations: &decision.observations,
    };
    workflow::lifecycle_events(&held.kind, &before, &after)
        .into_iter()
        .map(|e| NewEvent {
            event_type: e.event_type.as_str().to_owned(),
            payload: e.payload,
        })
        .collect()
}

/// A journal entry of `step`/`action` with `outcome`, at `at`.
pub(super) fn journal(
    step: &str,
    action: &str,
    outcome: Outcome,
    at: DateTime<Utc>,
) -> JournalEntry {
    let mut entry = JournalEntry::new(step, action, outcome);
    entry.started_at = at;
    entry.finished_at = at;
    entry
}

/// The journal outcome of a failed call.
pub(super) fn outcome_of(failure: &CallFailure) -> Outcome {
    if failure.kind == FailureKind::RateLimited {
        Outcome::RateLimited
    } else if failure.ambiguous {
        Outcome::Ambiguous
    } else if failure.retryable {
        Outcome::Retry
    } else {
        Outcome::Failed
    }
}

/// The end of the workflow, for those waiting for it, when `decision` ends it.
fn finished_announcement(held: &Held, decision: &Decision) -> Option<Announcement> {
    WorkflowFinished::new(
        &held.id.to_string(),
        &held.kind,
        &held.business_key,
        &decision.summary,
        &decision.action,
    )
    .map(announcement)
}

/// The end of a workflow that failed for its input.
fn invalid_input_announcement(held: &Held, problems: &str) -> Option<Announcement> {
    Some(announcement(WorkflowFinished {
        workflow_id: held.id.to_string(),
        kind: held.kind.clone(),
        business_key: held.business_key.clone(),
        status: workflow::Status::Failed,
        state: "invalid_input".to_owned(),
        outcome: None,
        reason: Some(workflow::Reason::new(
            "invalid_input",
            format!("invalid input: {problems}"),
        )),
    }))
}

fn announcement(finished: WorkflowFinished) -> Announcement {
    Announcement {
        title: WorkflowFinished::TITLE.to_owned(),
        external_id: finished.announced_as(),
        payload: serde_json::to_value(&finished).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finfra_api::callback::{CallbackTitle, CorrelationKey};
    use serde_json::json;
    use uuid::Uuid;
    use workflow::{DefinitionRef, Expected, Handled, Reason, Status, Summary};

    fn held() -> Held {
        Held {
            id: Uuid::new_v4(),
            kind: "onboard-borrower".to_owned(),
            business_key: "budi".to_owned(),
            created_at: Utc::now(),
            version: 7,
            state: json!({}),
            input: json!({}),
            rebuilt: workflow::Rebuilt::default(),
            typed: workflow::Typed::default(),
            facts: json!({}),
            needs_attention: false,
            due_since: None,
            kept: Vec::new(),
            here: std::sync::Arc::<super::super::advancing::Advancing>::default()
                .enter(Uuid::nil()),
        }
    }

    fn decision(action: Action, status: Status) -> Decision {
        Decision {
            state: json!({"phase": {"state": "await_user_created"}}),
            pin: None,
            summary: Summary {
                state: "await_user_created".to_owned(),
                status,
                definition: DefinitionRef {
                    name: "personal-single-payment".to_owned(),
                    version: 3,
                    digest: "d".to_owned(),
                },
                attempt: 1,
                last_error: None,
                facts: json!({"user_id": null}),
            },
            action,
            note: "why".to_owned(),
            handled: Handled::Advanced,
            observations: workflow::Observations::default(),
        }
    }

    fn entry() -> JournalEntry {
        journal("await_user_created", "wake", Outcome::Woken, Utc::now())
    }

    #[test]
    fn a_call_made_inline_keeps_the_time_the_row_became_due() {
        let now = Utc::now();
        let since = now - chrono::TimeDelta::seconds(3);
        let call = Action::Call {
            step: "check_loan".to_owned(),
            purpose: workflow::CallPurpose::Perform,
            request: workflow::FinfraRequest::GetLoan {
                unique_id: "L-1".to_owned(),
            },
            operation_key: None,
            attempt: 1,
        };
        let mut due = held();
        due.due_since = Some(since);
        let commit = |held: &Held, action: Action, keep_lease: bool| {
            step_commit(
                held,
                "w1",
                &mut decision(action, Status::Running),
                entry(),
                Vec::new(),
                keep_lease,
                now,
            )
            .next_run_at
        };
        assert_eq!(
            commit(&due, call.clone(), true),
            Some(since),
            "unchanged: the update touches no index"
        );
        assert_eq!(
            commit(&due, call.clone(), false),
            Some(now),
            "handed back: due from now"
        );
        assert_eq!(
            commit(&held(), call.clone(), true),
            Some(now),
            "not due before"
        );
        let mut later = held();
        later.due_since = Some(now + chrono::TimeDelta::seconds(60));
        assert_eq!(commit(&later, call, true), Some(now), "due now, not later");
        let wake_at = now + chrono::TimeDelta::hours(1);
        let wait = Action::SleepUntil {
            step: "cool_off".to_owned(),
            at: wake_at,
            reason: workflow::SleepReason::Retry,
        };
        assert_eq!(commit(&due, wait, false), Some(wake_at));
    }

    #[test]
    fn a_stuck_wait_keeps_its_waits_and_says_why() {
        let listening = vec![Expected::new(
            CallbackTitle::UserCreated,
            CorrelationKey::IdentityNumber,
            "3275062009921981",
        )];
        let action = Action::NeedsAttention {
            step: "await_user_created".to_owned(),
            reason: Reason::new("user_created_timeout", "no user_created"),
            listening,
        };
        let commit = step_commit(
            &held(),
            "w1",
            &mut decision(action, Status::NeedsAttention),
            entry(),
            vec![4],
            false,
            Utc::now(),
        );
        assert_eq!(commit.status, store::Status::NeedsAttention);
        assert_eq!(commit.waits.len(), 1);
        assert_eq!(commit.waits[0].key, CorrelationKey::IdentityNumber);
        assert_eq!(commit.waiting_for.as_deref(), Some("user_created"));
        assert_eq!(
            commit.next_run_at, None,
            "only its callback or a person moves it"
        );
        assert!(commit.release_lease);
        assert_eq!(commit.expected_version, 7);
        assert_eq!(commit.processed_events, vec![4]);
        assert_eq!(commit.pin_definition_version, Some(3));
        let error = commit.journal.error.as_deref().unwrap_or_default();
        assert!(error.contains("user_created_timeout"), "{error}");
        assert_eq!(
            commit.journal.response_summary.unwrap()["decision"]["note"],
            "why"
        );
        assert!(commit.announce.is_none(), "not finished");
        let types: Vec<&str> = commit
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(
            types,
            ["workflow.needs_attention"],
            "announced when it begins"
        );
        let mut stuck = held();
        stuck.needs_attention = true;
        let action = Action::NeedsAttention {
            step: "await_user_created".to_owned(),
            reason: Reason::new("user_created_timeout", "no user_created"),
            listening: Vec::new(),
        };
        let again = step_commit(
            &stuck,
            "w1",
            &mut decision(action, Status::NeedsAttention),
            entry(),
            Vec::new(),
            false,
            Utc::now(),
        );
        assert!(again.events.is_empty(), "still stuck: no second event");
    }

    #[test]
    fn a_call_keeps_the_lease_and_an_end_is_announced() {
        let call = step_commit(
            &held(),
            "w1",
            &mut decision(
                Action::SleepUntil {
                    step: "hub_check".to_owned(),
                    at: Utc::now(),
                    reason: workflow::SleepReason::Retry,
                },
                Status::Retrying,
            ),
            entry(),
            Vec::new(),
            true,
            Utc::now(),
        );
        assert_eq!(call.status, store::Status::Sleeping);
        assert!(!call.release_lease);
        assert!(call.waits.is_empty());
        let failed = step_commit(
            &held(),
            "w1",
            &mut decision(
                Action::Fail {
                    reason: Reason::new("kyc_rejected", "rejected"),
                },
                Status::Failed,
            ),
            entry(),
            Vec::new(),
            false,
            Utc::now(),
        );
        assert_eq!(failed.status, store::Status::Failed);
        let announced = failed.announce.expect("the end is announced");
        assert_eq!(announced.external_id, "onboard-borrower/budi");
        assert_eq!(failed.events.len(), 1, "the end is in the feed");
        assert_eq!(failed.events[0].event_type, "borrower.failed");
        assert_eq!(failed.events[0].payload["reason"], "kyc_rejected");
        assert!(call.events.is_empty(), "a retry is no lifecycle event");
    }

    #[test]
    fn invalid_input_fails_without_pinning_a_definition() {
        let commit = invalid_input(&held(), "w1", "borrower: is required", Utc::now());
        assert_eq!(commit.status, store::Status::Failed);
        assert_eq!(commit.state, "invalid_input");
        assert_eq!(commit.journal.outcome, Outcome::Failed);
        assert_eq!(commit.pin_definition_version, None);
        assert!(commit.announce.is_some());
        assert_eq!(commit.events.len(), 1);
        assert_eq!(commit.events[0].event_type, "borrower.failed");
        assert_eq!(commit.events[0].payload["reason"], "invalid_input");
        assert!(
            !commit.events[0].payload.to_string().contains("borrower:"),
            "the problems (which may quote the input) stay out of the feed"
        );
    }

    #[test]
    fn failures_map_to_one_journal_outcome_each() {
        assert_eq!(
            outcome_of(&CallFailure::rate_limited(None)),
            Outcome::RateLimited
        );
        assert_eq!(
            outcome_of(&CallFailure::timeout(true, false)),
            Outcome::Ambiguous
        );
        assert_eq!(outcome_of(&CallFailure::server(503, true)), Outcome::Retry);
        assert_eq!(
            outcome_of(&CallFailure::rejected(400, "no")),
            Outcome::Failed
        );
    }
}
