//! Pages of workflows for the console: filters an operator combines (each served by an
//! index) and keyset pagination, newest first, so a page costs the same at any depth.

use chrono::{DateTime, Utc};
// The dynamic SQL below is built from constant clauses only; every value is bound.
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{At, Columns, Dialect, FactId, Id, each_backend};
use crate::error::StoreError;
use crate::workflow::{Workflow, workflow_columns};

/// Which workflows to list. Every field narrows; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowFilter {
    pub kind: Option<String>,
    pub status: Option<String>,
    pub state: Option<String>,
    pub definition: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Updated at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Updated before.
    pub updated_to: Option<DateTime<Utc>>,
    /// The business key starts with this.
    pub business_key_prefix: Option<String>,
    /// The Finfra user id the workflow established (`facts.user_id`).
    pub user_id: Option<String>,
    /// The loan's unique id (`facts.loan_unique_id`).
    pub loan_unique_id: Option<String>,
    /// The last 4 digits of the borrower's NIK (onboardings: the input's KTP number at
    /// [`crate::NIK_PATH`]); an expression index serves it, no NIK is stored beside the
    /// input.
    pub nik_last4: Option<String>,
}

/// The last 4 characters of the NIK at [`crate::NIK_PATH`], exactly as the indexes of
/// migrations postgres/0010 and sqlite/0006 spell them (else the index is not used).
/// Where a page starts: after the row created at `created_at` with `id` (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One value to bind, in order.
enum Bind {
    Text(String),
    Time(DateTime<Utc>),
    Id(Uuid),
}

