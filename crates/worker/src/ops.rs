//! The operations endpoints `finflow run` serves on `metrics.listen` (default
//! `127.0.0.1:9464`), apart from the callback receiver so that they are never exposed to
//! Finfra:
//!
//! - `GET /metrics`: Prometheus text format: the in-process [`crate::metrics`] and, computed
//!   at scrape time from the store, `finflow_workflows{kind,status}` and
//!   `finflow_due_workflows`;
//! - `GET /healthz`: `200 ok` while the process serves (liveness);
//! - `GET /readyz`: `200 ready` when the database answers and the worker loop runs, else
//!   `503` with a one-line reason (readiness).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use store::{Status, Store};

use crate::metrics::{self, GaugeSample};

/// How long a scrape or a readiness check waits for the database.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the worker loop runs: set by whoever runs it, read by `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct WorkerState(Arc<AtomicBool>);

impl WorkerState {
    /// Marks the loop running (`true`) or stopped/stopping (`false`).
    pub fn set_running(&self, running: bool) {
        self.0.store(running, Ordering::SeqCst);
    }

    /// Whether the loop runs.
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

struct Ops {
    store: Store,
    worker: WorkerState,
}

/// The router of `/metrics`, `/healthz` and `/readyz`.
pub fn router(store: Store, worker: WorkerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(Ops { store, worker }))
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    if !ops.worker.is_running() {
        return (StatusCode::SERVICE_UNAVAILABLE, "worker loop not running\n").into_response();
    }
    match tokio::time::timeout(DB_TIMEOUT, ops.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(error)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {}\n", one_line(&error.to_string())),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: no answer within {} s\n", DB_TIMEOUT.as_secs()),
        )
            .into_response(),
    }
}

async fn metrics_endpoint(State(ops): State<Arc<Ops>>) -> Response {
    let mut out = String::with_capacity(8 * 1024);
    metrics::global().render(&mut out);
    group_commit_counters(&ops.store, &mut out);
    store_gauges(&ops.store, &mut out).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], out).into_response()
}

/// The batches this process's store wrote in one transaction each (`store::group`), by kind
/// and size: how much the group commit saves under the load the worker has; and how long
/// each lane was busy with them.
fn group_commit_counters(store: &Store, out: &mut String) {
    let mut samples = Vec::new();
    for (kind, sizes) in [
        ("commit", store.commit_batch_sizes()),
        ("claim", store.claim_batch_sizes()),
        ("callback", store.callback_batch_sizes()),
    ] {
        for (size, batches) in sizes {
            samples.push(GaugeSample {
                labels: vec![kind.to_owned(), size.to_string()],
                #[allow(clippy::cast_precision_loss)] // a count far below 2^52
                value: batches as f64,
            });
        }
    }
    metrics::render_counter(
        out,
        "finflow_group_commit_batches_total",
        "Batches this process's store wrote in one transaction, by kind (commit, claim, callback) and size (requests in the batch).",
        &["kind", "size"],
        &samples,
    );
    let busy: Vec<GaugeSample> = store
        .lanes_busy()
        .into_iter()
        .map(|(lane, busy)| GaugeSample {
            labels: vec![lane.to_owned()],
            value: busy.as_secs_f64(),
        })
        .collect();
    metrics::render_counter(
        out,
        "finflow_group_commit_busy_seconds_total",
        "Seconds the lanes of this process's group commit had a batch on its way to the database, by lane (PostgreSQL: commit, claim, callback; SQLite: write). Its rate is the share of the time a lane was busy: near 1, requests wait for the lane.",
        &["lane"],
        &busy,
    );
}

