//! Starting one `reconcile-loans` run: the one implementation behind `finflow reconcile`,
//! the worker's schedule (`[reconcile] every`) and the console's Reconciliation page.

use chrono::Utc;
use serde_json::Value;
use store::{RECONCILE_KIND, Store, StoreError, Submitted};
use workflow::Engine;

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    /// The input is invalid: every problem named.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates `input` and stores a run under `business_key` (or finds the same one).
///
/// # Errors
/// The input is invalid (every problem named), or the store failed.
pub async fn start_run(
    store: &Store,
    engine: &Engine,
    business_key: &str,
    input: Value,
) -> Result<Submitted, StartRunError> {
    let definition = engine
        .validate(RECONCILE_KIND, &input, Utc::now())
        .map_err(|e| StartRunError::Invalid(e.to_string()))?;
    let mut new = store::NewWorkflow::new(RECONCILE_KIND, business_key, input);
    new.definition_name = definition.name;
    new.definition_version = i32::try_from(definition.version).ok();
    Ok(store.submit(&new).await?)
}
