//! Claiming: the one worker allowed to advance a workflow right now.
//!
//! A claim takes a workflow that is due (`next_run_at <= now`), not finished, and not held by
//! a live lease (an expired one is fine: its worker is presumed dead). It marks the row
//! `running`, records the lease, bumps `version` (so a late commit by a previous holder fails
//! with `LeaseLost`) and reads the workflow's pending callbacks. A held workflow stays due
//! (`next_run_at` is not moved), so if this worker dies, the due scan ([`Store::claim_due`])
//! of any worker takes it over once the lease ends, without a wake-up of its own and without
//! waiting for apalis's orphan recovery. A live lease blocks everyone, its holder included,
//! so a duplicate wake-up never re-enters a step in flight.
//!
//! On PostgreSQL a claim commits without waiting for its WAL to reach the disk: each claim
//! statement turns `synchronous_commit` off for its own transaction (`set_config(..., true)`
//! in the statement, `claim_old!`). Nothing outside the database acts on a claim alone:
//! before its holder sends a request, or anything else leaves the database, the holder
//! commits a step, synchronously and behind the guard of the claim's lease and version, and
//! PostgreSQL flushes its WAL in order, so that commit makes the claim durable first. A claim
//! that a server crash loses before then never happened: the workflow is due and free again,
//! and the holder's next commit finds the lease or the version moved on (`LeaseLost`), or, if
//! the same worker claimed it again meanwhile, the version guard lets one of the two commit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, SqliteConnection};
use uuid::Uuid;

use crate::dialect::{Columns, Conn, Dialect, Id, each_backend};
use crate::error::StoreError;
use crate::group::{ClaimRequest, SqliteWrite, SqliteWritten};
use crate::inbox::{InboxRow, pending_events_on};
use crate::time::{delta, to_sqlite};
use crate::tx::{SQLITE_BEGIN, SqliteSync};
use crate::wakeup::notify_due;
use crate::workflow::{Status, Workflow, workflow_columns};
use crate::{Backend, Store};

/// A workflow this worker now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The row after the claim: status `running`, the lease, the new `version` (pass it as
    /// `StepCommit::expected_version`).
    pub workflow: Workflow,
    /// The status before the claim (e.g. `waiting` when a callback woke it); give it back to
    /// [`Store::release`] to hand the workflow back untouched.
    pub previous_status: Status,
    /// Callbacks matched to it and not yet processed, oldest first.
    pub events: Vec<InboxRow>,
}

impl Claimed {
    /// When the lease ends.
    pub fn lease_until(&self) -> Option<DateTime<Utc>> {
        self.workflow.lease_until
    }
}

/// The claimed workflow's unprocessed matched events, oldest first, as one JSON array: the
/// claim returns them with the row, in the same statement (one round trip).
macro_rules! pending_events_json {
    () => {
        "(SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.received_at, i.id), '[]'::jsonb) \
         FROM callback_inbox i WHERE i.matched_workflow_id = w.id AND i.processed_at IS NULL) \
         AS pending_events"
    };
}

/// A workflow `w` that is due and free: not finished, its time come, no live lease.
///
/// The claims lock it `FOR NO KEY UPDATE`, the lock their update takes anyway (no key
/// changes): a row another transaction has locked for a foreign-key check (a callback's
/// inbox row matched to it, a journal row) is neither waited for nor skipped.
macro_rules! due_and_free {
    () => {
        "w.next_run_at <= now() AND w.status NOT IN ('completed', 'failed', 'cancelled') \
         AND (w.lease_until IS NULL OR w.lease_until <= now())"
    };
}

