//! Per-workflow data keys and the sealed values they produce.
//!
//! Each workflow's personal data is sealed under its own random data key, so erasing one
//! workflow's data is deleting one wrapped key (crypto-shredding) rather than finding and
//! overwriting every copy. The cipher is XChaCha20-Poly1305: its 192-bit nonce is safe to
//! pick at random for every seal, which a 96-bit nonce is not under one long-lived key.
//!
//! The associated data (AAD) is the caller's binding of a ciphertext to its place, e.g. the
//! workflow id and the column name: a sealed value copied into another row or column does
//! not open there.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead as _, AeadCore as _, OsRng, Payload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::PrivacyError;

/// Length of every key in this crate (data keys, key-encryption keys, the hash key).
pub(crate) const KEY_LEN: usize = 32;
/// XChaCha20-Poly1305's nonce, stored in front of every ciphertext.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305's tag, at the end of every ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// The one key of a sealed JSON value.
const SEALED_FIELD: &str = "$sealed";
/// Names the format of a sealed JSON value (XChaCha20-Poly1305, nonce then ciphertext, in
/// standard base64) so that a later format can be told apart from values already stored.
const SEALED_PREFIX: &str = "xc1:";

/// Key bytes that are wiped from memory when dropped.
pub(crate) type KeyBytes = Zeroizing<[u8; KEY_LEN]>;

/// Fresh random key bytes from the operating system.
pub(crate) fn random_key() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(&mut key[..]);
    key
}

