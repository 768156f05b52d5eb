//! Logs: where they go and in which format.
//!
//! Every log line goes to stderr (stdout is for what a command prints), filtered by
//! `FINFLOW_LOG` (an `EnvFilter` spec such as `info` or `info,finfra_api=debug`; default
//! `warn`), human-readable by default or one JSON object per line with
//! `finflow --log-format json` (or `FINFLOW_LOG_FORMAT=json`). JSON lines carry the event's
//! fields at the top level and the spans it happened in under `span` (the innermost) and
//! `spans` (all), e.g. `workflow.id`, `workflow.kind`, `workflow.business_key` and `step`
//! of the executor's `advance` span.
//!
//! What may appear in a log is decided where the log line is written: fields carry ids,
//! states, request names and path templates, never request bodies, personal data (NIK,
//! names, phone numbers, emails) or secrets (`tests/logs_pii.rs` runs an onboarding at
//! `trace` and checks).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const LOG_FILTER_ENV: &str = "FINFLOW_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The filter: `FINFLOW_LOG` when set and valid, else `warn`.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_env(LOG_FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// Installs the global subscriber writing to stderr in `format`. Does nothing if one is
/// already installed (an embedding program's own).
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
