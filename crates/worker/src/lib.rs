//! finflow's engine runtime: configuration and the callback receiver, used by the `finflow`
//! binary (`src/main.rs`) and by other Rust programs that embed the engine.

pub mod config;
pub mod engine;
pub mod receiver;
pub mod runtime;
