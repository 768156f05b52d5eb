//! Committing a step: the outcome of one step, in ONE transaction, or nothing. On
//! PostgreSQL that is the SQL function `finflow_commit_step` (migrations 0007, 0009), called
//! for each step of a group commit (`finflow_commit_steps`, 0016, see `crate::group`): the
//! steps a process finished at about the same moment share one round trip and one
//! transaction, each behind its own guard. On SQLite the steps of a group commit share one
//! `BEGIN IMMEDIATE` … `COMMIT` on the process's own file, each inside a savepoint.
//!
//! In order: (PostgreSQL) lock the correlation keys of the new waits (and of the
//! announcement); check that this worker still holds the workflow at the version it claimed
//! (else `LeaseLost`, nothing written) and append the journal row; replace the wait
//! registrations; mark the callbacks the step consumed as processed; for a terminal step,
//! announce its end to the workflows waiting for it, and for new waits, copy the
//! announcements they wait for (`crate::announce`); match already-received callbacks to the
//! new waits; schedule the next wake-up — now, if an unprocessed callback is waiting for the
//! workflow, else at `next_run_at`; or, when callbacks wait and the holder that releases gave
//! its lease ([`StepCommit::hold_for_events`]), keep the workflow for it, claimed again, and
//! return them (migration 0022). On PostgreSQL the check is a locking read of the workflow's
//! row (`FOR NO KEY UPDATE`), and the row is updated once, after the callbacks are known
//! (migration 0023): a kept workflow is one row version, running and due since the time it
//! became due, which changes no indexed column (a HOT update). SQLite, which writes whole
//! pages, updates the row first, as the check, and once more when it keeps or wakes it (then
//! due now). A commit that keeps the lease (inline continuation)
//! schedules no wake-up: its holder carries on, and if it dies the workflow (still due) is
//! taken by the due scan once the lease ends. Last, the step's lifecycle events
//! (`crate::events`): in the same transaction, so an event exists exactly when its step
//! committed (on PostgreSQL behind the lock that keeps ids in commit order, and announced
//! with `NOTIFY finflow_events`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::announce::{Announcement, announce_sqlite, copy_announcements_sqlite};
use crate::dialect::Conn;
use crate::error::{StoreError, decode_error};
use crate::events::{NewEvent, append_sqlite as append_events_sqlite};
use crate::group::{Item, SqliteWrite, SqliteWritten};
use crate::inbox::{
    CorrelationKey, InboxRow, lock_ids, mark_processed_on, match_waits_sqlite, pending_events_on,
};
use crate::journal::{JournalEntry, append};
use crate::reconcile::{self, Observed};
use crate::time::{delta, from_sqlite, to_sqlite, to_sqlite_opt};
use crate::tx::{SQLITE_BEGIN, SqliteSync};
use crate::workflow::Status;
use crate::{Backend, Store};

/// One thing a waiting workflow waits for: a callback with title `event` whose `key` column
/// equals `value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wait {
    pub event: String,
    pub key: CorrelationKey,
    pub value: String,
}

impl Wait {
    pub fn new(event: impl Into<String>, key: CorrelationKey, value: impl Into<String>) -> Self {
        Self {
            event: event.into(),
            key,
            value: value.into(),
        }
    }
}

/// `waits` as `workflow_waits` stores them: one row per key and value, with the titles
/// waited for under it, sorted and each once.
fn waits_by_key(waits: &[Wait]) -> BTreeMap<(CorrelationKey, &str), Vec<&str>> {
    let mut rows: BTreeMap<(CorrelationKey, &str), Vec<&str>> = BTreeMap::new();
    for wait in waits {
        rows.entry((wait.key, wait.value.as_str()))
            .or_default()
            .push(wait.event.as_str());
    }
    for events in rows.values_mut() {
        events.sort_unstable();
        events.dedup();
    }
    rows
}