/// The gauges read from the store. A failed read leaves them out of this scrape (and is
/// logged): Prometheus then sees them missing, not wrongly zero.
async fn store_gauges(store: &Store, out: &mut String) {
    match tokio::time::timeout(DB_TIMEOUT, store.status_counts()).await {
        Ok(Ok(counts)) => {
            let mut per: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
            for count in counts {
                *per.entry((count.kind, count.status.as_str())).or_default() += count.count;
            }
            metrics::render_gauge(
                out,
                "finflow_workflows",
                "Workflows by kind and status, read from the store at scrape time.",
                &["kind", "status"],
                &workflow_samples(&per),
            );
        }
        Ok(Err(error)) => tracing::warn!(error.message = %error, "metrics: status counts failed"),
        Err(_) => tracing::warn!("metrics: status counts timed out"),
    }
    match tokio::time::timeout(DB_TIMEOUT, store.due_count()).await {
        Ok(Ok(due)) => metrics::render_gauge(
            out,
            "finflow_due_workflows",
            "Workflows due now and free to claim (the backlog), read at scrape time.",
            &[],
            &[GaugeSample {
                labels: Vec::new(),
                #[allow(clippy::cast_precision_loss)] // a count far below 2^52
                value: due as f64,
            }],
        ),
        Ok(Err(error)) => tracing::warn!(error.message = %error, "metrics: due count failed"),
        Err(_) => tracing::warn!("metrics: due count timed out"),
    }
    match tokio::time::timeout(DB_TIMEOUT, store.open_findings_by_kind()).await {
        Ok(Ok(open)) => {
            // Every kind, zeros included: a series drops to 0 when its findings resolve.
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let samples = |pick: fn(&(String, i64, i64)) -> i64| -> Vec<GaugeSample> {
                workflow::reconcile::FindingKind::ALL
                    .iter()
                    .map(|kind| GaugeSample {
                        labels: vec![kind.as_str().to_owned()],
                        value: open
                            .iter()
                            .find(|row| row.0 == kind.as_str())
                            .map_or(0.0, |row| pick(row) as f64),
                    })
                    .collect()
            };
            metrics::render_gauge(
                out,
                "finflow_reconcile_findings",
                "Open reconciliation findings by kind (view reconciliation_findings), read at scrape time.",
                &["kind"],
                &samples(|row| row.1),
            );
            metrics::render_gauge(
                out,
                "finflow_reconcile_money_findings",
                "Open reconciliation findings where money may have moved without finflow, by kind.",
                &["kind"],
                &samples(|row| row.2),
            );
        }
        Ok(Err(error)) => tracing::warn!(error.message = %error, "metrics: findings failed"),
        Err(_) => tracing::warn!("metrics: findings timed out"),
    }
}

/// Every status of every kind seen, zeros included, so that a series drops to 0 rather than
/// disappearing when its last workflow moves on.
fn workflow_samples(per: &BTreeMap<(String, &'static str), i64>) -> Vec<GaugeSample> {
    let kinds: std::collections::BTreeSet<&String> = per.keys().map(|(kind, _)| kind).collect();
    let mut samples = Vec::new();
    for kind in kinds {
        for status in Status::ALL {
            #[allow(clippy::cast_precision_loss)] // a count far below 2^52
            let value = per
                .get(&(kind.clone(), status.as_str()))
                .copied()
                .unwrap_or(0) as f64;
            samples.push(GaugeSample {
                labels: vec![kind.clone(), status.as_str().to_owned()],
                value,
            });
        }
    }
    samples
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_store() -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("finflow-ops-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("store");
        (store, path)
    }

    async fn ready(ops: &Arc<Ops>) -> (StatusCode, String) {
        let response = readyz(State(ops.clone())).await;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_only_while_the_loop_runs_and_the_database_answers() {
        let (store, path) = sqlite_store().await;
        let worker = WorkerState::default();
        let ops = Arc::new(Ops {
            store: store.clone(),
            worker: worker.clone(),
        });
        assert_eq!(
            ready(&ops).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "worker loop not running\n".to_owned()
            )
        );
        worker.set_running(true);
        assert_eq!(ready(&ops).await, (StatusCode::OK, "ready\n".to_owned()));
        store.close().await;
        let (status, body) = ready(&ops).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("database: "), "{body}");
        assert_eq!(body.lines().count(), 1, "{body}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn every_status_of_a_seen_kind_is_reported() {
        let mut per = BTreeMap::new();
        per.insert(("onboard-borrower".to_owned(), "waiting"), 2);
        let samples = workflow_samples(&per);
        assert_eq!(samples.len(), Status::ALL.len());
        let waiting = samples
            .iter()
            .find(|s| s.labels[1] == "waiting")
            .expect("waiting");
        assert!((waiting.value - 2.0).abs() < f64::EPSILON);
        assert!(
            samples
                .iter()
                .filter(|s| s.labels[1] != "waiting")
                .all(|s| s.value == 0.0)
        );
    }
}
