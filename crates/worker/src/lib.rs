//! finflow's engine runtime: configuration, the callback receiver, metrics, the operations
//! endpoints and logging, used by the `finflow` binary (`src/main.rs`) and by other Rust
//! programs that embed the engine.

pub mod config;
pub mod executor;
pub mod inprocess;
pub mod metrics;
pub mod ops;
pub mod receiver;
pub mod reconcile;
pub mod runtime;
pub mod sample;
mod slots;
pub mod telemetry;
pub mod webhooks;
