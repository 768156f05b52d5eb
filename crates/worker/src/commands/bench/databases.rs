//! The benchmark's temporary databases: a fresh one per run (a SQLite file, or a database
//! created on the PostgreSQL server and dropped afterwards), what is read from the server
//! around the throughput measurement, and the list of what to remove even when the
//! benchmark is interrupted.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool};
use uuid::Uuid;
use worker::inprocess;

use super::proxy::RoundTripProxy;
use super::server_cpu::ServerCpu;
use super::stats;

/// A fresh database for one run.
pub enum Database<'a> {
    Sqlite { path: PathBuf },
    Postgres { server: &'a PgServer, name: String },
}

impl Database<'_> {
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { server, name } => server.url_of(name),
        }
    }

    /// The server's counters before the throughput measurement (PostgreSQL). Read after
    /// every connection to the database has closed: backends report their counts when they
    /// end. The committed-transaction count is read last, once the reading connection of
    /// `workflows`' update counters has ended too.
    pub async fn counters_before(&self) -> anyhow::Result<Option<PgCounters>> {
        let Self::Postgres { server, name } = self else {
            return Ok(None);
        };
        server.transactions(name).await?;
        let updates = stats::workflow_updates(&server.url_of(name)).await?;
        let wal_lsn = stats::wal_lsn(&server.admin).await?;
        let transactions = server.transactions(name).await?;
        let server_cpu = server.cpu().and_then(|cpu| cpu.seconds());
        Ok(Some(PgCounters {
            transactions,
            wal_lsn,
            updates,
            server_cpu,
        }))
    }

    /// The same after it; the transactions first, so that reading adds none.
    pub async fn counters_after(&self) -> anyhow::Result<Option<PgCounters>> {
        let Self::Postgres { server, name } = self else {
            return Ok(None);
        };
        let transactions = server.transactions(name).await?;
        let server_cpu = server.cpu().and_then(|cpu| cpu.seconds());
        let wal_lsn = stats::wal_lsn(&server.admin).await?;
        let updates = stats::workflow_updates(&server.url_of(name)).await?;
        Ok(Some(PgCounters {
            transactions,
            wal_lsn,
            updates,
            server_cpu,
        }))
    }

    /// The URL the throughput phase's store uses: on PostgreSQL, unless `direct`, through a
    /// round-trip counting proxy started here.
    pub async fn throughput_url(
        &self,
        direct: bool,
    ) -> anyhow::Result<(String, Option<RoundTripProxy>)> {
        let Self::Postgres { server, name } = self else {
            return Ok((self.url(), None));
        };
        if direct {
            return Ok((self.url(), None));
        }
        let host = server.url.host().with_context(|| {
            format!(
                "the round-trip proxy needs a TCP address in {} (or give --direct)",
                redacted(&server.url)
            )
        })?;
        let upstream = format!("{host}:{}", server.url.port().unwrap_or(5432));
        let proxy = RoundTripProxy::start(upstream)
            .await
            .context("cannot start the round-trip proxy")?;
        let mut url = url::Url::parse(&server.url_of(name))?;
        url.set_host(Some("127.0.0.1"))?;
        url.set_port(Some(proxy.addr().port()))
            .map_err(|()| anyhow::anyhow!("cannot set the proxy's port"))?;
        // A plain stream, so the proxy can read it (it also answers SSLRequest with 'N').
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("sslmode", "disable");
        Ok((url.to_string(), Some(proxy)))
    }
}

/// PostgreSQL's counters around the throughput measurement.
pub struct PgCounters {
    /// `pg_stat_database.xact_commit` of the benchmark database.
    pub transactions: i64,
    /// `pg_current_wal_lsn()` (the whole server).
    pub wal_lsn: String,
    /// `workflows`' updates so far.
    pub updates: stats::Updates,
    /// The server's CPU seconds so far, when it runs on this machine (`server_cpu`).
    pub server_cpu: Option<f64>,
}

/// A PostgreSQL server on which temporary databases are created.
pub struct PgServer {
    pub admin: PgPool,
    url: url::Url,
    /// Its processes, when it runs on this machine.
    cpu: Option<ServerCpu>,
}

