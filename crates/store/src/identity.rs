//! Who an onboarding is about: one borrower is onboarded once at a time, and a borrower who
//! was onboarded before is recognised when onboarded again.
//!
//! An `onboard-borrower` input names its borrower by NIK at [`NIK_PATH`]. The store keeps, in
//! `workflows.identity_key`, the lowercase hex SHA-256 of that NIK's UTF-8 bytes, never the
//! NIK itself (it is personal data); NULL for other kinds and when the path is absent or not
//! a JSON string. This module is the one place that says so in Rust ([`identity_key`]); the
//! SQL function `finflow_identity_key` (migrations/postgres/0005) says the same for
//! PostgreSQL, and the store's tests check both agree.
//!
//! * Submitting ([`Store::submit`](crate::Store::submit)): an onboarding whose identity key is
//!   held by another onboarding that has not finished (any status but completed, failed,
//!   cancelled) under another business key is refused with
//!   [`StoreError::OnboardingInProgress`](crate::StoreError::OnboardingInProgress). The check
//!   and the insert are one transaction; on PostgreSQL an advisory lock on the identity key
//!   serialises submits of one borrower, on SQLite the write lock does.
//! * Returning borrowers ([`Store::returning_borrower`]): the newest completed onboarding of
//!   the same borrower that knows its Finfra user id.
//! * Upgrades: PostgreSQL's migration fills the column for existing onboardings in SQL;
//!   SQLite has no SHA-256 in SQL, so [`backfill_sqlite`] does it in Rust, in the migration's
//!   transaction. The index is not unique: databases from before the rule may hold two
//!   unfinished onboardings of one borrower, and those stay.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::Store;
use crate::dialect::{Columns, Dialect, Id, each_backend};
use crate::error::StoreError;
use crate::workflow::uuid_from_sqlite;

/// The kind whose workflows carry an identity key.
pub const ONBOARD_KIND: &str = "onboard-borrower";

/// Where an `onboard-borrower` input holds the borrower's NIK, as object keys from the root.
pub const NIK_PATH: [&str; 5] = [
    "borrower",
    "authorised_signatory",
    "documents",
    "ktp",
    "number",
];

/// How many rows the SQLite backfill reads and updates at a time.
const BACKFILL_BATCH: i64 = 500;

/// The identity key of a workflow of `kind` with `input`: the lowercase hex SHA-256 of the
/// NIK string at [`NIK_PATH`] for an `onboard-borrower`; `None` for other kinds or when the
/// path is absent or does not end in a string (the worker's validation then fails the
/// workflow). The NIK is hashed as given, without trimming or normalising.
pub fn identity_key(kind: &str, input: &Value) -> Option<String> {
    nik(kind, input).map(sha256_hex)
}

/// The NIK of an `onboard-borrower` input, at [`NIK_PATH`]; `None` for other kinds.
pub(crate) fn nik<'a>(kind: &str, input: &'a Value) -> Option<&'a str> {
    if kind != ONBOARD_KIND {
        return None;
    }
    NIK_PATH
        .iter()
        .try_fold(input, |value, key| value.as_object()?.get(*key))?
        .as_str()
}

/// Lowercase hex SHA-256 of `text`'s UTF-8 bytes (what PostgreSQL's
/// `encode(sha256(convert_to(text, 'UTF8')), 'hex')` gives).
pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An earlier, completed onboarding of the same borrower, and the Finfra user id it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturningBorrower {
    /// The earlier onboarding's business key.
    pub business_key: String,
    /// The earlier onboarding's id.
    pub workflow_id: Uuid,
    /// The Finfra user id in its facts (`facts.user_id`).
    pub user_id: String,
}

/// `$1`'s earlier completed onboarding of the same identity key, with a user id.
///
/// The onboardings of the borrower are read first, by the identity key (`same`,
/// materialized), and only then filtered and ordered: the planner cannot start from the
/// index of finished workflows by kind and status and filter the key row by row, which it
/// did while a new database had no statistics (every completed onboarding read per lookup,
/// 6 ms at 20,000 of them). Each database reads `same` through its own index of the key:
/// PostgreSQL's holds the key alone (only onboardings have one), and a condition on the
/// kind beside it let the planner AND in the index by kind (every onboarding); SQLite's is
/// by kind and key.
fn returning_sql(d: Dialect) -> String {
    let kind = match d {
        Dialect::Postgres => "",
        Dialect::Sqlite => "c.kind = 'onboard-borrower' AND ",
    };
    format!(
        "WITH same AS MATERIALIZED ( \
             SELECT c.id, c.kind, c.status, c.facts, c.finished_at, c.created_at \
             FROM workflows c \
             WHERE {kind}c.identity_key = (SELECT identity_key FROM workflows WHERE id = $1)) \
         SELECT p.business_key, p.id, {user} AS user_id \
         FROM workflows w \
         LEFT JOIN workflows p ON p.id = ( \
             SELECT s.id FROM same s \
             WHERE s.kind = 'onboard-borrower' AND s.id <> w.id AND s.status = 'completed' \
               AND {string} AND {candidate} <> '' \
             ORDER BY s.finished_at DESC, s.created_at DESC, s.id DESC LIMIT 1) \
         WHERE w.id = $1",
        user = d.text_at("p.facts", "user_id"),
        string = d.is_json_string("s.facts", "user_id"),
        candidate = d.text_at("s.facts", "user_id"),
    )
}

