//! The console end to end in a real headless Chromium, driven through WebDriver
//! (chromedriver, started here on a free port): sign in, filter the stuck workflows, open a
//! loan whose disbursement the bank refused, ask for a retry as one user, see it pending,
//! approve it as another, and find the command journaled and applied by the running worker.
//! Screenshots of the overview, the loan's timeline and the pending approval are written to
//! `docs/` (shown in the README).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test prints how to get them and is skipped with a visible line, except under CI
//! (`CI` set), where it fails.
//!
//! The WebDriver client is the few W3C endpoints the test needs, over reqwest (already a
//! dev-dependency): a full client crate would bring a second TLS stack to build.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{Days, Utc};
use console::app::{AppState, router};
use console::auth::hash_password;
use console::operate::OperatorsConfig;
use console::{ConsoleConfig, Role, UserConfig};
use finfra_sandbox::SandboxConfig;
use serde_json::{Value, json};
use store::testing::{TestBackend, TestDb};
use store::{NewWorkflow, Outcome, RequestStatus, Store, Workflow};
use uuid::Uuid;
use worker::inprocess::{EngineOptions, InProcess};
use workflow::{Engine, Registry};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn registry() -> Registry {
    Registry::load_dir(&repo().join("workflows")).expect("definitions")
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(chromedriver: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One WebDriver session.
struct Browser {
    http: reqwest::Client,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start(driver: &Driver, chromium: &Path) -> Self {
        let http = reqwest::Client::new();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1360,1000"]
            }
        }}});
        let answer: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        Self {
            http,
            session: format!("{}/session/{id}", driver.url),
        }
    }

    /// The WebDriver's whole answer to a command of the session, errors included.
    async fn answer(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let answer = self.answer(method, path, body).await;
        if answer["value"].get("error").is_some() {
            panic!("webdriver {path}: {answer}");
        }
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self
                .answer(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({ "using": "css selector", "value": css })),
                )
                .await;
            if let Some(id) = answer["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {answer}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks what leads to another page (a link, a form's button) and waits until the page
    /// it was on has gone, so that what is read next is read on the new one (a browser may
    /// answer the click before it has even begun to load the next page).
    async fn click_to_page(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self
                .answer(reqwest::Method::GET, &format!("/element/{old}/name"), None)
                .await;
            if let Some("stale element reference" | "no such element") =
                answer["value"].get("error").and_then(Value::as_str)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} led to no new page: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    /// The element's text. Found on the page that was there (a form just submitted may
    /// still show the old one), it can go stale before it is read: then it is found again
    /// on the new page.
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let id = self.find(css).await;
            let answer = self
                .answer(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                .await;
            match answer["value"].get("error").and_then(Value::as_str) {
                None => return answer["value"].as_str().unwrap_or_default().to_owned(),
                Some("stale element reference") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some(_) => panic!("webdriver text of {css}: {answer}"),
            }
        }
    }

    async fn page(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self, file: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("png");
        // Every run takes them; `FINFLOW_UPDATE_SCREENSHOTS=1` writes them over the README's
        // (`docs/`), else they go to the build's scratch folder and the tree stays clean.
        let dir = if std::env::var_os("FINFLOW_UPDATE_SCREENSHOTS").is_some() {
            repo().join("docs")
        } else {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
        };
        let path = dir.join(file);
        std::fs::create_dir_all(&dir).expect("the screenshots' folder");
        std::fs::write(&path, bytes).expect("write the screenshot");
    }

    async fn sign_in(&self, base: &str, name: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.type_into("input[name=name]", name).await;
        self.type_into("input[name=password]", password).await;
        self.click_to_page("form.login button").await;
        self.find("form.signout").await;
    }

    async fn scroll_to(&self, css: &str) {
        self.find(css).await;
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "document.querySelector(arguments[0]).scrollIntoView();",
                "args": [css]
            })),
        )
        .await;
    }

    async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