/// The outcome of one step, as the engine decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCommit {
    pub workflow_id: Uuid,
    /// Must be the lease holder.
    pub worker_id: String,
    /// `Claimed::workflow.version`, or the `version` of the previous [`Committed`].
    pub expected_version: i64,
    pub status: Status,
    pub state: String,
    pub context: Value,
    /// What the workflow has established, for SQL (`workflows.facts`).
    pub facts: Value,
    pub attempt: i32,
    /// When to run next; ignored (cleared) for a terminal status. `None` with a non-terminal
    /// status means "only a callback or a person wakes it". A step its holder continues
    /// inline passes the row's own (past) value, so the update changes no indexed column
    /// (a HOT update on PostgreSQL, migration 0017).
    pub next_run_at: Option<DateTime<Utc>>,
    /// Summary for operators, e.g. `user_verified`.
    pub waiting_for: Option<String>,
    /// Replaces the workflow's wait registrations (cleared for a terminal status).
    pub waits: Vec<Wait>,
    pub deadline: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub journal: JournalEntry,
    /// Inbox ids the step consumed: every id read from `Claimed::events` /
    /// `pending_events`, used or ignored. An unprocessed matched event keeps the workflow due.
    pub processed_events: Vec<i64>,
    /// Pins `definition_version` if it is still unpinned.
    pub pin_definition_version: Option<i32>,
    /// With an unpinned version, also sets `definition_name`: a workflow submitted in SQL
    /// without a definition learns it from its input when it starts.
    pub pin_definition_name: Option<String>,
    /// `true` to give up the lease (the usual end of a step); `false` to keep it and continue
    /// inline with the returned version. A terminal status always releases.
    pub release_lease: bool,
    /// With `release_lease`, the holder's lease: when the commit finds callbacks matched to
    /// the workflow and not yet processed, it keeps the workflow for its holder for this long
    /// instead of releasing it (claimed again, as [`Store::claim`] would) and returns them in
    /// [`Committed::kept`]. `None`: released whatever waits (the workflow is made due now).
    pub hold_for_events: Option<std::time::Duration>,
    /// With a terminal status: told to the workflows waiting for this one (see
    /// `crate::internal`). Ignored otherwise.
    pub announce: Option<Announcement>,
    /// What a reconciliation step observed (findings, loans compared, nudges): written in
    /// the same transaction. Empty for other kinds.
    pub observed: Observed,
    /// The step's lifecycle events, in order (`workflow::lifecycle_events`): written with
    /// the step, tied to its journal row.
    pub events: Vec<NewEvent>,
}

/// What [`Store::commit_step`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The row's new version (for the next inline commit).
    pub version: i64,
    /// The journal row's `seq`.
    pub seq: i32,
    /// When the workflow is due now (`None`: not scheduled). Earlier than the requested
    /// `next_run_at` when callbacks are waiting for it.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Unprocessed callbacks matched to the workflow after this commit (including ones that
    /// arrived before its new wait began). Non-empty means it was made due now.
    pub pending_events: Vec<i64>,
    /// Non-empty when the commit kept the workflow for its holder (see
    /// [`StepCommit::hold_for_events`]): the callbacks waiting for it, oldest first, as a
    /// claim returns them. It is `running` again, leased to the holder, at `version`; the
    /// holder goes on with these events at once.
    pub kept: Vec<InboxRow>,
}

impl Store {
    /// Commits a step's outcome atomically; see the module docs for what it writes.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when the workflow is not held by `worker_id` at
    /// `expected_version` (taken over after the lease expired, or cancelled): nothing was
    /// written. [`StoreError::NotFound`] for an unknown id. [`StoreError::Database`] on a
    /// database failure (nothing was written).
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.id = %commit.workflow_id, worker.id = %commit.worker_id, step = %commit.journal.step))]
    pub async fn commit_step(&self, commit: &StepCommit) -> Result<Committed, StoreError> {
        // PostgreSQL commits in one call of a server function; SQLite, which has none, runs
        // the same sequence statement by statement (`write_sqlite`).
        let committed = match &self.backend {
            Backend::Postgres(pool) => commit_pg(self, pool, commit).await?,
            Backend::Sqlite(pool) => commit_sqlite(self, pool, commit).await?,
        };
        // Released and due now: events were waiting (a callback arrived during the step) and
        // its holder did not keep it for them, or it asked to run again at once. What
        // `finflow_schedule_wakeup` would announce.
        if effective(commit).release
            && committed.kept.is_empty()
            && (!committed.pending_events.is_empty()
                || committed.next_run_at.is_some_and(|at| at <= Utc::now()))
        {
            self.hand_over(commit.workflow_id);
        }
        tracing::debug!(
            workflow.id = %commit.workflow_id,
            workflow.state = %commit.state,
            workflow.status = %commit.status,
            journal.seq = committed.seq,
            "step committed"
        );
        Ok(committed)
    }
}

