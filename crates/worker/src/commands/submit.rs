//! `finflow submit`: enqueue a workflow from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use worker::config::Config;

/// Checks the business key and the input, stores the workflow (or finds the same one) and
/// prints its id.
///
/// # Errors
/// A business key that breaks the rule (checked first, before anything is read), unreadable
/// input, invalid input (every problem listed), a conflicting business key, a borrower whose
/// onboarding under another key has not finished, or the database fails. Each is one line
/// on stderr and exit status 1; nothing is stored.
pub async fn run(
    config_file: Option<&Path>,
    kind: &str,
    business_key: &str,
    input: &PathBuf,
) -> anyhow::Result<ExitCode> {
    store::check_business_key(business_key)?;
    let config = Config::load(config_file)?;
    let raw = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let input: serde_json::Value = serde_json::from_str(&raw)
        .with_context(|| format!("{} is not valid JSON", input.display()))?;
    let definitions = workflow::Registry::load_dir(&config.worker.workflows_dir)
        .map_err(|e| anyhow::anyhow!("workflow definitions: {e}"))?;
    let engine = workflow::Engine::new(definitions);
    let definition = match engine.validate(kind, &input, Utc::now()) {
        Ok(definition) => definition,
        Err(workflow::EngineError::Input(errors)) => {
            eprintln!("error: the input is invalid; nothing was stored:");
            for line in errors.to_string().split("; ") {
                eprintln!("  - {line}");
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(other) => return Err(other.into()),
    };
    let store = super::open_store_for_writes(&config, true).await?;
    let mut new = store::NewWorkflow::new(kind, business_key, input);
    new.definition_name = definition.name.clone();
    new.definition_version = i32::try_from(definition.version).ok();
    let submitted = store.submit(&new).await.map_err(|e| match e {
        store::StoreError::Conflict { .. } => anyhow::anyhow!(
            "{kind} {business_key:?} was already submitted with a different input; use a new business key"
        ),
        // Names the unfinished onboarding (its key works with `finflow cancel`).
        held @ store::StoreError::OnboardingInProgress { .. } => held.into(),
        other => other.into(),
    })?;
    store.close().await;
    println!("{}", submitted.id);
    if !submitted.created {
        eprintln!("(already submitted with the same input: the existing workflow)");
    }
    Ok(ExitCode::SUCCESS)
}
