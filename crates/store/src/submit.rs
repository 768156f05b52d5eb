//! Submitting work: a new workflow row, due at once, and its first wake-up, in one
//! transaction. Idempotent on `(kind, business_key)`: the same input again returns the
//! existing workflow; a different input is [`StoreError::Conflict`].
//!
//! Before anything is stored: the business key must follow the rule of `business_key`
//! ([`StoreError::InvalidBusinessKey`]), and a new `onboard-borrower` must not name a
//! borrower whose onboarding under another key has not finished
//! ([`StoreError::OnboardingInProgress`], see `identity`). A resubmission of an existing key
//! is answered before the second rule, so a database from before it keeps answering for the
//! duplicates it holds.
//!
//! On PostgreSQL the Rust API calls the SQL function `finflow_submit_workflow`, which
//! `finflow_submit` (for other systems' SQL) also calls: one implementation, one meaning of
//! "same input" (jsonb equality). On SQLite the input is stored as canonical JSON (keys
//! sorted, compact) and compared through its sha256.
//!
//! The store does not validate kind-specific input; the worker does, as the first step.

use chrono::Utc;
use serde_json::{Map, Value};
use sqlx::{PgConnection, SqliteConnection};
use uuid::Uuid;

use crate::business_key::check_business_key;
use crate::error::{CONFLICT_SQLSTATE, ONBOARDING_IN_PROGRESS_SQLSTATE, StoreError};
use crate::identity::{holder_sqlite, sha256_hex};
use crate::personal::nik_last4;
use crate::time::to_sqlite;
use crate::workflow::uuid_from_sqlite;
use crate::{Backend, Store, StoreTx};

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

fn check(new: &NewWorkflow) -> Result<(), StoreError> {
    if new.kind.is_empty() {
        return Err(StoreError::Refused("kind must not be empty".into()));
    }
    check_business_key(&new.business_key)?;
    Ok(())
}

impl Store {
    /// Submits a workflow in a transaction of its own; see [`Store::submit_in`].
    ///
    /// # Errors
    /// As [`Store::submit_in`].
    pub async fn submit(&self, new: &NewWorkflow) -> Result<Submitted, StoreError> {
        // PostgreSQL: the server function `finflow_submit_workflow`; SQLite: `submit_sqlite`.
        let submitted = match &self.backend {
            // One statement, its own transaction: one round trip.
            Backend::Postgres(pool) => {
                check(new)?;
                let mut conn = self.hot.take(pool).await?;
                let submitted = self.submit_pg(&mut conn, new).await?;
                conn.keep();
                submitted
            }
            Backend::Sqlite(_) => {
                let mut tx = self.begin().await?;
                let submitted = self.submit_in(&mut tx, new).await?;
                tx.commit().await?;
                submitted
            }
        };
        if submitted.created {
            self.hand_over(submitted.id);
        }
        Ok(submitted)
    }

    /// Submits a workflow inside the caller's transaction: the row and its wake-up commit or
    /// roll back with the caller's other writes. Safe under concurrency: of two submits of a
    /// new key, one creates and the other (after the first commits) gets `created: false`;
    /// of two onboardings of one borrower under two keys, one creates and the other (after
    /// the first commits) is refused. On PostgreSQL that needs the transaction at READ
    /// COMMITTED (the default, and what [`Store::begin`] opens) or SERIALIZABLE (the loser
    /// may then get a serialization failure instead, [`StoreError::is_transient`]); the SQL
    /// function refuses an onboarding inside REPEATABLE READ. The wake-up is a
    /// `finflow_due` hint on PostgreSQL, except on a worker's store
    /// ([`crate::StoreOptions::worker`]), which hands its hints over in memory: there the
    /// workflow waits for the next due scan (or use [`Store::submit`], which hands it over).
    ///
    /// # Errors
    /// [`StoreError::InvalidBusinessKey`] for a key that breaks the rule (checked before the
    /// database is asked); [`StoreError::Refused`] for an empty kind;
    /// [`StoreError::Conflict`] when the key exists with a different input;
    /// [`StoreError::OnboardingInProgress`] for a new `onboard-borrower` whose borrower (NIK)
    /// has an unfinished onboarding under another key. After either of the last two the
    /// PostgreSQL transaction is aborted, as after any SQL error: roll it back.
    /// [`StoreError::Database`] otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.kind = %new.kind))]
    pub async fn submit_in(
        &self,
        tx: &mut StoreTx<'_>,
        new: &NewWorkflow,
    ) -> Result<Submitted, StoreError> {
        check(new)?;
        // PostgreSQL: the server function `finflow_submit_workflow`; SQLite: `submit_sqlite`.
        let submitted = match tx {
            StoreTx::Postgres(tx) => self.submit_pg(tx, new).await?,
            StoreTx::Sqlite(tx) => submit_sqlite(self, tx, new).await?,
        };
        if submitted.created {
            tracing::debug!(workflow.id = %submitted.id, "workflow created (commits with its transaction)");
        }
        Ok(submitted)
    }

