//! Helpers of `tests/e2e_onboarding.rs`: the real processes, the borrowers to onboard, and
//! the SQL an operator would run. `workflows/` holds the definitions the workers load.

pub mod applicants;
pub mod db;
pub mod processes;
