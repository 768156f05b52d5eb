//! Opening a store from a URL: `postgres://…` for a fleet, `sqlite:path`, `sqlite://path` or a
//! bare file path for one machine. Pools are bounded; SQLite connections are configured for a
//! money engine (WAL, `synchronous=FULL`, busy timeout, foreign keys) on every connection.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Executor, PgPool, SqlitePool};

use crate::Store;
use crate::error::StoreError;

/// A pooled PostgreSQL connection idle for at least this long is tested (one round trip)
/// before it is handed out; one in steady use is not. sqlx's default tests every one, which
/// costs a round trip per statement under load (the pool also tests each connection as it
/// is returned, so a broken one is dropped there).
const TEST_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// The backend a store runs on, with its pool.
#[derive(Clone, Debug)]
pub enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Pool settings. `None` picks the backend's default.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most connections the pool opens (default: 10 on PostgreSQL, 4 on SQLite, where writes
    /// are serialized anyway).
    pub max_connections: Option<u32>,
    /// Connections kept open when idle (default 0).
    pub min_connections: u32,
    /// How long a caller waits for a free connection before `PoolTimedOut` (default 10 s).
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the write lock (default 5 s).
    pub busy_timeout: Duration,
    /// A worker process's store: its PostgreSQL connections are named
    /// `finflow-worker:<process id>-<random tag>` instead of `finflow`, the worker answers
    /// the due hints they send ([`crate::DueNotice::answered_by`]), and what the store makes
    /// due itself is handed to the process's runner in memory ([`Store::due_now`]) instead of
    /// by `NOTIFY`. Default false.
    pub worker: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
            worker: false,
        }
    }
}

/// A parsed URL: which backend and how to connect to it.
pub(crate) enum Target {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

/// The `application_name` of a store's PostgreSQL connections (see [`StoreOptions::worker`]).
fn origin(options: &StoreOptions) -> String {
    if options.worker {
        // The process id tells an operator (and the kill tests) whose backends these are;
        // the random part keeps two stores of one process apart. The `-` between them tells
        // `finflow_schedule_wakeup` (migration 0018) that this worker hands its own due
        // hints over in memory: it sends no `NOTIFY` for them (earlier builds' names had
        // none and still get theirs).
        let tag = uuid::Uuid::new_v4().simple().to_string();
        format!(
            "{}{}-{}",
            crate::WORKER_ORIGIN_PREFIX,
            std::process::id(),
            &tag[..8]
        )
    } else {
        "finflow".to_owned()
    }
}

impl Target {
    /// # Errors
    /// [`StoreError::InvalidUrl`] for an unknown scheme, an unparsable URL or in-memory SQLite.
    pub(crate) fn parse(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pg = PgConnectOptions::from_str(url).map_err(|e| {
                StoreError::InvalidUrl(format!("cannot parse the PostgreSQL URL: {e}"))
            })?;
            return Ok(Self::Postgres(pg));
        }
        let sqlite = if url.starts_with("sqlite:") {
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(StoreError::InvalidUrl(
                    "in-memory SQLite is not durable; give a file path (sqlite:finflow.db)".into(),
                ));
            }
            SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::InvalidUrl(format!("cannot parse the SQLite URL: {e}")))?
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::InvalidUrl(format!(
                "unsupported scheme {scheme:?}: use postgres://, sqlite: or a file path"
            )));
        } else if url.is_empty() {
            return Err(StoreError::InvalidUrl("empty database URL".into()));
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        Ok(Self::Sqlite(sqlite_durable(sqlite, options.busy_timeout)))
    }
}

/// What every SQLite connection of finflow runs with. `synchronous=FULL`: a commit the engine
/// reported is on disk even after a power loss, which WAL + `NORMAL` does not promise.
pub(crate) fn sqlite_durable(
    options: SqliteConnectOptions,
    busy_timeout: Duration,
) -> SqliteConnectOptions {
    options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy_timeout)
        .foreign_keys(true)
}

impl Store {
    /// Opens a store with default pool settings; see [`Store::connect_with`].
    ///
    /// # Errors
    /// As [`Store::connect_with`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Opens a store: `postgres://user@host/db` or `postgresql://…`; `sqlite:path`,
    /// `sqlite://path` or a bare path for SQLite (the file is created if missing). Opens one
    /// connection at once, so a wrong URL or an unreachable server fails here, without
    /// waiting for the pool's acquire timeout. Does not migrate: call [`Store::migrate`].
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] for a URL the store does not understand (including
    /// in-memory SQLite, which would not be durable); [`StoreError::Database`] when the first
    /// connection fails.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let origin = origin(options);
        let backend = match Target::parse(url, options)? {
            Target::Postgres(pg) => {
                let pg = pg.application_name(&origin);
                // One direct connection first, closed again: a server that refuses
                // connections, an unknown host, a password or TLS that does not fit fails
                // here at once, saying why; a server that does not answer, within the
                // acquire timeout. The pool's own first connection would try again until its
                // acquire timeout (10 s by default) whatever the reason, and then say only
                // that it gave up; the pool opens its connections as they are needed.
                let probe = sqlx::PgConnection::connect_with(&pg);
                let probe = tokio::time::timeout(options.acquire_timeout, probe)
                    .await
                    .map_err(|_| {
                        sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "no answer from the server within {:?}",
                                options.acquire_timeout
                            ),
                        ))
                    })??;
                let _ = probe.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.unwrap_or(10))
                    .min_connections(options.min_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= TEST_WHEN_IDLE_FOR {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_lazy_with(pg);
                Backend::Postgres(pool)
            }
            Target::Sqlite(sqlite) => {
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.unwrap_or(4))
                    .min_connections(options.min_connections)
                    .acquire_timeout(options.acquire_timeout)
                    // `synchronous` is per connection and anyone holding a pooled connection
                    // can change it (apalis-sqlite's `setup` sets it OFF): restore it before
                    // the connection goes back to the pool, so no commit of ours runs without.
                    .after_release(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            Ok(true)
                        })
                    })
                    .connect_with(sqlite)
                    .await?;
                Backend::Sqlite(pool)
            }
        };
        Ok(Store {
            commits: std::sync::Arc::new(crate::group::Group::new()),
            claims: std::sync::Arc::new(crate::group::Group::new()),
            callbacks: std::sync::Arc::new(crate::group::Group::new()),
            sqlite_writes: std::sync::Arc::new(crate::group::Group::new()),
            backend,
            due: crate::due::Due::default(),
            keys: None,
            origin: origin.into(),
            hot: std::sync::Arc::default(),
            write_turn: std::sync::Arc::default(),
            stale_claims: std::sync::Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, StoreError> {
        Target::parse(url, &StoreOptions::default())
    }

    #[test]
    fn urls_pick_the_backend() {
        assert!(matches!(
            parse("postgres://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            parse("postgresql://u@h:5433/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(parse("sqlite:finflow.db"), Ok(Target::Sqlite(_))));
        assert!(matches!(
            parse("sqlite:///tmp/finflow.db"),
            Ok(Target::Sqlite(_))
        ));
        assert!(matches!(
            parse("/var/lib/finflow.db"),
            Ok(Target::Sqlite(_))
        ));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "mysql://root:hunter2@h/db",
            "postgres://root:hunter2@h:notaport/db",
            "",
            "sqlite::memory:",
            "sqlite://?mode=memory",
        ] {
            match parse(url) {
                Err(StoreError::InvalidUrl(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
                _ => panic!("{url:?} should be refused"),
            }
        }
    }
}
