//! The configured keys: key-encryption keys (KEKs) by label, the active one, the hash key.
//!
//! Data keys are never stored in the clear; they are wrapped (sealed) under a KEK, with the
//! KEK's label as associated data so a wrapped key relabelled by hand does not open. Rotating
//! is configuration plus a sweep: add a new labelled key, make it `active` (new data keys
//! are wrapped under it), call [`KeyRing::rewrap`] on every stored wrapped key, then remove
//! the old key. Only the 72-byte wrapped keys are rewritten; sealed personal data is not.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::data_key::{KEY_LEN, KeyBytes, open_with, random_key, seal_with};
use crate::wrapped::is_valid_label;
use crate::{DataKey, PrivacyConfig, PrivacyError, WrappedKey};

/// Names the construction of [`KeyRing::keyed_hash`], so stored hashes can be told apart
/// from a later one.
const HASH_PREFIX: &str = "h1:";
/// Label of the keys [`KeyRing::throwaway`] makes.
const THROWAWAY_LABEL: &str = "throwaway";

/// The associated data that binds a wrapped data key to the label of its KEK. The prefix
/// keeps it apart from any AAD a caller gives [`DataKey::seal`].
fn wrap_aad(label: &str) -> Vec<u8> {
    let mut aad = b"finflow.privacy.wrap.v1\0".to_vec();
    aad.extend_from_slice(label.as_bytes());
    aad
}

/// Decodes one configured key without ever putting its value into an error message.
fn decode_key(what: &str, value: &SecretString) -> Result<KeyBytes, PrivacyError> {
    // Whitespace around the value is a copy-paste or environment-variable accident, not
    // part of a base64 key.
    let bytes = Zeroizing::new(
        STANDARD
            .decode(value.expose_secret().trim())
            .map_err(|_| PrivacyError::Config(format!("{what} is not standard base64")))?,
    );
    let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        PrivacyError::Config(format!(
            "{what} is {} bytes after base64 decoding, expected {KEY_LEN}",
            bytes.len()
        ))
    })?;
    Ok(Zeroizing::new(key))
}

/// The keys of `[privacy]`, decoded and checked. Cheap to clone; all key bytes are wiped
/// from memory when dropped; `Debug` shows labels only.
#[derive(Clone)]
pub struct KeyRing {
    keks: BTreeMap<String, KeyBytes>,
    active: String,
    hash_key: KeyBytes,
}

impl KeyRing {
    /// Checks and decodes `[privacy]`.
    ///
    /// # Errors
    ///
    /// [`PrivacyError::Config`] naming the field or label that is wrong, never a key's
    /// value: `keys` empty; a label that is not 1..=32 characters of `[A-Za-z0-9._-]`; a key
    /// that is not standard base64 of 32 bytes; `active` missing or not a label in `keys`;
    /// `hash_key` missing, malformed, or equal to a KEK (one key, one purpose).
    pub fn from_config(config: &PrivacyConfig) -> Result<Self, PrivacyError> {
        if config.keys.is_empty() {
            return Err(PrivacyError::Config(
                "`keys` is empty: add a key-encryption key, e.g. keys = { \"2026-12\" = \"<base64 of 32 bytes>\" }".to_owned(),
            ));
        }
        let mut keks = BTreeMap::new();
        for (label, value) in &config.keys {
            if !is_valid_label(label) {
                return Err(PrivacyError::Config(format!(
                    "key label {label:?} in `keys` is not 1..=32 characters of [A-Za-z0-9._-]"
                )));
            }
            keks.insert(
                label.clone(),
                decode_key(&format!("key `{label}` in `keys`"), value)?,
            );
        }
        let labels = || {
            config
                .keys
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(active) = &config.active else {
            return Err(PrivacyError::Config(format!(
                "`active` is missing: set it to the label new data keys are wrapped under (one of: {})",
                labels()
            )));
        };
        if !keks.contains_key(active) {
            return Err(PrivacyError::Config(format!(
                "`active` = {active:?} is not a label in `keys` (labels: {})",
                labels()
            )));
        }
        let Some(hash_key) = &config.hash_key else {
            return Err(PrivacyError::Config(
                "`hash_key` is missing: set it to the base64 of 32 random bytes, kept apart from `keys`".to_owned(),
            ));
        };
        let hash_key = decode_key("`hash_key`", hash_key)?;
        if let Some((label, _)) = keks.iter().find(|(_, kek)| **kek == hash_key) {
            return Err(PrivacyError::Config(format!(
                "`hash_key` is the same key as `{label}` in `keys`: use a separate key for hashing"
            )));
        }
        Ok(Self {
            keks,
            active: active.clone(),
            hash_key,
        })
    }

    /// A fresh random key in the form `[privacy]` takes (base64 of 32 bytes), for a new
    /// key-encryption key or `hash_key` (`finflow privacy new-key`).
    #[must_use]
    pub fn new_key_base64() -> SecretString {
        SecretString::from(STANDARD.encode(&random_key()[..]))
    }

    /// A ring of fresh random keys under the label `"throwaway"`, for `finflow demo` and
    /// tests: nothing sealed under it can be read once it is dropped.
    #[must_use]
    pub fn throwaway() -> Self {
        Self {
            keks: BTreeMap::from([(THROWAWAY_LABEL.to_owned(), random_key())]),
            active: THROWAWAY_LABEL.to_owned(),
            hash_key: random_key(),
        }
    }

    /// The label new data keys are wrapped under.
    #[must_use]
    pub fn active(&self) -> &str {
        &self.active
    }

    /// Every configured KEK label, in order.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.keks.keys().map(String::as_str)
    }

