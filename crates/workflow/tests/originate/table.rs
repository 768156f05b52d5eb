//! The table runner (`common/table.rs`) for `originate-loan`.

use workflow::originate::OriginateState;
use workflow::{ActionKind, Event, OriginateLoan, Transition};

pub use crate::common::table::run;

pub type T = Transition<OriginateState>;
pub type Row = crate::common::table::Row<OriginateLoan>;

pub fn row(
    name: &str,
    state: OriginateState,
    event: Event,
    to: &'static str,
    action: ActionKind,
) -> Row {
    crate::common::table::row(name, state, event, to, action)
}
