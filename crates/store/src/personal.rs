//! Personal data at rest (migration 0014): sealed with a key of the workflow's own,
//! correlated by keyed hashes, erased by destroying keys.
//!
//! With keys configured ([`Store::with_keys`]):
//!
//! - **Inputs** are stored sealed (`{"$sealed": "xc1:…"}`, XChaCha20-Poly1305, bound to the
//!   workflow's kind and business key) under a data key of the workflow's own, kept wrapped
//!   by the active key-encryption key in `workflows.data_key`. [`Store::input`] opens one.
//! - **Callback payloads** are sealed the same way under a data key of their own, which
//!   travels with the payload (`{"$key": "<wrapped>", "$data": {"$sealed": …}}`): a callback
//!   may arrive before any workflow it belongs to. [`Store::open_payload`] opens one.
//! - **NIKs used to match** (a borrower's identity key, a callback's `identity_number`, a
//!   wait on it) are stored as keyed hashes (HMAC-SHA256, [`privacy::KeyRing::keyed_hash`]):
//!   matching works on equal hashes and the tables reveal nothing.
//!
//! A store without keys stores everything plain (the `finflow` commands that write refuse
//! to start without keys; tests and embedders may); reads handle both forms, so a database
//! moves to sealed rows in batches ([`Store::seal_plain`]) while the fleet runs, and a
//! worker seals a plain input as its workflow starts ([`Store::seal_if_plain`]).
//!
//! Erasure ([`Store::purge`], [`Store::erase`]) destroys a workflow's data key and clears
//! what the input held (`{"$erased": true}`), its hashes and its callbacks' payloads, and
//! stamps `erased_at`. The money record stays: the journal, the facts (ids, amounts,
//! statuses), the events and the operators' commands.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use privacy::{KeyRing, WrappedKey};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{At, Columns, Dialect, Doc, FactId, Id, Texts, each_backend};
use crate::error::StoreError;
use crate::identity::{nik, sha256_hex};
use crate::workflow::Workflow;

/// The key of the object an erased input or payload becomes: `{"$erased": true}`.
pub const ERASED_INPUT: &str = "$erased";

/// A Finfra callback whose payload is stored plain.
fn plain_payload(d: Dialect) -> String {
    format!(
        "source IN ('status', 'virtual_account', 'invoice', 'didit') AND NOT {} AND NOT {}",
        d.has_key("payload", "$key"),
        d.has_key("payload", ERASED_INPUT)
    )
}

/// What [`Store::seal_plain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealProgress {
    /// Rows sealed by this call.
    pub sealed: u64,
    /// Plain rows left (workflows' inputs and callbacks' payloads).
    pub left: u64,
}

/// What [`Store::erase`] erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The workflows whose personal data is gone (the onboarding and the borrower's
    /// finished loans).
    pub workflows: Vec<Uuid>,
}

/// One reading of a workflow's personal data in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reveal {
    pub revealed_by: String,
    pub reason: String,
    /// `cli` or `console`.
    pub via: String,
    pub revealed_at: DateTime<Utc>,
}

/// A sealed input, for the insert.
pub(crate) struct SealedInput {
    pub input: Value,
    pub data_key: String,
}

fn input_aad(kind: &str, business_key: &str) -> Vec<u8> {
    format!("finflow.workflows.input\0{kind}\0{business_key}").into_bytes()
}

fn payload_aad(source: &str, event_id: &str) -> Vec<u8> {
    format!("finflow.callback_inbox.payload\0{source}\0{event_id}").into_bytes()
}

/// The masked form the console searches by.
pub(crate) fn nik_last4(kind: &str, input: &Value) -> Option<String> {
    let nik = nik(kind, input)?;
    let start = nik.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    Some(nik[start..].to_owned())
}

fn erased() -> Value {
    json!({ ERASED_INPUT: true })
}

impl Store {
    /// This store with keys: personal data is sealed from now on, and sealed rows can be
    /// read.
    #[must_use]
    pub fn with_keys(mut self, keys: Arc<KeyRing>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The keys, when configured.
    #[must_use]
    pub fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_deref()
    }

    fn require_keys(&self) -> Result<&KeyRing, StoreError> {
        self.keys().ok_or_else(|| {
            StoreError::Privacy(privacy::PrivacyError::Config(
                "this row is sealed and no [privacy] keys are configured".into(),
            ))
        })
    }

