//! The one error type of this crate.
//!
//! Messages name the label, field or form that is wrong and never the value: the values
//! here are key material or personal data, and errors end up in logs. For the same reason
//! no variant keeps the underlying `base64`/`serde_json`/`aead` error as a `#[source]`
//! (the style guide's default): `base64`'s message quotes the offending byte and
//! `serde_json`'s can quote the text it read, which would be a byte of a key or of a NIK.

/// What went wrong reading the configuration, unwrapping a data key or opening a value.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// `[privacy]` of finflow.toml is missing something or holds a malformed key; the
    /// message names the field or label.
    #[error("[privacy] configuration: {0}")]
    Config(String),

    /// The data key was wrapped under a key-encryption key whose label is not (any more)
    /// in `[privacy].keys`: an old key was removed before every data key was rewrapped.
    #[error(
        "the data key is wrapped under key-encryption key `{label}`, which is not in [privacy].keys"
    )]
    UnknownKey {
        /// The label the wrapped key names.
        label: String,
    },

    /// The key-encryption key configured under `label` does not open the wrapped data key:
    /// the bytes under that label are not the ones that wrapped it, or the wrapped key was
    /// altered or relabelled.
    #[error(
        "key-encryption key `{label}` does not open the wrapped data key: the key under that label differs from the one that wrapped it, or the wrapped key was altered"
    )]
    WrongKey {
        /// The label the wrapped key names.
        label: String,
    },

    /// The wrapped data key was crypto-shredded (its column holds [`crate::ERASED`]): the
    /// personal data sealed under it is gone for good, by design.
    #[error("the data key was erased (crypto-shredded); the data sealed under it cannot be read")]
    Erased,

    /// A wrapped key or sealed value does not have the expected form; the message says which
    /// part.
    #[error("malformed {0}")]
    Malformed(String),

    /// A sealed value failed authentication. An AEAD cannot tell these apart: the bytes were
    /// altered, the value was copied from another row (other associated data), or it was
    /// sealed under another data key.
    #[error(
        "sealed value does not open: it was altered, belongs to another row, or was sealed under another data key"
    )]
    Tampered,
}
