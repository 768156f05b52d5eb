//! The callback inbox: every callback Finfra delivers is stored once per `(source, event_id)`,
//! matched to the workflow waiting for it (event title + any correlation key), and that
//! workflow is woken, all in the transaction that stores it, before the receiver answers
//! `2xx`. An event nobody waits for yet is kept; [`Store::commit_step`] matches it when a
//! workflow starts waiting for it.
//!
//! The race between "a callback arrives" and "a workflow starts waiting" is closed on
//! PostgreSQL by a transaction-scoped advisory lock per correlation key, taken by both sides
//! before they look at each other's table, so whichever commits second sees the other's row.
//! SQLite has one writer at a time, which closes it already.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::dialect::{Columns, Conn, Id, Ints, each_backend, each_conn};
use crate::error::{StoreError, decode_error};
use crate::group::{SqliteWrite, SqliteWritten};
use crate::time::to_sqlite;
use crate::workflow::uuid_from_sqlite;
use crate::{Backend, Store};

macro_rules! inbox_columns {
    () => {
        "id, source, event_id, title, user_id, identity_number, kyc_id, loan_unique_id, \
         external_id, payload, received_at, matched_workflow_id, matched_at, processed_at"
    };
}

macro_rules! match_waits_branch {
    ($key:literal) => {
        concat!(
            "SELECT i.id FROM workflow_waits w JOIN callback_inbox i ON i.",
            $key,
            " = w.key_value AND i.title IN (SELECT value FROM json_each(w.events)) \
             WHERE w.workflow_id = $1 AND w.key_name = '",
            $key,
            "' AND i.matched_workflow_id IS NULL AND i.processed_at IS NULL"
        )
    };
}

/// Unmatched, unprocessed inbox events matching workflow `$1`'s waits, one indexed branch
/// per key column (an OR across columns would defeat the per-column indexes).
macro_rules! match_waits_candidates {
    () => {
        concat!(
            match_waits_branch!("identity_number"),
            " UNION ALL ",
            match_waits_branch!("user_id"),
            " UNION ALL ",
            match_waits_branch!("kyc_id"),
            " UNION ALL ",
            match_waits_branch!("loan_unique_id"),
            " UNION ALL ",
            match_waits_branch!("external_id")
        )
    };
}

/// The workflow (still running) that waits for this event under any of its keys; the oldest
/// wait wins when several do.
macro_rules! waiting_workflow_sql {
    () => {
        "SELECT w.workflow_id FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id \
         WHERE $1 IN (SELECT value FROM json_each(w.events)) \
         AND f.status NOT IN ('completed', 'failed', 'cancelled') AND ( \
            (w.key_name = 'identity_number' AND w.key_value = $2) \
         OR (w.key_name = 'user_id' AND w.key_value = $3) \
         OR (w.key_name = 'kyc_id' AND w.key_value = $4) \
         OR (w.key_name = 'loan_unique_id' AND w.key_value = $5) \
         OR (w.key_name = 'external_id' AND w.key_value = $6)) \
         ORDER BY w.created_at, w.workflow_id LIMIT 1"
    };
}

/// Which of Finfra's four callback paths delivered an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `POST /api/core/ftm/users/{callbackTitle}/status`
    Status,
    /// `POST /api/core/payment-gateway/virtual-account/status`
    VirtualAccount,
    /// `POST /api/core/payment-gateway/invoices/status`
    Invoice,
    /// `POST /api/core/users/didit/session/callback`
    Didit,
    /// Not from Finfra: another workflow finished (title `workflow_finished`, key
    /// `external_id` = `<kind>/<business key>`); see [`crate::Announcement`].
    Internal,
    /// Not from Finfra: a person's command to one workflow (title `cancel` or `resolve`);
    /// see [`Store::record_command`].
    Operator,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::VirtualAccount => "virtual_account",
            Self::Invoice => "invoice",
            Self::Didit => "didit",
            Self::Internal => "internal",
            Self::Operator => "operator",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Status,
            Self::VirtualAccount,
            Self::Invoice,
            Self::Didit,
            Self::Internal,
            Self::Operator,
        ]
        .into_iter()
        .find(|source| source.as_str() == s)
        .ok_or_else(|| decode_error(format!("unknown callback source {s:?}")))
    }
}

/// A correlation key: the `callback_inbox` column a wait matches on (the one type from the
/// callback body to the inbox and the waits, `finfra_api`'s).
pub use finfra_api::callback::CorrelationKey;