/// The claim itself, of the rows of `old` (their `claimed_id` and `previous_status`): leased
/// to `$worker` for `$secs` seconds (SQL expressions), each returned with its previous status
/// and pending events, in a transaction that commits without waiting for its WAL flush (see
/// the module; `set_config` is evaluated for each row claimed, and a claim of none writes
/// nothing). The columns returned are named, not `w.*`: a statement this process prepared
/// keeps its result's shape when a migration adds or moves columns (PostgreSQL refuses to
/// run a prepared statement whose `*` would now mean other columns).
macro_rules! claim_old {
    ($worker:literal, $secs:literal) => {
        concat!(
            "UPDATE workflows w SET status = 'running', lease_owner = ",
            $worker,
            ", lease_until = now() + make_interval(secs => ",
            $secs,
            "), version = w.version + 1, updated_at = now() \
             FROM old WHERE w.id = old.claimed_id \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING ",
            workflow_columns!(),
            ", old.previous_status, ",
            pending_events_json!()
        )
    };
}

/// Claims the workflows asked for (`$1` ids, `$2` workers, `$3` lease seconds, one each, ids
/// distinct) that are due and free: one statement for a batch of claims (`crate::group`).
/// Rows are locked in id order, so two batches of claims never wait for each other in a
/// cycle.
const PG_CLAIM_MANY: &str = concat!(
    "WITH req AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[]) ",
    "AS r(id, worker, secs)), ",
    "old AS (SELECT w.id AS claimed_id, w.status AS previous_status, req.worker, req.secs ",
    "FROM workflows w JOIN req ON req.id = w.id WHERE ",
    due_and_free!(),
    " ORDER BY w.id FOR NO KEY UPDATE OF w) ",
    claim_old!("old.worker", "old.secs")
);

/// [`PG_CLAIM_MANY`] for one workflow (`$1` id, `$2` worker, `$3` lease seconds): most
/// batches hold one claim, and the plan of this statement does not depend on its values, so
/// PostgreSQL keeps one generic plan per connection (from the sixth call on). The arrays of
/// `PG_CLAIM_MANY` make it plan that statement at every call (a plan for the values given
/// looks cheaper than a generic one), which cost more than running it.
const PG_CLAIM_ONE: &str = concat!(
    "WITH old AS (SELECT w.id AS claimed_id, w.status AS previous_status FROM workflows w ",
    "WHERE w.id = $1 AND ",
    due_and_free!(),
    " FOR NO KEY UPDATE OF w) ",
    claim_old!("$2", "$3")
);

/// Claims up to `$1` due and free workflows, the longest due first, for worker `$2` for `$3`
/// seconds; rows another claim holds are skipped.
const PG_CLAIM_DUE: &str = concat!(
    "WITH old AS (SELECT w.id AS claimed_id, w.status AS previous_status FROM workflows w ",
    "WHERE ",
    due_and_free!(),
    " ORDER BY w.next_run_at LIMIT $1 FOR NO KEY UPDATE SKIP LOCKED) ",
    claim_old!("$2", "$3")
);