impl Store {
    /// The borrower of onboarding `workflow_id`, if onboarded before: the most recently
    /// finished `completed` onboarding (another workflow) with the same identity key whose
    /// facts hold a non-empty string `user_id`. Failed and cancelled onboardings, other
    /// borrowers and completed ones without a user id are ignored; a workflow without an
    /// identity key (another kind, no NIK) has none. One query.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when no workflow has this id; [`StoreError::Database`]
    /// otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(workflow.id = %workflow_id))]
    pub async fn returning_borrower(
        &self,
        workflow_id: Uuid,
    ) -> Result<Option<ReturningBorrower>, StoreError> {
        let (business_key, id, user_id) = each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(sqlx::AssertSqlSafe(returning_sql(d)))
                .bind(Id(workflow_id))
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound(workflow_id))?;
            (
                row.read::<Option<String>>("business_key")?,
                row.id_opt("id")?,
                row.read::<Option<String>>("user_id")?,
            )
        });
        Ok(match (business_key, id, user_id) {
            (Some(business_key), Some(workflow_id), Some(user_id)) => Some(ReturningBorrower {
                business_key,
                workflow_id,
                user_id,
            }),
            _ => None,
        })
    }
}

/// The unfinished onboarding, under another business key than `business_key`, that holds
/// `identity_key` (the oldest, if a database from before the rule holds several), as
/// `(id, business key)`. Run it in the submit's write transaction.
pub(crate) async fn holder_sqlite(
    conn: &mut SqliteConnection,
    identity_key: &str,
    business_key: &str,
) -> Result<Option<(Uuid, String)>, StoreError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, business_key FROM workflows \
         WHERE kind = 'onboard-borrower' AND identity_key = $1 AND business_key <> $2 \
         AND status NOT IN ('completed', 'failed', 'cancelled') \
         ORDER BY created_at, id LIMIT 1",
    )
    .bind(identity_key)
    .bind(business_key)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(id, key)| Ok((uuid_from_sqlite(&id)?, key)))
        .transpose()
}

/// Fills `identity_key` for `onboard-borrower` rows that have a NIK string but no key yet,
/// [`BACKFILL_BATCH`] rows at a time, in the caller's transaction (the migration's: the column
/// and its values appear together). Idempotent: filled rows are not read again, and a run
/// after a complete one reads nothing but onboardings without a NIK (invalid inputs). Returns
/// how many rows it filled.
pub(crate) async fn backfill_sqlite(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    let nik_path = format!("$.{}", NIK_PATH.join("."));
    let mut after: i64 = 0;
    let mut filled = 0;
    loop {
        // The rowid cursor ends the loop even for a row SQLite's JSON and serde_json judged
        // differently (which would otherwise be read again and again).
        let batch: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT rowid, kind, input FROM workflows \
             WHERE kind = 'onboard-borrower' AND identity_key IS NULL \
             AND json_type(input, $1) = 'text' AND rowid > $2 \
             ORDER BY rowid LIMIT $3",
        )
        .bind(&nik_path)
        .bind(after)
        .bind(BACKFILL_BATCH)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = batch.last() else { break };
        after = last.0;
        for (rowid, kind, input) in &batch {
            let input: Value = serde_json::from_str(input)
                .map_err(|e| crate::error::decode_error(format!("workflows.input: {e}")))?;
            let Some(key) = identity_key(kind, &input) else {
                continue;
            };
            sqlx::query("UPDATE workflows SET identity_key = $1 WHERE rowid = $2")
                .bind(key)
                .bind(rowid)
                .execute(&mut *conn)
                .await?;
            filled += 1;
        }
    }
    if filled > 0 {
        tracing::info!(
            rows = filled,
            "filled workflows.identity_key of existing onboardings"
        );
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn onboarding(nik: Value) -> Value {
        json!({ "borrower": { "authorised_signatory": { "documents": { "ktp": { "number": nik } } } } })
    }

    #[test]
    fn the_key_is_the_sha256_of_the_nik_of_onboardings_only() {
        let key = identity_key(ONBOARD_KIND, &onboarding(json!("3275062009921981")));
        assert_eq!(
            key.as_deref(),
            Some(sha256_hex("3275062009921981").as_str())
        );
        let key = key.expect("a key");
        assert_eq!(key.len(), 64);
        assert!(!key.contains("3275062009921981"), "never the NIK itself");
        assert!(key.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        // sha256("abc"), the FIPS 180-2 example.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(
            identity_key(ONBOARD_KIND, &onboarding(json!("3275064107850003"))),
            Some(key)
        );

        assert_eq!(
            identity_key("originate-loan", &onboarding(json!("3275062009921981"))),
            None
        );
        assert_eq!(
            identity_key(ONBOARD_KIND, &onboarding(json!(3_275_062_009_921_981_u64))),
            None
        );
        assert_eq!(identity_key(ONBOARD_KIND, &onboarding(Value::Null)), None);
        assert_eq!(identity_key(ONBOARD_KIND, &json!({ "borrower": {} })), None);
        assert_eq!(
            identity_key(ONBOARD_KIND, &json!({ "borrower": [1, 2] })),
            None
        );
        assert_eq!(identity_key(ONBOARD_KIND, &json!("text")), None);
    }
}
