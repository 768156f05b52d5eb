//! A person's commands to one workflow (`cancel`, `resolve`), recorded in the inbox
//! (source `operator`) beside Finfra's callbacks: matched to their workflow when recorded,
//! and the workflow is made due: the executor reads them with its other events and the
//! workflow's machine judges them. A command that needs a second person's approval waits in
//! `command_requests` first (see `approval`) and is queued here when approved.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{At, Columns, Conn, Doc, Id, each_backend, each_conn};
use crate::error::StoreError;
use crate::inbox::Source;
use crate::journal::{JournalEntry, Outcome, append};
use crate::wakeup::notify_due;

/// The inbox title of an operator's cancel ([`Store::record_command`]).
pub const COMMAND_CANCEL: &str = "cancel";
/// The inbox title of an operator's resolve (and retry: a resolve with `{"retry": true}`).
pub const COMMAND_RESOLVE: &str = "resolve";

/// The payload of an operator's command, as [`Store::record_command`] stores it and the
/// executor reads it: who, why, and for a resolve what they supply.
#[must_use]
pub fn command_payload(by: &str, reason: &str, data: Option<&Value>) -> Value {
    let mut payload = serde_json::json!({ "by": by, "reason": reason });
    if let Some(data) = data {
        payload["data"] = data.clone();
    }
    payload
}

impl Store {
    /// Records a person's command (`title` `cancel` or `resolve`, `payload` what the engine
    /// needs: who, why, and for a resolve what they decided) for workflow `id`, and makes the
    /// workflow due: the next worker to hold it hears the command, after the step in flight
    /// if there is one. Returns the inbox row's id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id; [`StoreError::Refused`] when the workflow
    /// has finished; [`StoreError::Database`] otherwise (then nothing was recorded).
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.id = %id, command = title))]
    pub async fn record_command(
        &self,
        id: Uuid,
        title: &str,
        payload: &Value,
    ) -> Result<i64, StoreError> {
        each_backend!(&self.backend, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let inbox_id = queue(Conn::from(&mut *tx), id, title, payload).await?;
            tx.commit().await?;
            Ok(inbox_id)
        })
    }
}

/// The journal row of a command that reached its workflow after it finished.
fn late_entry(
    state: &str,
    title: &str,
    status: &str,
    payload: Value,
    event_id: &str,
) -> JournalEntry {
    let mut entry = JournalEntry::new(state, title, Outcome::CommandRefused);
    entry.error = Some(format!(
        "{title} refused: the workflow finished ({status}) before the command reached it"
    ));
    entry.request_summary = Some(payload);
    entry.response_summary =
        Some(serde_json::json!({ "event_id": event_id, "source": Source::Operator.as_str() }));
    entry
}

/// The unprocessed operator commands received since `$1` whose workflow finished, oldest
/// first. On PostgreSQL no index reads `processed_at` (a callback's consumed mark is a
/// heap-only update, migration 0026): the operators' rows received since `$1` are read in
/// order from `callback_inbox_operator_received_idx`, the unprocessed ones kept.
const LATE_SQL: &str = "SELECT i.id, i.matched_workflow_id, i.title, i.payload, i.event_id, \
     w.status, w.state FROM callback_inbox i JOIN workflows w ON w.id = i.matched_workflow_id \
     WHERE i.source = 'operator' AND i.received_at >= $1 AND i.processed_at IS NULL \
     AND w.status IN ('completed', 'failed', 'cancelled') ORDER BY i.received_at, i.id LIMIT $2";

/// How far back [`Store::answer_late_commands`] looks in the routine look of a worker or the
/// console. A command is late when it was queued while its workflow's last step was in
/// flight (`queue` refuses a finished workflow and makes the others due, so any other
/// command is consumed by the workflow's next step): it is found within seconds of that
/// step's commit by whoever looks next. What a day's look cannot see (every worker stopped
/// for longer) the look over all of them finds, which a worker makes at start and hourly.
pub const LATE_COMMANDS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The most commands one call of [`Store::answer_late_commands`] answers.
pub const LATE_COMMANDS_AT_ONCE: u64 = 100;

