//! Helpers of `tests/e2e_onboarding.rs` and `tests/e2e_journeys.rs`: the real processes, the
//! borrowers and journeys, the SQL an operator would run, and the shape of a run (kill a
//! worker mid-call or take the database away, wait for the work to settle). `workflows/` holds the definitions the
//! workers load.

// Each test binary uses a part of the helpers.
#![allow(dead_code)]

pub mod applicants;
pub mod db;
pub mod journeys;
pub mod processes;
pub mod run;
