//! The kinds of workflow, by their stored name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kinds of workflow, by their stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `onboard-borrower`.
    #[serde(rename = "onboard-borrower")]
    OnboardBorrower,
    /// `originate-loan`.
    #[serde(rename = "originate-loan")]
    OriginateLoan,
    /// `reconcile-loans`.
    #[serde(rename = "reconcile-loans")]
    ReconcileLoans,
}

impl Kind {
    /// Every kind.
    pub const ALL: &'static [Kind] = &[
        Kind::OnboardBorrower,
        Kind::OriginateLoan,
        Kind::ReconcileLoans,
    ];

    /// The stored name: a contract (changing it needs a migration).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnboardBorrower => "onboard-borrower",
            Self::OriginateLoan => "originate-loan",
            Self::ReconcileLoans => "reconcile-loans",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workflow kind that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workflow kind {0:?} (known: onboard-borrower, originate-loan, reconcile-loans)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}
