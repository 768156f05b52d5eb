//! finflow's Prometheus metrics: a small process-global registry and its text exposition.
//!
//! Library code records with one-line calls ([`step_committed`], [`callback`],
//! [`callback_consumed`], [`timed_finfra_call`]) and no plumbing: the registry is a
//! process-global [`Metrics`] ([`global`]). `finflow run` serves it on `GET /metrics`
//! (see `ops`), adding gauges computed at scrape time from the store (workflows by kind and
//! status, workflows due).
//!
//! Hand-rolled on purpose: a handful of counters and histograms with bounded label sets
//! (workflow kinds, journal outcomes, request names, callback sources) do not need a
//! metrics framework. Each family is a `Mutex<BTreeMap<labels, value>>`; the lock is held
//! for one map update, far cheaper than the database commit every step already costs.
//! Series are rendered in label order, so a scrape is deterministic.
//!
//! Names and labels are a contract with dashboards and alerts, like the journal's outcomes:
//! renaming one is a breaking change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use workflow::{CallFailure, FailureKind, FinfraResponse};

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of Finfra call durations, in seconds (Finfra answers in tens of milliseconds;
/// the client's timeout is 30 s by default).
const CALL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of the lag from a callback stored to the step consuming it, in seconds.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets of whole workflow durations, in seconds: an onboarding takes seconds against a
/// zero-delay sandbox and hours to days in production (KYC reviews, signatures).
const WORKFLOW_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0, 604_800.0,
];

/// A family of counters sharing a name and label names.
#[derive(Debug)]
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterVec {
    /// A family; `labels` are the label names, in order.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to the series with these label values (one per label name, in order).
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    /// Adds `n` to the series with these label values.
    pub fn inc_by(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let value = series.entry(key).or_insert(0);
        *value = value.saturating_add(n);
    }

    /// The current value of one series (0 when it was never incremented).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.get(&key).copied().unwrap_or(0)
    }

    /// Appends the family in the text exposition format. A family without labels shows 0
    /// before its first increment; a labelled one shows only the series seen.
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.is_empty() && self.labels.is_empty() {
            let _ = writeln!(out, "{} 0", self.name);
        }
        for (values, value) in series.iter() {
            let _ = writeln!(
                out,
                "{}{} {value}",
                self.name,
                label_set(self.labels, values, None)
            );
        }
    }
}

/// One histogram series: a count per bucket (not cumulative), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
struct HistogramData {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A family of histograms with fixed buckets.
#[derive(Debug)]
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    /// Upper bounds, increasing; `+Inf` is implied.
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Vec<String>, HistogramData>>,
}

impl HistogramVec {
    /// A family with these bucket upper bounds (increasing; `+Inf` is added).
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation, in seconds for the durations here. A negative value (clocks
    /// of two machines disagree) counts as 0.
    pub fn observe(&self, values: &[&str], value: f64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let value = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let data = series.entry(key).or_insert_with(|| HistogramData {
            buckets: vec![0; self.bounds.len()],
            ..HistogramData::default()
        });
        if let Some(slot) = self.bounds.iter().position(|bound| value <= *bound) {
            data.buckets[slot] += 1;
        }
        data.sum += value;
        data.count += 1;
    }

    /// How many observations one series has (0 when it has none).
    pub fn count(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.get(&key).map_or(0, |data| data.count)
    }

    /// Appends the family in the text exposition format: cumulative `_bucket` series with
    /// `le`, then `_sum` and `_count`.
    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for (values, data) in series.iter() {
            let mut cumulative = 0;
            for (bound, n) in self.bounds.iter().zip(&data.buckets) {
                cumulative += n;
                let le = format_float(*bound);
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    label_set(self.labels, values, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                label_set(self.labels, values, Some("+Inf")),
                data.count
            );
            let labels = label_set(self.labels, values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, format_float(data.sum));
            let _ = writeln!(out, "{}_count{labels} {}", self.name, data.count);
        }
    }
}

/// One gauge sample computed at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeSample {
    /// Label values, one per label name of the family.
    pub labels: Vec<String>,
    pub value: f64,
}

