//! Properties every machine keeps, checked over every row of its transition tables:
//!
//! - the same state and event always give the same transition (a replay after a crash
//!   decides the same), also after the state went through JSON (as the store keeps it);
//! - the action is a function of the state alone (the executor may recompute it);
//! - delivering the same event twice (a callback by an at-least-once inbox, a timer twice,
//!   an operator's double click, a Finfra answer replayed on the state it produced) never
//!   makes a second non-idempotent request: the second delivery is ignored, or reconciles
//!   first; a callback's second delivery is ignored;
//! - a resume is never ignored and never sends a non-idempotent request blindly: what a new
//!   worker sends when it picks up a workflow whose last call it cannot vouch for.

use workflow::{Action, CallFailure, CallPurpose, Event, Handled, Workflow};

use super::table::Row;

/// A call that changes something at Finfra and would need reconciling if repeated.
pub fn sends_non_idempotent(action: &Action) -> bool {
    matches!(
        action,
        Action::Call { purpose: CallPurpose::Perform, request, .. } if request.effect().needs_reconcile()
    )
}

pub fn every_transition_replays_identically<W: Workflow>(rows: &[Row<W>]) {
    for row in rows {
        let first = row.decide();
        let second = row.decide();
        assert_eq!(first, second, "{}: a replay decided differently", row.name);
        let stored = serde_json::to_value(&row.state).unwrap();
        let reloaded: W::State = serde_json::from_value(stored).unwrap();
        assert_eq!(
            W::decide(&reloaded, &row.event, row.now),
            first,
            "{}: the state read back from JSON decided differently",
            row.name
        );
        assert_eq!(
            W::action(&first.state),
            first.action,
            "{}: the action is not the state's",
            row.name
        );
        let json = serde_json::to_value(&first.state).unwrap();
        let back: W::State = serde_json::from_value(json).unwrap();
        assert_eq!(
            back, first.state,
            "{}: the new state does not round-trip",
            row.name
        );
    }
}

pub fn every_step_run_twice_sends_nothing_twice<W: Workflow>(rows: &[Row<W>]) {
    for row in rows {
        let first = row.decide();
        let second = W::decide(&first.state, &row.event, row.now);
        assert!(
            second.handled == Handled::Ignored || !sends_non_idempotent(&second.action),
            "{}: the second delivery of {} asks to send {:?} ({})",
            row.name,
            row.event.name(),
            second.action.request().map(|r| r.name()),
            second.note
        );
    }
}

pub fn callbacks_delivered_twice_are_ignored_the_second_time<W: Workflow>(rows: &[Row<W>]) {
    for row in rows {
        if !matches!(row.event, Event::Callback(_)) {
            continue;
        }
        let first = row.decide();
        let second = W::decide(&first.state, &row.event, row.now);
        assert_eq!(
            second.handled,
            Handled::Ignored,
            "{}: {}",
            row.name,
            second.note
        );
    }
}

pub fn a_resume_is_never_ignored_and_never_resends_blindly<W: Workflow>(rows: &[Row<W>]) {
    for row in rows {
        let state = row.decide().state;
        for event in [Event::CallInterrupted, Event::Start] {
            let t = W::decide(&state, &event, row.now);
            assert_ne!(
                t.handled,
                Handled::Ignored,
                "{}: {} ignored",
                row.name,
                event.name()
            );
            assert!(
                !sends_non_idempotent(&t.action),
                "{}: {} resent {:?} blindly",
                row.name,
                event.name(),
                t.action.request().map(|r| r.name())
            );
        }
    }
}

/// Failing the call a row leads to, in each way a call can fail and again on every retry,
/// leaves the workflow recoverable: still on its way (a call, a backoff, a wait), or stopped
/// for a person who can `resolve` it with `{"retry": true}`, or failed only because Finfra
/// refused the request as it stands (a `4xx`: the input is at fault).
pub fn failing_each_call_in_turn_leaves_the_workflow_recoverable<W: Workflow>(rows: &[Row<W>]) {
    let failures = [
        CallFailure::server(500, false),
        CallFailure::timeout(true, false),
        CallFailure::connection(false, false),
        CallFailure::rate_limited(Some(std::time::Duration::from_secs(2))),
        CallFailure::rejected(400, "refused"),
        CallFailure::rejected(404, "not found"),
        CallFailure::conflict("conflict"),
    ];
    for row in rows {
        let start = row.decide().state;
        if !matches!(W::action(&start), Action::Call { .. }) {
            continue;
        }
        for failure in &failures {
            let mut state = start.clone();
            let mut now = row.now;
            let mut last = None;
            for _ in 0..12 {
                let t = W::decide(&state, &Event::CallFailed(failure.clone()), now);
                state = t.state.clone();
                let action = t.action.clone();
                last = Some(t);
                match action {
                    Action::Call { .. } => {}
                    Action::SleepUntil { at, .. } => {
                        now = now.max(at);
                        let woken = W::decide(&state, &Event::Wake, now);
                        state = woken.state.clone();
                        last = Some(woken);
                        if !matches!(W::action(&state), Action::Call { .. }) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let Some(t) = last else { continue };
            match &t.action {
                Action::Fail { reason } => assert!(
                    failure.status.is_some_and(|s| (400..500).contains(&s)),
                    "{}: failing with {} ended failed ({reason}): only a refusal may",
                    row.name,
                    failure.describe()
                ),
                Action::NeedsAttention { .. } => {
                    let retry = Event::Resolve {
                        by: "ops".to_owned(),
                        reason: "try again".to_owned(),
                        data: serde_json::json!({"retry": true}),
                    };
                    let resolved = W::decide(&state, &retry, now);
                    assert_ne!(
                        resolved.handled,
                        Handled::Ignored,
                        "{}: stuck after {} and resolve refused: {}",
                        row.name,
                        failure.describe(),
                        resolved.note
                    );
                }
                Action::Call { .. }
                | Action::SleepUntil { .. }
                | Action::Wait { .. }
                | Action::Complete { .. }
                | Action::Cancelled { .. } => {}
            }
        }
    }
}