    /// [`Store::submit_in`]'s PostgreSQL statement: one call of `finflow_submit_workflow`.
    async fn submit_pg(
        &self,
        conn: &mut PgConnection,
        new: &NewWorkflow,
    ) -> Result<Submitted, StoreError> {
        // With keys: the input sealed, its hash, the keyed identity key and the NIK's
        // last 4 computed here (the function cannot read a sealed input).
        let sealed = self.seal_input(&new.kind, &new.business_key, &new.input);
        let (input, hash, identity, last4) = match &sealed {
            Some(sealed) => (
                &sealed.input,
                Some(sha256_hex(&canonical(&new.input).to_string())),
                self.identity_of(&new.kind, &new.input),
                nik_last4(&new.kind, &new.input),
            ),
            None => (&new.input, None, None, None),
        };
        let row: Result<(Uuid, bool), sqlx::Error> = sqlx::query_as(
            "SELECT workflow_id, created FROM finflow_submit_workflow($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11)",
        )
        .bind(&new.kind)
        .bind(&new.business_key)
        .bind(input)
        .bind(&new.definition_name)
        .bind(new.definition_version)
        .bind(&new.state)
        .bind(&new.context)
        .bind(hash)
        .bind(identity)
        .bind(sealed.as_ref().map(|s| s.data_key.as_str()))
        .bind(last4)
        .fetch_one(conn)
        .await;
        match row {
            Ok((id, created)) => Ok(Submitted { id, created }),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(CONFLICT_SQLSTATE) => {
                Err(conflict(new))
            }
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some(ONBOARDING_IN_PROGRESS_SQLSTATE) =>
            {
                let held = db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|pg| held_from_detail(pg.detail()));
                Err(held.unwrap_or_else(|| StoreError::Database(sqlx::Error::Database(db))))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// SQLite: the existing workflow of the key, else the held check, else the insert; all in
/// the caller's write transaction, which serialises them against other submits.
async fn submit_sqlite(
    store: &Store,
    conn: &mut SqliteConnection,
    new: &NewWorkflow,
) -> Result<Submitted, StoreError> {
    let input = canonical(&new.input).to_string();
    let hash = sha256_hex(&input);
    if let Some(existing) = existing_sqlite(conn, new, &hash).await? {
        return Ok(existing);
    }
    let identity = store.identity_of(&new.kind, &new.input);
    let sealed = store.seal_input(&new.kind, &new.business_key, &new.input);
    let (input, data_key) = match sealed {
        Some(sealed) => (sealed.input.to_string(), Some(sealed.data_key)),
        None => (input, None),
    };
    if let Some(identity) = &identity
        && let Some((workflow_id, business_key)) =
            holder_sqlite(conn, identity, &new.business_key).await?
    {
        return Err(StoreError::OnboardingInProgress {
            business_key,
            workflow_id,
        });
    }
    let now = Utc::now();
    let id = Uuid::new_v4();
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO workflows (id, kind, business_key, definition_name, \
         definition_version, status, state, context, input, input_hash, identity_key, \
         next_run_at, created_at, updated_at, data_key, nik_last4) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11, $11, $11, $12, $13) \
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
    .bind(identity)
    .bind(to_sqlite(now))
    .bind(data_key)
    .bind(nik_last4(&new.kind, &new.input))
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(Submitted { id, created: true });
    }
    // Only in a transaction the caller began without the write lock: another submit of the
    // key committed between the read and the insert.
    existing_sqlite(conn, new, &hash)
        .await?
        .ok_or_else(|| crate::error::decode_error("the conflicting workflow disappeared"))
}

/// The workflow already stored under the key: `created: false` with the same input (same
/// hash of the canonical JSON), a conflict with another.
async fn existing_sqlite(
    conn: &mut SqliteConnection,
    new: &NewWorkflow,
    hash: &str,
) -> Result<Option<Submitted>, StoreError> {
    let existing: Option<(String, String)> = sqlx::query_as(
        "SELECT id, input_hash FROM workflows WHERE kind = $1 AND business_key = $2",
    )
    .bind(&new.kind)
    .bind(&new.business_key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, existing_hash)) = existing else {
        return Ok(None);
    };
    if existing_hash != hash {
        return Err(conflict(new));
    }
    Ok(Some(Submitted {
        id: uuid_from_sqlite(&id)?,
        created: false,
    }))
}

/// The holder named in the DETAIL of `finflow_submit`'s FF423 (written by
/// migrations/postgres/0005): `workflow <uuid> holds this borrower under business key <key>`,
/// the key verbatim to the end.
fn held_from_detail(detail: Option<&str>) -> Option<StoreError> {
    let rest = detail?.strip_prefix("workflow ")?;
    let (id, business_key) = rest.split_once(" holds this borrower under business key ")?;
    Some(StoreError::OnboardingInProgress {
        business_key: business_key.to_owned(),
        workflow_id: Uuid::parse_str(id).ok()?,
    })
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

    #[test]
    fn the_holder_is_read_back_from_the_sql_functions_detail() {
        let id = Uuid::new_v4();
        let detail = format!("workflow {id} holds this borrower under business key budi \"2\" x");
        match held_from_detail(Some(&detail)) {
            Some(StoreError::OnboardingInProgress {
                business_key,
                workflow_id,
            }) => {
                assert_eq!(business_key, "budi \"2\" x");
                assert_eq!(workflow_id, id);
            }
            other => panic!("{other:?}"),
        }
        assert!(held_from_detail(None).is_none());
        assert!(held_from_detail(Some("workflow nonsense")).is_none());
    }
}