    /// The submitted input of `workflow`, opened when sealed.
    ///
    /// # Errors
    /// [`StoreError::Erased`] after erasure; [`StoreError::Privacy`] when no key opens it.
    pub fn input(&self, workflow: &Workflow) -> Result<Value, StoreError> {
        if workflow.erased_at.is_some() {
            return Err(StoreError::Erased(workflow.id));
        }
        match workflow.data_key.as_deref() {
            None => Ok(workflow.input.clone()),
            Some(wrapped) => {
                let key = self
                    .require_keys()?
                    .unwrap(&wrapped.parse::<WrappedKey>()?)?;
                Ok(key.open_json(
                    &workflow.input,
                    &input_aad(&workflow.kind, &workflow.business_key),
                )?)
            }
        }
    }

    /// The input of `workflow` in the clear for a person, journaled first (who, why, how):
    /// nothing is shown without its line in `personal_data_reveals`.
    ///
    /// # Errors
    /// [`StoreError::Refused`] without a reason; as [`Store::input`]; a database failure.
    pub async fn reveal(
        &self,
        workflow: &Workflow,
        by: &str,
        reason: &str,
        via: &str,
    ) -> Result<Value, StoreError> {
        if reason.trim().is_empty() || by.trim().is_empty() {
            return Err(StoreError::Refused(
                "revealing personal data needs who and why (a non-empty reason)".into(),
            ));
        }
        let input = self.input(workflow)?;
        const SQL: &str = "INSERT INTO personal_data_reveals \
             (workflow_id, revealed_by, reason, via, revealed_at) VALUES ($1, $2, $3, $4, $5)";
        let now = Utc::now();
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(SQL)
                .bind(Id(workflow.id))
                .bind(by)
                .bind(reason)
                .bind(via)
                .bind(At(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        tracing::info!(workflow.id = %workflow.id, revealed_by = by, via, "personal data revealed");
        Ok(input)
    }

    /// Who read `workflow_id`'s personal data in the clear, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn reveals(&self, workflow_id: Uuid) -> Result<Vec<Reveal>, StoreError> {
        const SQL: &str = "SELECT revealed_by, reason, via, revealed_at FROM personal_data_reveals \
             WHERE workflow_id = $1 ORDER BY id";
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL)
                .bind(Id(workflow_id))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Reveal {
                        revealed_by: row.read("revealed_by")?,
                        reason: row.read("reason")?,
                        via: row.read("via")?,
                        revealed_at: row.at("revealed_at")?,
                    })
                })
                .collect()
        })
    }

    /// Checks at start that the keys fit the database: with keys, the newest sealed data key
    /// opens (its key is configured, with the right bytes); without keys, the database holds
    /// no sealed data (a worker without keys would write new personal data plain beside
    /// it).
    ///
    /// # Errors
    /// [`StoreError::Privacy`] saying which; a database failure.
    pub async fn check_keys(&self) -> Result<(), StoreError> {
        const NEWEST: &str = "SELECT data_key FROM workflows WHERE data_key IS NOT NULL \
             AND data_key <> 'erased' ORDER BY created_at DESC LIMIT 1";
        let newest: Option<String> = each_backend!(&self.backend, |pool, d| {
            sqlx::query_scalar(NEWEST).fetch_optional(pool).await?
        });
        match (self.keys(), newest) {
            (_, None) => Ok(()),
            (Some(keys), Some(wrapped)) => {
                keys.unwrap(&wrapped.parse::<WrappedKey>()?)?;
                Ok(())
            }
            (None, Some(_)) => Err(StoreError::Privacy(privacy::PrivacyError::Config(
                "this database holds sealed personal data and no [privacy] keys are configured: \
                 configure the keys it was sealed with (a worker without them would write new \
                 personal data plain)"
                    .into(),
            ))),
        }
    }

    /// The input to store for a new workflow, sealed under a new data key; `None` without
    /// keys.
    pub(crate) fn seal_input(
        &self,
        kind: &str,
        business_key: &str,
        input: &Value,
    ) -> Option<SealedInput> {
        let keys = self.keys()?;
        let (key, wrapped) = keys.new_data_key();
        Some(SealedInput {
            input: key.seal_json(input, &input_aad(kind, business_key)),
            data_key: wrapped.to_string(),
        })
    }

    /// The identity key of an input: a keyed hash of the NIK with keys, else its SHA-256
    /// (`crate::identity`).
    pub(crate) fn identity_of(&self, kind: &str, input: &Value) -> Option<String> {
        let nik = nik(kind, input)?;
        Some(match self.keys() {
            Some(keys) => keys.keyed_hash("nik", nik),
            None => sha256_hex(nik),
        })
    }

    /// How a NIK a callback carries (or a wait waits on) is stored: a keyed hash with keys,
    /// as it is without.
    pub(crate) fn nik_key(&self, nik: &str) -> String {
        match self.keys() {
            Some(keys) => keys.keyed_hash("nik", nik),
            None => nik.to_owned(),
        }
    }

    /// A callback's payload as stored.
    pub(crate) fn seal_payload(&self, source: &str, event_id: &str, payload: &Value) -> Value {
        let Some(keys) = self.keys() else {
            return payload.clone();
        };
        let (key, wrapped) = keys.new_data_key();
        json!({
            "$key": wrapped.to_string(),
            "$data": key.seal_json(payload, &payload_aad(source, event_id)),
        })
    }

    /// A stored callback payload, opened when sealed.
    ///
    /// # Errors
    /// [`StoreError::Privacy`] when no key opens it.
    pub fn open_payload(
        &self,
        source: &str,
        event_id: &str,
        payload: &Value,
    ) -> Result<Value, StoreError> {
        let (Some(Value::String(wrapped)), Some(data)) =
            (payload.get("$key"), payload.get("$data"))
        else {
            return Ok(payload.clone());
        };
        let key = self
            .require_keys()?
            .unwrap(&wrapped.parse::<WrappedKey>()?)?;
        Ok(key.open_json(data, &payload_aad(source, event_id))?)
    }

    /// Seals up to `batch` plain inputs and `batch` plain callback payloads (written before
    /// keys were configured, or submitted through SQL), with their identity keys and NIKs
    /// rehashed; resumable (each row commits alone) and safe beside running workers (a row
    /// is only changed while it is still plain).
    ///
    /// # Errors
    /// [`StoreError::Privacy`] without keys; a database failure.
    pub async fn seal_plain(&self, batch: i64) -> Result<SealProgress, StoreError> {
        self.require_keys()?;
        let mut sealed = 0;
        for (id, kind, business_key, input) in self.plain_inputs(batch).await? {
            sealed += self
                .seal_input_row(id, &kind, &business_key, &input)
                .await?;
        }
        for (id, source, event_id, payload, nik) in self.plain_payloads(batch).await? {
            let stored = self.seal_payload(&source, &event_id, &payload);
            let nik = nik.as_deref().map(|n| self.nik_key(n));
            sealed += self
                .replace_payload(id, &stored, nik.as_deref(), &payload)
                .await?;
        }
        let left = self.count_plain().await?;
        Ok(SealProgress { sealed, left })
    }

    /// Seals the input of workflow `id` if it is still plain (submitted through SQL's
    /// `finflow_submit`, or before keys were configured), with its identity key rehashed:
    /// a worker does it as the workflow starts, so that its first step already reads and
    /// matches the sealed form. Returns whether it sealed (false without keys, or when it
    /// was sealed or erased already).
    ///
    /// # Errors
    /// A database failure.
    pub async fn seal_if_plain(&self, workflow: &Workflow) -> Result<bool, StoreError> {
        if self.keys().is_none() || workflow.data_key.is_some() || workflow.erased_at.is_some() {
            return Ok(false);
        }
        let sealed = self
            .seal_input_row(
                workflow.id,
                &workflow.kind,
                &workflow.business_key,
                &workflow.input,
            )
            .await?;
        Ok(sealed > 0)
    }

    /// Seals one plain input (and rehashes its identity key) while it is still plain.
    async fn seal_input_row(
        &self,
        id: Uuid,
        kind: &str,
        business_key: &str,
        input: &Value,
    ) -> Result<u64, StoreError> {
        let Some(seal) = self.seal_input(kind, business_key, input) else {
            return Ok(0);
        };
        let identity = self.identity_of(kind, input);
        let last4 = nik_last4(kind, input);
        const SQL: &str = "UPDATE workflows SET input = $2, data_key = $3, \
             identity_key = coalesce($4, identity_key), nik_last4 = coalesce($5, nik_last4) \
             WHERE id = $1 AND data_key IS NULL AND erased_at IS NULL";
        Ok(each_backend!(&self.backend, |pool, d| {
            sqlx::query(SQL)
                .bind(Id(id))
                .bind(Doc(&seal.input))
                .bind(&seal.data_key)
                .bind(&identity)
                .bind(&last4)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Rewraps, under the active key, up to `batch` data keys wrapped by another one
    /// (workflows' and callbacks'); the data is not touched. Returns how many.
    ///
    /// # Errors
    /// [`StoreError::Privacy`] without keys, or for a data key no configured key opens; a
    /// database failure.
    pub async fn rotate_keys(&self, batch: i64) -> Result<u64, StoreError> {
        let keys = self.require_keys()?;
        let active = format!("{}:%", keys.active());
        let mut done = 0;
        const SQL: &str = "SELECT id, data_key FROM workflows WHERE data_key IS NOT NULL \
             AND data_key <> 'erased' AND data_key NOT LIKE $1 LIMIT $2";
        let rows: Vec<(Uuid, String)> = each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL)
                .bind(&active)
                .bind(batch)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| Ok((row.id("id")?, row.read("data_key")?)))
                .collect::<Result<_, StoreError>>()?
        });
        for (id, wrapped) in rows {
            let Some(new) = keys.rewrap(&wrapped.parse::<WrappedKey>()?)? else {
                continue;
            };
            const UPDATE: &str =
                "UPDATE workflows SET data_key = $2 WHERE id = $1 AND data_key = $3";
            done += each_backend!(&self.backend, |pool, d| {
                sqlx::query(UPDATE)
                    .bind(Id(id))
                    .bind(new.to_string())
                    .bind(&wrapped)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        for (id, payload, nik) in self.payloads_to_rewrap(&active, batch).await? {
            let Some(Value::String(wrapped)) = payload.get("$key") else {
                continue;
            };
            if let Some(new) = keys.rewrap(&wrapped.parse::<WrappedKey>()?)? {
                let mut stored = payload.clone();
                stored["$key"] = Value::String(new.to_string());
                done += self
                    .replace_payload(id, &stored, nik.as_deref(), &payload)
                    .await?;
            }
        }
        Ok(done)
    }

    async fn plain_inputs(
        &self,
        batch: i64,
    ) -> Result<Vec<(Uuid, String, String, Value)>, StoreError> {
        const SQL: &str = "SELECT id, kind, business_key, input FROM workflows \
             WHERE data_key IS NULL AND erased_at IS NULL ORDER BY created_at LIMIT $1";
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL).bind(batch).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.id("id")?,
                        row.read("kind")?,
                        row.read("business_key")?,
                        row.doc("input")?,
                    ))
                })
                .collect()
        })
    }

    /// Finfra's callbacks stored plain: `(id, source, event_id, payload, identity_number)`.
    async fn plain_payloads(
        &self,
        batch: i64,
    ) -> Result<Vec<(i64, String, String, Value, Option<String>)>, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, source, event_id, payload, identity_number FROM callback_inbox \
                 WHERE {} ORDER BY id LIMIT $1",
                plain_payload(d)
            )))
            .bind(batch)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.read("id")?,
                        row.read("source")?,
                        row.read("event_id")?,
                        row.doc("payload")?,
                        row.read("identity_number")?,
                    ))
                })
                .collect()
        })
    }

    /// Sealed callbacks whose data key is not under the active key.
    async fn payloads_to_rewrap(
        &self,
        active: &str,
        batch: i64,
    ) -> Result<Vec<(i64, Value, Option<String>)>, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, payload, identity_number FROM callback_inbox \
                 WHERE {} AND {} NOT LIKE $1 ORDER BY id LIMIT $2",
                d.has_key("payload", "$key"),
                d.text_at("payload", "$key")
            )))
            .bind(active)
            .bind(batch)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.read("id")?,
                        row.doc("payload")?,
                        row.read("identity_number")?,
                    ))
                })
                .collect()
        })
    }

    /// Replaces a callback's payload (and its NIK key) if it is still `was`.
    async fn replace_payload(
        &self,
        id: i64,
        stored: &Value,
        nik: Option<&str>,
        was: &Value,
    ) -> Result<u64, StoreError> {
        Ok(each_backend!(&self.backend, |pool, d| {
            sqlx::query(
                "UPDATE callback_inbox SET payload = $2, \
                 identity_number = coalesce($3, identity_number) WHERE id = $1 AND payload = $4",
            )
            .bind(id)
            .bind(Doc(stored))
            .bind(nik)
            .bind(Doc(was))
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Plain rows left: inputs and Finfra callbacks' payloads.
    async fn count_plain(&self) -> Result<u64, StoreError> {
        let n: i64 = each_backend!(&self.backend, |pool, d| {
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT (SELECT count(*) FROM workflows WHERE data_key IS NULL AND erased_at IS NULL) \
                 + (SELECT count(*) FROM callback_inbox WHERE {})",
                plain_payload(d)
            )))
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Ids of finished workflows not yet erased, finished before `before`; or (with `key`)
    /// of the onboarding under that business key.
    async fn ids(
        &self,
        before: Option<DateTime<Utc>>,
        key: Option<&str>,
    ) -> Result<Vec<Uuid>, StoreError> {
        const SQL: &str = "SELECT id FROM workflows WHERE CASE WHEN $2 IS NULL \
             THEN status IN ('completed', 'failed', 'cancelled') AND erased_at IS NULL AND finished_at < $1 \
             ELSE kind = 'onboard-borrower' AND business_key = $2 END";
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(SQL)
                .bind(before.map(At))
                .bind(key)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.id("id")).collect()
        })
    }

    /// Erases the personal data of every workflow finished before `before`; returns how
    /// many.
    ///
    /// # Errors
    /// A database failure.
    pub async fn purge(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let ids = self.ids(Some(before), None).await?;
        self.erase_ids(&ids).await?;
        Ok(ids.len() as u64)
    }

    /// Erases the personal data of the borrower onboarded under `business_key`: the
    /// onboarding and the borrower's loans, once all of them have finished.
    ///
    /// # Errors
    /// [`StoreError::Refused`] when no onboarding has this key, or while the onboarding or
    /// a loan of the borrower is still open (with which); a database failure.
    pub async fn erase(&self, business_key: &str) -> Result<Erasure, StoreError> {
        let onboarding = self.ids(None, Some(business_key)).await?;
        let Some(&onboarding) = onboarding.first() else {
            return Err(StoreError::Refused(format!(
                "no onboard-borrower workflow has business key {business_key:?}"
            )));
        };
        let workflow = self
            .get(onboarding)
            .await?
            .ok_or(StoreError::NotFound(onboarding))?;
        if !workflow.status.is_terminal() {
            return Err(StoreError::Refused(format!(
                "the onboarding {business_key:?} is still {}: cancel it or let it finish first",
                workflow.status
            )));
        }
        let user_id = workflow.facts.get("user_id").and_then(Value::as_str);
        let loans = self.borrower_loans(business_key, user_id).await?;
        if let Some((key, status)) = loans
            .iter()
            .find_map(|(_, key, status, finished)| (!finished).then_some((key, status)))
        {
            return Err(StoreError::Refused(format!(
                "the borrower's loan {key:?} is still {status}: its personal data is kept until it finishes (a lender must be able to collect and to answer for it)"
            )));
        }
        let mut ids = vec![onboarding];
        ids.extend(loans.into_iter().map(|(id, ..)| id));
        self.erase_ids(&ids).await?;
        Ok(Erasure { workflows: ids })
    }

    async fn borrower_loans(
        &self,
        onboarding_key: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<(Uuid, String, String, bool)>, StoreError> {
        let rows: Vec<(Uuid, String, String)> = each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, business_key, status FROM workflows \
                 WHERE kind = 'originate-loan' AND ({} = $1 \
                 OR ($2 IS NOT NULL AND {} = $2))",
                d.text_at("facts", "onboarding_business_key"),
                d.fact_id(FactId::UserId)
            )))
            .bind(onboarding_key)
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.id("id")?,
                        row.read("business_key")?,
                        row.read("status")?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?
        });
        Ok(rows
            .into_iter()
            .map(|(id, key, status)| {
                let finished = matches!(status.as_str(), "completed" | "failed" | "cancelled");
                (id, key, status, finished)
            })
            .collect())
    }

    /// Destroys the data keys of `ids` and clears their personal data and that of the
    /// callbacks matched to them, in one transaction.
    async fn erase_ids(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let erased = erased();
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE workflows SET input = $2, data_key = 'erased', identity_key = NULL, \
                 nik_last4 = NULL, erased_at = $3 WHERE id IN (SELECT value FROM {})",
                d.ids_of("$1")
            )))
            .bind(Texts(&ids))
            .bind(Doc(&erased))
            .bind(At(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE callback_inbox SET payload = $2, identity_number = NULL \
                 WHERE matched_workflow_id IN (SELECT value FROM {})",
                d.ids_of("$1")
            )))
            .bind(Texts(&ids))
            .bind(Doc(&erased))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
