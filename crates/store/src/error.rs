//! The store's one error type. Callers branch on the variant: `Conflict`,
//! `InvalidBusinessKey`, `OnboardingInProgress` and `Refused` are answers for a person,
//! `LeaseLost` tells a worker to drop its step, the rest are faults.

use uuid::Uuid;

use crate::business_key::BusinessKeyError;

/// SQLSTATE raised by `finflow_submit` (PostgreSQL) when a key is reused with another input.
pub const CONFLICT_SQLSTATE: &str = "FF409";

/// SQLSTATE raised by `finflow_submit` (PostgreSQL) for a business key that breaks the rule
/// (and for an empty kind): PostgreSQL's own `invalid_parameter_value`.
pub const INVALID_BUSINESS_KEY_SQLSTATE: &str = "22023";

/// SQLSTATE raised by `finflow_submit` (PostgreSQL) when another onboarding of the same
/// borrower has not finished ("held"); its DETAIL names that workflow and its business key.
pub const ONBOARDING_IN_PROGRESS_SQLSTATE: &str = "FF423";

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same `(kind, business_key)` was submitted before with a different input.
    #[error(
        "a {kind} workflow with business key {business_key:?} already exists with a different input"
    )]
    Conflict { kind: String, business_key: String },

    /// The business key breaks the rule (1 to 200 printable characters without surrounding
    /// whitespace); the message states the rule and the problem. Nothing was stored.
    #[error(transparent)]
    InvalidBusinessKey(#[from] BusinessKeyError),

    /// Another `onboard-borrower` workflow of the same borrower (same NIK), under another
    /// business key, has not finished. Nothing was stored.
    #[error(
        "borrower already being onboarded under business key {business_key:?} (workflow \
         {workflow_id}): wait for it to finish or cancel it"
    )]
    OnboardingInProgress {
        /// The unfinished onboarding's business key.
        business_key: String,
        /// The unfinished onboarding's id.
        workflow_id: Uuid,
    },

    /// No workflow has this id.
    #[error("workflow {0} not found")]
    NotFound(Uuid),

    /// The workflow changed since it was claimed (another worker took over an expired lease,
    /// or an operator cancelled it): nothing was written, the step's result must be dropped.
    #[error("lost the lease on workflow {0}: it changed since it was claimed; nothing was written")]
    LeaseLost(Uuid),

    /// The operation does not apply to the workflow as it is (e.g. cancelling a finished one).
    #[error("refused: {0}")]
    Refused(String),

    /// The database failed or refused a statement.
    #[error("database error")]
    Database(#[source] sqlx::Error),

    /// Applying finflow's or apalis's migrations failed.
    #[error("migrating the database failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// Scheduling a wake-up task failed for a reason other than the database.
    #[error("scheduling a wake-up failed")]
    Dispatch(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// Personal data could not be sealed or opened: a missing or wrong key, a tampered
    /// value. The message never holds the data or a key.
    #[error("personal data: {0}")]
    Privacy(#[from] privacy::PrivacyError),

    /// The workflow's personal data was erased (purge or erase): its input is gone.
    #[error("the personal data of workflow {0} was erased")]
    Erased(Uuid),

    /// The database URL is not one the store understands. The message never repeats the URL
    /// (it may hold a password).
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
}

impl StoreError {
    /// `true` when a retry of the same operation may succeed (a serialization failure, a
    /// deadlock, a busy SQLite file, a dropped connection).
    pub fn is_transient(&self) -> bool {
        match self {
            // Answers about the data: the same call gives the same answer.
            Self::Conflict { .. } | Self::NotFound(_) | Self::LeaseLost(_) | Self::Refused(_) => {
                false
            }
            // The key stays invalid whatever the database does.
            Self::InvalidBusinessKey(_) => false,
            // Not by retrying at once: the other onboarding must finish or be cancelled first.
            Self::OnboardingInProgress { .. } => false,
            // Configuration or schema problems: need a person.
            Self::Migrate(_) | Self::InvalidUrl(_) | Self::Privacy(_) | Self::Erased(_) => false,
            Self::Database(e) => is_transient_sqlx(e),
            Self::Dispatch(_) => false,
        }
    }

    /// `true` when the database cannot be reached or does not accept connections now: no
    /// answer, a connection refused or dropped, a pool that found no connection in time, or
    /// PostgreSQL saying so (`08…` connection exceptions; `57P01`–`57P03`: shutting down,
    /// crashed, starting up; `53300` too many connections; `55000`, which on connecting means
    /// the database does not allow connections now, and after it other refusals: meant for
    /// opening a store). A wrong password, database name or URL is not: trying again gives
    /// the same answer. Migrations that could not reach the database count too.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            Self::Database(e) => e,
            Self::Migrate(
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
            ) => e,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some_and(|pg| {
                    let code = pg.code();
                    code.starts_with("08")
                        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55000")
                }),
            _ => false,
        }
    }
}

fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    use sqlx::error::DatabaseError as _;
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // Primary result code (low byte of the extended one): SQLITE_BUSY, SQLITE_LOCKED.
                return sqlite
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6));
            }
            // serialization_failure, deadlock_detected
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(e)
    }
}

impl From<apalis_postgres::Error> for StoreError {
    fn from(e: apalis_postgres::Error) -> Self {
        match e {
            apalis_postgres::Error::Database(e) => Self::Database(e),
            other => Self::Dispatch(Box::new(other)),
        }
    }
}

impl From<apalis_sqlite::Error> for StoreError {
    fn from(e: apalis_sqlite::Error) -> Self {
        match e {
            apalis_sqlite::Error::Database(e) => Self::Database(e),
            other => Self::Dispatch(Box::new(other)),
        }
    }
}

/// A value read from the database that the store cannot interpret (a status it does not know,
/// malformed JSON or timestamp): reported as a decode error of the database layer.
pub(crate) fn decode_error(what: impl Into<String>) -> StoreError {
    let what: String = what.into();
    StoreError::Database(sqlx::Error::Decode(what.into()))
}
