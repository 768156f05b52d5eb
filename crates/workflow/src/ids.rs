//! Domain identifiers: newtypes over the strings Finfra and the store hand around, so a NIK
//! cannot be passed where a user id is expected, and so each one is checked once, at the
//! edge, with `finfra_api::validate`'s rules.
//!
//! `Debug` masks the personal ones (a NIK identifies a person; a KYC session id is a bearer
//! handle). `Serialize` writes them in clear: the state is the workflow's memory and the
//! executor needs the real values to call Finfra and to match callbacks.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use finfra_api::model::mask;
use finfra_api::validate;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {message}")]
pub struct InvalidId {
    /// Which identifier, e.g. `user id`.
    pub what: &'static str,
    /// What is wrong, e.g. `must be 24 lowercase hex characters`.
    pub message: String,
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $check:expr, masked = $masked:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps `value`.
            ///
            /// # Errors
            ///
            /// [`InvalidId`] when `value` does not have the identifier's form.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map_err(|message| InvalidId { what: $what, message })?;
                Ok(Self(value))
            }

            /// The identifier as Finfra spells it.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $masked {
                    write!(f, "{}({:?})", stringify!($name), mask(&self.0))
                } else {
                    write!(f, "{}({:?})", stringify!($name), self.0)
                }
            }
        }

        impl fmt::Display for $name {
            /// Masked when the identifier is personal: `Display` ends up in notes and logs.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if $masked {
                    f.write_str(&mask(&self.0))
                } else {
                    f.write_str(&self.0)
                }
            }
        }
    };
}

fn non_empty(value: &str) -> Result<(), String> {
    validate::required(value)
}

string_id!(
    /// The engine's id of one workflow (the store's primary key), opaque here.
    WorkflowId, "workflow id", non_empty, masked = false
);

string_id!(
    /// A Finfra borrower id: 24 lowercase hex characters.
    UserId, "user id", validate::user_id, masked = false
);

string_id!(
    /// A Finfra loan `unique_id`, chosen by us: 6 to 64 characters of `[A-Za-z0-9_-]`.
    /// `originate-loan` uses its create step's [`OperationKey`], so a retried create answers
    /// `409` instead of creating a second loan.
    LoanUniqueId, "loan unique id", validate::unique_id, masked = false
);

impl From<&OperationKey> for LoanUniqueId {
    /// An operation key is always a valid unique id (`op-` and 32 hex characters).
    fn from(key: &OperationKey) -> Self {
        Self(key.as_str().to_owned())
    }
}

string_id!(
    /// A NIK (Indonesian national identity number): 16 digits embedding a birth date.
    /// Personal data: masked in `Debug` and `Display`.
    Nik, "NIK", validate::nik, masked = true
);

string_id!(
    /// A KYC session id (a JWT) returned by the OCR call: the handle of the e-KYC flow. A
    /// bearer handle, masked in `Debug` and `Display`.
    KycId, "KYC id", non_empty, masked = true
);

/// The key of one logical operation (create this borrower, approve it, disburse this loan):
/// derived once, deterministically, from the workflow id and the step, stored in the state
/// and reused on every attempt, reconciliation and journal row of that operation.
///
/// Its form, `op-` and 32 lowercase hex characters, is also a valid Finfra loan `unique_id`
/// (6 to 64 characters of `[A-Za-z0-9_-]`), which is how loan creation is made idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationKey(String);

impl OperationKey {
    /// The key of operation `occurrence` of `step` in workflow `workflow`. `occurrence`
    /// tells apart operations of the same step in one workflow (the second document
    /// upload, a hub check per provider); it is 0 for a step that runs once.
    #[must_use]
    pub fn derive(workflow: &WorkflowId, step: &str, occurrence: u32) -> Self {
        let digest = digest(&[
            "finflow/operation/v1",
            workflow.as_str(),
            step,
            &occurrence.to_string(),
        ]);
        Self(format!("op-{}", &hex(&digest)[..32]))
    }

    /// The key as stored and journaled.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of `parts`, each length-prefixed so that `("ab", "c")` and `("a", "bc")` differ.
pub(crate) fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// A 64-bit seed from `parts`: the jitter of a retry is drawn from it, so a replay of the
/// same decision gives the same delay while two workflows retrying together spread out.
pub(crate) fn seed(parts: &[&str]) -> u64 {
    let d = digest(parts);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&d[..8]);
    u64::from_be_bytes(bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_with_finfras_rules() {
        assert!(UserId::new("6a41ff87dda4eefd0b7b0300").is_ok());
        let err = UserId::new("6A41FF87DDA4EEFD0B7B0300").unwrap_err();
        assert_eq!(
            err.to_string(),
            "user id must be 24 lowercase hex characters"
        );
        assert!(Nik::new("3275062009921981").is_ok());
        assert!(Nik::new("32750620099219").is_err());
        assert!(KycId::new("").is_err());
        assert!(serde_json::from_str::<UserId>("\"nope\"").is_err());
    }

    #[test]
    fn personal_ids_are_masked_when_shown() {
        let nik = Nik::new("3275062009921981").unwrap();
        assert_eq!(nik.to_string(), "************1981");
        assert!(!format!("{nik:?}").contains("327506"));
        assert_eq!(serde_json::to_string(&nik).unwrap(), "\"3275062009921981\"");
        let kyc = KycId::new("eyJhbGciOiJIUzI1NiJ9.e30.sig").unwrap();
        assert!(!format!("{kyc:?} {kyc}").contains("eyJhbGci"));
    }

    #[test]
    fn operation_keys_are_deterministic_and_valid_unique_ids() {
        let wf = WorkflowId::new("wf-1").unwrap();
        let a = OperationKey::derive(&wf, "create_borrower", 0);
        assert_eq!(a, OperationKey::derive(&wf, "create_borrower", 0));
        assert_ne!(a, OperationKey::derive(&wf, "create_borrower", 1));
        assert_ne!(a, OperationKey::derive(&wf, "approve_borrower", 0));
        let other = WorkflowId::new("wf-2").unwrap();
        assert_ne!(a, OperationKey::derive(&other, "create_borrower", 0));
        assert_eq!(validate::unique_id(a.as_str()), Ok(()));
        assert_eq!(a.as_str().len(), 35);
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(seed(&["x", "1"]), seed(&["x", "1"]));
        assert_ne!(seed(&["x", "1"]), seed(&["x", "2"]));
    }
}
