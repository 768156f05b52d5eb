//! The seam between the two databases the store runs on. A statement of the store is written
//! once; what PostgreSQL and SQLite spell differently lives here, and nowhere else:
//!
//! * **Values.** An id is `uuid` on PostgreSQL and text on SQLite; a time is `timestamptz`
//!   and the fixed-width text of [`crate::time`]; a JSON document is `jsonb` and text; a list
//!   is an array and a JSON array. [`Id`], [`At`], [`Doc`], [`Texts`] and [`Ints`] bind each
//!   as its database stores it, and [`Columns`] reads them back, so one `.bind(Id(id))` and
//!   one `row.id("id")` serve both.
//! * **The code around a statement.** [`each_backend!`] expands one block for whichever pool
//!   the store holds, compiled once for each database, with that database's [`Dialect`];
//!   [`each_conn!`] does the same for a connection inside a caller's transaction ([`Conn`]).
//! * **The few words of SQL that differ** ([`Dialect`]): the current time, how a write
//!   transaction begins, byte-wise text order, row locks, JSON fields, bound lists as tables.
//!   Placeholders are `$1`, `$2`, … on both.
//!
//! What stays apart on purpose, each with a comment where it is: on PostgreSQL a step's
//! commit, a stored callback and a submit are one call of a server function each (one round
//! trip, migrations 0003 to 0018), which SQLite has no way to hold; their SQLite sequences
//! (`crate::commit`, `crate::inbox`, `crate::submit`) follow the functions and are held to
//! them by the same store tests, run on both. PostgreSQL claims a batch (of workflows, of
//! webhook deliveries) in one statement that skips rows another worker is claiming, and
//! leases the fleet's tokens in one statement under a row lock, where SQLite's one writer
//! goes a row at a time; `NOTIFY`/`LISTEN` are PostgreSQL's alone; apalis's own tables have
//! apalis's schema on each.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Decode, Encode, Postgres, Row, Sqlite, Type};
use uuid::Uuid;

use crate::error::{StoreError, decode_error};
use crate::time::{from_sqlite, to_sqlite};
use crate::workflow::Status;

/// The words of SQL the two databases say differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// The fact ids a workflow is looked up by (each with an index on both backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FactId {
    UserId,
    LoanUniqueId,
}

impl Dialect {
    /// The dialect of `backend`'s database.
    pub(crate) const fn of(backend: &crate::connect::Backend) -> Self {
        match backend {
            crate::connect::Backend::Postgres(_) => Self::Postgres,
            crate::connect::Backend::Sqlite(_) => Self::Sqlite,
        }
    }

    /// The current time, as the database stores it: on PostgreSQL the server's clock (a fleet
    /// agrees on one), on SQLite the machine's, in the fixed-width text `crate::time` writes.
    pub(crate) const fn now(self) -> &'static str {
        match self {
            Self::Postgres => "now()",
            Self::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// How a write transaction begins: SQLite takes its write lock up front, so that
    /// concurrent writers queue on `busy_timeout` instead of failing on upgrade.
    pub(crate) const fn begin(self) -> &'static str {
        match self {
            Self::Postgres => "BEGIN",
            Self::Sqlite => crate::tx::SQLITE_BEGIN,
        }
    }

