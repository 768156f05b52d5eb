//! The executor: it advances workflows one step at a time (`step`), making the Finfra calls
//! they decide on (`call`).

mod call;
mod record;
mod step;

pub use call::{MAX_UPLOAD_BYTES, perform};
pub use step::{
    Advanced, COMMAND_CANCEL, COMMAND_RESOLVE, Executor, ExecutorError, command_payload,
};
