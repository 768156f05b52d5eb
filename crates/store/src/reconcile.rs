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
use uuid::Uuid;

use crate::Store;
use crate::dialect::{At, Columns, Conn, Doc, FactId, Id, Texts, each_backend, each_conn};
use crate::error::StoreError;
use crate::inbox::Source;
use crate::wakeup::notify_due;

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
        each_backend!(&self.backend, |pool, d| {
            let sql = format!(
                "SELECT id, status, facts FROM workflows WHERE kind = 'originate-loan' \
                 AND {} IN (SELECT value FROM {})",
                d.fact_id(FactId::LoanUniqueId),
                d.values_of("$1")
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Texts(unique_ids))
                .fetch_all(pool)
                .await?;
            known(&rows)
        })
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
        each_backend!(&self.backend, |pool, d| {
            let loan = d.text_at("w.facts", "loan_unique_id");
            let sql = format!(
                "SELECT w.id, w.status, w.facts FROM workflows w \
                 WHERE w.kind = 'originate-loan' AND {status} IS NOT NULL \
                 AND ($2 IS NULL OR w.created_at >= $2) AND ($3 IS NULL OR w.created_at < $3) \
                 AND NOT ({loan} IN (SELECT value FROM {excluded})) \
                 AND NOT EXISTS (SELECT 1 FROM reconcile_seen s WHERE s.run_id = $1 \
                     AND s.loan_unique_id = {loan}) \
                 ORDER BY w.created_at, w.id LIMIT $5",
                status = d.text_at("w.facts", "loan_status"),
                excluded = d.values_of("$4")
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(run_id))
                .bind(from.map(At))
                .bind(to.map(At))
                .bind(Texts(exclude))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            known(&rows)
        })
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
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(sql)
                .bind(open_only)
                .bind(i64::from(limit))
                .bind(before)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(FindingRow {
                        id: r.read("id")?,
                        run: r.id("run")?,
                        loan_unique_id: r.read("loan_unique_id")?,
                        workflow: r.id_opt("workflow")?,
                        kind: r.read("kind")?,
                        finflow_value: r.read("finflow_value")?,
                        finfra_value: r.read("finfra_value")?,
                        money: r.read("money")?,
                        first_seen_at: r.at("first_seen_at")?,
                        last_seen_at: r.at("last_seen_at")?,
                        resolved_at: r.at_opt("resolved_at")?,
                    })
                })
                .collect()
        })
    }

    /// Open findings by kind: how many, and how many of them about money (for the
    /// `finflow_reconcile_findings` gauges).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn open_findings_by_kind(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let sql = "SELECT kind, count(*), count(*) FILTER (WHERE money) FROM reconcile_findings \
                   WHERE resolved_at IS NULL GROUP BY kind ORDER BY kind";
        Ok(each_backend!(&self.backend, |pool, d| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }
}

/// The loans among `rows` (`id`, `status`, `facts` of `originate-loan` workflows).
fn known(rows: &[impl Columns]) -> Result<Vec<KnownLoanRow>, StoreError> {
    let mut known = Vec::new();
    for row in rows {
        let facts = row.doc("facts")?;
        known.extend(known_from_facts(row.id("id")?, row.read("status")?, &facts));
    }
    Ok(known)
}

fn nudge_payload(run_id: Uuid) -> Value {
    json!({ "by": format!("reconcile-loans {run_id}"), "reason": "Finfra's books show this loan further along" })
}

/// Writes what a reconciliation step observed, inside the step's transaction.
pub(crate) async fn write(
    conn: Conn<'_>,
    run_id: Uuid,
    observed: &Observed,
) -> Result<(), StoreError> {
    let now = Utc::now();
    each_conn!(conn, |c, d| {
        for f in &observed.findings {
            sqlx::query(
                "INSERT INTO reconcile_findings (run_id, first_run_id, loan_unique_id, \
                 workflow_id, kind, ours, theirs, money, first_seen_at, last_seen_at) \
                 VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (loan_unique_id, kind) WHERE resolved_at IS NULL DO UPDATE SET \
                 run_id = excluded.run_id, workflow_id = excluded.workflow_id, \
                 ours = excluded.ours, theirs = excluded.theirs, money = excluded.money, \
                 last_seen_at = excluded.last_seen_at",
            )
            .bind(Id(run_id))
            .bind(&f.loan_unique_id)
            .bind(f.workflow_id.map(Id))
            .bind(&f.kind)
            .bind(&f.ours)
            .bind(&f.theirs)
            .bind(f.money)
            .bind(At(now))
            .execute(&mut *c)
            .await?;
        }
        if !observed.seen.is_empty() {
            // A finding found again this step stays open: (loan, kind) joined by US (0x1F).
            let found: Vec<String> = observed
                .findings
                .iter()
                .map(|f| format!("{}{FINDING_SEPARATOR}{}", f.loan_unique_id, f.kind))
                .collect();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE reconcile_findings SET resolved_at = $3, resolved_by_run = $1 \
                 WHERE resolved_at IS NULL AND loan_unique_id IN (SELECT value FROM {seen}) \
                 AND NOT (loan_unique_id || $5 || kind IN (SELECT value FROM {found}))",
                seen = d.values_of("$2"),
                found = d.values_of("$4")
            )))
            .bind(Id(run_id))
            .bind(Texts(&observed.seen))
            .bind(At(now))
            .bind(Texts(&found))
            .bind(FINDING_SEPARATOR.to_string())
            .execute(&mut *c)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO reconcile_seen (run_id, loan_unique_id) \
                 SELECT $1, value FROM {} WHERE true ON CONFLICT DO NOTHING",
                d.values_of("$2")
            )))
            .bind(Id(run_id))
            .bind(Texts(&observed.seen))
            .execute(&mut *c)
            .await?;
        }
        let mut nudged = Vec::new();
        for id in &observed.nudge {
            let due = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE workflows SET next_run_at = {}(coalesce(next_run_at, $2), $2), \
                 updated_at = $2 \
                 WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')",
                d.least()
            )))
            .bind(Id(*id))
            .bind(At(now))
            .execute(&mut *c)
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
            .bind(Doc(&nudge_payload(run_id)))
            .bind(At(now))
            .bind(Id(*id))
            .execute(&mut *c)
            .await?;
            nudged.push(*id);
        }
        notify_due(Conn::from(&mut *c), &nudged).await?;
        if observed.complete {
            sqlx::query("DELETE FROM reconcile_seen WHERE run_id = $1")
                .bind(Id(run_id))
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    })
}

/// Between a finding's loan and kind in the list of findings found again.
const FINDING_SEPARATOR: char = '\u{1f}';