/// Appends a gauge family computed at scrape time.
pub fn render_gauge(
    out: &mut String,
    name: &str,
    help: &str,
    labels: &[&str],
    samples: &[GaugeSample],
) {
    render_samples(out, name, help, "gauge", labels, samples);
}

/// Appends a counter family whose values another part of the process keeps (read at
/// scrape time, e.g. the store's group-commit batches).
pub fn render_counter(
    out: &mut String,
    name: &str,
    help: &str,
    labels: &[&str],
    samples: &[GaugeSample],
) {
    render_samples(out, name, help, "counter", labels, samples);
}

fn render_samples(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    labels: &[&str],
    samples: &[GaugeSample],
) {
    header(out, name, help, kind);
    for sample in samples {
        let _ = writeln!(
            out,
            "{name}{} {}",
            label_set(labels, &sample.labels, None),
            format_float(sample.value)
        );
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `{a="x",b="y"}` (with `le` last for a histogram bucket), or nothing without labels.
fn label_set(names: &[&str], values: &[String], le: Option<&str>) -> String {
    if names.is_empty() && le.is_none() {
        return String::new();
    }
    let mut out = String::from("{");
    let pairs = names
        .iter()
        .zip(values)
        .map(|(name, value)| (*name, value.as_str()))
        .chain(le.map(|le| ("le", le)));
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape_label(value));
    }
    out.push('}');
    out
}

/// Label values escape `\`, `"` and line feeds.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escapes `\` and line feeds.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, or Rust's shortest form.
fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

