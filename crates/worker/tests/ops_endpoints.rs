//! `finflow run` serves its operations endpoints: a real worker on SQLite against the
//! sandbox answers `/healthz` and `/readyz`, and after one onboarding completes, `/metrics`
//! counts its steps, Finfra calls and callbacks and shows the workflow as completed, in the
//! Prometheus text format.

mod ops;

use std::time::{Duration, Instant};

/// The value of the sample `series` (the whole `name{labels}`), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// The sum of every sample of `family` (any labels).
fn total(metrics: &str, family: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_of_a_running_worker() {
    let begun = Instant::now();
    let setup = ops::Setup::start("ops").await;
    let mut worker = setup.start_worker("warn");
    assert!(
        worker.banner.contains(&format!(
            "metrics on http://127.0.0.1:{}/metrics",
            setup.metrics_port
        )),
        "{}",
        worker.banner
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let get = |path: &str| {
        let request = http.get(setup.ops_url(path));
        async move {
            let response = request.send().await.expect("GET");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (status, content_type, response.text().await.expect("body"))
        }
    };

    let (status, _, body) = get("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, _, body) = get("/readyz").await;
    assert_eq!((status, body.trim()), (200, "ready"), "{body}");

    let (id, _) = setup.submit(
        "warn",
        "ops-personal",
        &ops::sample_input("onboard-personal.json"),
    );
    setup.wait_terminal(&[id], Duration::from_secs(20)).await;

    // The completion is committed before the gauge reads it, but give a scrape a moment.
    let started = Instant::now();
    let metrics = loop {
        let (status, content_type, metrics) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let completed = sample(
            &metrics,
            "finflow_workflows{kind=\"onboard-borrower\",status=\"completed\"}",
        );
        if completed == Some(1.0) || started.elapsed() > Duration::from_secs(5) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(
        sample(
            &metrics,
            "finflow_workflows{kind=\"onboard-borrower\",status=\"completed\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "finflow_workflows{kind=\"onboard-borrower\",status=\"pending\"}"
        ),
        Some(0.0),
        "every status is reported:\n{metrics}"
    );
    assert_eq!(sample(&metrics, "finflow_due_workflows"), Some(0.0));
    let ok_steps = sample(
        &metrics,
        "finflow_steps_total{kind=\"onboard-borrower\",outcome=\"ok\"}",
    )
    .unwrap_or(0.0);
    assert!(ok_steps > 0.0, "no ok steps counted:\n{metrics}");
    assert!(total(&metrics, "finflow_steps_total") >= ok_steps);
    assert!(
        sample(
            &metrics,
            "finflow_finfra_call_seconds_count{request=\"create_borrower_for_kyc\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "the create call is timed:\n{metrics}"
    );
    assert!(
        total(&metrics, "finflow_callbacks_total") >= 1.0,
        "callbacks are counted:\n{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "finflow_callback_lag_seconds_count{source=\"status\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "consumed callbacks have a lag:\n{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "finflow_workflow_duration_seconds_count{kind=\"onboard-borrower\",status=\"completed\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "finflow_rate_limited_total"), Some(0.0));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("finflow_group_commit_batches_total{kind=\"commit\",size=\"")),
        "the step commits' batches are counted:\n{metrics}"
    );
    assert!(total(&metrics, "finflow_group_commit_batches_total") >= ok_steps / 32.0);
    // The lanes were busy while the steps were written, never longer than the worker ran.
    let busy: Vec<(&str, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("finflow_group_commit_busy_seconds_total{lane=\""))
        .filter_map(|rest| {
            let (lane, value) = rest.split_once("\"} ")?;
            Some((lane, value.parse().ok()?))
        })
        .collect();
    let lanes: Vec<&str> = busy.iter().map(|(lane, _)| *lane).collect();
    assert!(
        lanes == ["commit", "claim", "callback"] || lanes == ["write"],
        "the lanes' busy time:\n{metrics}"
    );
    assert!(
        busy[0].1 > 0.0,
        "the step commits' lane was busy:\n{metrics}"
    );
    for (lane, seconds) in &busy {
        assert!(
            *seconds < begun.elapsed().as_secs_f64(),
            "{lane}: {seconds} s"
        );
    }
    // Every family is declared, and every sample line is `name{labels} value`.
    for family in [
        "finflow_steps_total counter",
        "finflow_retries_total counter",
        "finflow_rate_limited_total counter",
        "finflow_ambiguous_total counter",
        "finflow_finfra_call_seconds histogram",
        "finflow_callbacks_total counter",
        "finflow_callback_lag_seconds histogram",
        "finflow_workflow_duration_seconds histogram",
        "finflow_workflows gauge",
        "finflow_due_workflows gauge",
        "finflow_group_commit_batches_total counter",
        "finflow_group_commit_busy_seconds_total counter",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family}\n")),
            "{family} missing:\n{metrics}"
        );
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("a value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // A refused callback is counted as rejected.
    let refused = http
        .post(format!(
            "http://127.0.0.1:{}/api/core/ftm/users/user_created/status",
            setup.callbacks_port
        ))
        .header("finfra-auth-key", "wrong")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 401);
    let (_, _, metrics) = get("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "finflow_callbacks_total{source=\"status\",result=\"rejected\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // Shutting down: the endpoints go away with the worker.
    worker.stop();
    assert!(http.get(setup.ops_url("/healthz")).send().await.is_err());
}
