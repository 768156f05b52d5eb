//! What SQL and the CLI see of a state: its [`Summary`] and coarse [`Status`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::DefinitionRef;

/// The coarse status a machine gives a state; the fine one is the state name. It is
/// finer than the stored `workflows.status`, which the executor derives from the action
/// (a `retrying` workflow is stored `sleeping`, an `ambiguous` one `running` while its read
/// is made): it is what `finflow inspect` and the announcements of a finished workflow say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A call is to be made (or is being made).
    Running,
    /// Backing off before sending again.
    Retrying,
    /// A non-idempotent call's outcome is unknown: reconciling before sending again.
    Ambiguous,
    /// Waiting for a callback, a poll or a recheck.
    Waiting,
    /// Stuck until an operator resolves or cancels it.
    NeedsAttention,
    /// Finished as intended.
    Completed,
    /// Finished without achieving its purpose.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

impl Status {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Ambiguous => "ambiguous",
            Self::Waiting => "waiting",
            Self::NeedsAttention => "needs_attention",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the workflow is over.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What SQL and the CLI see of a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The state name (stable snake_case: a contract).
    pub state: String,
    /// The coarse status.
    pub status: Status,
    /// The definition the workflow pinned.
    pub definition: DefinitionRef,
    /// The current step's attempt (1 when not retrying).
    pub attempt: u32,
    /// The last failure or the reason it is stuck, if any.
    pub last_error: Option<String>,
    /// Business facts for SQL views, per kind (for onboarding: `user_id`,
    /// `borrower_status`, `credit_score`; for loans: `loan_unique_id`, `loan_status`,
    /// `disbursement_reference`, `amount_paid`, ...).
    pub facts: Value,
}
