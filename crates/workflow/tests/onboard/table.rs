//! The table runner (`common/table.rs`) for `onboard-borrower`.

use workflow::onboard::OnboardState;
use workflow::{ActionKind, Event, OnboardBorrower, Transition};

pub use crate::common::table::run;

pub type T = Transition<OnboardState>;
pub type Row = crate::common::table::Row<OnboardBorrower>;

pub fn row(
    name: &str,
    state: OnboardState,
    event: Event,
    to: &'static str,
    action: ActionKind,
) -> Row {
    crate::common::table::row(name, state, event, to, action)
}
