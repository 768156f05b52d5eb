//! The generic properties (`common/determinism.rs`) over every row of every table.

use crate::common::determinism as property;
use crate::table::Row;
use crate::{callbacks, commands, failures, happy, repeats, returning, waits};

fn all_rows() -> Vec<Row> {
    [
        happy::rows(),
        failures::rows(),
        waits::rows(),
        callbacks::rows(),
        commands::rows(),
        repeats::rows(),
        returning::rows(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn every_transition_replays_identically() {
    let rows = all_rows();
    assert!(rows.len() > 100, "{} rows", rows.len());
    property::every_transition_replays_identically(&rows);
}

#[test]
fn every_step_run_twice_sends_nothing_twice() {
    property::every_step_run_twice_sends_nothing_twice(&all_rows());
}

#[test]
fn callbacks_delivered_twice_are_ignored_the_second_time() {
    property::callbacks_delivered_twice_are_ignored_the_second_time(&all_rows());
}

#[test]
fn a_resume_is_never_ignored_and_never_resends_blindly() {
    property::a_resume_is_never_ignored_and_never_resends_blindly(&all_rows());
}

#[test]
fn failing_each_call_in_turn_leaves_the_workflow_recoverable() {
    property::failing_each_call_in_turn_leaves_the_workflow_recoverable(&all_rows());
}
