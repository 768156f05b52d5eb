//! `finflow events` (the lifecycle event feed from a cursor, once or following it, and its
//! pruning) and `finflow webhooks` (deliveries, the failed ones, a replay).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use store::{EventRow, Store};
use worker::config::{Config, parse_duration};

use super::table::{render, text_opt, time, time_opt};

pub const EVENTS_HELP: &str = "Examples:\n  \
    finflow events                         # the first 500 events\n  \
    finflow events --after 1200 --json     # JSON Lines from a cursor\n  \
    finflow events --after 1200 --follow   # and every new one as it commits\n  \
    finflow events prune --older-than 90d\n  \
    finflow events prune --before 2026-01-01\n\n\
    The same in SQL: select * from events where id > $1 order by id limit 500\n\
    (PostgreSQL also sends NOTIFY finflow_events with each step's last id).";

pub const WEBHOOKS_HELP: &str = "Examples:\n  \
    finflow webhooks                       # the latest deliveries\n  \
    finflow webhooks --failed              # the ones given up\n  \
    finflow webhooks replay lender-a-1234  # send one again (same delivery id)\n\n\
    The same in SQL: select * from webhook_deliveries where status = 'failed';";

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    command: Option<EventsCommand>,
    /// Print the events after this id (the cursor; 0: from the start).
    #[arg(long, value_name = "ID", default_value_t = 0)]
    after: i64,
    /// Keep printing new events as they commit, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// How many events at most (1 to 500) per read.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=500))]
    limit: i64,
}

#[derive(Debug, clap::Subcommand)]
enum EventsCommand {
    /// Delete events older than a date or an age (those a webhook still owes are kept).
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct PruneArgs {
    /// Delete events that occurred before this date (YYYY-MM-DD, UTC) or instant (RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    before: Option<DateTime<Utc>>,
    /// Delete events older than this, e.g. 30d or 12h.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<Duration>,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: Option<WebhooksCommand>,
    /// Only the deliveries given up after their retry period.
    #[arg(long)]
    failed: bool,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// How many deliveries, newest event first.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    limit: i64,
}

#[derive(Debug, clap::Subcommand)]
enum WebhooksCommand {
    /// Make one delivery due again now (a running worker sends it, same delivery id).
    Replay {
        /// The delivery id, e.g. lender-a-1234 (see `finflow webhooks`).
        delivery_id: String,
    },
}

fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{s:?} is not a date: use YYYY-MM-DD or an RFC 3339 instant such as 2026-01-01T00:00:00Z")
        })
}

fn parse_age(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// `finflow events`.
///
/// # Errors
/// The configuration or the database fails.
pub async fn events(config_file: Option<&Path>, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = super::open_store(&config, false).await?;
    let result = match args.command {
        Some(EventsCommand::Prune(prune)) => prune_events(&store, &prune).await,
        None => print_events(&store, &args).await,
    };
    store.close().await;
    result.with_context(|| format!("reading events from {url} (run `finflow migrate` first?)"))
}

async fn prune_events(store: &Store, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let before = match (args.before, args.older_than) {
        (Some(before), _) => before,
        (None, Some(age)) => {
            Utc::now() - chrono::TimeDelta::from_std(age).context("--older-than is too long")?
        }
        (None, None) => bail!("give --before DATE or --older-than AGE"),
    };
    let deleted = store.prune_events(before).await?;
    println!(
        "deleted {deleted} events that occurred before {}",
        time(before)
    );
    Ok(ExitCode::SUCCESS)
}

async fn print_events(store: &Store, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let mut cursor = args.after;
    if !args.follow {
        let rows = store.events_after(cursor, args.limit).await?;
        if args.json {
            for row in &rows {
                println!("{}", serde_json::to_string(row)?);
            }
        } else if rows.is_empty() {
            println!("no events after {cursor}");
        } else {
            let table: Vec<Vec<String>> = rows.iter().map(cells).collect();
            println!(
                "{}",
                render(
                    &[
                        "ID",
                        "OCCURRED_AT",
                        "TYPE",
                        "KIND",
                        "BUSINESS_KEY",
                        "WORKFLOW",
                        "PAYLOAD"
                    ],
                    &table
                )
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Following: each new page as soon as it commits (PostgreSQL's NOTIFY wakes us; the
    // poll is the fallback on both), until Ctrl-C.
    let mut listener = match store.pg_pool() {
        Some(pool) => {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(store::EVENTS_CHANNEL).await?;
            Some(listener)
        }
        None => None,
    };
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let rows = store.events_after(cursor, args.limit).await?;
        for row in &rows {
            if args.json {
                println!("{}", serde_json::to_string(row)?);
            } else {
                println!("{}", cells(row).join("  "));
            }
            cursor = row.id;
        }
        if !rows.is_empty() {
            continue;
        }
        let wait = async {
            match listener.as_mut() {
                Some(listener) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await;
                }
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        tokio::select! {
            () = wait => {}
            () = &mut shutdown => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn cells(row: &EventRow) -> Vec<String> {
    vec![
        row.id.to_string(),
        time(row.occurred_at),
        row.event_type.clone(),
        text_opt(row.kind.as_deref()),
        text_opt(row.business_key.as_deref()),
        row.workflow_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string()),
        row.payload.to_string(),
    ]
}

/// `finflow webhooks`.
///
/// # Errors
/// The configuration or the database fails, or the delivery to replay does not exist.
pub async fn webhooks(config_file: Option<&Path>, args: WebhooksArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let url = config.database_url.redacted();
    let store = super::open_store(&config, false).await?;
    let result = match &args.command {
        Some(WebhooksCommand::Replay { delivery_id }) => replay(&store, delivery_id).await,
        None => list(&store, &args).await,
    };
    store.close().await;
    result.with_context(|| format!("webhook deliveries in {url}"))
}

async fn replay(store: &Store, id: &str) -> anyhow::Result<ExitCode> {
    if !store.replay_delivery(id).await? {
        bail!("no webhook delivery {id:?} (see `finflow webhooks` for the ids)");
    }
    println!("delivery {id} is due again: a running `finflow run` sends it");
    Ok(ExitCode::SUCCESS)
}

async fn list(store: &Store, args: &WebhooksArgs) -> anyhow::Result<ExitCode> {
    let rows = store.deliveries(args.failed, args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!(rows))?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "no {}webhook deliveries",
            if args.failed { "failed " } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.webhook.clone(),
                d.event_type.clone(),
                d.status.as_str().to_owned(),
                d.attempts.to_string(),
                d.last_status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                if d.status == store::DeliveryStatus::Pending {
                    time(d.next_attempt_at)
                } else {
                    "-".to_owned()
                },
                time_opt(d.delivered_at),
                text_opt(d.last_error.as_deref()),
            ]
        })
        .collect();
    println!(
        "{}",
        render(
            &[
                "DELIVERY",
                "WEBHOOK",
                "TYPE",
                "STATUS",
                "ATTEMPTS",
                "HTTP",
                "NEXT_ATTEMPT",
                "DELIVERED_AT",
                "LAST_ERROR"
            ],
            &table
        )
    );
    Ok(ExitCode::SUCCESS)
}
