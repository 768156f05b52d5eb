//! `onboard-borrower` as transition tables: each row is a state, an event and the expected
//! state name and action kind (plus, where it matters, the status, the request, or a check).
//! Every row of every table is also replayed by `determinism`.

#[path = "../common/mod.rs"]
mod common;

mod callbacks;
mod commands;
mod determinism;
mod failures;
mod happy;
mod repeats;
mod returning;
mod table;
mod waits;