impl Store {
    /// Answers operators' commands that reached their workflow after it finished (queued
    /// while its last step was in flight): each is journaled `command_refused` with the
    /// reason and marked processed, so none stays unprocessed. Only the commands received
    /// since `since` are looked at (all of them with `None`; see [`LATE_COMMANDS_WINDOW`]).
    /// `worker_id` is journaled as who answered. Returns how many were answered (at most
    /// [`LATE_COMMANDS_AT_ONCE`] a call).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn answer_late_commands(
        &self,
        worker_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let since = since.unwrap_or(DateTime::UNIX_EPOCH);
        let mut answered = 0;
        each_backend!(&self.backend, |pool, d| {
            let rows = sqlx::query(LATE_SQL)
                .bind(At(since))
                .bind(LATE_COMMANDS_AT_ONCE as i64)
                .fetch_all(pool)
                .await?;
            for row in rows {
                let inbox_id: i64 = row.read("id")?;
                let workflow_id = row.id("matched_workflow_id")?;
                let mut tx = pool.begin_with(d.begin()).await?;
                // The workflow's row orders journal appends.
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT 1 FROM workflows WHERE id = $1{}",
                    d.for_update()
                )))
                .bind(Id(workflow_id))
                .execute(&mut *tx)
                .await?;
                let taken = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE callback_inbox SET processed_at = {} \
                     WHERE id = $1 AND processed_at IS NULL",
                    d.now()
                )))
                .bind(inbox_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 1 {
                    let text = |name| row.read::<String>(name);
                    let entry = late_entry(
                        &text("state")?,
                        &text("title")?,
                        &text("status")?,
                        row.doc("payload")?,
                        &text("event_id")?,
                    );
                    append(Conn::from(&mut *tx), workflow_id, worker_id, &entry).await?;
                    answered += 1;
                }
                tx.commit().await?;
            }
        });
        Ok(answered)
    }
}

/// Queues a command in an open transaction: locks the workflow, refuses a finished one,
/// inserts the inbox row matched to it and makes it due.
pub(crate) async fn queue(
    conn: Conn<'_>,
    id: Uuid,
    title: &str,
    payload: &Value,
) -> Result<i64, StoreError> {
    let event_id = Uuid::new_v4().to_string();
    each_conn!(conn, |c, d| {
        let status: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT status FROM workflows WHERE id = $1{}",
            d.for_update()
        )))
        .bind(Id(id))
        .fetch_optional(&mut *c)
        .await?;
        refuse_finished(id, status.as_deref())?;
        let inbox_id: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO callback_inbox (source, event_id, title, payload, received_at, \
             matched_workflow_id, matched_at) VALUES ($1, $2, $3, $4, {now}, $5, {now}) \
             RETURNING id",
            now = d.now()
        )))
        .bind(Source::Operator.as_str())
        .bind(&event_id)
        .bind(title)
        .bind(Doc(payload))
        .bind(Id(id))
        .fetch_one(&mut *c)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE workflows SET next_run_at = {least}(coalesce(next_run_at, {now}), {now}), \
             updated_at = {now} WHERE id = $1",
            least = d.least(),
            now = d.now()
        )))
        .bind(Id(id))
        .execute(&mut *c)
        .await?;
        notify_due(Conn::from(&mut *c), &[id]).await?;
        Ok(inbox_id)
    })
}

pub(crate) fn refuse_finished(id: Uuid, status: Option<&str>) -> Result<(), StoreError> {
    match status {
        None => Err(StoreError::NotFound(id)),
        Some(status @ ("completed" | "failed" | "cancelled")) => Err(StoreError::Refused(format!(
            "workflow {id} is {status}: it takes no more commands"
        ))),
        Some(_) => Ok(()),
    }
}
