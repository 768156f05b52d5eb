//! What reconciliation runs (`reconcile-loans`) read and write: finflow's records of the
//! loans on a page of Finfra's, and the findings, compared loans and nudges a step
//! observed, written in the step's own transaction ([`crate::StepCommit::observed`]).
//!
//! A nudge tells a workflow behind Finfra to read Finfra now: an inbox row from inside
//! finflow (source `internal`, title [`NUDGE_TITLE`]) matched to it, and the workflow made
//! due, as an operator's command is.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::{PgConnection, Row, SqliteConnection};
use uuid::Uuid;

use crate::error::StoreError;
use crate::inbox::Source;
use crate::time::{from_sqlite, from_sqlite_opt, to_sqlite};
use crate::wakeup::notify_due_pg;
use crate::{Backend, Store};

/// The inbox title of a nudge: "read Finfra now".
pub const NUDGE_TITLE: &str = "poll";

/// The kind of a reconciliation run.
pub const RECONCILE_KIND: &str = "reconcile-loans";

/// One discrepancy to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    pub loan_unique_id: String,
    pub workflow_id: Option<Uuid>,
    pub kind: String,
    pub ours: Option<String>,
    pub theirs: Option<String>,
    pub money: bool,
}

/// What a reconciliation step observed, written with its commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub findings: Vec<NewFinding>,
    /// Loans compared: their open findings not found again are resolved.
    pub seen: Vec<String>,
    /// Workflows to tell to read Finfra now.
    pub nudge: Vec<Uuid>,
    /// The run compared its last loan: its list of loans seen is deleted.
    pub complete: bool,
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.seen.is_empty() && self.nudge.is_empty() && !self.complete
    }
}

/// finflow's record of a loan: an `originate-loan` workflow and its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLoanRow {
    pub workflow_id: Uuid,
    pub loan_unique_id: String,
    pub status: String,
    pub loan_status: Option<String>,
    pub disbursement_reference: Option<String>,
    pub disbursement_requested: bool,
    pub amount_paid: Option<Decimal>,
}

/// A row of `reconciliation_findings`.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: i64,
    pub run: Uuid,
    pub loan_unique_id: String,
    pub workflow: Option<Uuid>,
    pub kind: String,
    pub finflow_value: Option<String>,
    pub finfra_value: Option<String>,
    pub money: bool,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

fn known_from_facts(workflow_id: Uuid, status: String, facts: &Value) -> Option<KnownLoanRow> {
    let text = |k: &str| facts.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(KnownLoanRow {
        workflow_id,
        loan_unique_id: text("loan_unique_id")?,
        status,
        loan_status: text("loan_status"),
        disbursement_reference: text("disbursement_reference"),
        disbursement_requested: facts
            .get("disbursement_requested")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        amount_paid: facts.get("amount_paid").and_then(|v| match v {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.to_string().parse().ok(),
            _ => None,
        }),
    })
}

