//! The stored form of a data key: wrapped under a key-encryption key, as text.
//!
//! `"<label>:<standard base64 of nonce(24) || ciphertext(32) || tag(16)>"`, in a `TEXT`
//! column beside the workflow. The label says which configured key-encryption key opens
//! it, so keys can be rotated one row at a time; this is why a label may not contain `:`.
//! After crypto-shredding the column holds [`ERASED`] instead.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::PrivacyError;
use crate::data_key::{KEY_LEN, NONCE_LEN, TAG_LEN};

/// What the wrapped-key column holds once a workflow's data key has been destroyed
/// (crypto-shredding): every value sealed under it is unreadable from then on, without
/// touching those values. Parsing it as a [`WrappedKey`] gives [`PrivacyError::Erased`].
pub const ERASED: &str = "erased";

/// Longest label of a key-encryption key.
const MAX_LABEL_LEN: usize = 32;
/// Length of the bytes after the label: nonce, the wrapped 32-byte key, tag.
const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Whether `label` can name a key-encryption key: 1..=32 characters of `[A-Za-z0-9._-]`.
/// Narrow on purpose: it is written into every wrapped key before a `:`, and printed in
/// error messages and logs.
pub(crate) fn is_valid_label(label: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A data key wrapped by the key-encryption key `label()`. `Display`/`FromStr` are the
/// stored text form; serde uses the same string. `Debug` shows the label only.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    label: String,
    /// `nonce || ciphertext || tag`, always [`WRAPPED_LEN`] bytes.
    sealed: Vec<u8>,
}

impl WrappedKey {
    /// Callers guarantee a valid label and [`WRAPPED_LEN`] bytes.
    pub(crate) fn new(label: &str, sealed: Vec<u8>) -> Self {
        debug_assert!(is_valid_label(label) && sealed.len() == WRAPPED_LEN);
        Self {
            label: label.to_owned(),
            sealed,
        }
    }

    /// The label of the key-encryption key this data key is wrapped under.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn sealed(&self) -> &[u8] {
        &self.sealed
    }
}

impl fmt::Display for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.label, STANDARD.encode(&self.sealed))
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The ciphertext is no secret, but it is noise in logs and needs no reading.
        f.debug_struct("WrappedKey")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl FromStr for WrappedKey {
    type Err = PrivacyError;

    /// # Errors
    ///
    /// [`PrivacyError::Erased`] for [`ERASED`]; [`PrivacyError::Malformed`] naming the part
    /// that is wrong (no `:`, the label, the base64, the length).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == ERASED {
            return Err(PrivacyError::Erased);
        }
        let Some((label, encoded)) = text.split_once(':') else {
            return Err(PrivacyError::Malformed(
                "wrapped key: expected `<label>:<base64>`, found no `:`".to_owned(),
            ));
        };
        if !is_valid_label(label) {
            return Err(PrivacyError::Malformed(format!(
                "wrapped key: the label before `:` is not 1..={MAX_LABEL_LEN} characters of [A-Za-z0-9._-]"
            )));
        }
        let sealed = STANDARD.decode(encoded).map_err(|_| {
            PrivacyError::Malformed(format!(
                "wrapped key `{label}`: not standard base64 after the `:`"
            ))
        })?;
        if sealed.len() != WRAPPED_LEN {
            return Err(PrivacyError::Malformed(format!(
                "wrapped key `{label}`: {} bytes after the `:`, expected {WRAPPED_LEN} (nonce {NONCE_LEN}, key {KEY_LEN}, tag {TAG_LEN})",
                sealed.len()
            )));
        }
        Ok(Self::new(label, sealed))
    }
}

impl serde::Serialize for WrappedKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for WrappedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WrappedKey {
        WrappedKey::new("2026-12", (0..WRAPPED_LEN as u8).collect())
    }

    #[test]
    fn text_form_round_trips() {
        let wrapped = sample();
        let text = wrapped.to_string();
        assert!(text.starts_with("2026-12:"), "{text}");
        assert_eq!(text.parse::<WrappedKey>().unwrap(), wrapped);
        assert_eq!(text.parse::<WrappedKey>().unwrap().label(), "2026-12");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let wrapped = sample();
        let json = serde_json::to_value(&wrapped).unwrap();
        assert_eq!(json, serde_json::Value::String(wrapped.to_string()));
        assert_eq!(serde_json::from_value::<WrappedKey>(json).unwrap(), wrapped);
        let err = serde_json::from_value::<WrappedKey>(serde_json::json!("2026-12")).unwrap_err();
        assert!(err.to_string().contains("no `:`"), "{err}");
    }

    #[test]
    fn malformed_forms_say_what_is_wrong() {
        let body = STANDARD.encode([0u8; WRAPPED_LEN]);
        let cases = [
            ("2026-12".to_owned(), "no `:`"),
            (format!(":{body}"), "label"),
            (format!("{}:{body}", "a".repeat(33)), "label"),
            (format!("2026/12:{body}"), "label"),
            (format!("20 26:{body}"), "label"),
            ("2026-12:%%%%".to_owned(), "not standard base64"),
            (format!("2026-12:{body}:x"), "not standard base64"),
            (
                format!("2026-12:{}", STANDARD.encode([0u8; WRAPPED_LEN - 1])),
                "71 bytes",
            ),
            ("2026-12:".to_owned(), "0 bytes"),
        ];
        for (text, expected) in cases {
            match text.parse::<WrappedKey>() {
                Err(PrivacyError::Malformed(message)) => {
                    assert!(message.contains(expected), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(
            format!("{}:{body}", "a".repeat(32))
                .parse::<WrappedKey>()
                .is_ok()
        );
    }

    #[test]
    fn erased_is_its_own_error() {
        assert!(matches!(
            ERASED.parse::<WrappedKey>(),
            Err(PrivacyError::Erased)
        ));
    }

    #[test]
    fn debug_shows_the_label_only() {
        let wrapped = sample();
        let debug = format!("{wrapped:?}");
        assert!(debug.contains("2026-12"), "{debug}");
        assert!(
            !debug.contains(&STANDARD.encode(wrapped.sealed())),
            "{debug}"
        );
        assert!(!debug.contains("[0, 1"), "{debug}");
    }
}