fn loan(account: &str) -> Value {
    let due = (Utc::now().date_naive() + Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    json!({
        "definition": "personal-single-payment",
        "borrower": { "onboarding": "browser-borrower" },
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
            "{} in {}",
            w.business_key,
            w.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_retry_of_a_disbursement_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        find("chromium").or_else(|| find("chromium-browser")),
        find("chromedriver"),
    ) else {
        let how = "the browser test needs Chromium and its WebDriver: \
                   sudo apt-get install -y chromium chromium-driver (Debian/Ubuntu)";
        assert!(std::env::var_os("CI").is_none(), "CI must run it: {how}");
        println!("SKIPPED an_approved_retry_of_a_disbursement_in_a_real_browser: {how}");
        eprintln!("SKIPPED an_approved_retry_of_a_disbursement_in_a_real_browser: {how}");
        return;
    };
    store::testing::run(TestBackend::Sqlite, true, |db| {
        in_the_browser(db, chromium, chromedriver)
    })
    .await;
}

async fn in_the_browser(db: TestDb, chromium: PathBuf, chromedriver: PathBuf) {
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
            "browser-borrower",
            input,
        ))
        .await
        .expect("submit");
    let refused = store
        .submit(&NewWorkflow::new(
            "originate-loan",
            "loan-7731",
            loan("999000111222"),
        ))
        .await
        .expect("submit")
        .id;
    for key in ["loan-7732", "loan-7733"] {
        store
            .submit(&NewWorkflow::new(
                "originate-loan",
                key,
                loan("123123123213"),
            ))
            .await
            .expect("submit");
    }
    let w = until_state(store, refused, "await_signed").await;
    let unique_id = w.facts["loan_unique_id"].as_str().expect("loan").to_owned();
    sandbox.sign_loan(&unique_id).expect("the borrower signs");
    until_state(store, refused, "needs_attention").await;

    let user = |name: &str, role, password: &str| UserConfig {
        name: name.to_owned(),
        role,
        password_hash: Some(hash_password(password).expect("hash")),
        personal_data: false,
    };
    let config = ConsoleConfig {
        session_secret: Some("browser-test-secret-of-at-least-32-chars".to_owned()),
        users: vec![
            user("alice", Role::Operator, "alice-password-1"),
            user("carol", Role::Approver, "carol-password-1"),
        ],
        ..ConsoleConfig::default()
    };
    let state = AppState::new(
        store.clone(),
        Engine::new(registry()),
        config,
        OperatorsConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let driver = start_driver(&chromedriver).await;
    let browser = Browser::start(&driver, &chromium).await;

    // Alice signs in and sees the stuck loan on the overview.
    browser.sign_in(&base, "alice", "alice-password-1").await;
    assert!(browser.text("#stuck").await.contains("loan-7731"));
    browser.screenshot("console-overview.png").await;

    // She filters the workflows to those that need attention and opens the loan.
    browser.goto(&format!("{base}/workflows")).await;
    browser
        .select("select[name=status]", "needs_attention")
        .await;
    browser.select("select[name=kind]", "originate-loan").await;
    browser.click_to_page("form.filters button").await;
    let table = browser.text("#workflows").await;
    assert!(table.contains("loan-7731"), "{table}");
    assert!(!table.contains("loan-7732"), "{table}");
    browser.click_to_page("#workflows a").await;
    assert!(browser.text("#timeline").await.contains("disburse_loan"));
    browser.scroll_to("#timeline").await;
    browser.screenshot("console-loan-timeline.png").await;

    // She asks for a retry of the disbursement: pending approval, nothing moves.
    browser
        .type_into(
            "form:has(input[name=action][value=retry]) input[name=reason]",
            "bank confirmed the account is open again",
        )
        .await;
    browser.click_to_page("button[name=retry]").await;
    let notice = browser.text("#notice").await;
    assert!(notice.contains("pending approval"), "{notice}");
    assert_eq!(sandbox.ledger().disbursements_accepted[&unique_id], 1);
    browser.click_to_page("form.signout button").await;
    browser.find("form.login").await;

    // Carol, an approver, sees it pending and approves it.
    browser.sign_in(&base, "carol", "carol-password-1").await;
    browser.goto(&format!("{base}/commands")).await;
    let pending = browser.text("table.requests").await;
    assert!(
        pending.contains("pending") && pending.contains("alice"),
        "{pending}"
    );
    browser.screenshot("console-pending-approval.png").await;
    browser
        .type_into("form.decide input[name=reason]", "seen the bank's letter")
        .await;
    browser.click_to_page("button[name=approve]").await;
    let notice = browser.text("#notice").await;
    assert!(notice.contains("approved"), "{notice}");

    // The running worker applies it: journaled, and the disbursement is sent again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.ledger().disbursements_accepted[&unique_id] < 2 {
        assert!(
            Instant::now() < deadline,
            "the approved retry was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let journal = store.journal(refused).await.expect("journal");
    let applied = journal
        .iter()
        .find(|row| row.entry.outcome == Outcome::Command)
        .expect("the command is journaled");
    assert_eq!(
        applied.entry.request_summary.as_ref().expect("who")["by"],
        "alice"
    );
    let request = store
        .command_requests(&store::RequestFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("requests")
        .pop()
        .expect("the request");
    assert_eq!(request.status, RequestStatus::Approved);
    assert_eq!(request.decided_by.as_deref(), Some("carol"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        browser.goto(&format!("{base}/commands")).await;
        if browser.text("#queued").await.contains("applied") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", browser.page().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    browser.close().await;
    drop(driver);
    server.abort();
    world.stop().await.expect("a clean stop");
}
