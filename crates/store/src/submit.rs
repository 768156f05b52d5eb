//! Submitting work: a new workflow row, due at once, and its first wake-up, in one
//! transaction. Idempotent on `(kind, business_key)`: the same input again returns the
//! existing workflow; a different input is [`StoreError::Conflict`].
//!
//! On PostgreSQL the Rust API calls the SQL function `finflow_submit_workflow`, which
//! `finflow_submit` (for other systems' SQL) also calls: one implementation, one meaning of
//! "same input" (jsonb equality). On SQLite the input is stored as canonical JSON (keys
//! sorted, compact) and compared through its sha256.
//!
//! The store does not validate kind-specific input; the worker does, as the first step.

use chrono::Utc;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{CONFLICT_SQLSTATE, StoreError};
use crate::time::to_sqlite;
use crate::wakeup::push_sqlite;
use crate::workflow::uuid_from_sqlite;
use crate::{Store, StoreTx};

/// State name of a workflow nobody has advanced yet (and the default of `finflow_submit`).
pub const INITIAL_STATE: &str = "new";

/// A workflow to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    pub kind: String,
    pub business_key: String,
    /// The `workflows/*.toml` definition (usually the kind).
    pub definition_name: String,
    /// The definition version to pin; `None` lets the first step pin the current one.
    pub definition_version: Option<i32>,
    pub input: Value,
    /// Initial state name ([`INITIAL_STATE`] unless the caller knows better).
    pub state: String,
    /// Initial context.
    pub context: Value,
}

impl NewWorkflow {
    /// A workflow of `kind` with the definition of the same name (version unpinned), in state
    /// [`INITIAL_STATE`] with an empty context.
    pub fn new(kind: impl Into<String>, business_key: impl Into<String>, input: Value) -> Self {
        let kind = kind.into();
        Self {
            definition_name: kind.clone(),
            kind,
            business_key: business_key.into(),
            definition_version: None,
            input,
            state: INITIAL_STATE.to_owned(),
            context: Value::Object(Map::new()),
        }
    }
}

/// The workflow a submit returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub id: Uuid,
    /// `false` when the workflow existed already (same key, same input).
    pub created: bool,
}

/// The JSON with object keys sorted at every level; with serde_json's compact printer this is
/// a canonical text (same value, same text), whatever order the keys came in.
pub(crate) fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check(new: &NewWorkflow) -> Result<(), StoreError> {
    if new.kind.is_empty() || new.business_key.is_empty() {
        return Err(StoreError::Refused(
            "kind and business_key must not be empty".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// Submits a workflow in a transaction of its own; see [`Store::submit_in`].
    ///
    /// # Errors
    /// As [`Store::submit_in`].
    pub async fn submit(&self, new: &NewWorkflow) -> Result<Submitted, StoreError> {
        let mut tx = self.begin().await?;
        let submitted = self.submit_in(&mut tx, new).await?;
        tx.commit().await?;
        Ok(submitted)
    }

    /// Submits a workflow inside the caller's transaction: the row and its wake-up commit or
    /// roll back with the caller's other writes. Safe under concurrency: of two submits of a
    /// new key, one creates and the other (after the first commits) gets `created: false`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the key exists with a different input (on PostgreSQL the
    /// transaction is then aborted, as after any SQL error: roll it back);
    /// [`StoreError::Refused`] for an empty kind or key; [`StoreError::Database`] otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.kind = %new.kind))]
    pub async fn submit_in(
        &self,
        tx: &mut StoreTx<'_>,
        new: &NewWorkflow,
    ) -> Result<Submitted, StoreError> {
        check(new)?;
        let submitted = match tx {
            StoreTx::Postgres(tx) => {
                let row: Result<(Uuid, bool), sqlx::Error> = sqlx::query_as(
                    "SELECT workflow_id, created FROM finflow_submit_workflow($1, $2, $3, $4, $5, \
                     $6, $7)",
                )
                .bind(&new.kind)
                .bind(&new.business_key)
                .bind(&new.input)
                .bind(&new.definition_name)
                .bind(new.definition_version)
                .bind(&new.state)
                .bind(&new.context)
                .fetch_one(&mut **tx)
                .await;
                match row {
                    Ok((id, created)) => Submitted { id, created },
                    Err(sqlx::Error::Database(db))
                        if db.code().as_deref() == Some(CONFLICT_SQLSTATE) =>
                    {
                        return Err(conflict(new));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            StoreTx::Sqlite(tx) => {
                let input = canonical(&new.input).to_string();
                let hash = sha256_hex(&input);
                let now = Utc::now();
                let id = Uuid::new_v4();
                let inserted: Option<String> = sqlx::query_scalar(
                    "INSERT INTO workflows (id, kind, business_key, definition_name, \
                     definition_version, status, state, context, input, input_hash, next_run_at, \
                     created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $10, $10) \
                     ON CONFLICT (kind, business_key) DO NOTHING RETURNING id",
                )
                .bind(id.to_string())
                .bind(&new.kind)
                .bind(&new.business_key)
                .bind(&new.definition_name)
                .bind(new.definition_version)
                .bind(&new.state)
                .bind(new.context.to_string())
                .bind(&input)
                .bind(&hash)
                .bind(to_sqlite(now))
                .fetch_optional(&mut **tx)
                .await?;
                if inserted.is_some() {
                    push_sqlite(tx, &[(id, now)]).await?;
                    Submitted { id, created: true }
                } else {
                    let (existing, existing_hash): (String, String) = sqlx::query_as(
                        "SELECT id, input_hash FROM workflows WHERE kind = $1 AND business_key = $2",
                    )
                    .bind(&new.kind)
                    .bind(&new.business_key)
                    .fetch_one(&mut **tx)
                    .await?;
                    if existing_hash != hash {
                        return Err(conflict(new));
                    }
                    Submitted {
                        id: uuid_from_sqlite(&existing)?,
                        created: false,
                    }
                }
            }
        };
        if submitted.created {
            tracing::debug!(workflow.id = %submitted.id, "workflow created (commits with its transaction)");
        }
        Ok(submitted)
    }
}

fn conflict(new: &NewWorkflow) -> StoreError {
    StoreError::Conflict {
        kind: new.kind.clone(),
        business_key: new.business_key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_ignores_key_order_but_not_values() {
        let a = json!({"b": 1, "a": {"y": [1, {"q": 1, "p": 2}], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, {"p": 2, "q": 1}]}, "b": 1});
        let c = json!({"a": {"x": "s", "y": [{"p": 2, "q": 1}, 1]}, "b": 1});
        assert_eq!(canonical(&a).to_string(), canonical(&b).to_string());
        assert_ne!(canonical(&a).to_string(), canonical(&c).to_string());
        assert_eq!(
            canonical(&a).to_string(),
            r#"{"a":{"x":"s","y":[1,{"p":2,"q":1}]},"b":1}"#
        );
    }
}