    /// After a text column or value: compare by bytes (PostgreSQL's `"C"` collation; SQLite
    /// compares text by bytes already).
    pub(crate) const fn bytes(self) -> &'static str {
        match self {
            Self::Postgres => " COLLATE \"C\"",
            Self::Sqlite => "",
        }
    }

    /// After a `SELECT` that is about to update what it read: lock its rows (PostgreSQL;
    /// SQLite's write transaction already keeps every other writer out).
    pub(crate) const fn for_update(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE",
            Self::Sqlite => "",
        }
    }

    /// As [`Self::for_update`], for the rows of one table of a join (`r`, say).
    pub(crate) fn for_update_of(self, table: &str) -> String {
        match self {
            Self::Postgres => format!(" FOR UPDATE OF {table}"),
            Self::Sqlite => String::new(),
        }
    }

    /// After a `SELECT` whose rows must not change until the transaction ends, though it
    /// does not change them itself.
    pub(crate) const fn for_share(self) -> &'static str {
        match self {
            Self::Postgres => " FOR SHARE",
            Self::Sqlite => "",
        }
    }

    /// The time `seconds` (a placeholder such as `$4`, bound as a float) from now, on the
    /// clock of [`Self::now`].
    pub(crate) fn now_plus_secs(self, seconds: &str) -> String {
        match self {
            Self::Postgres => format!("now() + make_interval(secs => {seconds})"),
            Self::Sqlite => {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || {seconds} || ' seconds')")
            }
        }
    }

    /// Whether `key` of the JSON object `doc` (an expression) is a string.
    pub(crate) fn is_json_string(self, doc: &str, key: &str) -> String {
        match self {
            Self::Postgres => format!("jsonb_typeof({doc}->'{key}') = 'string'"),
            Self::Sqlite => format!("json_type({doc}, '$.{key}') = 'text'"),
        }
    }

    /// Whether the JSON object `doc` (an expression) has the key `key`: PostgreSQL's `?`
    /// (a key holding JSON `null` counts); on SQLite, a key whose value is not JSON `null`.
    /// Parenthesized, ready for a `NOT`.
    pub(crate) fn has_key(self, doc: &str, key: &str) -> String {
        match self {
            Self::Postgres => format!("({doc} ? '{key}')"),
            Self::Sqlite => format!("(json_extract({doc}, '{}') IS NOT NULL)", json_path(key)),
        }
    }

    /// The value of `key` of the JSON object `doc` (an expression) as SQL (`->>` on
    /// PostgreSQL; `json_extract` on SQLite, spelled as SQLite's expression indexes on
    /// `facts` are, and able to read a key such as `$key` that SQLite's `->>` takes for a
    /// path); `NULL` when absent.
    pub(crate) fn text_at(self, doc: &str, key: &str) -> String {
        match self {
            Self::Postgres => format!("{doc}->>'{key}'"),
            Self::Sqlite => format!("json_extract({doc}, '{}')", json_path(key)),
        }
    }

    /// A workflow's indexed fact id: on PostgreSQL the stored generated column that holds it
    /// (migration 0021, so that an update whose facts keep the id can be HOT), on SQLite the
    /// expression its index reads (`text_at`).
    pub(crate) fn fact_id(self, id: FactId) -> String {
        let key = match id {
            FactId::UserId => "user_id",
            FactId::LoanUniqueId => "loan_unique_id",
        };
        match self {
            Self::Postgres => key.to_owned(),
            Self::Sqlite => self.text_at("facts", key),
        }
    }

    /// `status` is `value` (a placeholder or a quoted literal; `status` what it names, if it
    /// names one), written so that an index serves it. PostgreSQL indexes the statuses a
    /// workflow rests in through `status_settled` (migration 0031: an index that read
    /// `status` made every claim write into all of the table's indexes), so a moving status
    /// is found among the index's NULLs; SQLite's indexes read `status` itself.
    pub(crate) fn status_is(self, status: Option<Status>, value: &str) -> String {
        match (self, status) {
            (Self::Postgres, Some(s)) if s.is_settled() => format!("status_settled = {value}"),
            (Self::Postgres, Some(_)) => {
                format!("status_settled IS NULL AND status = {value}")
            }
            _ => format!("status = {value}"),
        }
    }

    /// The rows of a list of texts bound as [`Texts`] at placeholder `param`, as a table
    /// with one column `value`: `x IN (SELECT value FROM {..})`, `INSERT … SELECT value FROM
    /// {..}`.
    pub(crate) fn values_of(self, param: &str) -> String {
        match self {
            Self::Postgres => format!("unnest({param}::text[]) AS t(value)"),
            Self::Sqlite => format!("json_each({param})"),
        }
    }

    /// As [`Self::values_of`], for a list of integers bound as [`Ints`].
    pub(crate) fn ints_of(self, param: &str) -> String {
        match self {
            Self::Postgres => format!("unnest({param}::bigint[]) AS t(value)"),
            Self::Sqlite => format!("json_each({param})"),
        }
    }

    /// As [`Self::values_of`], for a list of uuids bound as [`Texts`] of their hyphenated
    /// text: the column `value` compares with an [`Id`] column (`uuid` on PostgreSQL, text
    /// on SQLite), as in `id IN (SELECT value FROM {..})`.
    pub(crate) fn ids_of(self, param: &str) -> String {
        match self {
            Self::Postgres => format!("unnest({param}::text[]::uuid[]) AS t(value)"),
            Self::Sqlite => format!("json_each({param})"),
        }
    }

    /// The elements of a column holding a list of texts (`text[]` on PostgreSQL, a JSON
    /// array on SQLite, as `workflow_waits.events`), as a table `alias` with one column
    /// `value`, for a `FROM` beside the column's table: `FROM workflow_waits w, {..}`.
    pub(crate) fn elements(self, column: &str, alias: &str) -> String {
        match self {
            Self::Postgres => format!("unnest({column}) AS {alias}(value)"),
            Self::Sqlite => format!("json_each({column}) AS {alias}"),
        }
    }

    /// The smaller of two values (`least` on PostgreSQL, the two-argument `min` on SQLite).
    pub(crate) const fn least(self) -> &'static str {
        match self {
            Self::Postgres => "least",
            Self::Sqlite => "min",
        }
    }

    /// The UTC minute of a time column, as text `YYYY-MM-DDTHH:MM`.
    pub(crate) fn minute(self, column: &str) -> String {
        match self {
            Self::Postgres => {
                format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')")
            }
            Self::Sqlite => format!("substr({column}, 1, 16)"),
        }
    }
}