/// Every metric finflow records in-process. The gauges computed from the store at scrape
/// time are rendered by `ops`.
#[derive(Debug)]
pub struct Metrics {
    /// `finflow_steps_total{kind,outcome}`: committed steps by journal outcome.
    pub steps: CounterVec,
    /// `finflow_retries_total{kind}`: steps ending in outcome `retry`.
    pub retries: CounterVec,
    /// `finflow_rate_limited_total`: Finfra calls answered `429`.
    pub rate_limited: CounterVec,
    /// `finflow_ambiguous_total{kind}`: steps ending in outcome `ambiguous`.
    pub ambiguous: CounterVec,
    /// `finflow_finfra_call_seconds{request}`: duration of each Finfra call sent.
    pub finfra_calls: HistogramVec,
    /// `finflow_callbacks_total{source,result}`: callbacks received.
    pub callbacks: CounterVec,
    /// `finflow_callback_lag_seconds{source}`: from a callback stored to the step consuming it.
    pub callback_lag: HistogramVec,
    /// `finflow_workflow_duration_seconds{kind,status}`: creation to a terminal status.
    pub workflow_duration: HistogramVec,
    /// `finflow_rate_leases_total`: round trips of the rate governor to the fleet's bucket.
    pub rate_leases: CounterVec,
    /// `finflow_rate_tokens_total{result}`: tokens the governor leased (`leased`) and those
    /// that went unused (`expired`).
    pub rate_tokens: CounterVec,
    /// `finflow_rate_held_total`: requests not sent because the fleet was paused.
    pub rate_held: CounterVec,
    /// `finflow_rate_wait_seconds`: how long a request waited for the governor.
    pub rate_wait: HistogramVec,
    /// `finflow_webhook_attempts_total{webhook,result}`: webhook delivery attempts by
    /// result (`delivered`, `retry`, `given_up`).
    pub webhook_attempts: CounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry (the process uses [`global`]; tests make their own).
    pub const fn new() -> Self {
        Self {
            steps: CounterVec::new(
                "finflow_steps_total",
                "Workflow steps committed, by workflow kind and journal outcome (ok, retry, ambiguous, rate_limited, failed, callback, ...).",
                &["kind", "outcome"],
            ),
            retries: CounterVec::new(
                "finflow_retries_total",
                "Steps that ended in a retryable failure (journal outcome retry), by workflow kind.",
                &["kind"],
            ),
            rate_limited: CounterVec::new(
                "finflow_rate_limited_total",
                "Finfra calls answered 429 Too Many Requests (or held back by the client inside a Retry-After window).",
                &[],
            ),
            ambiguous: CounterVec::new(
                "finflow_ambiguous_total",
                "Steps whose outcome is unknown (journal outcome ambiguous: reconciled before sending again), by workflow kind.",
                &["kind"],
            ),
            finfra_calls: HistogramVec::new(
                "finflow_finfra_call_seconds",
                "Duration of Finfra calls, by request name, whatever their outcome.",
                &["request"],
                CALL_BUCKETS,
            ),
            callbacks: CounterVec::new(
                "finflow_callbacks_total",
                "Callbacks received, by source and result (stored, duplicate, rejected, error).",
                &["source", "result"],
            ),
            callback_lag: HistogramVec::new(
                "finflow_callback_lag_seconds",
                "Time from a callback being stored to the workflow step that consumed it, by source.",
                &["source"],
                LAG_BUCKETS,
            ),
            workflow_duration: HistogramVec::new(
                "finflow_workflow_duration_seconds",
                "Time from a workflow's creation to its terminal status, by kind and status.",
                &["kind", "status"],
                WORKFLOW_BUCKETS,
            ),
            rate_leases: CounterVec::new(
                "finflow_rate_leases_total",
                "Leases of tokens from the fleet's shared rate-limit bucket (one round trip each).",
                &[],
            ),
            rate_tokens: CounterVec::new(
                "finflow_rate_tokens_total",
                "Rate-limit tokens leased by this process (leased) and left unused (expired).",
                &["result"],
            ),
            rate_held: CounterVec::new(
                "finflow_rate_held_total",
                "Finfra requests not sent because the fleet was paused by a 429's Retry-After.",
                &[],
            ),
            rate_wait: HistogramVec::new(
                "finflow_rate_wait_seconds",
                "Time a Finfra request waited for the rate governor before leaving.",
                &[],
                CALL_BUCKETS,
            ),
            webhook_attempts: CounterVec::new(
                "finflow_webhook_attempts_total",
                "Webhook delivery attempts by webhook and result (delivered, retry, given_up).",
                &["webhook", "result"],
            ),
        }
    }

    /// A step was committed with this journal `outcome`, leaving the workflow in `status`;
    /// `created_at` is when the workflow was created (for its duration when `status` is
    /// terminal).
    pub fn step_committed(
        &self,
        kind: &str,
        outcome: store::Outcome,
        status: store::Status,
        created_at: DateTime<Utc>,
    ) {
        self.steps.inc(&[kind, outcome.as_str()]);
        match outcome {
            store::Outcome::Retry => self.retries.inc(&[kind]),
            store::Outcome::Ambiguous => self.ambiguous.inc(&[kind]),
            _ => {}
        }
        if status.is_terminal() {
            self.workflow_duration
                .observe(&[kind, status.as_str()], seconds_since(created_at));
        }
    }

    /// A Finfra call named `request` took `elapsed`; `rate_limited` when it was answered 429.
    pub fn finfra_call(&self, request: &str, elapsed: Duration, rate_limited: bool) {
        self.finfra_calls.observe(&[request], elapsed.as_secs_f64());
        if rate_limited {
            self.rate_limited.inc(&[]);
        }
    }

    /// The rate governor leased `granted` tokens in one round trip.
    pub fn rate_leased(&self, granted: u32) {
        self.rate_leases.inc(&[]);
        self.rate_tokens.inc_by(&["leased"], u64::from(granted));
    }

    /// `n` leased tokens went unused.
    pub fn rate_tokens_expired(&self, n: u64) {
        self.rate_tokens.inc_by(&["expired"], n);
    }