impl Store {
    /// Claims one workflow for `worker_id` for `lease`, if it is due and free; `None`
    /// otherwise (not due, finished, held by a live lease, or unknown): then a wake-up that
    /// led here was stale and can be dropped.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure (then nothing was claimed).
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.id = %workflow_id, worker.id = worker_id))]
    pub async fn claim(
        &self,
        workflow_id: Uuid,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let request = ClaimRequest {
            workflow_id,
            worker_id: worker_id.to_owned(),
            lease,
        };
        let claimed = match self.backend {
            Backend::Postgres(_) => self.claims.run(self, request).await,
            Backend::Sqlite(_) => self
                .sqlite_writes
                .run(self, SqliteWrite::Claim(request))
                .await
                .and_then(SqliteWritten::claimed),
        }?;
        if claimed.is_none() {
            self.stale_claims
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(claimed)
    }

    /// Claims up to `limit` due, free workflows, oldest `next_run_at` first: the polling
    /// fallback beside wake-ups. On PostgreSQL concurrent callers skip each other's rows
    /// (`FOR NO KEY UPDATE SKIP LOCKED`); SQLite serializes them.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure (then nothing was claimed).
    #[tracing::instrument(level = "debug", skip_all, fields(worker.id = worker_id, limit))]
    pub async fn claim_due(
        &self,
        worker_id: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        // A fleet claims in one statement that skips the rows another worker is claiming;
        // SQLite's one writer claims row by row in its write transaction.
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                claim_due_pg(&mut conn, worker_id, limit, lease).await
            }
            Backend::Sqlite(pool) => {
                let mut claimed = Vec::new();
                // Claims alone: no WAL sync at their commit (`SqliteSync::Normal`).
                let (_turn, mut conn) = self.turn_to_write(pool, SqliteSync::Normal).await?;
                let mut tx = sqlx::Connection::begin_with(&mut *conn, SQLITE_BEGIN).await?;
                let now = Utc::now();
                let due: Vec<(String, String)> = sqlx::query_as(concat!(
                    "SELECT id, status FROM workflows WHERE next_run_at <= $1 ",
                    "AND status NOT IN ('completed', 'failed', 'cancelled') ",
                    "AND (lease_until IS NULL OR lease_until <= $1) ",
                    "ORDER BY next_run_at LIMIT $2"
                ))
                .bind(to_sqlite(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                for (id, previous) in due {
                    let id = crate::workflow::uuid_from_sqlite(&id)?;
                    claimed
                        .push(claim_sqlite(&mut tx, id, &previous, worker_id, lease, now).await?);
                }
                tx.commit().await?;
                Ok(claimed)
            }
        }
    }

    /// Extends a held lease to `lease` from now (for a long step or inline continuation) and
    /// Returns the new expiry.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when this worker no longer holds the workflow at
    /// `expected_version`; [`StoreError::Database`] on a database failure.
    pub async fn renew_lease(
        &self,
        workflow_id: Uuid,
        worker_id: &str,
        expected_version: i64,
        lease: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE workflows SET lease_until = {until}, updated_at = {now} \
                 WHERE id = $1 AND lease_owner = $2 AND version = $3 RETURNING lease_until",
                until = d.now_plus_secs("$4"),
                now = d.now()
            )))
            .bind(Id(workflow_id))
            .bind(worker_id)
            .bind(expected_version)
            .bind(lease.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            let until = row
                .ok_or(StoreError::LeaseLost(workflow_id))?
                .at("lease_until")?;
            tx.commit().await?;
            Ok(until)
        })
    }

    /// Gives a held workflow back without committing a step (graceful shutdown): the lease is
    /// cleared and the status set back to `status` (normally `Claimed::previous_status`);
    /// `next_run_at` is untouched, and a wake-up is scheduled for it so another worker
    /// continues at once if it is due.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a terminal `status`; [`StoreError::LeaseLost`] when this
    /// worker no longer holds it at `expected_version`; [`StoreError::Database`] otherwise.
    pub async fn release(
        &self,
        workflow_id: Uuid,
        worker_id: &str,
        expected_version: i64,
        status: Status,
    ) -> Result<(), StoreError> {
        if status.is_terminal() {
            return Err(StoreError::Refused(format!(
                "release cannot set the terminal status {status}; commit a step instead"
            )));
        }
        let due = each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE workflows SET lease_owner = NULL, lease_until = NULL, status = $4, \
                 updated_at = {} WHERE id = $1 AND lease_owner = $2 AND version = $3 \
                 RETURNING next_run_at",
                d.now()
            )))
            .bind(Id(workflow_id))
            .bind(worker_id)
            .bind(expected_version)
            .bind(status.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::LeaseLost(workflow_id))?;
            let due = row
                .at_opt("next_run_at")?
                .is_some_and(|at| at <= Utc::now());
            if due {
                notify_due(Conn::from(&mut *tx), &[workflow_id]).await?;
            }
            tx.commit().await?;
            due
        });
        // SQLite's hint for a workflow due now goes to this process's own runner.
        if due && Dialect::of(&self.backend) == Dialect::Sqlite {
            self.hand_over(workflow_id);
        }
        Ok(())
    }
}