    /// A fresh random data key, and the same key wrapped under the active KEK for storing.
    #[must_use]
    pub fn new_data_key(&self) -> (DataKey, WrappedKey) {
        let data_key = DataKey::generate();
        let wrapped = self.wrap_active(&data_key);
        (data_key, wrapped)
    }

    fn wrap_active(&self, data_key: &DataKey) -> WrappedKey {
        let kek = &self.keks[&self.active];
        WrappedKey::new(
            &self.active,
            seal_with(kek, data_key.bytes(), &wrap_aad(&self.active)),
        )
    }

    /// The data key inside `wrapped`.
    ///
    /// # Errors
    ///
    /// [`PrivacyError::UnknownKey`] when its KEK label is not configured;
    /// [`PrivacyError::WrongKey`] when the KEK under that label does not open it (other key
    /// bytes under the same label, or the wrapped key was altered or relabelled).
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, PrivacyError> {
        let label = wrapped.label();
        let Some(kek) = self.keks.get(label) else {
            return Err(PrivacyError::UnknownKey {
                label: label.to_owned(),
            });
        };
        let wrong_key = || PrivacyError::WrongKey {
            label: label.to_owned(),
        };
        let plaintext = Zeroizing::new(
            open_with(kek, wrapped.sealed(), &wrap_aad(label))?.ok_or_else(wrong_key)?,
        );
        // `WrappedKey` only holds 72 bytes, so an authentic plaintext is 32 bytes; anything
        // else was not wrapped by this crate.
        let key: [u8; KEY_LEN] = plaintext.as_slice().try_into().map_err(|_| wrong_key())?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }

    /// For the rotation sweep: `None` when `wrapped` is already under the active KEK, else
    /// the same data key wrapped under the active KEK (values sealed under it still open).
    ///
    /// # Errors
    ///
    /// As [`KeyRing::unwrap`].
    pub fn rewrap(&self, wrapped: &WrappedKey) -> Result<Option<WrappedKey>, PrivacyError> {
        if wrapped.label() == self.active {
            return Ok(None);
        }
        let data_key = self.unwrap(wrapped)?;
        Ok(Some(self.wrap_active(&data_key)))
    }