/// The correlation keys a callback carries (each may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationKeys {
    pub user_id: Option<String>,
    /// NIK: PII. Stored as a column because `user_created` carries nothing else to match on;
    /// with keys, as its keyed hash (`crate::personal`).
    pub identity_number: Option<String>,
    pub kyc_id: Option<String>,
    pub loan_unique_id: Option<String>,
    pub external_id: Option<String>,
}

impl CorrelationKeys {
    /// The keys present, as (name, value).
    pub fn pairs(&self) -> Vec<(CorrelationKey, &str)> {
        [
            (CorrelationKey::IdentityNumber, &self.identity_number),
            (CorrelationKey::UserId, &self.user_id),
            (CorrelationKey::KycId, &self.kyc_id),
            (CorrelationKey::LoanUniqueId, &self.loan_unique_id),
            (CorrelationKey::ExternalId, &self.external_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// A callback as the receiver parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEvent {
    pub source: Source,
    /// Finfra's event id (status callbacks) or payment id: unique per source.
    pub event_id: String,
    /// `callback_title` (`user_created`, `loan_signed`, ...) or the receiver's name for a
    /// payment event; waits match on it.
    pub title: String,
    pub keys: CorrelationKeys,
    /// The body as received.
    pub payload: Value,
}

/// What [`Store::record_callback`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The inbox row (the earlier one for a duplicate).
    pub inbox_id: i64,
    /// The event was already stored; nothing was done.
    pub duplicate: bool,
    /// The waiting workflow it was matched to and woke.
    pub woke: Option<Uuid>,
}

/// A `callback_inbox` row.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub id: i64,
    pub source: Source,
    pub event_id: String,
    pub title: String,
    pub keys: CorrelationKeys,
    pub payload: Value,
    pub received_at: DateTime<Utc>,
    pub matched_workflow_id: Option<Uuid>,
    pub matched_at: Option<DateTime<Utc>>,
    pub processed_at: Option<DateTime<Utc>>,
}

impl InboxRow {
    /// Rows as PostgreSQL's `jsonb_agg(to_jsonb(callback_inbox))` gives them.
    pub(crate) fn from_json_array(rows: Value) -> Result<Vec<Self>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Json {
            id: i64,
            source: String,
            event_id: String,
            title: String,
            user_id: Option<String>,
            identity_number: Option<String>,
            kyc_id: Option<String>,
            loan_unique_id: Option<String>,
            external_id: Option<String>,
            payload: Value,
            received_at: DateTime<Utc>,
            matched_workflow_id: Option<Uuid>,
            matched_at: Option<DateTime<Utc>>,
            processed_at: Option<DateTime<Utc>>,
        }
        let rows: Vec<Json> =
            serde_json::from_value(rows).map_err(|e| decode_error(format!("inbox rows: {e}")))?;
        rows.into_iter()
            .map(|r| {
                Ok(Self {
                    id: r.id,
                    source: r.source.parse()?,
                    event_id: r.event_id,
                    title: r.title,
                    keys: CorrelationKeys {
                        user_id: r.user_id,
                        identity_number: r.identity_number,
                        kyc_id: r.kyc_id,
                        loan_unique_id: r.loan_unique_id,
                        external_id: r.external_id,
                    },
                    payload: r.payload,
                    received_at: r.received_at,
                    matched_workflow_id: r.matched_workflow_id,
                    matched_at: r.matched_at,
                    processed_at: r.processed_at,
                })
            })
            .collect()
    }

    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.read("id")?,
            source: row.read::<String>("source")?.parse()?,
            event_id: row.read("event_id")?,
            title: row.read("title")?,
            keys: CorrelationKeys {
                user_id: row.read("user_id")?,
                identity_number: row.read("identity_number")?,
                kyc_id: row.read("kyc_id")?,
                loan_unique_id: row.read("loan_unique_id")?,
                external_id: row.read("external_id")?,
            },
            payload: row.doc("payload")?,
            received_at: row.at("received_at")?,
            matched_workflow_id: row.id_opt("matched_workflow_id")?,
            matched_at: row.at_opt("matched_at")?,
            processed_at: row.at_opt("processed_at")?,
        })
    }
}