    /// A request was held back by a known pause.
    pub fn rate_held(&self) {
        self.rate_held.inc(&[]);
    }

    /// A request left after waiting `waited` for the governor.
    pub fn rate_waited(&self, waited: Duration) {
        self.rate_wait.observe(&[], waited.as_secs_f64());
    }

    /// Renders every in-process family.
    pub fn render(&self, out: &mut String) {
        self.steps.render(out);
        self.retries.render(out);
        self.rate_limited.render(out);
        self.ambiguous.render(out);
        self.finfra_calls.render(out);
        self.callbacks.render(out);
        self.callback_lag.render(out);
        self.workflow_duration.render(out);
        self.rate_leases.render(out);
        self.rate_tokens.render(out);
        self.rate_held.render(out);
        self.rate_wait.render(out);
        self.webhook_attempts.render(out);
    }
}

fn seconds_since(at: DateTime<Utc>) -> f64 {
    (Utc::now() - at)
        .to_std()
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

static GLOBAL: Metrics = Metrics::new();

/// The process's registry.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// Records a committed step in the process's registry (see [`Metrics::step_committed`]).
pub fn step_committed(
    kind: &str,
    outcome: store::Outcome,
    status: store::Status,
    created_at: DateTime<Utc>,
) {
    global().step_committed(kind, outcome, status, created_at);
}

/// Records a webhook delivery attempt: `result` is `delivered`, `retry` or `given_up`.
pub fn webhook_attempt(webhook: &str, result: &str) {
    global().webhook_attempts.inc(&[webhook, result]);
}

/// Records a callback received by the receiver: `result` is `stored`, `duplicate`,
/// `rejected` (refused with a 4xx) or `error` (could not be stored, 503).
pub fn callback(source: &str, result: &str) {
    global().callbacks.inc(&[source, result]);
}

/// Records that a step consumed an inbox row of `source` stored at `received_at`.
pub fn callback_consumed(source: &str, received_at: DateTime<Utc>) {
    global()
        .callback_lag
        .observe(&[source], seconds_since(received_at));
}

/// Runs one Finfra call, recording its duration under `request` (and a `429`).
pub async fn timed_finfra_call(
    request: &'static str,
    call: impl Future<Output = Result<FinfraResponse, CallFailure>>,
) -> Result<FinfraResponse, CallFailure> {
    let started = Instant::now();
    let result = call.await;
    let rate_limited = matches!(&result, Err(failure) if failure.kind == FailureKind::RateLimited);
    global().finfra_call(request, started.elapsed(), rate_limited);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_sorted_with_escaped_labels() {
        static C: CounterVec = CounterVec::new("t_total", "A test\ncounter.", &["kind", "outcome"]);
        C.inc(&["onboard-borrower", "ok"]);
        C.inc(&["onboard-borrower", "ok"]);
        C.inc_by(&["a\"b\\c\nd", "retry"], 5);
        let mut out = String::new();
        C.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_total A test\\ncounter.\n\
             # TYPE t_total counter\n\
             t_total{kind=\"a\\\"b\\\\c\\nd\",outcome=\"retry\"} 5\n\
             t_total{kind=\"onboard-borrower\",outcome=\"ok\"} 2\n"
        );
        assert_eq!(C.get(&["onboard-borrower", "ok"]), 2);
        assert_eq!(C.get(&["onboard-borrower", "failed"]), 0);
    }

    #[test]
    fn an_unlabelled_counter_shows_zero_before_its_first_increment() {
        let c = CounterVec::new("z_total", "Zero.", &[]);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.ends_with("z_total 0\n"), "{out}");
        c.inc(&[]);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.ends_with("z_total 1\n"), "{out}");
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let h = HistogramVec::new("h_seconds", "H.", &["request"], &[0.1, 1.0]);
        for value in [0.05, 0.1, 0.5, 3.0, -1.0, f64::NAN] {
            h.observe(&["ocr"], value);
        }
        let mut out = String::new();
        h.render(&mut out);
        assert_eq!(
            out,
            "# HELP h_seconds H.\n\
             # TYPE h_seconds histogram\n\
             h_seconds_bucket{request=\"ocr\",le=\"0.1\"} 4\n\
             h_seconds_bucket{request=\"ocr\",le=\"1\"} 5\n\
             h_seconds_bucket{request=\"ocr\",le=\"+Inf\"} 6\n\
             h_seconds_sum{request=\"ocr\"} 3.65\n\
             h_seconds_count{request=\"ocr\"} 6\n"
        );
        assert_eq!(h.count(&["ocr"]), 6);
    }

    #[test]
    fn an_unlabelled_histogram_bucket_has_only_le() {
        let h = HistogramVec::new("l_seconds", "L.", &[], &[1.0]);
        h.observe(&[], 2.0);
        let mut out = String::new();
        h.render(&mut out);
        assert!(out.contains("l_seconds_bucket{le=\"1\"} 0\n"), "{out}");
        assert!(out.contains("l_seconds_bucket{le=\"+Inf\"} 1\n"), "{out}");
        assert!(out.contains("l_seconds_sum 2\n"), "{out}");
    }

    #[test]
    fn gauges_render_their_samples() {
        let mut out = String::new();
        render_gauge(
            &mut out,
            "g",
            "G.",
            &["kind", "status"],
            &[GaugeSample {
                labels: vec!["k".into(), "waiting".into()],
                value: 3.0,
            }],
        );
        assert_eq!(
            out,
            "# HELP g G.\n# TYPE g gauge\ng{kind=\"k\",status=\"waiting\"} 3\n"
        );
    }

    #[test]
    fn steps_feed_retries_ambiguity_and_terminal_durations() {
        let m = Metrics::new();
        let created = Utc::now() - chrono::TimeDelta::seconds(90);
        m.step_committed(
            "onboard-borrower",
            store::Outcome::Retry,
            store::Status::Sleeping,
            created,
        );
        m.step_committed(
            "onboard-borrower",
            store::Outcome::Ambiguous,
            store::Status::Running,
            created,
        );
        m.step_committed(
            "onboard-borrower",
            store::Outcome::Ok,
            store::Status::Completed,
            created,
        );
        assert_eq!(m.steps.get(&["onboard-borrower", "retry"]), 1);
        assert_eq!(m.retries.get(&["onboard-borrower"]), 1);
        assert_eq!(m.ambiguous.get(&["onboard-borrower"]), 1);
        assert_eq!(
            m.workflow_duration
                .count(&["onboard-borrower", "completed"]),
            1
        );
        assert_eq!(
            m.workflow_duration.count(&["onboard-borrower", "sleeping"]),
            0,
            "only terminal statuses end a workflow"
        );
        m.finfra_call("create_borrower", Duration::from_millis(20), true);
        assert_eq!(m.rate_limited.get(&[]), 1);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "finflow_workflow_duration_seconds_bucket{kind=\"onboard-borrower\",status=\"completed\",le=\"60\"} 0\n"
        ), "{out}");
        assert!(out.contains(
            "finflow_workflow_duration_seconds_bucket{kind=\"onboard-borrower\",status=\"completed\",le=\"300\"} 1\n"
        ), "{out}");
        assert!(out.contains("finflow_finfra_call_seconds_count{request=\"create_borrower\"} 1\n"));
    }

    #[test]
    fn every_line_is_a_comment_or_a_well_formed_sample() {
        let m = Metrics::new();
        m.step_committed("k", store::Outcome::Ok, store::Status::Failed, Utc::now());
        m.callback_lag.observe(&["status"], 0.2);
        m.callbacks.inc(&["status", "stored"]);
        let mut out = String::new();
        m.render(&mut out);
        for line in out.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a value");
            assert!(series.starts_with("finflow_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert_eq!(series.matches('{').count(), series.matches('}').count());
        }
    }
}