/// SQLite's JSON path of the top-level `key`: `$.key` for a plain name (as an expression
/// index spells it, so that the index serves the query), else `$."key"`.
fn json_path(key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("$.{key}")
    } else {
        format!("$.\"{key}\"")
    }
}

/// Runs one block on the store's pool, whichever database it is: written once, compiled for
/// each, with `$pool` the pool and `$d` its [`Dialect`](crate::dialect::Dialect).
macro_rules! each_backend {
    ($backend:expr, |$pool:ident, $d:ident| $body:expr) => {
        match $backend {
            $crate::connect::Backend::Postgres($pool) => {
                #[allow(unused_variables)]
                let $d = $crate::dialect::Dialect::Postgres;
                $body
            }
            $crate::connect::Backend::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $d = $crate::dialect::Dialect::Sqlite;
                $body
            }
        }
    };
}
pub(crate) use each_backend;

/// A connection (or open transaction) of either database, for a sequence written once that
/// runs inside a caller's transaction; [`each_conn!`] expands one block for it.
pub(crate) enum Conn<'c> {
    Postgres(&'c mut sqlx::PgConnection),
    Sqlite(&'c mut sqlx::SqliteConnection),
}

impl<'c> From<&'c mut sqlx::PgConnection> for Conn<'c> {
    fn from(conn: &'c mut sqlx::PgConnection) -> Self {
        Self::Postgres(conn)
    }
}

impl<'c> From<&'c mut sqlx::SqliteConnection> for Conn<'c> {
    fn from(conn: &'c mut sqlx::SqliteConnection) -> Self {
        Self::Sqlite(conn)
    }
}

/// As [`each_backend!`], for a [`Conn`]: `$conn` is the connection.
macro_rules! each_conn {
    ($conn:expr, |$c:ident, $d:ident| $body:expr) => {
        match $conn {
            $crate::dialect::Conn::Postgres($c) => {
                #[allow(unused_variables)]
                let $d = $crate::dialect::Dialect::Postgres;
                $body
            }
            $crate::dialect::Conn::Sqlite($c) => {
                #[allow(unused_variables)]
                let $d = $crate::dialect::Dialect::Sqlite;
                $body
            }
        }
    };
}
pub(crate) use each_conn;

/// A workflow id (or any uuid) to bind: `uuid` on PostgreSQL, its hyphenated text on SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id(pub Uuid);

/// A time to bind: `timestamptz` on PostgreSQL (to the microsecond), the fixed-width text of
/// `crate::time` on SQLite (to the millisecond).
#[derive(Debug, Clone, Copy)]
pub(crate) struct At(pub DateTime<Utc>);

/// A list of texts to bind, read with [`Dialect::values_of`]: `text[]` on PostgreSQL, a JSON
/// array on SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Texts<'a>(pub &'a [String]);

/// A list of integers to bind, read with [`Dialect::ints_of`]: `bigint[]` on PostgreSQL, a
/// JSON array on SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ints<'a>(pub &'a [i64]);

/// A JSON document to bind: `jsonb` on PostgreSQL, its text on SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Doc<'a>(pub &'a Value);

