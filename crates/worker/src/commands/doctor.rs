//! `finflow doctor`: is finflow configured, does its database answer, and can it reach
//! Finfra with those credentials?
//!
//! Each check prints one line, `ok` or `FAIL` with the reason in plain words (or `note`: it
//! works, with advice); the exit code is 0 only when no check fails.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use finfra_api::error::AuthError;
use finfra_api::{ClientConfig, Error as ApiError, FinfraClient};

use worker::config::Config;

/// Runs every check and reports each.
///
/// # Errors
/// None of its own: every failure is a reported check and the exit code.
pub async fn run(config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut report = Report::default();
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(error) => {
            report.fail("config", error.to_string());
            return Ok(report.finish());
        }
    };
    let base_url = config.finfra.base_url();
    let credentials = config.finfra.credentials();
    match (&base_url, &credentials) {
        (Ok(url), Ok(credentials)) => report.pass(
            "config",
            format!("Finfra at {url}, client id {}", credentials.client_id),
        ),
        (Err(error), _) | (_, Err(error)) => report.fail("config", error.to_string()),
    }
    match config.keys() {
        Ok(Some(keys)) => report.pass(
            "privacy",
            format!(
                "keys {}, new data keys under {:?}",
                keys.labels().collect::<Vec<_>>().join(", "),
                keys.active()
            ),
        ),
        Ok(None) => report.fail(
            "privacy",
            "no [privacy] keys: finflow run, submit and console refuse to start without them \
             (set privacy.keys, privacy.active and privacy.hash_key; `finflow privacy new-key` \
             prints a key)"
                .to_owned(),
        ),
        Err(error) => report.fail("privacy", error.to_string()),
    }
    check_database(&mut report, &config).await;
    let (Ok(base_url), Ok(credentials)) = (base_url, credentials) else {
        report.skip(&["token", "liveness", "readiness"]);
        return Ok(report.finish());
    };

    let mut client_config = ClientConfig::new(base_url.clone(), credentials);
    client_config.timeout = config.finfra.timeout();
    let client = match FinfraClient::new(client_config) {
        Ok(client) => client,
        Err(error) => {
            report.fail(
                "client",
                explain(&error, &base_url, config.finfra.timeout()),
            );
            return Ok(report.finish());
        }
    };

    let timeout = config.finfra.timeout();
    let started = Instant::now();
    match client.authenticate().await {
        Ok(token) => report.pass(
            "token",
            format!(
                "obtained in {} ms, valid for {} s",
                started.elapsed().as_millis(),
                token.expires_in.as_secs()
            ),
        ),
        Err(error) => report.fail("token", explain(&error, &base_url, timeout)),
    }
    let started = Instant::now();
    match client.health_productionness().await {
        Ok(health) => report.pass(
            "liveness",
            format!("{} in {} ms", health.status, started.elapsed().as_millis()),
        ),
        Err(error) => report.fail("liveness", explain(&error, &base_url, timeout)),
    }
    let started = Instant::now();
    match client.health_readiness().await {
        Ok(health) => report.pass(
            "readiness",
            format!("{} in {} ms", health.status, started.elapsed().as_millis()),
        ),
        Err(error) => report.fail("readiness", explain(&error, &base_url, timeout)),
    }
    Ok(report.finish())
}

/// The database answers; a PostgreSQL connection to this machine does not pay for TLS. A
/// SQLite file is not opened (opening would create it).
async fn check_database(report: &mut Report, config: &Config) {
    let url = config.database_url.expose();
    let shown = config.database_url.redacted();
    let postgres = url::Url::parse(url)
        .ok()
        .filter(|parsed| matches!(parsed.scheme(), "postgres" | "postgresql"));
    let Some(parsed) = postgres else {
        report.pass(
            "database",
            format!("SQLite {shown}: one machine, one `finflow run` (created when it starts)"),
        );
        return;
    };
    let options = store::StoreOptions {
        max_connections: Some(1),
        acquire_timeout: Duration::from_secs(3),
        ..store::StoreOptions::default()
    };
    let answer = match store::Store::connect_with(url, &options).await {
        Ok(store) => {
            let answer = store.postgres_connection().await;
            store.close().await;
            answer
        }
        Err(error) => Err(error),
    };
    match answer {
        Ok(Some((version, tls))) => {
            // A `postgres://` URL's host is opaque to `url` (not a special scheme): an
            // address comes as a domain name.
            let local = match parsed.host() {
                None => true,
                Some(url::Host::Domain(name)) => {
                    name == "localhost"
                        || name
                            .trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            };
            let detail = format!(
                "PostgreSQL {version} at {shown}, {}",
                if tls { "TLS" } else { "no TLS" }
            );
            if tls && local {
                report.note(
                    "database",
                    format!(
                        "{detail}: on a connection to this machine TLS costs about a sixth of \
                         throughput; append ?sslmode=disable to the URL (README: Configuration)"
                    ),
                );
            } else {
                report.pass("database", detail);
            }
        }
        Ok(None) => report.pass("database", shown),
        Err(error) => report.fail("database", format!("{shown}: {}", chain(&error))),
    }
}

/// One line that says what went wrong and what to do about it.
fn explain(error: &ApiError, base_url: &url::Url, timeout: Duration) -> String {
    let host = base_url.host_str().unwrap_or("Finfra");
    match error.status() {
        Some(401) => "Finfra refused the credentials (401): check FINFLOW_FINFRA__CLIENT_ID and \
                      FINFLOW_FINFRA__CLIENT_SECRET"
            .to_owned(),
        Some(404) => {
            format!("{base_url} answered 404: is finfra.base_url the root of Finfra's partner API?")
        }
        Some(429) => format!(
            "Finfra is rate limiting this client (429): {}",
            chain(error)
        ),
        Some(status) => format!("Finfra answered {status}: {}", chain(error)),
        None => match unwrap_auth(error) {
            ApiError::Timeout { .. } => {
                format!("no answer from {host} within {} s", timeout.as_secs())
            }
            ApiError::Connection { source, .. } => {
                format!("cannot reach {host}: {}", root_cause(source))
            }
            other => chain(other),
        },
    }
}

/// The error behind a failed token request, which is classified like any other request.
fn unwrap_auth(error: &ApiError) -> &ApiError {
    match error {
        ApiError::Auth(AuthError::Endpoint(inner)) => unwrap_auth(inner),
        other => other,
    }
}

/// The error and its sources on one line, each message once.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let message = error.to_string();
        if !parts.iter().any(|seen| seen.contains(&message)) {
            parts.push(message);
        }
        next = error.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// The innermost source: for a refused connection, "Connection refused (os error 111)".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string().replace('\n', " ")
}

/// The checks' outcomes, printed as they come.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn pass(&mut self, check: &str, detail: String) {
        println!("{check:<10} ok    {detail}");
    }

    /// It works, with advice.
    fn note(&mut self, check: &str, detail: String) {
        println!("{check:<10} note  {detail}");
    }

    fn fail(&mut self, check: &str, detail: String) {
        self.failed = true;
        println!("{check:<10} FAIL  {detail}");
    }

    fn skip(&mut self, checks: &[&str]) {
        for check in checks {
            println!("{check:<10} skip  (fix the configuration first)");
        }
    }

    fn finish(self) -> ExitCode {
        if self.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}