impl Store {
    /// Up to `limit` (at most 500) workflows matching `filter`, newest first, after
    /// `cursor`; the cursor of the next page when there may be more.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn list_workflows(
        &self,
        filter: &WorkflowFilter,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<(Vec<Workflow>, Option<Cursor>), StoreError> {
        let d = Dialect::of(&self.backend);
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let param = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Some(v) = &filter.status {
            let p = param(&mut binds, Bind::Text(v.clone()));
            clauses.push(d.status_is(v.parse().ok(), &p));
        }
        for (column, value) in [
            ("kind", &filter.kind),
            ("state", &filter.state),
            ("definition_name", &filter.definition),
        ] {
            if let Some(v) = value {
                let p = param(&mut binds, Bind::Text(v.clone()));
                clauses.push(format!("{column} = {p}"));
            }
        }
        for (column, op, value) in [
            ("created_at", ">=", filter.created_from),
            ("created_at", "<", filter.created_to),
            ("updated_at", ">=", filter.updated_from),
            ("updated_at", "<", filter.updated_to),
        ] {
            if let Some(t) = value {
                let p = param(&mut binds, Bind::Time(t));
                clauses.push(format!("{column} {op} {p}"));
            }
        }
        if let Some(prefix) = filter
            .business_key_prefix
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            // A range on the key's bytes: served by the index, no LIKE escaping.
            let low = param(&mut binds, Bind::Text(prefix.to_owned()));
            let high = param(&mut binds, Bind::Text(format!("{prefix}\u{10FFFF}")));
            let bytes = d.bytes();
            clauses.push(format!(
                "business_key{bytes} >= {low} AND business_key{bytes} < {high}"
            ));
        }
        for (id, value) in [
            (FactId::UserId, &filter.user_id),
            (FactId::LoanUniqueId, &filter.loan_unique_id),
        ] {
            if let Some(v) = value {
                let p = param(&mut binds, Bind::Text(v.clone()));
                clauses.push(format!("{} = {p}", d.fact_id(id)));
            }
        }
        if let Some(last4) = &filter.nik_last4 {
            let p = param(&mut binds, Bind::Text(last4.clone()));
            clauses.push(format!("(kind = 'onboard-borrower' AND nik_last4 = {p})"));
        }
        if let Some(c) = cursor {
            let t = param(&mut binds, Bind::Time(c.created_at));
            let i = param(&mut binds, Bind::Id(c.id));
            clauses.push(format!(
                "(created_at < {t} OR (created_at = {t} AND id < {i}))"
            ));
        }
        let limit = i64::from(limit.clamp(1, 500));
        // The limit is bound last, after the filters.
        let lim = format!("${}", binds.len() + 1);
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            concat!(
                "SELECT ",
                workflow_columns!(),
                " FROM workflows{} ORDER BY created_at DESC, id DESC LIMIT {}"
            ),
            where_sql, lim
        );
        let rows: Vec<Workflow> = each_backend!(&self.backend, |pool, d| {
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s),
                    Bind::Time(t) => q.bind(At(t)),
                    Bind::Id(id) => q.bind(Id(id)),
                };
            }
            q.bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(Workflow::from_row)
                .collect::<Result<_, _>>()?
        });
        let next = (rows.len() as i64 == limit).then(|| {
            let last = &rows[rows.len() - 1];
            Cursor {
                created_at: last.created_at,
                id: last.id,
            }
        });
        Ok((rows, next))
    }

    /// Operator commands queued in the inbox (source `operator`), newest first, optionally
    /// only `workflow_id`'s, before inbox id `before_id`: who asked, who approved (four-eyes),
    /// and what the workflow's machine did with it.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn operator_commands(
        &self,
        workflow_id: Option<Uuid>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<OperatorCommand>, StoreError> {
        let limit = i64::from(limit.clamp(1, 500));
        let before = before_id.unwrap_or(i64::MAX);
        let only = if workflow_id.is_some() {
            " AND i.matched_workflow_id = $3"
        } else {
            ""
        };
        // The journal row that applied (or refused) it: the worker's row for its event id.
        let d = Dialect::of(&self.backend);
        let event_id = d.text_at("j.response_summary", "event_id");
        let applied = |column: &str| {
            format!(
                "(SELECT {column} FROM step_journal j WHERE j.workflow_id = i.matched_workflow_id \
                 AND {event_id} = i.event_id \
                 ORDER BY seq DESC LIMIT 1)"
            )
        };
        let sql = format!(
            "SELECT i.id, i.matched_workflow_id, w.kind, w.business_key, i.title, \
             i.payload, i.received_at, i.processed_at, r.id AS request_id, \
             r.decided_by AS approved_by, {} AS outcome, {} AS error, {} AS applied_at \
             FROM callback_inbox i JOIN workflows w ON w.id = i.matched_workflow_id \
             LEFT JOIN command_requests r ON r.inbox_id = i.id \
             WHERE i.source = 'operator' AND i.id < $1{only} ORDER BY i.id DESC LIMIT $2",
            applied("outcome"),
            applied("error"),
            applied("finished_at")
        );
        each_backend!(&self.backend, |pool, d| {
            let mut q = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(before)
                .bind(limit);
            if let Some(w) = workflow_id {
                q = q.bind(Id(w));
            }
            q.fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(OperatorCommand {
                        inbox_id: row.read("id")?,
                        workflow_id: row.id("matched_workflow_id")?,
                        kind: row.read("kind")?,
                        business_key: row.read("business_key")?,
                        title: row.read("title")?,
                        payload: row.doc("payload")?,
                        received_at: row.at("received_at")?,
                        processed_at: row.at_opt("processed_at")?,
                        request_id: row.read("request_id")?,
                        approved_by: row.read("approved_by")?,
                        outcome: row.read("outcome")?,
                        error: row.read("error")?,
                        applied_at: row.at_opt("applied_at")?,
                    })
                })
                .collect()
        })
    }
}

/// An operator's command as queued in the inbox, with its approval and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCommand {
    pub inbox_id: i64,
    pub workflow_id: Uuid,
    pub kind: String,
    pub business_key: String,
    /// `cancel` or `resolve`.
    pub title: String,
    /// `{by, reason, data}`.
    pub payload: serde_json::Value,
    pub received_at: DateTime<Utc>,
    /// When a worker took it (journaled); `None` while queued.
    pub processed_at: Option<DateTime<Utc>>,
    /// The four-eyes request it came from, if it needed approval.
    pub request_id: Option<i64>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// The journal's outcome: `command` (applied) or `command_refused`.
    pub outcome: Option<String>,
    /// The machine's reason for a refusal.
    pub error: Option<String>,
    /// When it was journaled.
    pub applied_at: Option<DateTime<Utc>>,
}
