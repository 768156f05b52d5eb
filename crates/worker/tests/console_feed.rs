//! The console's Reconciliation, Events and Webhooks pages on both backends, over rows the
//! store writes as steps commit them: each page renders with data, keyset pages and
//! filters, and the start-a-run and replay forms (an operator's; a viewer and a form
//! without its CSRF token are refused).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use console::app::{AppState, router};
use console::operate::OperatorsConfig;
use console::{ConsoleConfig, Role, UserConfig};
use serde_json::{Value, json};
use store::testing::TestDb;
use store::{DeliveryStatus, NewEvent, NewFinding, Observed, Status, StepCommit, Store};
use tower::ServiceExt as _;
use uuid::Uuid;
use workflow::{Engine, Registry};

store::test_both_backends!(reconciliation_events_and_webhooks_pages);

const SECRET: &str = "console-test-secret-of-at-least-32-characters";

fn config() -> ConsoleConfig {
    let user = |name: &str, role| UserConfig {
        name: name.to_owned(),
        role,
        password_hash: None,
        personal_data: false,
    };
    ConsoleConfig {
        session_secret: Some(SECRET.to_owned()),
        users: vec![user("alice", Role::Operator), user("vic", Role::Viewer)],
        ..ConsoleConfig::default()
    }
}

struct Console {
    state: AppState,
}

struct Answer {
    status: StatusCode,
    location: String,
    body: String,
}

