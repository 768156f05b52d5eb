//! Announcements: the end of a workflow, told through the inbox (source `internal`) to the
//! workflows that wait for it, beside Finfra's callbacks.
//!
//! A workflow's terminal commit may carry an [`Announcement`]. In that transaction the
//! store inserts it once, processed and unmatched (it wakes nobody itself, and stays as the
//! record that the workflow finished), and one copy per workflow already waiting for it (a wait on the announcement's title, key
//! `external_id`, value [`Announcement::external_id`]), matched to that waiter, which is
//! made due at once. A workflow that starts waiting later gets its copy in the commit that
//! registers the wait. One row per waiter because an inbox row is consumed by one workflow,
//! and several loans may wait for one onboarding. Copies have event id
//! `<announcement event id>:<waiter id>`, so neither side can make two.

use serde_json::Value;
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::StoreError;
use crate::inbox::Source;

/// What a finishing workflow tells the workflows waiting for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// The title waits match on, e.g. `workflow_finished`.
    pub title: String,
    /// The value waits match in the `external_id` column, e.g. `onboard-borrower/b-42`.
    pub external_id: String,
    /// Delivered to each waiter as the event's payload.
    pub payload: Value,
}

/// SQLite version of [`announce_pg`].
pub(crate) async fn announce_sqlite(
    conn: &mut SqliteConnection,
    workflow_id: Uuid,
    announcement: &Announcement,
    now: &str,
) -> Result<(), StoreError> {
    let event_id = workflow_id.to_string();
    let payload = announcement.payload.to_string();
    sqlx::query(
        "INSERT INTO callback_inbox (source, event_id, title, external_id, payload, received_at, \
         processed_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (source, event_id) DO NOTHING",
    )
    .bind(Source::Internal.as_str())
    .bind(&event_id)
    .bind(&announcement.title)
    .bind(&announcement.external_id)
    .bind(&payload)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let waiters: Vec<String> = sqlx::query_scalar(
        "INSERT INTO callback_inbox (source, event_id, title, external_id, payload, received_at, \
         matched_workflow_id, matched_at) \
         SELECT $1, $2 || ':' || w.workflow_id, $3, w.key_value, $5, $6, w.workflow_id, $6 \
         FROM workflow_waits w JOIN workflows f ON f.id = w.workflow_id \
         WHERE $3 IN (SELECT value FROM json_each(w.events)) \
         AND w.key_name = 'external_id' AND w.key_value = $4 \
         AND f.status NOT IN ('completed', 'failed', 'cancelled') \
         ON CONFLICT (source, event_id) DO NOTHING RETURNING matched_workflow_id",
    )
    .bind(Source::Internal.as_str())
    .bind(&event_id)
    .bind(&announcement.title)
    .bind(&announcement.external_id)
    .bind(&payload)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    for waiter in &waiters {
        sqlx::query(
            "UPDATE workflows SET next_run_at = min(coalesce(next_run_at, $2), $2), \
             updated_at = $2 WHERE id = $1",
        )
        .bind(waiter)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// SQLite version of [`copy_announcements_pg`].
pub(crate) async fn copy_announcements_sqlite(
    conn: &mut SqliteConnection,
    waiter: Uuid,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO callback_inbox (source, event_id, title, external_id, payload, received_at, \
         matched_workflow_id, matched_at) \
         SELECT a.source, a.event_id || ':' || $1, a.title, a.external_id, a.payload, $2, $1, $2 \
         FROM workflow_waits w JOIN callback_inbox a ON a.external_id = w.key_value \
         AND a.title IN (SELECT value FROM json_each(w.events)) AND a.source = 'internal' \
         AND a.matched_workflow_id IS NULL \
         WHERE w.workflow_id = $1 AND w.key_name = 'external_id' \
         ON CONFLICT (source, event_id) DO NOTHING",
    )
    .bind(waiter.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
