//! `originate-loan` as transition tables: each row is a state, an event and the expected
//! state name and action kind (plus, where it matters, the status, the request, or a check).
//! Every row of every table is also replayed by `determinism`; the disbursement has its own
//! exhaustive test in `disbursement`.

#[path = "../common/mod.rs"]
mod common;

mod callbacks;
mod commands;
mod determinism;
mod disbursement;
mod failures;
mod fixtures;
mod happy;
mod input;
mod onboarding;
mod repayment;
mod repeats;
mod table;
