//! The engine runtime: the executor that advances workflows, and the Finfra calls it makes.

mod call;
mod executor;

pub use call::{MAX_UPLOAD_BYTES, perform};
pub use executor::{
    Advanced, COMMAND_CANCEL, COMMAND_RESOLVE, Executor, ExecutorError, command_payload,
};