impl PgServer {
    /// Connects to the server's maintenance database given by `url`.
    ///
    /// # Errors
    /// Not a PostgreSQL URL, or no connection within 5 seconds.
    pub async fn connect(raw: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(raw)
            .map_err(|e| anyhow::anyhow!("--database-url / DATABASE_URL is not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            anyhow::bail!(
                "--database-url / DATABASE_URL must be a postgres:// URL (SQLite is always measured in a temporary file)"
            );
        }
        let shown = redacted(&url);
        let options: PgConnectOptions = raw
            .parse()
            .with_context(|| format!("cannot parse the PostgreSQL URL {shown}"))?;
        // One connection first: its error says why (refused, authentication, ...), where a
        // pool would only say that it timed out.
        let probe =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
                .await
                .map_err(|_| anyhow::anyhow!("no answer from PostgreSQL at {shown} within 5 s"))?
                .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        let _ = probe.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        let cpu = ServerCpu::find(&admin).await;
        Ok(Self { admin, url, cpu })
    }

    /// The server's processes, when it runs on this machine and they can be read.
    pub fn cpu(&self) -> Option<ServerCpu> {
        self.cpu
    }

    pub fn url_of(&self, database: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{database}"));
        url.to_string()
    }

    /// Creates an empty database and returns its name.
    pub async fn create(&self) -> anyhow::Result<String> {
        let name = format!("finflow_bench_{}", Uuid::new_v4().simple());
        // The name is ours: letters, digits and underscores only.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.admin)
            .await
            .with_context(|| {
                format!(
                    "cannot create the database {name} on {} (the user needs CREATEDB)",
                    redacted(&self.url)
                )
            })?;
        Ok(name)
    }

    /// Drops a database, closing whatever connection is still on it.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        drop_database(&self.admin, name)
            .await
            .with_context(|| format!("cannot drop the benchmark database {name}"))
    }

    /// `xact_commit` of a database. Backends report their counts when they end (or when
    /// idle, with a delay), so read it after closing the pool that worked on it, until two
    /// reads 100 ms apart agree (an exiting backend may not have reported yet).
    pub async fn transactions(&self, name: &str) -> anyhow::Result<i64> {
        let mut last = None;
        for _ in 0..20 {
            let count: Option<i64> =
                sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
                    .bind(name)
                    .fetch_optional(&self.admin)
                    .await?;
            let count = count.unwrap_or(0);
            if last == Some(count) {
                break;
            }
            last = Some(count);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(last.unwrap_or(0))
    }
}

async fn drop_database(admin: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    // `WITH (FORCE)` (PostgreSQL 13+) ends connections a stopped pool may not have closed yet.
    let forced = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(admin)
    .await;
    match forced {
        Ok(_) => Ok(()),
        Err(_) => sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(admin)
            .await
            .map(|_| ()),
    }
}

/// The URL with its password hidden.
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

pub fn remove_sqlite(path: &Path) {
    if let Err(error) = inprocess::remove_sqlite(path) {
        eprintln!(
            "finflow bench: could not remove {}: {error}",
            path.display()
        );
    }
}

/// Temporary databases and files to remove, even when the benchmark is interrupted.
#[derive(Default)]
pub struct Leftovers {
    server: Mutex<Option<PgPool>>,
    databases: Mutex<Vec<String>>,
    files: Mutex<Vec<PathBuf>>,
}

impl Leftovers {
    pub fn set_server(&self, admin: PgPool) {
        if let Ok(mut server) = self.server.lock() {
            *server = Some(admin);
        }
    }

    pub fn add_database(&self, name: String) {
        if let Ok(mut databases) = self.databases.lock() {
            databases.push(name);
        }
    }

    pub fn forget_database(&self, name: &str) {
        if let Ok(mut databases) = self.databases.lock() {
            databases.retain(|d| d != name);
        }
    }

    pub fn add_file(&self, path: PathBuf) {
        if let Ok(mut files) = self.files.lock() {
            files.push(path);
        }
    }

    pub fn forget_file(&self, path: &Path) {
        if let Ok(mut files) = self.files.lock() {
            files.retain(|f| f != path);
        }
    }

    /// Removes what is left, and closes the server's pool.
    pub async fn remove_all(&self) {
        let files = self
            .files
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        for file in files {
            remove_sqlite(&file);
        }
        let databases = self
            .databases
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        let server = self.server.lock().ok().and_then(|s| s.clone());
        if let Some(admin) = server {
            for name in databases {
                if let Err(error) = drop_database(&admin, &name).await {
                    eprintln!("finflow bench: could not drop the database {name}: {error}");
                }
            }
            admin.close().await;
        }
    }
}