/// What the row update needs, normalized for a terminal status.
struct Effective<'a> {
    terminal: bool,
    release: bool,
    /// The lease to keep the workflow for when callbacks wait: only for a release.
    hold: Option<std::time::Duration>,
    next_run_at: Option<DateTime<Utc>>,
    waits: &'a [Wait],
}

fn effective(commit: &StepCommit) -> Effective<'_> {
    let terminal = commit.status.is_terminal();
    Effective {
        terminal,
        release: terminal || commit.release_lease,
        hold: commit.hold_for_events.filter(|_| commit.release_lease),
        next_run_at: if terminal { None } else { commit.next_run_at },
        waits: if terminal { &[] } else { &commit.waits },
    }
}

/// The PostgreSQL commit: one element of a call of `finflow_commit_steps` (migration 0016),
/// which commits it with `finflow_commit_step` (0007, 0009) server-side, with whatever other
/// steps the process finished meanwhile (`crate::group`): one round trip and one transaction
/// for the batch.
async fn commit_pg(
    store: &Store,
    pool: &PgPool,
    commit: &StepCommit,
) -> Result<Committed, StoreError> {
    let params = serde_json::to_string(&Params::new(store, commit))
        .map_err(|e| decode_error(format!("commit: {e}")))?;
    if commit.observed.is_empty() {
        return store
            .commits
            .run(
                store,
                Item {
                    workflow_id: commit.workflow_id,
                    params,
                },
            )
            .await;
    }
    // A reconciliation step: its observations in the same transaction, so alone. Boxed,
    // as rare: the future of every step commit holds a pointer, not this branch's state.
    Box::pin(async move {
        let mut tx = pool.begin().await?;
        let row = crate::group::call_on(&mut tx, &[params.as_str()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| decode_error("commit: no answer"))?;
        let committed = row.into_result(commit.workflow_id)?;
        reconcile::write(Conn::from(&mut *tx), commit.workflow_id, &commit.observed).await?;
        tx.commit().await?;
        Ok(committed)
    })
    .await
}

/// `commit` as one element of a batch of `finflow_commit_steps` (for tests: `store::testing`).
#[cfg(feature = "testing")]
pub(crate) fn params(store: &Store, commit: &StepCommit) -> Result<Value, StoreError> {
    serde_json::to_value(Params::new(store, commit))
        .map_err(|e| decode_error(format!("commit: {e}")))
}

/// The parameters of `finflow_commit_step` for one commit, named as `finflow_commit_steps`
/// reads them: the one translation of a [`StepCommit`] into what PostgreSQL stores.
#[derive(serde::Serialize)]
struct Params<'a> {
    workflow_id: Uuid,
    worker_id: &'a str,
    expected_version: i64,
    status: &'static str,
    state: &'a str,
    context: &'a Value,
    attempt: i32,
    next_run_at: Option<Micros>,
    caller_now: Micros,
    waiting_for: Option<&'a str>,
    deadline: Option<Micros>,
    last_error: Option<&'a str>,
    pin_version: Option<i32>,
    pin_name: Option<&'a str>,
    release: bool,
    terminal: bool,
    facts: &'a Value,
    lock_keys: Vec<i64>,
    wait_events: Vec<&'a str>,
    wait_keys: Vec<&'static str>,
    wait_values: Vec<std::borrow::Cow<'a, str>>,
    processed: &'a [i64],
    j_step: &'a str,
    j_action: &'a str,
    j_outcome: &'static str,
    j_attempt: i32,
    j_started_at: Micros,
    j_finished_at: Micros,
    j_duration_ms: i64,
    j_finfra_status: Option<i32>,
    j_error: Option<&'a str>,
    j_operation_key: Option<&'a str>,
    j_request_summary: Option<&'a Value>,
    j_response_summary: Option<&'a Value>,
    a_title: Option<&'a str>,
    a_external_id: Option<&'a str>,
    a_payload: Option<&'a Value>,
    event_types: Vec<&'a str>,
    event_payloads: Vec<&'a Value>,
    hold_secs: Option<f64>,
}

