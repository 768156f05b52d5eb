//! The console's handlers, on both backends, over a running worker and the sandbox: every
//! page, every action, and the refusals (no session, expired session, wrong role, missing
//! CSRF token, own approval, a workflow that does not accept the command).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use chrono::{Days, Utc};
use console::app::{AppState, router};
use console::auth::{Keys, hash_password};
use console::operate::OperatorsConfig;
use console::{ConsoleConfig, Role, UserConfig};
use finfra_sandbox::SandboxConfig;
use serde_json::{Value, json};
use store::testing::TestDb;
use store::{NewWorkflow, RequestFilter, RequestStatus, Store, Workflow};
use tower::ServiceExt as _;
use uuid::Uuid;
use worker::inprocess::{EngineOptions, InProcess};
use workflow::{Engine, Registry};

store::test_both_backends!(console_pages_and_actions);

const SECRET: &str = "console-test-secret-of-at-least-32-characters";
const PROXY: &str = "10.9.8.7";

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn registry() -> Registry {
    Registry::load_dir(&repo().join("workflows")).expect("definitions")
}

fn user(name: &str, role: Role, password: Option<&str>) -> UserConfig {
    UserConfig {
        name: name.to_owned(),
        role,
        password_hash: password.map(|p| hash_password(p).expect("hash")),
        personal_data: false,
    }
}

fn config() -> ConsoleConfig {
    ConsoleConfig {
        session_secret: Some(SECRET.to_owned()),
        trusted_user_header: Some("x-remote-user".to_owned()),
        trusted_proxies: vec![PROXY.parse().expect("ip")],
        users: vec![
            user("alice", Role::Operator, Some("alice-password-1")),
            user("bob", Role::Approver, None),
            user("carol", Role::Approver, None),
            user("vic", Role::Viewer, None),
            UserConfig {
                personal_data: true,
                ..user("dana", Role::Viewer, None)
            },
        ],
        ..ConsoleConfig::default()
    }
}