    /// `"h1:"` and the lowercase hex of HMAC-SHA256(hash key, `domain` || 0x00 || `value`).
    ///
    /// Lets rows be matched on a value (e.g. an incoming callback's NIK) without storing the
    /// value: equal values give equal hashes in every process and across KEK rotations,
    /// while without the hash key a hash cannot be checked against a guessed value (a NIK
    /// has too little entropy for a plain hash). `domain` (e.g. `"nik"`) keeps hashes of one
    /// kind of value from matching another; it is a constant of the caller and must not
    /// contain a NUL.
    #[must_use]
    pub fn keyed_hash(&self, domain: &str, value: &str) -> String {
        debug_assert!(!domain.contains('\0'), "a hash domain contains NUL");
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.hash_key[..])
            .expect("HMAC takes a key of any length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(HASH_PREFIX.len() + 2 * digest.len());
        out.push_str(HASH_PREFIX);
        for byte in digest {
            out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
        }
        out
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("labels", &self.keks.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .field("hash_key", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ROW: &[u8] = b"workflow=7f3a;column=borrower";

    fn key_b64(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    fn config(
        keys: &[(&str, &str)],
        active: Option<&str>,
        hash_key: Option<&str>,
    ) -> PrivacyConfig {
        PrivacyConfig {
            keys: keys
                .iter()
                .map(|(label, key)| ((*label).to_owned(), SecretString::from(*key)))
                .collect(),
            active: active.map(str::to_owned),
            hash_key: hash_key.map(SecretString::from),
            retain: None,
        }
    }

    fn ring(keys: &[(&str, u8)], active: &str) -> KeyRing {
        let keys: Vec<(&str, String)> = keys.iter().map(|(l, b)| (*l, key_b64(*b))).collect();
        let keys: Vec<(&str, &str)> = keys.iter().map(|(l, k)| (*l, k.as_str())).collect();
        KeyRing::from_config(&config(&keys, Some(active), Some(&key_b64(0xee)))).unwrap()
    }

    #[test]
    fn a_wrapped_data_key_unwraps_to_the_same_key() {
        let ring = ring(&[("2026-01", 1)], "2026-01");
        let (data_key, wrapped) = ring.new_data_key();
        assert_eq!(wrapped.label(), "2026-01");
        let sealed = data_key.seal_json(&json!({"nik": "3171234567890123"}), ROW);
        let unwrapped = ring.unwrap(&wrapped).unwrap();
        assert_eq!(unwrapped.bytes(), data_key.bytes());
        // And through the stored text form.
        let reread: WrappedKey = wrapped.to_string().parse().unwrap();
        let unwrapped = ring.unwrap(&reread).unwrap();
        assert_eq!(
            unwrapped.open_json(&sealed, ROW).unwrap(),
            json!({"nik": "3171234567890123"})
        );
        // Every data key is new.
        assert_ne!(ring.new_data_key().0.bytes(), data_key.bytes());
    }

    #[test]
    fn a_ring_without_the_label_names_it() {
        let (_, wrapped) = ring(&[("2026-01", 1)], "2026-01").new_data_key();
        let err = ring(&[("2026-12", 1)], "2026-12")
            .unwrap(&wrapped)
            .unwrap_err();
        assert!(
            matches!(&err, PrivacyError::UnknownKey { label } if label == "2026-01"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`2026-01`"), "{err}");
    }

    #[test]
    fn other_bytes_under_the_same_label_are_the_wrong_key() {
        let (_, wrapped) = ring(&[("2026-01", 1)], "2026-01").new_data_key();
        let err = ring(&[("2026-01", 2)], "2026-01")
            .unwrap(&wrapped)
            .unwrap_err();
        assert!(
            matches!(&err, PrivacyError::WrongKey { label } if label == "2026-01"),
            "{err:?}"
        );
    }

    #[test]
    fn a_relabelled_wrapped_key_does_not_open() {
        // Same bytes under two labels: only the label bound as AAD tells them apart.
        let ring = ring(&[("2026-01", 1), ("2026-12", 1)], "2026-01");
        let (_, wrapped) = ring.new_data_key();
        let relabelled: WrappedKey = wrapped
            .to_string()
            .replacen("2026-01:", "2026-12:", 1)
            .parse()
            .unwrap();
        assert!(matches!(
            ring.unwrap(&relabelled),
            Err(PrivacyError::WrongKey { label }) if label == "2026-12"
        ));
    }

    #[test]
    fn rotation_rewraps_the_same_data_key_under_the_active_kek() {
        let old = ring(&[("2026-01", 1)], "2026-01");
        let new = ring(&[("2026-01", 1), ("2026-12", 2)], "2026-12");
        let (data_key, wrapped) = old.new_data_key();
        let sealed = data_key.seal(b"Siti Rahayu", ROW);

        let rewrapped = new
            .rewrap(&wrapped)
            .unwrap()
            .expect("an old key is rewrapped");
        assert_eq!(rewrapped.label(), "2026-12");
        assert_ne!(rewrapped, wrapped);
        let unwrapped = new.unwrap(&rewrapped).unwrap();
        assert_eq!(unwrapped.bytes(), data_key.bytes());
        assert_eq!(unwrapped.open(&sealed, ROW).unwrap(), b"Siti Rahayu");

        // Once the old key is removed, only the rewrapped key still opens.
        let after = ring(&[("2026-12", 2)], "2026-12");
        assert!(after.unwrap(&rewrapped).is_ok());
        assert!(matches!(
            after.unwrap(&wrapped),
            Err(PrivacyError::UnknownKey { .. })
        ));

        assert!(new.rewrap(&rewrapped).unwrap().is_none());
        let (_, fresh) = new.new_data_key();
        assert_eq!(fresh.label(), "2026-12");
        assert!(new.rewrap(&fresh).unwrap().is_none());
    }

    #[test]
    fn rewrap_reports_a_key_it_cannot_open() {
        let (_, wrapped) = ring(&[("2026-01", 1)], "2026-01").new_data_key();
        let new = ring(&[("2026-01", 3), ("2026-12", 2)], "2026-12");
        assert!(matches!(
            new.rewrap(&wrapped),
            Err(PrivacyError::WrongKey { .. })
        ));
    }

    #[test]
    fn keyed_hash_known_answer() {
        // Computed independently: Python's
        // hmac.new(bytes(range(32)), b"nik\x00" + b"3171234567890123", hashlib.sha256).
        let ring = KeyRing {
            keks: BTreeMap::from([("k".to_owned(), Zeroizing::new([1; KEY_LEN]))]),
            active: "k".to_owned(),
            hash_key: Zeroizing::new(std::array::from_fn(|i| i as u8)),
        };
        assert_eq!(
            ring.keyed_hash("nik", "3171234567890123"),
            "h1:a1397bc5473ffafb841153f738722049021992043bca86fa958ad8764b2c4a5e"
        );
    }

    #[test]
    fn keyed_hash_is_stable_and_separated() {
        let ring_a = ring(&[("2026-01", 1)], "2026-01");
        let nik = "3171234567890123";
        let hash = ring_a.keyed_hash("nik", nik);
        assert_eq!(hash, ring_a.keyed_hash("nik", nik));
        assert!(hash.starts_with("h1:") && hash.len() == 3 + 64, "{hash}");
        assert!(
            hash[3..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert!(!hash.contains(nik));
        // Not rotated with the KEKs.
        let rotated = ring(&[("2026-01", 1), ("2026-12", 2)], "2026-12");
        assert_eq!(rotated.keyed_hash("nik", nik), hash);
        // Separated by domain, by value, by hash key; the NUL keeps domain and value apart.
        assert_ne!(ring_a.keyed_hash("phone", nik), hash);
        assert_ne!(ring_a.keyed_hash("nik", "3171234567890124"), hash);
        assert_ne!(ring_a.keyed_hash("ni", &format!("k{nik}")), hash);
        assert_ne!(KeyRing::throwaway().keyed_hash("nik", nik), hash);
    }

    #[test]
    fn new_keys_are_accepted_by_the_config_and_differ() {
        let (a, b) = (KeyRing::new_key_base64(), KeyRing::new_key_base64());
        assert_ne!(a.expose_secret(), b.expose_secret());
        let config: PrivacyConfig = serde_json::from_value(json!({
            "keys": {"k1": a.expose_secret()},
            "active": "k1",
            "hash_key": b.expose_secret(),
        }))
        .unwrap();
        KeyRing::from_config(&config).unwrap();
    }

    #[test]
    fn throwaway_rings_work_and_share_nothing() {
        let ring = KeyRing::throwaway();
        assert_eq!(ring.active(), "throwaway");
        assert_eq!(ring.labels().collect::<Vec<_>>(), ["throwaway"]);
        let (data_key, wrapped) = ring.new_data_key();
        assert_eq!(ring.unwrap(&wrapped).unwrap().bytes(), data_key.bytes());
        assert!(matches!(
            KeyRing::throwaway().unwrap(&wrapped),
            Err(PrivacyError::WrongKey { .. })
        ));
    }

    #[test]
    fn a_valid_config_reads_from_finflow_toml_shape() {
        let config: PrivacyConfig = serde_json::from_value(json!({
            "keys": {"2026-01": key_b64(1), "2026-12": format!(" {}\n", key_b64(2))},
            "active": "2026-12",
            "hash_key": key_b64(3),
            "retain": "5y",
        }))
        .unwrap();
        assert_eq!(config.retain.as_deref(), Some("5y"));
        let ring = KeyRing::from_config(&config).unwrap();
        assert_eq!(ring.active(), "2026-12");
        assert_eq!(ring.labels().collect::<Vec<_>>(), ["2026-01", "2026-12"]);

        let unknown = serde_json::from_value::<PrivacyConfig>(json!({"key": {}}));
        assert!(unknown.is_err());
        assert!(KeyRing::from_config(&PrivacyConfig::default()).is_err());
    }

    #[test]
    fn config_errors_name_the_problem_and_never_the_secret() {
        let good = key_b64(1);
        let hash = key_b64(9);
        // Secrets that are wrong in a way that still must not be printed.
        let not_base64 = "c2VjcmV0LXNlY3JldC1zZWNyZXQ!!";
        let short = STANDARD.encode([7u8; 31]);
        let long = STANDARD.encode([7u8; 33]);
        let cases: Vec<(PrivacyConfig, &str, &str)> = vec![
            (config(&[], Some("a"), Some(&hash)), "`keys` is empty", ""),
            (
                config(&[("2026:12", &good)], Some("2026:12"), Some(&hash)),
                "\"2026:12\"",
                &good,
            ),
            (
                config(&[("", &good)], Some(""), Some(&hash)),
                "key label \"\"",
                &good,
            ),
            (
                config(&[("2026-12", not_base64)], Some("2026-12"), Some(&hash)),
                "key `2026-12` in `keys` is not standard base64",
                not_base64,
            ),
            (
                config(&[("2026-12", &short)], Some("2026-12"), Some(&hash)),
                "key `2026-12` in `keys` is 31 bytes",
                &short,
            ),
            (
                config(&[("2026-12", &long)], Some("2026-12"), Some(&hash)),
                "key `2026-12` in `keys` is 33 bytes",
                &long,
            ),
            (
                config(&[("2026-12", &good)], None, Some(&hash)),
                "`active` is missing",
                &good,
            ),
            (
                config(&[("2026-12", &good)], Some("2027-01"), Some(&hash)),
                "`active` = \"2027-01\" is not a label in `keys` (labels: 2026-12)",
                &good,
            ),
            (
                config(&[("2026-12", &good)], Some("2026-12"), None),
                "`hash_key` is missing",
                &good,
            ),
            (
                config(&[("2026-12", &good)], Some("2026-12"), Some(not_base64)),
                "`hash_key` is not standard base64",
                not_base64,
            ),
            (
                config(&[("2026-12", &good)], Some("2026-12"), Some(&short)),
                "`hash_key` is 31 bytes",
                &short,
            ),
            (
                config(&[("2026-12", &good)], Some("2026-12"), Some(&good)),
                "`hash_key` is the same key as `2026-12`",
                &good,
            ),
        ];
        for (config, expected, secret) in cases {
            let err = KeyRing::from_config(&config).unwrap_err();
            assert!(matches!(err, PrivacyError::Config(_)), "{err:?}");
            let (display, debug) = (err.to_string(), format!("{err:?}"));
            assert!(display.contains(expected), "{display}");
            if !secret.is_empty() {
                assert!(
                    !display.contains(secret) && !debug.contains(secret),
                    "{display}"
                );
                assert!(
                    !display.contains(&hash) && !debug.contains(&hash),
                    "{display}"
                );
            }
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (k1, k2, h) = (key_b64(0x11), key_b64(0x22), key_b64(0x33));
        let config = config(
            &[("2026-01", &k1), ("2026-12", &k2)],
            Some("2026-12"),
            Some(&h),
        );
        let ring = KeyRing::from_config(&config).unwrap();
        let (data_key, wrapped) = ring.new_data_key();
        let debug = format!("{config:?} {config:#?} {ring:?} {ring:#?} {data_key:?} {wrapped:?}");
        for secret in [&k1, &k2, &h, &STANDARD.encode(data_key.bytes())] {
            assert!(!debug.contains(secret.as_str()), "{debug}");
        }
        // Nor the bytes as a Rust array would print them.
        assert!(
            !debug.contains("17, 17") && !debug.contains("34, 34"),
            "{debug}"
        );
        assert!(
            debug.contains("2026-01") && debug.contains("2026-12"),
            "{debug}"
        );
    }
}