impl<'a> Params<'a> {
    fn new(store: &Store, commit: &'a StepCommit) -> Self {
        let eff = effective(commit);
        let announce = commit.announce.as_ref().filter(|_| eff.terminal);
        // With keys, a wait on a NIK waits on its keyed hash, as the inbox stores it.
        let wait_values: Vec<std::borrow::Cow<'a, str>> = eff
            .waits
            .iter()
            .map(|w| match w.key {
                CorrelationKey::IdentityNumber if store.keys().is_some() => {
                    std::borrow::Cow::Owned(store.nik_key(&w.value))
                }
                _ => std::borrow::Cow::Borrowed(w.value.as_str()),
            })
            .collect();
        let keys: Vec<(CorrelationKey, &str)> = eff
            .waits
            .iter()
            .zip(&wait_values)
            .map(|(w, value)| (w.key, value.as_ref()))
            .chain(announce.map(|a| (CorrelationKey::ExternalId, a.external_id.as_str())))
            .collect();
        let j = &commit.journal;
        Self {
            workflow_id: commit.workflow_id,
            worker_id: &commit.worker_id,
            expected_version: commit.expected_version,
            status: commit.status.as_str(),
            state: &commit.state,
            context: &commit.context,
            attempt: commit.attempt,
            next_run_at: eff.next_run_at.map(Micros),
            caller_now: Micros(Utc::now()),
            waiting_for: commit.waiting_for.as_deref(),
            deadline: commit.deadline.map(Micros),
            last_error: commit.last_error.as_deref(),
            pin_version: commit.pin_definition_version,
            pin_name: commit.pin_definition_name.as_deref(),
            release: eff.release,
            terminal: eff.terminal,
            facts: &commit.facts,
            lock_keys: lock_ids(&keys),
            wait_events: eff.waits.iter().map(|w| w.event.as_str()).collect(),
            wait_keys: eff.waits.iter().map(|w| w.key.as_str()).collect(),
            wait_values,
            processed: &commit.processed_events,
            j_step: &j.step,
            j_action: &j.action,
            j_outcome: j.outcome.as_str(),
            j_attempt: j.attempt,
            j_started_at: Micros(j.started_at),
            j_finished_at: Micros(j.finished_at),
            j_duration_ms: j.duration_ms(),
            j_finfra_status: j.finfra_status,
            j_error: j.error.as_deref(),
            j_operation_key: j.operation_key.as_deref(),
            j_request_summary: j.request_summary.as_ref(),
            j_response_summary: j.response_summary.as_ref(),
            a_title: announce.map(|a| a.title.as_str()),
            a_external_id: announce.map(|a| a.external_id.as_str()),
            a_payload: announce.map(|a| &a.payload),
            event_types: commit
                .events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect(),
            event_payloads: commit.events.iter().map(|e| &e.payload).collect(),
            hold_secs: eff.hold.map(|lease| lease.as_secs_f64()),
        }
    }
}

/// A timestamp as PostgreSQL stores it: to the microsecond, truncated as sqlx binds one.
struct Micros(DateTime<Utc>);