/// A single-payment loan of the sample borrower, disbursed to `account`.
fn loan(account: &str) -> Value {
    let due = (Utc::now().date_naive() + Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    json!({
        "definition": "personal-single-payment",
        "borrower": { "onboarding": "console-borrower" },
        "loan": {
            "type": "SINGLE_PAYMENT", "principal_amount": "5000000.00",
            "interest_amount": "250000.00", "due_date": due, "purpose": "Renovation"
        },
        "disbursement_account": {
            "holder_name": "Budi Santoso", "number": account, "swift_code": "BNINIDJA"
        }
    })
}

async fn until_state(store: &Store, id: Uuid, state: &str) -> Workflow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = store.get(id).await.expect("get").expect("exists");
        if w.state == state {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "{} stuck in {} ({:?}), expected {state}",
            w.business_key,
            w.state,
            w.last_error
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request to the console.
struct Console {
    state: AppState,
}

struct Answer {
    status: StatusCode,
    location: String,
    cookies: Vec<String>,
    body: String,
}

impl Console {
    async fn send(&self, request: Request<Body>) -> Answer {
        let app = router(self.state.clone())
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        answer(app.oneshot(request).await.expect("infallible")).await
    }

    fn session(&self, name: &str) -> String {
        self.state.session_for(name)
    }

    fn csrf(&self, name: &str) -> (String, String) {
        let session = self.session(name);
        let csrf = self.state.csrf_for(&session).expect("a valid session");
        (session, csrf)
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(s) = session {
            request = request.header(header::COOKIE, format!("finflow_session={s}"));
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    async fn post(&self, path: &str, session: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(s) = session {
            request = request.header(header::COOKIE, format!("finflow_session={s}"));
        }
        let body = serde_urlencoded::to_string(form).expect("form");
        self.send(request.body(Body::from(body)).expect("request"))
            .await
    }

    /// Posts as `name` with their CSRF token.
    async fn act(&self, name: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let (session, csrf) = self.csrf(name);
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        self.post(path, Some(&session), &form).await
    }
}

async fn answer(response: Response) -> Answer {
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
        .await
        .expect("body");
    Answer {
        status,
        location,
        cookies,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn decoded(location: &str) -> String {
    let query = location.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, v)| v)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn console_pages_and_actions(db: TestDb) {
    let store = &db.store;
    let world = InProcess::start(
        store.clone(),
        registry(),
        SandboxConfig::for_tests(),
        &EngineOptions {
            concurrency: 8,
            lease: Duration::from_secs(5),
            webhooks: Vec::new(),
        },
    )
    .await
    .expect("sandbox, receiver and worker");
    let sandbox = world.sandbox();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/inputs/onboard-personal.json"))
            .expect("sample input"),
    )
    .expect("json");
    store
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "console-borrower",
            input,
        ))
        .await
        .expect("submit");
    let refused = store
        .submit(&NewWorkflow::new(
            "originate-loan",
            "loan-refused",
            loan("999000111222"),
        ))
        .await
        .expect("submit")
        .id;
    let waiting = store
        .submit(&NewWorkflow::new(
            "originate-loan",
            "loan-waiting",
            loan("123123123213"),
        ))
        .await
        .expect("submit")
        .id;
    let w = until_state(store, refused, "await_signed").await;
    let unique_id = w.facts["loan_unique_id"].as_str().expect("loan").to_owned();
    sandbox.sign_loan(&unique_id).expect("the borrower signs");
    until_state(store, refused, "needs_attention").await;
    until_state(store, waiting, "await_signed").await;
    assert_eq!(sandbox.ledger().disbursements_accepted[&unique_id], 1);

    let console = Console {
        state: AppState::new(
            store.clone(),
            Engine::new(registry()),
            config(),
            OperatorsConfig::default(),
        ),
    };

    // Every page is behind the sign-in, except the sign-in page and the stylesheet.
    for path in [
        "/",
        "/workflows",
        &format!("/workflows/{refused}"),
        "/commands",
    ] {
        let a = console.get(path, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.location, "/login", "{path}");
    }
    let css = console.get("/assets/console.css", None).await;
    assert_eq!(css.status, StatusCode::OK);

    // Sign-in: the form's CSRF token, a wrong password, the right one.
    let page = console.get("/login", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let login_cookie = page.cookies[0]
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the form")
        .to_owned();
    let sign_in = |password: &'static str, token: String| {
        let login_cookie = login_cookie.clone();
        let body = serde_urlencoded::to_string([
            ("name", "alice"),
            ("password", password),
            ("csrf", &token),
        ])
        .expect("form");
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, login_cookie)
            .body(Body::from(body))
            .expect("request")
    };
    let no_token = console
        .send(sign_in("alice-password-1", String::new()))
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let wrong = console.send(sign_in("nope", token.clone())).await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    assert!(
        wrong.location.starts_with("/login?error"),
        "{}",
        wrong.location
    );
    assert!(
        wrong
            .cookies
            .iter()
            .all(|c| !c.starts_with("finflow_session="))
    );
    let right = console
        .send(sign_in("alice-password-1", token.clone()))
        .await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.location, "/");
    let session_cookie = right
        .cookies
        .iter()
        .find(|c| c.starts_with("finflow_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(
        session_cookie.contains("SameSite=Strict"),
        "{session_cookie}"
    );
    assert!(session_cookie.contains("Max-Age="), "{session_cookie}");
    let session = session_cookie
        .trim_start_matches("finflow_session=")
        .split(';')
        .next()
        .expect("value")
        .to_owned();

    // An expired session is sent back to the sign-in.
    let old = Keys::new(&config()).session("alice", Utc::now().timestamp() - 9 * 3600);
    let expired = console.get("/", Some(&old)).await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(expired.location, "/login");

    // Overview: the stuck loan with its reason; the counts.
    let overview = console.get("/", Some(&session)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("loan-refused"), "{}", overview.body);
    assert!(overview.body.contains("needs_attention"));
    assert!(overview.body.contains("steps/min"));
    assert!(overview.body.contains("<svg"));
    // The running worker's heartbeat.
    assert!(
        !overview.body.contains("no worker ran"),
        "{}",
        overview.body
    );

    // Workflows: the filter is in the URL.
    let list = console
        .get(
            "/workflows?status=needs_attention&kind=originate-loan",
            Some(&session),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("loan-refused"), "{}", list.body);
    assert!(!list.body.contains("loan-waiting"), "{}", list.body);
    let by_key = console.get("/workflows?key=loan-w", Some(&session)).await;
    assert!(by_key.body.contains("loan-waiting") && !by_key.body.contains("loan-refused"));
    // The last 4 digits of the borrower's NIK find the onboarding (and only it).
    let nik: String = store
        .find_by_business_key("onboard-borrower", "console-borrower")
        .await
        .expect("find")
        .expect("the onboarding")
        .input
        .pointer("/borrower/authorised_signatory/documents/ktp/number")
        .and_then(Value::as_str)
        .expect("a NIK")
        .to_owned();
    let last4 = &nik[nik.len() - 4..];
    let by_nik = console
        .get(&format!("/workflows?nik={last4}"), Some(&session))
        .await;
    assert!(by_nik.body.contains("console-borrower"), "{}", by_nik.body);
    assert!(!by_nik.body.contains("loan-refused"));
    assert!(!by_nik.body.contains(&nik), "the whole NIK is never shown");
    let other = if last4 == "9999" { "0000" } else { "9999" };
    let none = console
        .get(&format!("/workflows?nik={other}"), Some(&session))
        .await;
    assert!(none.body.contains("no workflow matches"));
    let bad = console
        .get("/workflows?created_from=yesterday", Some(&session))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // One workflow: header, timeline, masked personal data, the actions it accepts.
    let page = console
        .get(&format!("/workflows/{refused}"), Some(&session))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("disburse_loan"), "timeline");
    assert!(page.body.contains("four-eyes"), "{}", page.body);
    assert!(page.body.contains("B. S."), "initials");
    assert!(!page.body.contains("Budi Santoso"), "a name unmasked");
    assert!(
        !page.body.contains("999000111222"),
        "an account number unmasked"
    );
    assert!(
        page.body.contains("console-borrower"),
        "the linked onboarding"
    );

    // Refusals: a viewer, a missing CSRF token, no reason.
    let path = format!("/workflows/{refused}/command");
    let viewer = console
        .act("vic", &path, &[("action", "retry"), ("reason", "x")])
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert!(viewer.body.contains("operator role"), "{}", viewer.body);
    let no_csrf = console
        .post(
            &path,
            Some(&session),
            &[("action", "retry"), ("reason", "x")],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert!(no_csrf.body.contains("CSRF"));
    let no_reason = console
        .act("alice", &path, &[("action", "retry"), ("reason", " ")])
        .await;
    assert!(decoded(&no_reason.location).contains("refused: a reason is required"));
    // A cancel of a refused disbursement is refused by the loan's own machine.
    let cancel = console
        .act("alice", &path, &[("action", "cancel"), ("reason", "x")])
        .await;
    assert!(
        decoded(&cancel.location).starts_with("refused"),
        "{}",
        cancel.location
    );
    assert!(
        store
            .command_requests(&RequestFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );

    // The retry of the disbursement: pending approval, nothing moves.
    let asked = console
        .act(
            "alice",
            &path,
            &[
                ("action", "retry"),
                ("reason", "bank confirmed the account"),
            ],
        )
        .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    assert!(
        decoded(&asked.location).contains("pending approval"),
        "{}",
        asked.location
    );
    let request = store
        .command_requests(&RequestFilter {
            pending_only: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("requests")
        .pop()
        .expect("one pending");
    assert_eq!(request.requested_by, "alice");
    let commands = console.get("/commands", Some(&session)).await;
    assert!(
        commands.body.contains("bank confirmed the account"),
        "{}",
        commands.body
    );
    assert!(commands.body.contains("r-pending"));

    // Approvals: an operator may not; the requester may not (bob asks, bob approves);
    // another approver does.
    let approve = format!("/commands/{}/approve", request.id);
    let by_operator = console.act("alice", &approve, &[("reason", "ok")]).await;
    assert_eq!(by_operator.status, StatusCode::FORBIDDEN);
    let no_csrf = console
        .post(
            &approve,
            Some(&console.session("carol")),
            &[("reason", "ok")],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sandbox.ledger().disbursements_accepted[&unique_id],
        1,
        "nothing moved"
    );

    let bobs = console
        .act(
            "bob",
            &path,
            &[("action", "retry"), ("reason", "second try")],
        )
        .await;
    assert!(decoded(&bobs.location).contains("pending approval"));
    let bobs_request = store
        .command_requests(&RequestFilter {
            pending_only: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("requests")
        .into_iter()
        .find(|r| r.requested_by == "bob")
        .expect("bob's");
    let own = console
        .act(
            "bob",
            &format!("/commands/{}/approve", bobs_request.id),
            &[("reason", "mine")],
        )
        .await;
    assert!(
        decoded(&own.location).contains("second person"),
        "{}",
        own.location
    );
    let rejected = console
        .act(
            "carol",
            &format!("/commands/{}/reject", bobs_request.id),
            &[("reason", "one is enough")],
        )
        .await;
    assert!(
        decoded(&rejected.location).contains("rejected"),
        "{}",
        rejected.location
    );

    let approved = console
        .act("carol", &approve, &[("reason", "seen the letter")])
        .await;
    assert!(
        decoded(&approved.location).contains("approved"),
        "{}",
        approved.location
    );
    let decided = store.command_request(request.id).await.unwrap().unwrap();
    assert_eq!(decided.status, RequestStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("carol"));
    // The running worker applies it: the disbursement is sent again (through a read).
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.ledger().disbursements_accepted[&unique_id] < 2 {
        assert!(
            Instant::now() < deadline,
            "the approved retry was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let commands = console.get("/commands", Some(&session)).await;
        if commands.body.contains(">applied<") {
            assert!(commands.body.contains("carol"));
            break;
        }
        assert!(Instant::now() < deadline, "{}", commands.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A cancel before signing needs no second person: queued at once.
    let cancel_waiting = console
        .act(
            "alice",
            &format!("/workflows/{waiting}/command"),
            &[("action", "cancel"), ("reason", "withdrawn")],
        )
        .await;
    assert!(
        decoded(&cancel_waiting.location).contains("cancel queued"),
        "{}",
        cancel_waiting.location
    );
    until_state(store, waiting, "cancelled").await;

    // Bulk: the count first, then only the confirmed count is queued.
    let filter = "status=needs_attention&kind=originate-loan";
    let count = console
        .act(
            "alice",
            "/workflows/bulk",
            &[("action", "retry"), ("reason", "r"), ("filter", filter)],
        )
        .await;
    assert_eq!(count.status, StatusCode::OK, "{}", count.body);
    assert!(count.body.contains("id=\"bulk-count\""), "{}", count.body);
    let mismatch = console
        .act(
            "alice",
            "/workflows/bulk",
            &[
                ("action", "retry"),
                ("reason", "r"),
                ("filter", filter),
                ("confirmed", "7"),
            ],
        )
        .await;
    assert!(
        decoded(&mismatch.location).contains("refused"),
        "{}",
        mismatch.location
    );

    // The proxy's header is honoured only from the proxy.
    let header_only = console
        .send(
            Request::get("/")
                .header("x-remote-user", "vic")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        header_only.status,
        StatusCode::SEE_OTHER,
        "not from the proxy"
    );
    let app = router(console.state.clone()).layer(MockConnectInfo(SocketAddr::new(
        PROXY.parse().unwrap(),
        443,
    )));
    let proxied = answer(
        app.oneshot(
            Request::get("/")
                .header("x-remote-user", "vic")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(proxied.status, StatusCode::OK);
    assert!(proxied.body.contains("vic · viewer"));

    // Sign out.
    let (s, csrf) = console.csrf("alice");
    let out = console.post("/logout", Some(&s), &[("csrf", &csrf)]).await;
    assert_eq!(out.location, "/login");
    assert!(
        out.cookies
            .iter()
            .any(|c| c.starts_with("finflow_session=;"))
    );

    // Failed sign-ins are limited (5 per name and per address): with the wrong password
    // above, four more from this address lock it, and even the right password waits.
    for _ in 0..4 {
        let wrong = console.send(sign_in("nope", token.clone())).await;
        assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    }
    let locked = console
        .send(sign_in("alice-password-1", token.clone()))
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked
            .cookies
            .iter()
            .all(|c| !c.starts_with("finflow_session="))
    );

    // Personal data: masked for everyone; revealed only to a user allowed to see it who
    // gives a reason, and journaled first.
    let page = format!("/workflows/{waiting}");
    let vic = console.get(&page, Some(&console.session("vic"))).await;
    assert_eq!(vic.status, StatusCode::OK);
    assert!(!vic.body.contains("123123123213"), "the account is masked");
    assert!(!vic.body.contains("Reveal personal data"));
    let vic = console
        .get(
            &format!("{page}?reveal=curious"),
            Some(&console.session("vic")),
        )
        .await;
    assert!(!vic.body.contains("123123123213"));
    assert!(store.reveals(waiting).await.expect("reveals").is_empty());
    let dana = console.get(&page, Some(&console.session("dana"))).await;
    assert!(dana.body.contains("Reveal personal data"));
    assert!(!dana.body.contains("123123123213"));
    let dana = console
        .get(
            &format!("{page}?reveal=KYC+dispute+812"),
            Some(&console.session("dana")),
        )
        .await;
    assert!(dana.body.contains("123123123213"), "revealed");
    let reveals = store.reveals(waiting).await.expect("reveals");
    assert_eq!(reveals.len(), 1);
    assert_eq!(
        (
            reveals[0].revealed_by.as_str(),
            reveals[0].reason.as_str(),
            reveals[0].via.as_str()
        ),
        ("dana", "KYC dispute 812", "console")
    );

    world.stop().await.expect("a clean stop");
}
