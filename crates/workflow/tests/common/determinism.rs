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

use workflow::{Action, CallPurpose, Event, Handled, Workflow};

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