impl serde::Serialize for Micros {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

/// The SQLite commit: through the group commit (`crate::group`), which writes the steps
/// queued together in one `BEGIN IMMEDIATE` … `COMMIT`; a reconciliation step alone, with
/// its observations in the same transaction.
async fn commit_sqlite(
    store: &Store,
    pool: &SqlitePool,
    commit: &StepCommit,
) -> Result<Committed, StoreError> {
    let prepared = SqliteCommit::new(store, commit);
    if commit.observed.is_empty() {
        return store
            .sqlite_writes
            .run(store, SqliteWrite::Commit(Box::new(prepared)))
            .await
            .and_then(SqliteWritten::committed);
    }
    // Boxed, as PostgreSQL's (`commit_pg`).
    Box::pin(async move {
        let (_turn, mut conn) = store.turn_to_write(pool, SqliteSync::Full).await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, SQLITE_BEGIN).await?;
        let committed = write_sqlite(&mut tx, &prepared).await?;
        reconcile::write(Conn::from(&mut *tx), commit.workflow_id, &commit.observed).await?;
        tx.commit().await?;
        Ok(committed)
    })
    .await
}

/// A step commit as SQLite writes it, owned so that it can wait in the group-commit queue:
/// normalized for a terminal status, the context and facts already the JSON text SQLite
/// stores, a wait on a NIK already on its keyed hash (with keys), as the inbox stores it.
#[derive(Debug)]
pub(crate) struct SqliteCommit {
    workflow_id: Uuid,
    worker_id: String,
    expected_version: i64,
    status: Status,
    state: String,
    context: String,
    facts: String,
    attempt: i32,
    next_run_at: Option<DateTime<Utc>>,
    waiting_for: Option<String>,
    deadline: Option<DateTime<Utc>>,
    last_error: Option<String>,
    pin_version: Option<i32>,
    pin_name: Option<String>,
    release: bool,
    hold: Option<std::time::Duration>,
    terminal: bool,
    waits: Vec<Wait>,
    journal: JournalEntry,
    processed: Vec<i64>,
    announce: Option<Announcement>,
    events: Vec<NewEvent>,
}

impl SqliteCommit {
    fn new(store: &Store, commit: &StepCommit) -> Self {
        let eff = effective(commit);
        let hash = store.keys().is_some();
        Self {
            workflow_id: commit.workflow_id,
            worker_id: commit.worker_id.clone(),
            expected_version: commit.expected_version,
            status: commit.status,
            state: commit.state.clone(),
            context: commit.context.to_string(),
            facts: commit.facts.to_string(),
            attempt: commit.attempt,
            next_run_at: eff.next_run_at,
            waiting_for: commit.waiting_for.clone(),
            deadline: commit.deadline,
            last_error: commit.last_error.clone(),
            pin_version: commit.pin_definition_version,
            pin_name: commit.pin_definition_name.clone(),
            release: eff.release,
            hold: eff.hold,
            terminal: eff.terminal,
            waits: eff
                .waits
                .iter()
                .map(|w| match w.key {
                    CorrelationKey::IdentityNumber if hash => Wait {
                        value: store.nik_key(&w.value),
                        ..w.clone()
                    },
                    _ => w.clone(),
                })
                .collect(),
            journal: commit.journal.clone(),
            processed: commit.processed_events.clone(),
            announce: commit.announce.clone().filter(|_| eff.terminal),
            events: commit.events.clone(),
        }
    }
}