/// `nonce || ciphertext || tag` of `plaintext` under `key`, with a random nonce.
pub(crate) fn seal_with(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    // Encryption fails only past XChaCha20's 256 GiB limit per message; personal data
    // rows are orders of magnitude smaller.
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// The plaintext of `nonce || ciphertext || tag`, or `None` when it does not authenticate
/// under `key` and `aad` (the callers know which error that is).
///
/// # Errors
///
/// [`PrivacyError::Malformed`] when `sealed` is shorter than a nonce and a tag.
pub(crate) fn open_with(
    key: &[u8; KEY_LEN],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Option<Vec<u8>>, PrivacyError> {
    let malformed = || {
        PrivacyError::Malformed(format!(
            "sealed bytes: {} bytes, shorter than the {NONCE_LEN}-byte nonce and {TAG_LEN}-byte tag",
            sealed.len()
        ))
    };
    let (nonce, ciphertext) = sealed
        .split_first_chunk::<NONCE_LEN>()
        .ok_or_else(malformed)?;
    if ciphertext.len() < TAG_LEN {
        return Err(malformed());
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    Ok(cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok())
}

/// One workflow's data key, unwrapped. Wiped from memory when dropped; `Debug` shows no key
/// material; deliberately not `Clone`, so that the key lives in one place. Get one from
/// [`crate::KeyRing::new_data_key`] or [`crate::KeyRing::unwrap`].
pub struct DataKey {
    key: KeyBytes,
}

impl DataKey {
    pub(crate) fn generate() -> Self {
        Self { key: random_key() }
    }

    pub(crate) fn from_bytes(key: KeyBytes) -> Self {
        Self { key }
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// Seals `plaintext` bound to `aad`: `nonce(24) || ciphertext || tag(16)`, with a fresh
    /// random nonce, so sealing the same value twice gives different bytes.
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal_with(&self.key, plaintext, aad)
    }

    /// Opens what [`DataKey::seal`] produced with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`PrivacyError::Tampered`] when the bytes do not authenticate: altered, sealed with
    /// another `aad` (another row), or sealed under another data key; an AEAD cannot tell
    /// these apart. [`PrivacyError::Malformed`] when `sealed` is too short to be sealed.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, PrivacyError> {
        open_with(&self.key, sealed, aad)?.ok_or(PrivacyError::Tampered)
    }

    /// Seals a JSON value as `{"$sealed": "xc1:<base64 of nonce || ciphertext>"}`, which is
    /// still JSON, so the column that held the plain value (e.g. `jsonb`) can hold it.
    #[must_use]
    pub fn seal_json(&self, value: &Value, aad: &[u8]) -> Value {
        // `to_string` of a `Value` cannot fail (its keys are strings); the plaintext copy is
        // personal data, so it is wiped once sealed.
        let plaintext = Zeroizing::new(value.to_string());
        let sealed = self.seal(plaintext.as_bytes(), aad);
        let mut object = serde_json::Map::with_capacity(1);
        object.insert(
            SEALED_FIELD.to_owned(),
            Value::String(format!("{SEALED_PREFIX}{}", STANDARD.encode(sealed))),
        );
        Value::Object(object)
    }

    /// Opens what [`DataKey::seal_json`] produced with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`PrivacyError::Malformed`] when `sealed` is not a sealed value (see [`is_sealed`]),
    /// is not base64 after `xc1:`, or its plaintext is not JSON;
    /// [`PrivacyError::Tampered`] as for [`DataKey::open`].
    pub fn open_json(&self, sealed: &Value, aad: &[u8]) -> Result<Value, PrivacyError> {
        let Some(encoded) = sealed_text(sealed) else {
            return Err(PrivacyError::Malformed(format!(
                "sealed value: expected an object with the one key `{SEALED_FIELD}` holding \"{SEALED_PREFIX}<base64>\""
            )));
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| {
            PrivacyError::Malformed(format!(
                "sealed value: not standard base64 after `{SEALED_PREFIX}`"
            ))
        })?;
        let plaintext = Zeroizing::new(self.open(&bytes, aad)?);
        serde_json::from_slice(&plaintext).map_err(|_| {
            PrivacyError::Malformed("sealed value: its plaintext is not JSON".to_owned())
        })
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// The base64 after `xc1:` when `value` is a sealed value.
fn sealed_text(value: &Value) -> Option<&str> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object
        .get(SEALED_FIELD)?
        .as_str()?
        .strip_prefix(SEALED_PREFIX)
}

/// Whether `value` is what [`DataKey::seal_json`] produces: exactly an object with the one
/// key `"$sealed"` whose string starts with `"xc1:"`. Lets a reader tell sealed rows from
/// rows written before sealing, or after crypto-shredding, without a key.
#[must_use]
pub fn is_sealed(value: &Value) -> bool {
    sealed_text(value).is_some()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ROW: &[u8] = b"workflow=7f3a;column=borrower";
    const OTHER_ROW: &[u8] = b"workflow=91c2;column=borrower";

    #[test]
    fn sealed_bytes_open_to_the_plaintext_and_hide_it() {
        let key = DataKey::generate();
        let plaintext = b"NIK 3171234567890123";
        let sealed = key.seal(plaintext, ROW);
        assert_eq!(sealed.len(), NONCE_LEN + plaintext.len() + TAG_LEN);
        assert!(!sealed.windows(plaintext.len()).any(|w| w == plaintext));
        assert_eq!(key.open(&sealed, ROW).unwrap(), plaintext);
        // A fresh nonce each time: equal plaintexts are not recognisable as equal.
        assert_ne!(key.seal(plaintext, ROW), sealed);
    }

    #[test]
    fn every_flipped_byte_is_tampered() {
        let key = DataKey::generate();
        let sealed = key.seal(b"Siti Rahayu", ROW);
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(
                matches!(key.open(&altered, ROW), Err(PrivacyError::Tampered)),
                "byte {i} flipped still opened"
            );
        }
    }

    #[test]
    fn a_value_copied_to_another_row_does_not_open() {
        let key = DataKey::generate();
        let sealed = key.seal(b"081234567890", ROW);
        assert!(matches!(
            key.open(&sealed, OTHER_ROW),
            Err(PrivacyError::Tampered)
        ));
        assert!(matches!(
            key.open(&sealed, b""),
            Err(PrivacyError::Tampered)
        ));
    }

    #[test]
    fn another_data_key_does_not_open() {
        let sealed = DataKey::generate().seal(b"1990-04-17", ROW);
        assert!(matches!(
            DataKey::generate().open(&sealed, ROW),
            Err(PrivacyError::Tampered)
        ));
    }

    #[test]
    fn truncated_bytes_are_malformed() {
        let key = DataKey::generate();
        let sealed = key.seal(b"", ROW);
        assert_eq!(key.open(&sealed, ROW).unwrap(), b"");
        assert!(matches!(
            key.open(&sealed[..sealed.len() - 1], ROW),
            Err(PrivacyError::Malformed(_))
        ));
    }

    #[test]
    fn sealed_json_round_trips_and_is_still_json() {
        let key = DataKey::generate();
        let value = json!({"nik": "3171234567890123", "name": "Siti Rahayu", "born": "1990-04-17"});
        let sealed = key.seal_json(&value, ROW);
        assert!(is_sealed(&sealed));
        let text = serde_json::to_string(&sealed).unwrap();
        assert!(text.starts_with(r#"{"$sealed":"xc1:"#), "{text}");
        assert!(!text.contains("3171234567890123") && !text.contains("Siti"));
        let reread: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(key.open_json(&reread, ROW).unwrap(), value);
    }

    #[test]
    fn sealed_json_is_bound_to_its_row_key_and_bytes() {
        let key = DataKey::generate();
        let sealed = key.seal_json(&json!("Siti Rahayu"), ROW);
        assert!(matches!(
            key.open_json(&sealed, OTHER_ROW),
            Err(PrivacyError::Tampered)
        ));
        assert!(matches!(
            DataKey::generate().open_json(&sealed, ROW),
            Err(PrivacyError::Tampered)
        ));
        let text = sealed[SEALED_FIELD].as_str().unwrap();
        let mut bytes = STANDARD.decode(&text[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        let altered = json!({ SEALED_FIELD: format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes)) });
        assert!(matches!(
            key.open_json(&altered, ROW),
            Err(PrivacyError::Tampered)
        ));
    }

    #[test]
    fn open_json_refuses_what_is_not_sealed() {
        let key = DataKey::generate();
        for value in [
            json!({"nik": "3171234567890123"}),
            json!({"$sealed": "xc1:%%%"}),
            json!({"$sealed": "xc2:AAAA"}),
        ] {
            assert!(
                matches!(key.open_json(&value, ROW), Err(PrivacyError::Malformed(_))),
                "{value}"
            );
        }
        // Plaintext that is not JSON, sealed with `seal` by mistake.
        let raw = key.seal(b"not json", ROW);
        let value = json!({ SEALED_FIELD: format!("{SEALED_PREFIX}{}", STANDARD.encode(raw)) });
        let err = key.open_json(&value, ROW).unwrap_err();
        assert!(matches!(err, PrivacyError::Malformed(_)));
        assert!(!err.to_string().contains("not json"));
    }

    #[test]
    fn is_sealed_is_exactly_the_sealed_shape() {
        assert!(is_sealed(&json!({"$sealed": "xc1:"})));
        for value in [
            json!(null),
            json!("xc1:AAAA"),
            json!({}),
            json!({"$sealed": "AAAA"}),
            json!({"$sealed": 1}),
            json!({"$sealed": "xc1:AAAA", "nik": "3171234567890123"}),
            json!([{"$sealed": "xc1:AAAA"}]),
        ] {
            assert!(!is_sealed(&value), "{value}");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = DataKey::generate();
        let debug = format!("{key:?} {key:#?}");
        assert_eq!(format!("{key:?}"), "DataKey([REDACTED])");
        assert!(!debug.contains(&STANDARD.encode(key.bytes())));
    }
}