/// The transaction-scoped advisory lock ids (PostgreSQL) of correlation keys, sorted and
/// without duplicates. Both `finflow_record_callbacks` and `finflow_commit_steps` (for their
/// new waits) take them, in this order, before touching the other's table and before locking a
/// workflow row: they never deadlock, and never miss each other's rows.
pub(crate) fn lock_ids(keys: &[(CorrelationKey, &str)]) -> Vec<i64> {
    let mut ids: Vec<i64> = keys
        .iter()
        .map(|(name, value)| {
            let digest = Sha256::new()
                .chain_update(b"finflow-correlation:")
                .chain_update(name.as_str())
                .chain_update(b"=")
                .chain_update(value)
                .finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            i64::from_be_bytes(first)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// SQLite version of [`match_waits_pg`].
///
/// # Errors
/// [`StoreError::Database`] on a database failure.
pub(crate) async fn match_waits_sqlite(
    conn: &mut SqliteConnection,
    workflow_id: Uuid,
    has_waits: bool,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let id = workflow_id.to_string();
    if has_waits {
        sqlx::query(concat!(
            "UPDATE callback_inbox SET matched_workflow_id = $1, matched_at = $2 WHERE id IN (",
            match_waits_candidates!(),
            ")"
        ))
        .bind(&id)
        .bind(to_sqlite(now))
        .execute(&mut *conn)
        .await?;
    }
    let ids = sqlx::query_scalar(
        "SELECT id FROM callback_inbox WHERE matched_workflow_id = $1 AND processed_at IS NULL \
         ORDER BY id",
    )
    .bind(&id)
    .fetch_all(conn)
    .await?;
    Ok(ids)
}

/// Marks `ids` processed, if matched to `workflow_id` and not yet processed, inside the
/// caller's transaction (if any); returns how many changed.
///
/// # Errors
/// [`StoreError::Database`] on a database failure.
pub(crate) async fn mark_processed_on(
    conn: Conn<'_>,
    workflow_id: Uuid,
    ids: &[i64],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    each_conn!(conn, |c, d| {
        let sql = format!(
            "UPDATE callback_inbox SET processed_at = {} \
             WHERE id IN (SELECT value FROM {}) \
             AND matched_workflow_id = $1 AND processed_at IS NULL",
            d.now(),
            d.ints_of("$2")
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(workflow_id))
            .bind(Ints(ids))
            .execute(c)
            .await?;
        Ok(done.rows_affected())
    })
}

impl Store {
    /// Stores a callback and wakes the workflow waiting for it, in one transaction: after
    /// `Ok` the receiver may answer `2xx`. A second delivery of the same `(source, event_id)`
    /// changes nothing and returns `duplicate: true`. The event matches a wait with the same
    /// title and any one of its correlation keys; the matched workflow becomes due now (its
    /// `next_run_at` moves to now, never later) and gets a wake-up.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure; then nothing was stored.
    #[tracing::instrument(level = "debug", skip_all, fields(callback.source = %event.source, callback.title = %event.title))]
    pub async fn record_callback(&self, event: &InboxEvent) -> Result<Recorded, StoreError> {
        let recorded = self.record_callback_tx(event).await?;
        if let Some(id) = recorded.woke {
            self.hand_over(id);
        }
        Ok(recorded)
    }

    async fn record_callback_tx(&self, event: &InboxEvent) -> Result<Recorded, StoreError> {
        // With keys, a NIK is matched by its keyed hash and the payload is sealed
        // (`crate::personal`).
        let keys = CorrelationKeys {
            identity_number: event
                .keys
                .identity_number
                .as_deref()
                .map(|n| self.nik_key(n)),
            ..event.keys.clone()
        };
        let callback = StoredCallback {
            lock_keys: lock_ids(&keys.pairs()),
            source: event.source.as_str(),
            event_id: event.event_id.clone(),
            title: event.title.clone(),
            payload: self.seal_payload(event.source.as_str(), &event.event_id, &event.payload),
            user_id: keys.user_id,
            identity_number: keys.identity_number,
            kyc_id: keys.kyc_id,
            loan_unique_id: keys.loan_unique_id,
            external_id: keys.external_id,
        };
        // With the other callbacks handed in at about the same moment (SQLite: with its
        // other writes too), in one transaction (`crate::group`).
        match self.backend {
            Backend::Postgres(_) => self.callbacks.run(self, callback).await,
            Backend::Sqlite(_) => self
                .sqlite_writes
                .run(self, SqliteWrite::Callback(callback))
                .await
                .and_then(SqliteWritten::recorded),
        }
    }

    /// Events matched to the workflow and not yet processed, oldest first. The engine reads
    /// them after a claim (they also come with [`crate::Claimed`]) and passes every id it
    /// read, used or ignored, back in `StepCommit::processed_events`: an unprocessed event
    /// keeps the workflow due.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn pending_events(&self, workflow_id: Uuid) -> Result<Vec<InboxRow>, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let mut conn = pool.acquire().await?;
            pending_events_on(Conn::from(&mut *conn), workflow_id).await
        })
    }

    /// Marks events processed outside a step commit (operator tools); returns how many
    /// changed. Only events matched to `workflow_id` and not yet processed are touched.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn mark_processed(&self, workflow_id: Uuid, ids: &[i64]) -> Result<u64, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let mut conn = pool.acquire().await?;
            mark_processed_on(Conn::from(&mut *conn), workflow_id, ids).await
        })
    }

    /// Every inbox row for an event (source, event id), for operators and tests.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure or an undecodable row.
    pub async fn inbox_event(
        &self,
        source: Source,
        event_id: &str,
    ) -> Result<Option<InboxRow>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            inbox_columns!(),
            " FROM callback_inbox WHERE source = $1 AND event_id = $2"
        );
        each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(SQL)
                .bind(source.as_str())
                .bind(event_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(InboxRow::from_row).transpose()
        })
    }
}