impl Store {
    /// finflow's records of the loans `unique_ids` (those an `originate-loan` created).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn known_loans(
        &self,
        unique_ids: &[String],
    ) -> Result<Vec<KnownLoanRow>, StoreError> {
        if unique_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String, Value)> = match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT id, status, facts FROM workflows WHERE kind = 'originate-loan' \
                     AND facts->>'loan_unique_id' = ANY($1)",
                )
                .bind(unique_ids)
                .fetch_all(pool)
                .await?
            }
            Backend::Sqlite(pool) => {
                let ids = serde_json::to_string(unique_ids).unwrap_or_default();
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT id, status, facts FROM workflows WHERE kind = 'originate-loan' \
                     AND json_extract(facts, '$.loan_unique_id') IN (SELECT value FROM json_each($1))",
                )
                .bind(ids)
                .fetch_all(pool)
                .await?;
                sqlite_rows(rows)?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(id, status, facts)| known_from_facts(id, status, &facts))
            .collect())
    }

    /// The loans finflow created (workflows whose loan has a status at Finfra) from `from`
    /// to `to` (days of the workflow's creation, inclusive) that run `run_id` has not
    /// compared and that are not in `exclude`: at most `limit`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn unseen_loans(
        &self,
        run_id: Uuid,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        exclude: &[String],
        limit: u32,
    ) -> Result<Vec<KnownLoanRow>, StoreError> {
        let from = from.map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
        let to = to
            .and_then(|d| d.succ_opt())
            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
        let rows: Vec<(Uuid, String, Value)> = match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT w.id, w.status, w.facts FROM workflows w \
                     WHERE w.kind = 'originate-loan' AND w.facts->>'loan_status' IS NOT NULL \
                     AND ($2::timestamptz IS NULL OR w.created_at >= $2) \
                     AND ($3::timestamptz IS NULL OR w.created_at < $3) \
                     AND NOT (w.facts->>'loan_unique_id' = ANY($4)) \
                     AND NOT EXISTS (SELECT 1 FROM reconcile_seen s WHERE s.run_id = $1 \
                         AND s.loan_unique_id = w.facts->>'loan_unique_id') \
                     ORDER BY w.created_at, w.id LIMIT $5",
                )
                .bind(run_id)
                .bind(from)
                .bind(to)
                .bind(exclude)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
            }
            Backend::Sqlite(pool) => {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT w.id, w.status, w.facts FROM workflows w \
                     WHERE w.kind = 'originate-loan' \
                     AND json_extract(w.facts, '$.loan_status') IS NOT NULL \
                     AND ($2 IS NULL OR w.created_at >= $2) AND ($3 IS NULL OR w.created_at < $3) \
                     AND json_extract(w.facts, '$.loan_unique_id') NOT IN (SELECT value FROM json_each($4)) \
                     AND NOT EXISTS (SELECT 1 FROM reconcile_seen s WHERE s.run_id = $1 \
                         AND s.loan_unique_id = json_extract(w.facts, '$.loan_unique_id')) \
                     ORDER BY w.created_at, w.id LIMIT $5",
                )
                .bind(run_id.to_string())
                .bind(from.map(to_sqlite))
                .bind(to.map(to_sqlite))
                .bind(serde_json::to_string(exclude).unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
                sqlite_rows(rows)?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(id, status, facts)| known_from_facts(id, status, &facts))
            .collect())
    }

    /// Findings, newest first: only open ones with `open_only`.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn findings(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<FindingRow>, StoreError> {
        self.findings_before(open_only, None, limit).await
    }

    /// Findings with an id below `before` (all with `None`), newest first: only open ones
    /// with `open_only`. The console's keyset pages.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn findings_before(
        &self,
        open_only: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let sql = "SELECT id, run, loan_unique_id, workflow, kind, finflow_value, finfra_value, \
                   money, first_seen_at, last_seen_at, resolved_at FROM reconciliation_findings \
                   WHERE (NOT $1 OR resolved_at IS NULL) AND id < $3 ORDER BY id DESC LIMIT $2";
        let before = before.unwrap_or(i64::MAX);
        match &self.backend {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(sql)
                    .bind(open_only)
                    .bind(i64::from(limit))
                    .bind(before)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(FindingRow {
                            id: r.try_get("id")?,
                            run: r.try_get("run")?,
                            loan_unique_id: r.try_get("loan_unique_id")?,
                            workflow: r.try_get("workflow")?,
                            kind: r.try_get("kind")?,
                            finflow_value: r.try_get("finflow_value")?,
                            finfra_value: r.try_get("finfra_value")?,
                            money: r.try_get("money")?,
                            first_seen_at: r.try_get("first_seen_at")?,
                            last_seen_at: r.try_get("last_seen_at")?,
                            resolved_at: r.try_get("resolved_at")?,
                        })
                    })
                    .collect()
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(sql)
                    .bind(open_only)
                    .bind(i64::from(limit))
                    .bind(before)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let uuid = |s: String| {
                            Uuid::parse_str(&s)
                                .map_err(|e| crate::error::decode_error(e.to_string()))
                        };
                        Ok(FindingRow {
                            id: r.try_get("id")?,
                            run: uuid(r.try_get("run")?)?,
                            loan_unique_id: r.try_get("loan_unique_id")?,
                            workflow: r
                                .try_get::<Option<String>, _>("workflow")?
                                .map(uuid)
                                .transpose()?,
                            kind: r.try_get("kind")?,
                            finflow_value: r.try_get("finflow_value")?,
                            finfra_value: r.try_get("finfra_value")?,
                            money: r.try_get::<i64, _>("money")? != 0,
                            first_seen_at: from_sqlite(&r.try_get::<String, _>("first_seen_at")?)?,
                            last_seen_at: from_sqlite(&r.try_get::<String, _>("last_seen_at")?)?,
                            resolved_at: from_sqlite_opt(r.try_get("resolved_at")?)?,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Open findings by kind: how many, and how many of them about money (for the
    /// `finflow_reconcile_findings` gauges).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn open_findings_by_kind(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let sql = "SELECT kind, count(*), count(*) FILTER (WHERE money) FROM reconcile_findings \
                   WHERE resolved_at IS NULL GROUP BY kind ORDER BY kind";
        Ok(match &self.backend {
            Backend::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Backend::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        })
    }
}

fn sqlite_rows(
    rows: Vec<(String, String, String)>,
) -> Result<Vec<(Uuid, String, Value)>, StoreError> {
    rows.into_iter()
        .map(|(id, status, facts)| {
            let id = Uuid::parse_str(&id).map_err(|e| crate::error::decode_error(e.to_string()))?;
            let facts = serde_json::from_str(&facts)
                .map_err(|e| crate::error::decode_error(e.to_string()))?;
            Ok((id, status, facts))
        })
        .collect()
}

fn nudge_payload(run_id: Uuid) -> Value {
    json!({ "by": format!("reconcile-loans {run_id}"), "reason": "Finfra's books show this loan further along" })
}

/// Writes what a reconciliation step observed, on the step's PostgreSQL transaction.
pub(crate) async fn write_pg(
    conn: &mut PgConnection,
    run_id: Uuid,
    observed: &Observed,
) -> Result<(), StoreError> {
    let now = Utc::now();
    for f in &observed.findings {
        sqlx::query(
            "INSERT INTO reconcile_findings (run_id, first_run_id, loan_unique_id, workflow_id, \
             kind, ours, theirs, money, first_seen_at, last_seen_at) \
             VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (loan_unique_id, kind) WHERE resolved_at IS NULL DO UPDATE SET \
             run_id = excluded.run_id, workflow_id = excluded.workflow_id, ours = excluded.ours, \
             theirs = excluded.theirs, money = excluded.money, last_seen_at = excluded.last_seen_at",
        )
        .bind(run_id)
        .bind(&f.loan_unique_id)
        .bind(f.workflow_id)
        .bind(&f.kind)
        .bind(&f.ours)
        .bind(&f.theirs)
        .bind(f.money)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    if !observed.seen.is_empty() {
        let found: Vec<String> = observed
            .findings
            .iter()
            .map(|f| format!("{}\u{1f}{}", f.loan_unique_id, f.kind))
            .collect();
        sqlx::query(
            "UPDATE reconcile_findings SET resolved_at = $3, resolved_by_run = $1 \
             WHERE resolved_at IS NULL AND loan_unique_id = ANY($2) \
             AND NOT (loan_unique_id || chr(31) || kind = ANY($4))",
        )
        .bind(run_id)
        .bind(&observed.seen)
        .bind(now)
        .bind(&found)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO reconcile_seen (run_id, loan_unique_id) SELECT $1, unnest($2::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(&observed.seen)
        .execute(&mut *conn)
        .await?;
    }
    if !observed.nudge.is_empty() {
        let nudged: Vec<Uuid> = sqlx::query_scalar(
            "WITH due AS (UPDATE workflows SET next_run_at = least(coalesce(next_run_at, $2), $2), \
                 updated_at = $2 WHERE id = ANY($1) \
                 AND status NOT IN ('completed', 'failed', 'cancelled') RETURNING id) \
             INSERT INTO callback_inbox (source, event_id, title, payload, matched_workflow_id, \
                 matched_at) \
             SELECT $3, gen_random_uuid()::text, $4, $5, id, $2 FROM due RETURNING matched_workflow_id",
        )
        .bind(&observed.nudge)
        .bind(now)
        .bind(Source::Internal.as_str())
        .bind(NUDGE_TITLE)
        .bind(nudge_payload(run_id))
        .fetch_all(&mut *conn)
        .await?;
        notify_due_pg(conn, &nudged).await?;
    }
    if observed.complete {
        sqlx::query("DELETE FROM reconcile_seen WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes what a reconciliation step observed, on the step's SQLite transaction.
pub(crate) async fn write_sqlite(
    conn: &mut SqliteConnection,
    run_id: Uuid,
    observed: &Observed,
) -> Result<(), StoreError> {
    let now = to_sqlite(Utc::now());
    let run = run_id.to_string();
    for f in &observed.findings {
        sqlx::query(
            "INSERT INTO reconcile_findings (run_id, first_run_id, loan_unique_id, workflow_id, \
             kind, ours, theirs, money, first_seen_at, last_seen_at) \
             VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (loan_unique_id, kind) WHERE resolved_at IS NULL DO UPDATE SET \
             run_id = excluded.run_id, workflow_id = excluded.workflow_id, ours = excluded.ours, \
             theirs = excluded.theirs, money = excluded.money, last_seen_at = excluded.last_seen_at",
        )
        .bind(&run)
        .bind(&f.loan_unique_id)
        .bind(f.workflow_id.map(|id| id.to_string()))
        .bind(&f.kind)
        .bind(&f.ours)
        .bind(&f.theirs)
        .bind(f.money)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
    }
    if !observed.seen.is_empty() {
        let seen = serde_json::to_string(&observed.seen).unwrap_or_default();
        let found: Vec<String> = observed
            .findings
            .iter()
            .map(|f| format!("{}\u{1f}{}", f.loan_unique_id, f.kind))
            .collect();
        sqlx::query(
            "UPDATE reconcile_findings SET resolved_at = $3, resolved_by_run = $1 \
             WHERE resolved_at IS NULL AND loan_unique_id IN (SELECT value FROM json_each($2)) \
             AND loan_unique_id || char(31) || kind NOT IN (SELECT value FROM json_each($4))",
        )
        .bind(&run)
        .bind(&seen)
        .bind(&now)
        .bind(serde_json::to_string(&found).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO reconcile_seen (run_id, loan_unique_id) \
             SELECT $1, value FROM json_each($2) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(&run)
        .bind(&seen)
        .execute(&mut *conn)
        .await?;
    }
    for id in &observed.nudge {
        let due = sqlx::query(
            "UPDATE workflows SET next_run_at = min(coalesce(next_run_at, $2), $2), updated_at = $2 \
             WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')",
        )
        .bind(id.to_string())
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        if due.rows_affected() == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO callback_inbox (source, event_id, title, payload, received_at, \
             matched_workflow_id, matched_at) VALUES ($1, $2, $3, $4, $5, $6, $5)",
        )
        .bind(Source::Internal.as_str())
        .bind(Uuid::new_v4().to_string())
        .bind(NUDGE_TITLE)
        .bind(nudge_payload(run_id).to_string())
        .bind(&now)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    if observed.complete {
        sqlx::query("DELETE FROM reconcile_seen WHERE run_id = $1")
            .bind(&run)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