impl Console {
    async fn send(&self, request: Request<Body>) -> Answer {
        let app = router(self.state.clone())
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
            .await
            .expect("body");
        Answer {
            status,
            location,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A page as `name`.
    async fn get(&self, name: &str, path: &str) -> Answer {
        let session = self.state.session_for(name);
        self.send(
            Request::get(path)
                .header(header::COOKIE, format!("finflow_session={session}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    /// A form posted as `name`, with their CSRF token when `csrf`.
    async fn post(&self, name: &str, path: &str, form: &[(&str, &str)], csrf: bool) -> Answer {
        let session = self.state.session_for(name);
        let token = self.state.csrf_for(&session).expect("a valid session");
        let mut form = form.to_vec();
        if csrf {
            form.push(("csrf", &token));
        }
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("finflow_session={session}"))
                .body(Body::from(
                    serde_urlencoded::to_string(&form).expect("form"),
                ))
                .expect("request"),
        )
        .await
    }
}

/// The notice a redirect carries.
fn notice(location: &str) -> String {
    let query = location.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, v)| v)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Submits a `kind` workflow and commits one finished step with `events` and `observed`.
async fn committed(
    store: &Store,
    kind: &str,
    key: &str,
    facts: Value,
    events: &[&str],
    observed: Observed,
) -> Uuid {
    let id = store
        .submit(&store::NewWorkflow::new(kind, key, json!({})))
        .await
        .expect("submit")
        .id;
    let claimed = store
        .claim(id, "w1", Duration::from_secs(30))
        .await
        .expect("claim")
        .expect("due");
    let commit = StepCommit {
        workflow_id: id,
        worker_id: "w1".into(),
        expected_version: claimed.workflow.version,
        status: Status::Completed,
        state: "done".into(),
        context: json!({}),
        facts,
        attempt: 1,
        next_run_at: None,
        waiting_for: None,
        waits: Vec::new(),
        deadline: None,
        last_error: None,
        journal: store::JournalEntry::new("new", "start", store::Outcome::Started),
        processed_events: Vec::new(),
        pin_definition_version: None,
        pin_definition_name: None,
        release_lease: true,
        hold_for_events: None,
        announce: None,
        events: events
            .iter()
            .map(|t| NewEvent {
                event_type: (*t).to_owned(),
                payload: json!({ "user_id": "6a41b2c3d4e5f60718293a4b" }),
            })
            .collect(),
        observed,
    };
    store.commit_step(&commit).await.expect("commit");
    id
}

fn finding(loan: &str, workflow: Option<Uuid>, kind: &str, money: bool) -> NewFinding {
    NewFinding {
        loan_unique_id: loan.to_owned(),
        workflow_id: workflow,
        kind: kind.to_owned(),
        ours: Some("OPEN".to_owned()),
        theirs: Some("CLOSED".to_owned()),
        money,
    }
}

async fn reconciliation_events_and_webhooks_pages(db: TestDb) {
    let store = &db.store;
    let onboarding = committed(
        store,
        "onboard-borrower",
        "feed-borrower-1",
        json!({}),
        &["borrower.approved"],
        Observed::default(),
    )
    .await;
    committed(
        store,
        "onboard-borrower",
        "other-borrower-2",
        json!({}),
        &["borrower.declined"],
        Observed::default(),
    )
    .await;
    let run = committed(
        store,
        store::RECONCILE_KIND,
        "manual/first-run",
        json!({ "pages": 3, "loans": 41, "findings": 2, "money_findings": 1 }),
        &["reconcile.finding"],
        Observed {
            findings: vec![
                finding(
                    "LOAN-MONEY-1",
                    Some(onboarding),
                    "amount_paid_differs",
                    true,
                ),
                finding("LOAN-STATUS-2", None, "status_differs", false),
            ],
            ..Observed::default()
        },
    )
    .await;
    let console = Console {
        state: AppState::new(
            store.clone(),
            Engine::new(Registry::load_dir(&repo().join("workflows")).expect("definitions")),
            config(),
            OperatorsConfig::default(),
        ),
    };

    // Reconciliation: runs with their counts, findings by kind (money first), findings.
    let page = console.get("vic", "/reconciliation").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("/workflows/{run}\">manual/first-run"))
    );
    assert!(page.body.contains(">41<"), "the run's loans count");
    let money = page.body.find("amount_paid_differs").expect("money kind");
    let status = page.body.find("status_differs").expect("status kind");
    assert!(money < status, "money findings first");
    assert!(page.body.contains("class=\"money\""), "money highlighted");
    assert!(
        page.body
            .contains(&format!("/workflows/{onboarding}\">LOAN-MONEY-1"))
    );
    assert!(page.body.contains("LOAN-STATUS-2"));
    assert!(
        !page.body.contains("Start a run now"),
        "a viewer reads only"
    );
    assert!(
        page.body
            .contains("href=\"/reconciliation\">Reconciliation")
    );
    // Keyset: below the newest finding's id, only the older one.
    let newest = store.findings(true, 1).await.expect("findings")[0].id;
    let older = console
        .get("vic", &format!("/reconciliation?before={newest}"))
        .await;
    assert_eq!(older.status, StatusCode::OK);
    assert!(!older.body.contains(&format!("id=\"finding-{newest}\"")));
    assert!(
        older
            .body
            .contains(&format!("id=\"finding-{}\"", newest - 1))
    );
    let all = console.get("vic", "/reconciliation?all=1").await;
    assert!(all.body.contains("Findings, resolved too"));
    let bad = console.get("vic", "/reconciliation?before=nope").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Starting a run: an operator's, with its dates; a viewer or no CSRF token is refused.
    let page = console.get("alice", "/reconciliation").await;
    assert!(page.body.contains("Start a run now"));
    let started = console
        .post(
            "alice",
            "/reconciliation/run",
            &[("from", "2026-11-01"), ("to", "2026-11-30")],
            true,
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    assert!(
        notice(&started.location).contains("queued"),
        "{}",
        started.location
    );
    let runs = store.latest(store::RECONCILE_KIND, 10).await.expect("runs");
    assert_eq!(runs.len(), 2);
    let new = runs.iter().find(|w| w.id != run).expect("the new run");
    assert!(new.business_key.starts_with("manual/") && new.business_key.ends_with("/alice"));
    assert_eq!(
        new.input,
        json!({ "from": "2026-11-01", "to": "2026-11-30" })
    );
    let invalid = console
        .post(
            "alice",
            "/reconciliation/run",
            &[("from", "yesterday")],
            true,
        )
        .await;
    assert!(notice(&invalid.location).starts_with("refused"));
    let viewer = console
        .post("vic", "/reconciliation/run", &[("from", "")], true)
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert!(viewer.body.contains("needs the operator role"));
    let no_csrf = console
        .post("alice", "/reconciliation/run", &[("from", "")], false)
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert!(no_csrf.body.contains("CSRF"));
    assert_eq!(
        store
            .latest(store::RECONCILE_KIND, 10)
            .await
            .expect("runs")
            .len(),
        2,
        "nothing started by a refused form"
    );

    // Events: newest first, each linking to its workflow; filters; keyset pages.
    let feed = console.get("vic", "/events").await;
    assert_eq!(feed.status, StatusCode::OK);
    let reconcile = feed.body.find("reconcile.finding</code>").expect("newest");
    let approved = feed.body.find("borrower.approved</code>").expect("oldest");
    assert!(reconcile < approved, "newest first");
    assert!(
        feed.body
            .contains(&format!("/workflows/{onboarding}\">feed-borrower-1"))
    );
    let typed = console.get("vic", "/events?type=borrower.declined").await;
    assert!(typed.body.contains("other-borrower-2"));
    assert!(!typed.body.contains("feed-borrower-1"));
    let keyed = console.get("vic", "/events?key=feed-").await;
    assert!(keyed.body.contains("feed-borrower-1"));
    assert!(!keyed.body.contains("other-borrower-2"));
    let events = store.events_after(0, 10).await.expect("events");
    let older = console
        .get("vic", &format!("/events?before={}", events[1].id))
        .await;
    assert!(older.body.contains("feed-borrower-1"));
    assert!(!older.body.contains("other-borrower-2"));
    // More than a page: the next link keeps the filter and continues below the last row.
    committed(
        store,
        "onboard-borrower",
        "bulk-feed",
        json!({}),
        &["loan.created"; 55],
        Observed::default(),
    )
    .await;
    let first = console.get("vic", "/events?key=bulk-").await;
    assert_eq!(first.body.matches("id=\"event-").count(), 50);
    let next = first
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next link")
        .replace("&amp;", "&");
    assert!(next.contains("key=bulk-"), "{next}");
    let second = console.get("vic", &next).await;
    assert_eq!(second.body.matches("id=\"event-").count(), 5);
    assert!(!second.body.contains("rel=\"next\""));
    // A workflow's own events, on its page.
    let one = console
        .get("vic", &format!("/workflows/{onboarding}"))
        .await;
    assert!(one.body.contains("Lifecycle events"));
    assert!(one.body.contains("borrower.approved"));
    assert!(!one.body.contains("borrower.declined"));

    // Webhooks: a failed delivery, listed with its error; replayed by an operator.
    store
        .dispatch_webhook("lender-a", &[])
        .await
        .expect("dispatch");
    let claimed = store
        .claim_deliveries("w1", 10, Duration::from_secs(30))
        .await
        .expect("claim");
    let delivery = claimed
        .iter()
        .find(|d| d.event.id == events[0].id)
        .expect("the first event's delivery")
        .id
        .clone();
    store
        .delivery_failed(&delivery, "w1", "connection refused", Some(503), None)
        .await
        .expect("give up");
    let hooks = console.get("vic", "/webhooks?failed=1").await;
    assert_eq!(hooks.status, StatusCode::OK);
    assert!(hooks.body.contains(&format!("id=\"delivery-{delivery}\"")));
    assert!(hooks.body.contains("HTTP 503 connection refused"));
    assert!(
        !hooks.body.contains("Replay</button>"),
        "a viewer reads only"
    );
    let with_replay = console.get("alice", "/webhooks").await;
    assert!(with_replay.body.contains("Replay</button>"));
    let failed_status = |rows: Vec<store::DeliveryRow>| {
        rows.into_iter()
            .find(|d| d.id == delivery)
            .map(|d| d.status)
    };
    for (who, csrf, status) in [
        ("vic", true, StatusCode::FORBIDDEN),
        ("alice", false, StatusCode::FORBIDDEN),
    ] {
        let refused = console
            .post(who, "/webhooks/replay", &[("id", &delivery)], csrf)
            .await;
        assert_eq!(refused.status, status);
        assert_eq!(
            failed_status(store.deliveries(true, 100).await.expect("deliveries")),
            Some(DeliveryStatus::Failed)
        );
    }
    let replayed = console
        .post("alice", "/webhooks/replay", &[("id", &delivery)], true)
        .await;
    assert_eq!(replayed.status, StatusCode::SEE_OTHER);
    assert!(notice(&replayed.location).contains("due again"));
    assert_eq!(
        failed_status(store.deliveries(false, 100).await.expect("deliveries")),
        Some(DeliveryStatus::Pending)
    );
    let unknown = console
        .post("alice", "/webhooks/replay", &[("id", "nobody-1")], true)
        .await;
    assert!(notice(&unknown.location).starts_with("refused"));
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
