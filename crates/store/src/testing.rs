//! Fresh databases for tests, on both backends (feature `testing`).
//!
//! * SQLite: a new file in a new temporary directory, removed afterwards.
//! * PostgreSQL: the server at `DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`); each test gets `CREATE DATABASE
//!   finflow_test_<uuid>`, dropped afterwards (best effort, `WITH (FORCE)`). A migrated one
//!   is a copy of a template the first such test on the server migrated
//!   (`finflow_template_<digest>`, one per set of migrations, see [`template`]): a copy
//!   takes a sixth of the time migrating does, and most tests want one. Where no server
//!   answers and Docker works, one PostgreSQL container is started for the whole test binary
//!   (testcontainers). Where neither, the test fails and says how to get a server: it never
//!   skips silently, and nothing is mocked.
//!
//! [`test_both_backends!`](crate::test_both_backends) turns `async fn name(db: TestDb)` into
//! `name::sqlite` and `name::postgres` tests.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::Store;

/// The default server for PostgreSQL tests.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// A fresh database and a store on it.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub backend: TestBackend,
    /// URL of the fresh database, to open more stores on it (another "process").
    pub url: String,
    pub store: Store,
}

/// Generates, for each `async fn name(db: TestDb)` in scope, a module `name` with tests
/// `sqlite` and `postgres`, each on a fresh, migrated database. Prefix the list with
/// `unmigrated:` for tests that migrate themselves.
#[macro_export]
macro_rules! test_both_backends {
    (unmigrated: $($test:ident),+ $(,)?) => {
        $crate::test_both_backends!(@gen false; $($test),+);
    };
    ($($test:ident),+ $(,)?) => {
        $crate::test_both_backends!(@gen true; $($test),+);
    };
    (@gen $migrate:literal; $($test:ident),+) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::testing::run($crate::testing::TestBackend::Sqlite, $migrate, super::$test)
                    .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::testing::run($crate::testing::TestBackend::Postgres, $migrate, super::$test)
                    .await;
            }
        }
    )+};
}

/// Runs `test` on a fresh database of `backend` (migrated if `migrate`), then removes the
/// database, also when the test panics.
///
/// # Panics
/// When no database can be had (with instructions), or when the test panics.
pub async fn run<F, Fut>(backend: TestBackend, migrate: bool, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let (db, cleanup) = fresh(backend, migrate).await;
    // Dropped at the end, or while unwinding from a failed assertion.
    let _cleanup = CleanupOnDrop(Some(cleanup));
    if migrate {
        db.store
            .migrate()
            .await
            .expect("migrating the fresh test database");
    }
    let store = db.store.clone();
    test(db).await;
    store.close().await;
}

/// Brings `store`'s database to the schema an older finflow left: apalis's migrations and
/// ours up to version `last`, without what later versions do (nor the Rust fill that follows
/// the SQLite migrations). For tests that upgrade such a database with [`Store::migrate`].
///
/// # Errors
/// As [`Store::migrate`].
pub async fn migrate_up_to(store: &Store, last: i64) -> Result<(), crate::StoreError> {
    store.migrate_up_to(Some(last)).await
}

/// The JSON object `commit` is sent as in a PostgreSQL batch of step commits (one element of
/// `finflow_commit_steps`' parameter), for tests that call the server functions themselves.
///
/// # Panics
/// When the commit cannot be serialized (it always can).
pub fn commit_params(store: &Store, commit: &crate::StepCommit) -> serde_json::Value {
    crate::commit::params(store, commit).expect("a commit serializes")
}

/// The PostgreSQL claim statements: of the workflows asked for (one statement for one, another
/// for several), and the due scan's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatement {
    /// [`Store::claim`]'s, of the ids given.
    Asked,
    /// [`Store::claim_due`]'s.
    Due,
}

/// PostgreSQL: runs `statement` for `ids` (`Due`: any due workflows, as many as `ids`) as
/// `worker` inside a transaction of the caller's, which it then commits: how many it claimed,
/// and the transaction's `synchronous_commit` before and after the claim.
///
/// # Panics
/// On SQLite, or when the database fails.
pub async fn claim_in_transaction(
    store: &Store,
    statement: ClaimStatement,
    ids: &[Uuid],
    worker: &str,
) -> (usize, String, String) {
    let pool = store.pg_pool().expect("a PostgreSQL store");
    let mut tx = pool.begin().await.expect("begin");
    let setting = "SELECT current_setting('synchronous_commit')";
    let before: String = sqlx::query_scalar(setting)
        .fetch_one(&mut *tx)
        .await
        .expect("setting");
    let lease = Duration::from_secs(30);
    let requests: Vec<crate::group::ClaimRequest> = ids
        .iter()
        .map(|&workflow_id| crate::group::ClaimRequest {
            workflow_id,
            worker_id: worker.to_owned(),
            lease,
        })
        .collect();
    let claimed = match statement {
        ClaimStatement::Asked => {
            let requests: Vec<&crate::group::ClaimRequest> = requests.iter().collect();
            crate::claim::claim_many_pg(&mut tx, &requests).await
        }
        ClaimStatement::Due => {
            let limit = u32::try_from(ids.len()).expect("a few");
            crate::claim::claim_due_pg(&mut tx, worker, limit, lease).await
        }
    }
    .expect("claim");
    let after: String = sqlx::query_scalar(setting)
        .fetch_one(&mut *tx)
        .await
        .expect("setting");
    tx.commit().await.expect("commit");
    (claimed.len(), before, after)
}

