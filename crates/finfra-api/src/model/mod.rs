//! Wire types: Finfra's JSON, field for field, quirks included.
//!
//! One submodule per area of the reference. Request bodies serialize exactly as Finfra
//! requires (see `crate::lenient` for the how); response bodies read leniently. Where the
//! two directions disagree (a borrower is sent with plain dates and `"true"`, and comes
//! back with timestamps and `true`, missing fields and `{}` documents), there are two
//! types. These are not domain types: the engine converts them into its own newtypes,
//! and `crate::validate` checks request bodies before they are sent.

pub mod borrower;
pub mod common;
pub mod credit;
pub mod document;
pub mod ekyc;
pub mod loan;
pub mod virtual_account;

#[cfg(test)]
pub(crate) mod test_fixtures;

use serde::{Deserialize, Serialize};

pub use common::mask;

/// Answer of the create-borrower endpoints: `{"status":"success","message":"Borrower
/// creation request accepted"}`. It carries no id; the id arrives in the `user_created`
/// callback or through the KYC submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub status: String,
    pub message: String,
}