impl Type<Postgres> for Id {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Id {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Id {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Id {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl Type<Postgres> for At {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for At {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for At {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for At {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(to_sqlite(self.0), buf)
    }
}

impl Type<Postgres> for Doc<'_> {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Value as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Doc<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <Value as Encode<Postgres>>::encode_by_ref(self.0, buf)
    }
}

impl Type<Sqlite> for Doc<'_> {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Doc<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl Type<Postgres> for Texts<'_> {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Texts<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <&[String] as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Texts<'_> {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Texts<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(serde_json::to_string(self.0)?, buf)
    }
}

impl Type<Postgres> for Ints<'_> {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <Vec<i64> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ints<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <&[i64] as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for Ints<'_> {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Ints<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(serde_json::to_string(self.0)?, buf)
    }
}

/// A value both databases decode the same way (text, integers, booleans, floats).
pub(crate) trait Plain:
    for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<T> Plain for T where
    T: for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

/// Reading a row of either database: a decoder of the store is written once, over this.
pub(crate) trait Columns {
    /// A column both databases store alike (text, integers, booleans, floats, and their
    /// `Option`s for a nullable column).
    fn read<T: Plain>(&self, name: &str) -> Result<T, StoreError>;
    /// A uuid column, `NULL` as `None`.
    fn id_opt(&self, name: &str) -> Result<Option<Uuid>, StoreError>;
    /// A time column, `NULL` as `None`.
    fn at_opt(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A JSON column, `NULL` as `None`.
    fn doc_opt(&self, name: &str) -> Result<Option<Value>, StoreError>;

    /// A uuid column that is never `NULL`.
    fn id(&self, name: &str) -> Result<Uuid, StoreError> {
        self.id_opt(name)?.ok_or_else(|| null(name))
    }
    /// A time column that is never `NULL`.
    fn at(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        self.at_opt(name)?.ok_or_else(|| null(name))
    }
    /// A JSON column that is never `NULL`.
    fn doc(&self, name: &str) -> Result<Value, StoreError> {
        self.doc_opt(name)?.ok_or_else(|| null(name))
    }
}

fn null(name: &str) -> StoreError {
    decode_error(format!("column {name:?} is NULL"))
}

impl Columns for PgRow {
    fn read<T: Plain>(&self, name: &str) -> Result<T, StoreError> {
        Ok(self.try_get::<T, _>(name)?)
    }

