//! finflow's durable store: the engine's only state, on SQLite (one machine, a file) or
//! PostgreSQL (a fleet), behind one [`Store`].
//!
//! The engine's loop, and the store call for each part of it:
//!
//! 1. other systems [`Store::submit`] work (or call `finflow_submit(...)` in SQL on
//!    PostgreSQL): a `workflows` row and its first wake-up, in one transaction;
//! 2. a worker hears that it is due (a `finflow_due` hint, [`Store::listen_due`], or its
//!    due scan, [`Store::claim_due`]) and [`Store::claim`]s the workflow: only one worker
//!    holds it at a time;
//! 3. it runs one step outside any transaction (a Finfra call), then
//!    [`Store::commit_step`]s the outcome: new state, journal row, wait registrations,
//!    consumed callbacks and the next wake-up, in one transaction, or nothing if it lost the
//!    workflow meanwhile ([`StoreError::LeaseLost`]);
//! 4. Finfra's callbacks go to [`Store::record_callback`]: stored once, matched to the
//!    workflow waiting for them, which is woken in the same transaction; a callback that
//!    arrives before its workflow waits is matched when the wait begins.
//!
//! `workflows.next_run_at` is the truth about when a workflow is due; wake-ups are only
//! hints (a stale or duplicate one finds nothing due and is dropped), and [`Store::claim_due`]
//! is the scan that needs none. See `wakeup` for the dispatch design and `time` for timestamps.
//!
//! Every fallible function documents its errors in [`StoreError`] terms.

mod announce;
mod approval;
mod business_key;
mod cancel;
mod claim;
mod command;
mod commit;
mod connect;
mod definitions;
mod dialect;
mod due;
mod error;
mod events;
mod group;
mod hot;
mod identity;
mod inbox;
mod inspect;
mod journal;
mod list;
mod migrate;
mod overview;
mod personal;
mod rate_limit;
mod reconcile;
mod submit;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod tx;
mod wakeup;
mod webhooks;
mod workflow;

pub use announce::Announcement;
pub use approval::{CommandRequest, RequestFilter, RequestStatus};
pub use business_key::{BUSINESS_KEY_MAX_CHARS, BusinessKeyError, check_business_key};
pub use claim::Claimed;
pub use command::{
    COMMAND_CANCEL, COMMAND_RESOLVE, LATE_COMMANDS_AT_ONCE, LATE_COMMANDS_WINDOW, command_payload,
};
pub use commit::{Committed, StepCommit, Wait};
pub use connect::{Backend, StoreOptions};
pub use definitions::PinnedDefinition;
pub use error::{
    CONFLICT_SQLSTATE, INVALID_BUSINESS_KEY_SQLSTATE, ONBOARDING_IN_PROGRESS_SQLSTATE, StoreError,
};
pub use events::{EVENTS_CHANNEL, EVENTS_PAGE_MAX, EventRow, NewEvent};
pub use identity::{NIK_PATH, ONBOARD_KIND, ReturningBorrower, identity_key};
pub use inbox::{CorrelationKey, CorrelationKeys, InboxEvent, InboxRow, Recorded, Source};
pub use inspect::{MatchedEvent, StuckWorkflow, WaitRow, WaitingCount};
pub use journal::{JournalEntry, JournalRow, Outcome};
pub use list::{Cursor, OperatorCommand, WorkflowFilter};
pub use migrate::MIGRATIONS_TABLE;
pub use overview::{Funnel, GovernorRow, PerMinute, Rates, WorkerSeen};
pub use personal::{ERASED_INPUT, Erasure, Reveal, SealProgress};
pub use rate_limit::{
    Bucket, BucketState, Heard, Lease, PAUSE_CHANNEL, PauseListener, PauseNotice, take_tokens,
};
pub use reconcile::{FindingRow, KnownLoanRow, NUDGE_TITLE, NewFinding, Observed, RECONCILE_KIND};
pub use submit::{INITIAL_STATE, NewWorkflow, Submitted};
pub use tx::StoreTx;
pub use wakeup::{DUE_CHANNEL, DueListener, DueNotice, WAKEUP_QUEUE, WORKER_ORIGIN_PREFIX, Wakeup};
pub use webhooks::{ClaimedDelivery, DeliveryRow, DeliveryStatus, delivery_id};
pub use workflow::{Status, StatusCount, Workflow};

