//! Generic properties over every row of every table:
//!
//! - the same state and event always give the same transition (a replay after a crash
//!   decides the same), also after the state went through JSON (as the store keeps it);
//! - the action is a function of the state alone (the executor may recompute it);
//! - delivering the same event twice never makes a second non-idempotent request: the
//!   second delivery is ignored, or reconciles first (a Finfra answer replayed on the state
//!   it produced included: no second side effect);
//! - a resume is never ignored and never sends a non-idempotent request blindly.

use workflow::{Event, Handled, OriginateLoan, Workflow};

use crate::fixtures::sends_non_idempotent;
use crate::table::Row;
use crate::{callbacks, commands, disbursement, failures, happy, onboarding, repayment};

fn all_rows() -> Vec<Row> {
    [
        happy::rows(),
        failures::rows(),
        disbursement::rows(),
        callbacks::rows(),
        repayment::rows(),
        commands::rows(),
        onboarding::rows(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn every_transition_replays_identically() {
    let rows = all_rows();
    assert!(rows.len() > 120, "{} rows", rows.len());
    for row in &rows {
        let first = row.decide();
        let second = row.decide();
        assert_eq!(first, second, "{}: a replay decided differently", row.name);
        let stored = serde_json::to_value(&row.state).unwrap();
        let reloaded = serde_json::from_value(stored).unwrap();
        assert_eq!(
            OriginateLoan::decide(&reloaded, &row.event, row.now),
            first,
            "{}: the state read back from JSON decided differently",
            row.name
        );
        assert_eq!(
            OriginateLoan::action(&first.state),
            first.action,
            "{}: the action is not the state's",
            row.name
        );
        let json = serde_json::to_value(&first.state).unwrap();
        let back: workflow::originate::OriginateState = serde_json::from_value(json).unwrap();
        assert_eq!(
            back, first.state,
            "{}: the new state does not round-trip",
            row.name
        );
    }
}

#[test]
fn every_step_run_twice_sends_nothing_twice() {
    for row in all_rows() {
        let first = row.decide();
        let second = OriginateLoan::decide(&first.state, &row.event, row.now);
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

#[test]
fn callbacks_delivered_twice_are_ignored_the_second_time() {
    for row in all_rows() {
        if !matches!(row.event, Event::Callback(_)) {
            continue;
        }
        let first = row.decide();
        let second = OriginateLoan::decide(&first.state, &row.event, row.now);
        assert_eq!(
            second.handled,
            Handled::Ignored,
            "{}: {}",
            row.name,
            second.note
        );
    }
}

#[test]
fn a_resume_is_never_ignored_and_never_resends_blindly() {
    for row in all_rows() {
        let state = row.decide().state;
        for event in [Event::CallInterrupted, Event::Start] {
            let t = OriginateLoan::decide(&state, &event, row.now);
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
