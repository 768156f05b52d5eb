//! The executor: it advances workflows one step at a time (`step`), making the Finfra calls
//! they decide on (`call`) when the rate governor lets them leave (`governor`).

mod advancing;
mod call;
mod governor;
mod record;
mod step;

pub use call::{MAX_UPLOAD_BYTES, perform};
pub use governor::{Governor, RateLimit};
pub use step::{
    Advanced, COMMAND_CANCEL, COMMAND_RESOLVE, Executor, ExecutorError, command_payload,
};