    fn id_opt(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn at_opt(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn doc_opt(&self, name: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

impl Columns for SqliteRow {
    fn read<T: Plain>(&self, name: &str) -> Result<T, StoreError> {
        Ok(self.try_get::<T, _>(name)?)
    }

    fn id_opt(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        self.try_get::<Option<String>, _>(name)?
            .map(|s| Uuid::parse_str(&s).map_err(|e| decode_error(format!("uuid {s:?}: {e}"))))
            .transpose()
    }

    fn at_opt(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.try_get::<Option<String>, _>(name)?
            .as_deref()
            .map(from_sqlite)
            .transpose()
    }

    fn doc_opt(&self, name: &str) -> Result<Option<Value>, StoreError> {
        self.try_get::<Option<String>, _>(name)?
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| decode_error(format!("JSON column {name:?}: {e}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;
    use crate::testing::TestDb;

    crate::test_both_backends!(
        values_bind_and_read_back_as_each_database_stores_them,
        the_words_of_sql_mean_the_same_on_both,
        a_status_is_found_alike_on_both,
        a_list_column_reads_as_the_same_rows_on_both
    );

    /// `Id`, `At`, `Doc` and `Texts` bound, and read back through `Columns`.
    async fn values_bind_and_read_back_as_each_database_stores_them(db: TestDb) {
        let id = Uuid::new_v4();
        let at = Utc::now();
        let doc = json!({ "user_id": "u-1", "n": [1, 2] });
        let list = vec!["a".to_owned(), "b'c".to_owned()];
        each_backend!(db.store.backend(), |pool, d| {
            let row = sqlx::query("SELECT $1 AS id, $2 AS at, $3 AS doc, $4 AS none_at")
                .bind(Id(id))
                .bind(At(at))
                .bind(Doc(&doc))
                .bind(None::<At>)
                .fetch_one(pool)
                .await
                .expect("select");
            assert_eq!(row.id("id").expect("id"), id);
            let read = row.at("at").expect("at");
            // PostgreSQL keeps microseconds, SQLite milliseconds: never more apart.
            assert!(
                (read - at).abs() < TimeDelta::milliseconds(1),
                "{read} vs {at}"
            );
            assert_eq!(row.doc("doc").expect("doc"), doc);
            assert_eq!(row.at_opt("none_at").expect("none"), None);
            let err = row.at("none_at").expect_err("NULL is not a time");
            let why = std::error::Error::source(&err).map(ToString::to_string);
            assert!(
                why.as_deref().is_some_and(|w| w.contains("none_at")),
                "{why:?}"
            );

            let sql = format!("SELECT value FROM {} ORDER BY value", d.values_of("$1"));
            let values: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(Texts(&list))
                .fetch_all(pool)
                .await
                .expect("values");
            assert_eq!(values, list);

            let sql = format!("SELECT value FROM {} ORDER BY value", d.ints_of("$1"));
            let ints: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(Ints(&[3, -1, 2]))
                .fetch_all(pool)
                .await
                .expect("ints");
            assert_eq!(ints, [-1, 2, 3]);
        });
    }

    /// `status_is` finds the workflows in each status, named by a literal or a placeholder,
    /// whether the workflow rests in it or moves on (so `Status::is_settled` and PostgreSQL's
    /// `status_settled` agree on every status); a name of no status finds none.
    async fn a_status_is_found_alike_on_both(db: TestDb) {
        let statuses = Status::ALL;
        for (n, status) in statuses.iter().enumerate() {
            let submitted = db
                .store
                .submit(&crate::NewWorkflow::new("k", format!("w-{n}"), json!({})))
                .await
                .expect("submit");
            each_backend!(db.store.backend(), |pool, d| {
                let sql = format!(
                    "UPDATE workflows SET status = $2, finished_at = CASE WHEN $3 \
                     THEN {} END WHERE id = $1",
                    d.now()
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(Id(submitted.id))
                    .bind(status.as_str())
                    .bind(status.is_terminal())
                    .execute(pool)
                    .await
                    .expect("status");
            });
        }
        for status in statuses {
            let literal = format!("'{status}'");
            each_backend!(db.store.backend(), |pool, d| {
                for (value, bound) in [(literal.as_str(), false), ("$1", true)] {
                    let sql = format!(
                        "SELECT business_key FROM workflows WHERE {}",
                        d.status_is(Some(status), value)
                    );
                    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
                    if bound {
                        query = query.bind(status.as_str());
                    }
                    let found = query.fetch_all(pool).await.expect("select");
                    let n = statuses.iter().position(|s| *s == status).expect("listed");
                    assert_eq!(found, [format!("w-{n}")], "{status} as {value}");
                }
                let sql = format!(
                    "SELECT count(*) FROM workflows WHERE {}",
                    d.status_is(None, "$1")
                );
                let none: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind("resting")
                    .fetch_one(pool)
                    .await
                    .expect("count");
                assert_eq!(none, 0);
            });
        }
    }

    /// `elements` reads a list column (`text[]` on PostgreSQL, a JSON array on SQLite, as
    /// `workflow_waits.events` stores them) as the same rows.
    async fn a_list_column_reads_as_the_same_rows_on_both(db: TestDb) {
        each_backend!(db.store.backend(), |pool, d| {
            let list = match d {
                Dialect::Postgres => "ARRAY['user_rejected', 'user_approved']::text[]",
                Dialect::Sqlite => "'[\"user_rejected\",\"user_approved\"]'",
            };
            let sql = format!(
                "SELECT e.value FROM (SELECT {list} AS events) w, {} ORDER BY 1",
                d.elements("w.events", "e")
            );
            let values: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .expect("elements");
            assert_eq!(values, ["user_approved", "user_rejected"]);
        });
    }

    /// `now()`, `now_plus_secs`, `least`, `is_json_string` and `minute` give the same answers.
    async fn the_words_of_sql_mean_the_same_on_both(db: TestDb) {
        let before = Utc::now() - TimeDelta::milliseconds(5);
        each_backend!(db.store.backend(), |pool, d| {
            let sql = format!(
                "SELECT {now} AS now, {later} AS later, {least}(3, 2) AS small, \
                 {text} AS text, {number} AS number, {minute} AS minute",
                now = d.now(),
                later = d.now_plus_secs("$1"),
                least = d.least(),
                text = d.is_json_string("$2", "a"),
                number = d.is_json_string("$2", "b"),
                minute = d.minute("$3"),
            );
            let at = Utc::now();
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(30.5_f64)
                .bind(Doc(&json!({ "a": "x", "b": 1 })))
                .bind(At(at))
                .fetch_one(pool)
                .await
                .expect("select");
            let now = row.at("now").expect("now");
            assert!(
                now >= before && now <= Utc::now() + TimeDelta::seconds(1),
                "{now}"
            );
            let later = row.at("later").expect("later");
            let ahead = later - now;
            assert!(
                ahead >= TimeDelta::milliseconds(30_400)
                    && ahead <= TimeDelta::milliseconds(30_600),
                "{ahead}"
            );
            assert_eq!(row.read::<i32>("small").expect("least"), 2);
            assert!(row.read::<bool>("text").expect("a string"));
            assert!(!row.read::<bool>("number").expect("not a string"));
            assert_eq!(
                row.read::<String>("minute").expect("minute"),
                at.format("%Y-%m-%dT%H:%M").to_string()
            );
        });
    }
}