/// Finishes a PostgreSQL claim of one returned row: its pending events, in the claim's
/// transaction.
fn claimed_pg(row: &sqlx::postgres::PgRow) -> Result<Claimed, StoreError> {
    use sqlx::Row;
    let workflow = Workflow::from_row(row)?;
    let previous_status = row.try_get::<String, _>("previous_status")?.parse()?;
    let events = InboxRow::from_json_array(row.try_get("pending_events")?)?;
    Ok(Claimed {
        workflow,
        previous_status,
        events,
    })
}

/// Claims the workflows of `requests` (distinct ids) that are due and free, on PostgreSQL,
/// in one statement.
pub(crate) async fn claim_many_pg(
    conn: &mut sqlx::PgConnection,
    requests: &[&ClaimRequest],
) -> Result<Vec<Claimed>, StoreError> {
    if let [one] = requests {
        let rows = sqlx::query(PG_CLAIM_ONE)
            .bind(one.workflow_id)
            .bind(&one.worker_id)
            .bind(one.lease.as_secs_f64())
            .fetch_all(&mut *conn)
            .await?;
        return rows.iter().map(claimed_pg).collect();
    }
    let ids: Vec<Uuid> = requests.iter().map(|r| r.workflow_id).collect();
    let workers: Vec<&str> = requests.iter().map(|r| r.worker_id.as_str()).collect();
    let secs: Vec<f64> = requests.iter().map(|r| r.lease.as_secs_f64()).collect();
    let rows = sqlx::query(PG_CLAIM_MANY)
        .bind(&ids)
        .bind(&workers)
        .bind(&secs)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(claimed_pg).collect()
}

/// Claims up to `limit` due and free workflows on PostgreSQL for `worker_id`, the longest due
/// first, skipping the rows another claim holds.
pub(crate) async fn claim_due_pg(
    conn: &mut sqlx::PgConnection,
    worker_id: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = sqlx::query(PG_CLAIM_DUE)
        .bind(i64::from(limit))
        .bind(worker_id)
        .bind(lease.as_secs_f64())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(claimed_pg).collect()
}

/// Claims one SQLite workflow if it is due and free (the caller holds the write lock).
pub(crate) async fn claim_one_sqlite(
    conn: &mut SqliteConnection,
    request: &ClaimRequest,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>, StoreError> {
    let previous: Option<String> = sqlx::query_scalar(concat!(
        "SELECT status FROM workflows WHERE next_run_at <= $1 ",
        "AND status NOT IN ('completed', 'failed', 'cancelled') ",
        "AND (lease_until IS NULL OR lease_until <= $1) AND id = $2"
    ))
    .bind(to_sqlite(now))
    .bind(request.workflow_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(previous) = previous else {
        return Ok(None);
    };
    claim_sqlite(
        conn,
        request.workflow_id,
        &previous,
        &request.worker_id,
        request.lease,
        now,
    )
    .await
    .map(Some)
}

/// Claims one SQLite row known to be claimable (the caller holds the write lock).
async fn claim_sqlite(
    conn: &mut SqliteConnection,
    workflow_id: Uuid,
    previous: &str,
    worker_id: &str,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Claimed, StoreError> {
    let until = now + delta(lease);
    let row = sqlx::query(concat!(
        "UPDATE workflows SET status = 'running', lease_owner = $2, lease_until = $3, ",
        "version = version + 1, updated_at = $4 WHERE id = $1 RETURNING ",
        workflow_columns!()
    ))
    .bind(workflow_id.to_string())
    .bind(worker_id)
    .bind(to_sqlite(until))
    .bind(to_sqlite(now))
    .fetch_one(&mut *conn)
    .await?;
    let workflow = Workflow::from_row(&row)?;
    let events = pending_events_on(conn.into(), workflow_id).await?;
    Ok(Claimed {
        workflow,
        previous_status: previous.parse()?,
        events,
    })
}
