//! `[privacy]` of finflow.toml, as deserialized.
//!
//! This is only the wire shape: [`crate::KeyRing::from_config`] checks it and decodes the
//! keys. Key values are [`SecretString`] so that printing the configuration (a `Debug` in a
//! log line, a panic message) shows `[REDACTED]` and not a key.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

/// `[privacy]` of finflow.toml.
///
/// ```toml
/// [privacy]
/// keys = { "2026-01" = "<base64 of 32 bytes>", "2026-12" = "<base64 of 32 bytes>" }
/// active = "2026-12"
/// hash_key = "<base64 of 32 bytes>"
/// retain = "5y"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Key-encryption keys by label, each standard base64 of 32 bytes. Old labels stay here
    /// until every data key wrapped under them has been rewrapped.
    #[serde(default)]
    pub keys: BTreeMap<String, SecretString>,
    /// The label new data keys are wrapped under, and rewrapped to.
    #[serde(default)]
    pub active: Option<String>,
    /// Standard base64 of 32 bytes for [`crate::KeyRing::keyed_hash`]. Not rotated with the
    /// key-encryption keys: changing it changes every hash already stored.
    #[serde(default)]
    pub hash_key: Option<SecretString>,
    /// How long personal data is kept before crypto-shredding, e.g. `"5y"`. Kept as text:
    /// the configuration crate parses durations with its own grammar.
    #[serde(default)]
    pub retain: Option<String>,
}
