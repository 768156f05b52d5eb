//! `finflow console`: the web console over the configured database (`console::app`), and
//! `finflow console hash-password` for the `[[console.users]]` entries of `finflow.toml`.
//! It needs no Finfra credentials: it reads and writes only the store.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use worker::config::Config;

/// `finflow console --help`'s examples.
pub const CONSOLE_HELP: &str = "Examples:\n  \
    finflow console                          # http://127.0.0.1:8081 (console.listen)\n  \
    finflow console --listen 0.0.0.0:8081\n  \
    echo 'a long passphrase' | finflow console hash-password\n\n\
    Users and roles (viewer, operator, approver) come from finflow.toml:\n  \
    [console]\n  \
    session_secret = \"at least 32 random characters\"\n  \
    [[console.users]]\n  \
    name = \"alice\"\n  \
    role = \"approver\"\n  \
    password_hash = \"$argon2id$...\"   # from finflow console hash-password\n\n\
    or from a header set by your reverse proxy (console.trusted_user_header, honoured only\n\
    from console.trusted_proxies). Commands that move money wait for a second person\n\
    ([operators] four_eyes, default true).";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Address to listen on (default: console.listen, 127.0.0.1:8081).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Read a password from standard input (one line) and print its argon2 hash for
    /// `password_hash` in finflow.toml.
    HashPassword,
}

/// `finflow console`.
///
/// # Errors
/// The configuration, the definitions, the database or the socket fail.
pub async fn run(config_file: Option<&Path>, args: Args) -> anyhow::Result<ExitCode> {
    if matches!(args.action, Some(Action::HashPassword)) {
        return hash_password();
    }
    let config = Config::load(config_file)?;
    let database = config.database_url.redacted();
    serve(&config, args.listen.as_deref(), None, &database).await
}

fn hash_password() -> anyhow::Result<ExitCode> {
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 12 {
        eprintln!("refused: use at least 12 characters");
        return Ok(ExitCode::from(2));
    }
    let hash = console::auth::hash_password(password)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

/// Serves the console over the configured store until Ctrl-C / SIGTERM. `store` reuses an
/// open one (the demo's); otherwise the configured database is opened and migrated.
/// `database` names it in the start-up line.
///
/// # Errors
/// As [`run`].
pub async fn serve(
    config: &Config,
    listen: Option<&str>,
    store: Option<store::Store>,
    database: &str,
) -> anyhow::Result<ExitCode> {
    let listen = listen.unwrap_or(&config.console.listen);
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("console.listen {listen:?} is not ip:port"))?;
    if config.console.users.is_empty() {
        anyhow::bail!(
            "no console users: add [[console.users]] with name, role and password_hash to finflow.toml \
             (finflow console --help shows how)"
        );
    }
    if config.console.session_secret.is_none() {
        eprintln!(
            "finflow console: no console.session_secret: sessions are signed with a random key and end when the console stops"
        );
    }
    // The configured folder, else the definitions bundled in the binary (as the demo does).
    let (definitions, _) = worker::inprocess::definitions(config)?;
    let store = match store {
        Some(store) => store,
        None => super::open_store_for_writes(config, true).await?,
    };
    let state = console::app::AppState::new(
        store.clone(),
        workflow::Engine::new(definitions),
        config.console.clone(),
        config.operators.clone(),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let shutdown = super::shutdown_signal();
    eprintln!(
        "finflow console: http://{} (database {database}); Ctrl-C stops it",
        listener.local_addr().unwrap_or(addr),
    );
    axum::serve(
        listener,
        console::app::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("the console's server failed")?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