/// SQLite: a write transaction opened as the step path's writers open theirs, for claims
/// alone (`claims_alone`) or for anything else: its `PRAGMA synchronous` inside (1 NORMAL,
/// 2 FULL), then, once it has committed and its connection is back in the pool, that of
/// every connection of the pool.
///
/// # Panics
/// On PostgreSQL, or when the database fails.
pub async fn sqlite_synchronous_of_a_write(store: &Store, claims_alone: bool) -> (i64, Vec<i64>) {
    let pool = store.sqlite_pool().expect("a SQLite store");
    let sync = if claims_alone {
        crate::tx::SqliteSync::Normal
    } else {
        crate::tx::SqliteSync::Full
    };
    let synchronous = "PRAGMA synchronous";
    let inside = {
        let (_turn, mut conn) = store.turn_to_write(pool, sync).await.expect("turn");
        let mut tx = sqlx::Connection::begin_with(&mut *conn, crate::tx::SQLITE_BEGIN)
            .await
            .expect("begin");
        let inside: i64 = sqlx::query_scalar(synchronous)
            .fetch_one(&mut *tx)
            .await
            .expect("pragma");
        tx.commit().await.expect("commit");
        inside
    };
    // The released connection is back once its `after_release` has run.
    let mut held = Vec::new();
    while held.len() < pool.options().get_max_connections() as usize {
        held.push(pool.acquire().await.expect("acquire"));
    }
    let mut after = Vec::new();
    for conn in &mut held {
        after.push(
            sqlx::query_scalar(synchronous)
                .fetch_one(&mut **conn)
                .await
                .expect("pragma"),
        );
    }
    (inside, after)
}

/// Runs the cleanup when dropped, on a thread and runtime of its own (a destructor cannot
/// await, and may run while the test's runtime unwinds).
struct CleanupOnDrop(Option<Cleanup>);

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        let Some(cleanup) = self.0.take() else { return };
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(cleanup.run());
            }
        })
        .join();
    }
}

/// What to remove after a test.
enum Cleanup {
    Dir(PathBuf),
    Database { admin_url: String, name: String },
}

impl Cleanup {
    async fn run(self) {
        match self {
            Self::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Database { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = execute(&mut admin, [drop]).await;
                    let _ = admin.close().await;
                }
            }
        }
    }
}

/// Opens a store on a fresh database of `backend`: empty, or on PostgreSQL, when the test
/// will migrate it (`migrated`), a copy of the migrated template if there is one.
///
/// # Panics
/// When no database can be had; the message says how to get one.
async fn fresh(backend: TestBackend, migrated: bool) -> (TestDb, Cleanup) {
    match backend {
        TestBackend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("finflow-test-{}", Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("creating a temporary directory");
            let url = format!("sqlite:{}", dir.join("finflow.db").display());
            let store = Store::connect(&url)
                .await
                .expect("opening a fresh SQLite file");
            (
                TestDb {
                    backend,
                    url,
                    store,
                },
                Cleanup::Dir(dir),
            )
        }
        TestBackend::Postgres => {
            let admin_url = match server_url() {
                Ok(url) => url.clone(),
                Err(why) => panic!("{why}"),
            };
            let name = format!("finflow_test_{}", Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .expect("connecting to the PostgreSQL test server");
            let create = match migrated.then(|| template(&admin_url)).flatten() {
                Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
                None => format!("CREATE DATABASE {name}"),
            };
            execute(&mut admin, [create])
                .await
                .expect("creating a fresh test database");
            let _ = admin.close().await;
            let url = with_database(&admin_url, &name);
            let store = Store::connect(&url)
                .await
                .expect("opening the fresh test database");
            (
                TestDb {
                    backend,
                    url,
                    store,
                },
                Cleanup::Database { admin_url, name },
            )
        }
    }
}

/// PostgreSQL: the name of a database with this build's migrations applied, for migrated
/// test databases to copy (`CREATE DATABASE … TEMPLATE`); `None` when it cannot be made,
/// and then each test migrates its own.
///
/// One per server and set of migrations: `finflow_template_<digest>`, named after
/// [`crate::migrate::postgres_digest`], made by the first test of a binary that finds it
/// missing, under an advisory lock (test binaries of two checkouts may meet on one server).
/// It is migrated under another name and renamed when done, so that it exists only
/// complete; it takes no connections (`ALLOW_CONNECTIONS false`), so that nothing holds it
/// while it is copied. Templates of other migrations (an earlier build's) are dropped then,
/// so two checkouts with different migrations must not run their tests on one server at
/// the same time.
fn template(admin_url: &str) -> Option<&'static str> {
    static TEMPLATE: OnceLock<Option<String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let admin_url = admin_url.to_owned();
            // On a thread of its own, as `server_url`: callers are inside a runtime.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                match runtime.block_on(make_template(&admin_url)) {
                    Ok(name) => Some(name),
                    Err(error) => {
                        eprintln!(
                            "no migrated template database ({error}); each test migrates its own"
                        );
                        None
                    }
                }
            })
            .join()
            .ok()
            .flatten()
        })
        .as_deref()
}