/// The store: a pool on one of the two backends. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    due: due::Due,
    /// The keys sealing personal data (`crate::personal`); `None`: stored plain.
    keys: Option<std::sync::Arc<privacy::KeyRing>>,
    /// The `application_name` of its PostgreSQL connections.
    origin: std::sync::Arc<str>,
    /// PostgreSQL connections kept between the statements of the step path.
    hot: std::sync::Arc<hot::Hot>,
    /// Step commits waiting to be written together (`group`).
    commits: std::sync::Arc<group::Group<group::Commits>>,
    /// Claims waiting to be written together (`group`).
    claims: std::sync::Arc<group::Group<group::Claims>>,
    /// Callbacks waiting to be stored together (`group`).
    callbacks: std::sync::Arc<group::Group<group::Callbacks>>,
    /// SQLite: its step commits, claims and callbacks waiting to be written together
    /// (`group::SqliteWrites`; the three groups above then only count their batch sizes).
    sqlite_writes: std::sync::Arc<group::Group<group::SqliteWrites>>,
    /// SQLite: the turn of the step path's writers of this store (`Store::turn_to_write`).
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Claims of one workflow that found nothing to claim (`Store::stale_claims`).
    stale_claims: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// The `application_name` its PostgreSQL connections carry, and so the origin of the due
    /// hints they send (`finflow-worker:<pid>-<tag>` for a worker's store, else `finflow`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether what this store makes due reaches a runner in this process only through
    /// [`Store::due_now`]: on SQLite, and for a worker's store on PostgreSQL (whose
    /// connections send no `finflow_due` hint of their own, migration 0018). Otherwise the
    /// hints arrive as notifications too, and a runner should not take them twice.
    #[must_use]
    pub fn hands_over_due(&self) -> bool {
        match self.backend {
            Backend::Sqlite(_) => true,
            Backend::Postgres(_) => self.origin.starts_with(WORKER_ORIGIN_PREFIX),
        }
    }

    /// How many group commits of each size this store (and its clones) sent so far, as
    /// `(commits in the batch, batches)`: the sizes the group commit reaches under the load
    /// it has had (`group`).
    pub fn commit_batch_sizes(&self) -> Vec<(usize, u64)> {
        self.commits.batch_sizes()
    }

    /// How many claims of one workflow ([`Store::claim`], a wake-up's) found it not due,
    /// finished or held: each a transaction that changed nothing.
    pub fn stale_claims(&self) -> u64 {
        self.stale_claims.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The same for claims: `(claims in the batch, batches)`.
    pub fn claim_batch_sizes(&self) -> Vec<(usize, u64)> {
        self.claims.batch_sizes()
    }

    /// The same for stored callbacks: `(callbacks in the batch, batches)`.
    pub fn callback_batch_sizes(&self) -> Vec<(usize, u64)> {
        self.callbacks.batch_sizes()
    }

    /// How long this store's batches were on their way to the database so far, by lane
    /// (`group`): on PostgreSQL one lane per kind (`commit`, `claim`, `callback`), on SQLite
    /// the one lane its writes share (`write`). A lane has one batch in flight at a time, so
    /// its time over a span, divided by the span, is the share of it the lane was busy; near
    /// 1, requests queue for the lane.
    pub fn lanes_busy(&self) -> Vec<(&'static str, std::time::Duration)> {
        match self.backend {
            Backend::Postgres(_) => vec![
                ("commit", self.commits.busy()),
                ("claim", self.claims.busy()),
                ("callback", self.callbacks.busy()),
            ],
            Backend::Sqlite(_) => vec![("write", self.sqlite_writes.busy())],
        }
    }

    /// Which backend, with its pool.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The PostgreSQL pool, when this store is on PostgreSQL.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.backend {
            Backend::Postgres(pool) => Some(pool),
            Backend::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, when this store is on SQLite. Every connection of it runs with WAL,
    /// `synchronous=FULL`, a busy timeout and foreign keys on; do not call
    /// `SqliteStorage::setup` on it (it turns `synchronous` off on the connection it uses;
    /// the pool turns it back on when the connection is released, but [`Store::migrate`]
    /// already does what `setup` does).
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.backend {
            Backend::Sqlite(pool) => Some(pool),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs `SELECT 1`: the database answers (for readiness checks).
    ///
    /// # Errors
    /// [`StoreError::Database`] when no connection can be had or the query fails.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: i32 = dialect::each_backend!(&self.backend, |pool, d| {
            sqlx::query_scalar("SELECT 1").fetch_one(pool).await?
        });
        Ok(())
    }

    /// PostgreSQL: the server's version and whether this store's connection is encrypted
    /// (TLS); `None` on SQLite.
    ///
    /// # Errors
    /// [`StoreError::Database`] when no connection can be had or the query fails.
    pub async fn postgres_connection(&self) -> Result<Option<(String, bool)>, StoreError> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(None);
        };
        let (version, tls): (String, bool) = sqlx::query_as(
            "SELECT current_setting('server_version'), \
             coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
        )
        .fetch_one(pool)
        .await?;
        Ok(Some((version, tls)))
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        // The pool waits for every connection it lent: give back the kept ones first.
        self.hot.release_all();
        dialect::each_backend!(&self.backend, |pool, d| pool.close().await);
    }
}