/// Writes one step on `conn`, inside the caller's transaction; the caller rolls back what
/// it wrote if it fails.
pub(crate) async fn write_sqlite(
    conn: &mut SqliteConnection,
    commit: &SqliteCommit,
) -> Result<Committed, StoreError> {
    let now = Utc::now();
    let id = commit.workflow_id.to_string();

    let updated: Option<i64> = sqlx::query_scalar(
        "UPDATE workflows SET status = $4, state = $5, context = $6, attempt = $7, \
         next_run_at = $8, waiting_for = $9, deadline = $10, last_error = $11, \
         definition_name = CASE WHEN definition_version IS NULL \
             THEN coalesce($16, definition_name) ELSE definition_name END, \
         definition_version = coalesce(definition_version, $12), \
         lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END, \
         lease_until = CASE WHEN $13 THEN NULL ELSE lease_until END, \
         finished_at = CASE WHEN $14 THEN $15 ELSE NULL END, \
         facts = $17, version = version + 1, updated_at = $15 \
         WHERE id = $1 AND lease_owner = $2 AND version = $3 RETURNING version",
    )
    .bind(&id)
    .bind(&commit.worker_id)
    .bind(commit.expected_version)
    .bind(commit.status.as_str())
    .bind(&commit.state)
    .bind(&commit.context)
    .bind(commit.attempt)
    .bind(to_sqlite_opt(commit.next_run_at))
    .bind(&commit.waiting_for)
    .bind(to_sqlite_opt(commit.deadline))
    .bind(&commit.last_error)
    .bind(commit.pin_version)
    .bind(commit.release)
    .bind(commit.terminal)
    .bind(to_sqlite(now))
    .bind(commit.pin_name.as_deref())
    .bind(&commit.facts)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut version) = updated else {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM workflows WHERE id = $1)")
                .bind(&id)
                .fetch_one(&mut *conn)
                .await?;
        return Err(if exists {
            StoreError::LeaseLost(commit.workflow_id)
        } else {
            StoreError::NotFound(commit.workflow_id)
        });
    };

    let seq = append(
        conn.into(),
        commit.workflow_id,
        &commit.worker_id,
        &commit.journal,
    )
    .await?;

    sqlx::query("DELETE FROM workflow_waits WHERE workflow_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    for ((key, value), events) in waits_by_key(&commit.waits) {
        sqlx::query(
            "INSERT INTO workflow_waits (workflow_id, key_name, key_value, events, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(key.as_str())
        .bind(value)
        .bind(Value::from(events).to_string())
        .bind(to_sqlite(now))
        .execute(&mut *conn)
        .await?;
    }

    mark_processed_on((&mut *conn).into(), commit.workflow_id, &commit.processed).await?;
    let stamp = to_sqlite(now);
    if let Some(announcement) = &commit.announce {
        announce_sqlite(conn, commit.workflow_id, announcement, &stamp).await?;
    }
    if !commit.waits.is_empty() {
        copy_announcements_sqlite(conn, commit.workflow_id, &stamp).await?;
    }

    append_events_sqlite(conn, commit.workflow_id, seq, &commit.events, &stamp).await?;

    let mut next_run_at = commit.next_run_at;
    let pending_events = if commit.terminal {
        Vec::new()
    } else {
        match_waits_sqlite(conn, commit.workflow_id, !commit.waits.is_empty(), now).await?
    };
    let mut kept = Vec::new();
    match commit.hold {
        // Kept for its holder, claimed again (see `StepCommit::hold_for_events`).
        Some(lease) if !pending_events.is_empty() => {
            let (held, due): (i64, String) = sqlx::query_as(
                "UPDATE workflows SET next_run_at = min(coalesce(next_run_at, $2), $2), \
                 status = 'running', lease_owner = $3, lease_until = $4, \
                 version = version + 1 WHERE id = $1 RETURNING version, next_run_at",
            )
            .bind(&id)
            .bind(to_sqlite(now))
            .bind(&commit.worker_id)
            .bind(to_sqlite(now + delta(lease)))
            .fetch_one(&mut *conn)
            .await?;
            version = held;
            next_run_at = Some(from_sqlite(&due)?);
            kept = pending_events_on(conn.into(), commit.workflow_id).await?;
        }
        _ if !pending_events.is_empty() => {
            let due: String = sqlx::query_scalar(
                "UPDATE workflows SET next_run_at = min(coalesce(next_run_at, $2), $2) \
                 WHERE id = $1 RETURNING next_run_at",
            )
            .bind(&id)
            .bind(to_sqlite(now))
            .fetch_one(&mut *conn)
            .await?;
            next_run_at = Some(from_sqlite(&due)?);
        }
        _ => {}
    }
    Ok(Committed {
        version,
        seq,
        next_run_at,
        pending_events,
        kept,
    })
}
