//! From a decision to a record: the one place where what a workflow decided becomes the
//! [`StepCommit`] the store writes in one transaction (the stored status, the waits and
//! the wake-up its action implies, the journal row with the decision's note, the
//! announcement of its end). Pure: no I/O, the clock passed in.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use store::{Announcement, JournalEntry, KeyName, Outcome, StepCommit, Wait};
use workflow::{Action, CallFailure, CorrelationKey, Decision, FailureKind, WorkflowFinished};

use super::step::Held;

/// The commit of `decision`, reached through what `entry` journals (an answer, a callback,
/// a timer, a command), consuming the inbox rows `processed`. `keep_lease` when the next
/// action is a call the same worker makes at once.
pub(super) fn step_commit(
    held: &Held,
    worker_id: &str,
    decision: &Decision,
    mut entry: JournalEntry,
    processed: Vec<i64>,
    keep_lease: bool,
    now: DateTime<Utc>,
) -> StepCommit {
    let action = &decision.action;
    let waits_for = |events: &[workflow::Expected]| {
        let waits = events
            .iter()
            .map(|e| Wait::new(e.title.to_string(), key_name(e.key), e.value.clone()))
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
    let summary = &decision.summary;
    StepCommit {
        workflow_id: held.id,
        worker_id: worker_id.to_owned(),
        expected_version: held.version,
        status,
        state: summary.state.clone(),
        context: decision.state.clone(),
        facts: summary.facts.clone(),
        attempt: i32::try_from(summary.attempt).unwrap_or(i32::MAX),
        next_run_at: action.next_run_at(now),
        waiting_for,
        waits,
        deadline,
        last_error: summary.last_error.clone(),
        journal: entry,
        processed_events: processed,
        pin_definition_version: i32::try_from(summary.definition.version).ok(),
        pin_definition_name: Some(summary.definition.name.clone()),
        release_lease: !keep_lease,
        announce: finished_announcement(held, decision),
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
    StepCommit {
        workflow_id: held.id,
        worker_id: worker_id.to_owned(),
        expected_version: held.version,
        status: store::Status::Failed,
        state: "invalid_input".to_owned(),
        context: held.state.clone(),
        facts: Value::Object(serde_json::Map::new()),
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
        announce: invalid_input_announcement(held, problems),
    }
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

fn key_name(key: CorrelationKey) -> KeyName {
    match key {
        CorrelationKey::UserId => KeyName::UserId,
        CorrelationKey::IdentityNumber => KeyName::IdentityNumber,
        CorrelationKey::KycId => KeyName::KycId,
        CorrelationKey::LoanUniqueId => KeyName::LoanUniqueId,
        CorrelationKey::ExternalId => KeyName::ExternalId,
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
