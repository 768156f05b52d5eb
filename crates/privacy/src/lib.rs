//! Cryptography for the personal data finflow keeps (NIKs, names, birth dates, phone
//! numbers, KTP images): encrypted at rest, erasable, and matchable without being stored.
//!
//! - Each workflow gets its own random [`DataKey`]; its personal data is sealed under it
//!   with XChaCha20-Poly1305 ([`DataKey::seal_json`] keeps a JSON column JSON), bound by
//!   associated data to the row and column it belongs in.
//! - The data key is stored only as a [`WrappedKey`], sealed under a key-encryption key
//!   from `[privacy]` of finflow.toml ([`PrivacyConfig`], checked into a [`KeyRing`]).
//!   Rotation rewraps the small wrapped keys, never the data ([`KeyRing::rewrap`]).
//! - Crypto-shredding is replacing a workflow's wrapped key with [`ERASED`]: the sealed data
//!   stays where it is and can no longer be read by anyone.
//! - [`KeyRing::keyed_hash`] gives a stable, keyed stand-in for a value (e.g. a NIK) to
//!   match on without keeping the value.
//!
//! This crate does no I/O and knows nothing of databases; the store and the worker decide
//! what to seal and where the wrapped keys live. No key value ever appears in a `Debug`
//! output or an error message.

mod config;
mod data_key;
mod error;
mod keyring;
mod wrapped;

pub use config::PrivacyConfig;
pub use data_key::{DataKey, is_sealed};
pub use error::PrivacyError;
pub use keyring::KeyRing;
pub use wrapped::{ERASED, WrappedKey};