/// The advisory lock (on the server's admin database) under which a template is made.
const TEMPLATE_LOCK: i64 = 20_260_012;

async fn make_template(admin_url: &str) -> Result<String, sqlx::Error> {
    let name = format!(
        "finflow_template_{}",
        &crate::migrate::postgres_digest()[..16]
    );
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await?;
    let made = make_template_locked(&mut admin, admin_url, &name).await;
    // Closing the session releases the lock, also after an error.
    let _ = admin.close().await;
    made.map(|()| name)
}

async fn make_template_locked(
    admin: &mut PgConnection,
    admin_url: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    let databases: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'finflow\\_template\\_%'",
    )
    .fetch_all(&mut *admin)
    .await?;
    if databases.iter().any(|d| d == name) {
        return Ok(());
    }
    let building = format!("{name}_building");
    let mut statements: Vec<String> = databases
        .iter()
        .chain([&building])
        .map(|old| format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"))
        .collect();
    statements.push(format!("CREATE DATABASE {building}"));
    execute(admin, statements).await?;
    let mut conn = PgConnection::connect(&with_database(admin_url, &building)).await?;
    let migrated = crate::migrate::migrate_postgres(&mut conn, None).await;
    conn.close().await?;
    migrated.map_err(|e| sqlx::Error::Protocol(format!("migrating the template: {e}")))?;
    execute(
        admin,
        [
            format!("ALTER DATABASE {building} WITH ALLOW_CONNECTIONS false"),
            format!("ALTER DATABASE {building} RENAME TO {name}"),
        ],
    )
    .await
}

/// Runs `statements` (built here from names this module made) one after the other.
async fn execute(
    conn: &mut PgConnection,
    statements: impl IntoIterator<Item = String>,
) -> Result<(), sqlx::Error> {
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The URL of a PostgreSQL server for tests: `DATABASE_URL` (or the default) if it answers,
/// else a testcontainers PostgreSQL if Docker works, else the reason neither does.
fn server_url() -> Result<&'static String, &'static String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            // Probed on a thread of its own: callers are inside a runtime and must not block
            // on another future there.
            std::thread::spawn(find_server)
                .join()
                .unwrap_or_else(|_| Err("probing for a PostgreSQL server panicked".into()))
        })
        .as_ref()
}

fn find_server() -> Result<String, String> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building a runtime: {e}"))?;
    let probe = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(&url)).await
    });
    let probe_error = match probe {
        Ok(Ok(conn)) => {
            let _ = runtime.block_on(conn.close());
            return Ok(url);
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 3 s".to_owned(),
    };
    let docker_works = std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !docker_works {
        return Err(format!(
            "PostgreSQL store tests need a server: none answered at DATABASE_URL ({probe_error}) \
             and Docker is not available to start one.\n\
             Start PostgreSQL locally (e.g. `pg_ctlcluster 15 main start`, trust auth for user \
             postgres on 127.0.0.1:5432) or set DATABASE_URL=postgres://user:pass@host:port/db \
             to a server where that user may CREATE DATABASE, or start Docker."
        ));
    }
    start_container()
}

/// Starts one PostgreSQL container and keeps it for the life of the test binary (the thread
/// holding it parks forever; testcontainers' reaper removes it after exit).
fn start_container() -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<String, String>>();
    std::thread::spawn(move || {
        use testcontainers_modules::postgres::Postgres;
        use testcontainers_modules::testcontainers::runners::AsyncRunner;
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = tx.send(Err(format!("building a runtime: {e}")));
                return;
            }
        };
        let started = runtime.block_on(async {
            let node = Postgres::default()
                .start()
                .await
                .map_err(|e| format!("starting a PostgreSQL container: {e}"))?;
            let port = node
                .get_host_port_ipv4(5432)
                .await
                .map_err(|e| format!("reading the container's port: {e}"))?;
            Ok::<_, String>((node, port))
        });
        match started {
            Ok((node, port)) => {
                let _ = tx.send(Ok(format!(
                    "postgres://postgres:postgres@127.0.0.1:{port}/postgres"
                )));
                let _keep = node;
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv()
        .map_err(|_| "the container thread ended without an answer".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
