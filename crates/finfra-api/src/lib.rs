//! Typed async client for Finfra's partner API.
//!
//! `model` mirrors Finfra's JSON exactly (quirks included) and `validate` checks request
//! bodies before they leave the process. `client` sends them: it owns authentication
//! (`auth`), and every failure comes back as one [`Error`] whose classification
//! (`retry`) drives the engine's decisions. `callback` types the four callback paths
//! Finfra calls on the partner, and verifies their `finfra-auth-key` header.

pub mod auth;
pub mod callback;
pub mod client;
pub mod error;
mod lenient;
pub mod model;
pub mod retry;
pub mod validate;

pub use client::{ClientConfig, FinfraClient};
pub use error::Error;