/// The workflow's events matched and not yet processed, oldest first, on `conn` (inside the
/// caller's transaction, if any).
///
/// # Errors
/// [`StoreError::Database`] on a database failure or an undecodable row.
pub(crate) async fn pending_events_on(
    conn: Conn<'_>,
    workflow_id: Uuid,
) -> Result<Vec<InboxRow>, StoreError> {
    const SQL: &str = concat!(
        "SELECT ",
        inbox_columns!(),
        " FROM callback_inbox WHERE matched_workflow_id = $1 AND processed_at IS NULL \
         ORDER BY received_at, id"
    );
    each_conn!(conn, |c, d| {
        let rows = sqlx::query(SQL).bind(Id(workflow_id)).fetch_all(c).await?;
        rows.iter().map(InboxRow::from_row).collect()
    })
}

/// A callback as the store writes it (`Store::record_callback`): the keys already protected
/// (a NIK as its keyed hash) and the payload sealed, with the correlation-key locks to take.
/// On PostgreSQL it is serialized as a `finflow_callback_params` (migration 0020), field by
/// field by name, as `finflow_record_callbacks` reads its batch.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StoredCallback {
    lock_keys: Vec<i64>,
    source: &'static str,
    event_id: String,
    title: String,
    user_id: Option<String>,
    /// With keys, the NIK's keyed hash, as the inbox stores it.
    identity_number: Option<String>,
    kyc_id: Option<String>,
    loan_unique_id: Option<String>,
    external_id: Option<String>,
    payload: Value,
}

/// Stores one callback on SQLite, inside the caller's `BEGIN IMMEDIATE`: find the oldest
/// workflow waiting for it, insert it once per (source, event id) already matched to that
/// one (one row version, as `finflow_record_callbacks` does on PostgreSQL), make that
/// one due. The write lock is held from the lookup on, so no wait can begin in between.
pub(crate) async fn record_sqlite(
    conn: &mut SqliteConnection,
    c: &StoredCallback,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let waiting: Option<String> = sqlx::query_scalar(waiting_workflow_sql!())
        .bind(&c.title)
        .bind(&c.identity_number)
        .bind(&c.user_id)
        .bind(&c.kyc_id)
        .bind(&c.loan_unique_id)
        .bind(&c.external_id)
        .fetch_optional(&mut *conn)
        .await?;
    let waiting = waiting.as_deref().map(uuid_from_sqlite).transpose()?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO callback_inbox (source, event_id, title, user_id, \
         identity_number, kyc_id, loan_unique_id, external_id, payload, received_at, \
         matched_workflow_id, matched_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
    )
    .bind(c.source)
    .bind(&c.event_id)
    .bind(&c.title)
    .bind(&c.user_id)
    .bind(&c.identity_number)
    .bind(&c.kyc_id)
    .bind(&c.loan_unique_id)
    .bind(&c.external_id)
    .bind(c.payload.to_string())
    .bind(to_sqlite(now))
    .bind(waiting.map(|id| id.to_string()))
    .bind(waiting.map(|_| to_sqlite(now)))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(inbox_id) = inserted else {
        let inbox_id =
            sqlx::query_scalar("SELECT id FROM callback_inbox WHERE source = $1 AND event_id = $2")
                .bind(c.source)
                .bind(&c.event_id)
                .fetch_one(&mut *conn)
                .await?;
        return Ok(Recorded {
            inbox_id,
            duplicate: true,
            woke: None,
        });
    };
    if let Some(workflow_id) = waiting {
        sqlx::query(
            "UPDATE workflows SET next_run_at = min(coalesce(next_run_at, $2), $2), \
             updated_at = $2 WHERE id = $1",
        )
        .bind(workflow_id.to_string())
        .bind(to_sqlite(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(Recorded {
        inbox_id,
        duplicate: false,
        woke: waiting,
    })
}
