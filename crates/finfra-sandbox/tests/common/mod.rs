//! Helpers for the integration tests: a raw HTTP client against a started sandbox, borrower
//! fixtures, a callback receiver, polling.

#![allow(dead_code)] // Each test file uses a different subset.

use std::future::Future;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use finfra_sandbox::{CallbackTarget, RunningSandbox, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use url::Url;

/// Logs only with `TEST_LOG` set.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "debug".into()),
                )
                .with_test_writer()
                .init();
        }
    });
}

pub async fn start(config: SandboxConfig) -> RunningSandbox {
    init_tracing();
    Sandbox::start(config).await.expect("sandbox starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A raw client: no typed models, just JSON.
#[derive(Clone)]
pub struct Api {
    pub base: Url,
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    /// Logs in as the sandbox's first client.
    pub async fn login(sandbox: &RunningSandbox) -> Self {
        let http = http();
        let base = sandbox.base_url();
        let r = http
            .post(base.join("api/auth/token/v2").unwrap())
            .basic_auth(sandbox.client_id(), Some(sandbox.client_secret()))
            .send()
            .await
            .expect("token request");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        Self {
            base,
            http,
            token: body["access_token"].as_str().unwrap().to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> Url {
        self.base.join(path.trim_start_matches('/')).unwrap()
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = rb.send().await.expect("request");
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).bearer_auth(&self.token))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .patch(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    /// `POST /api/core/users` with a personal body; asserts it was accepted.
    pub async fn create_personal(&self, nik: &str, email: &str) {
        let (status, body) = self.post("/api/core/users", personal(nik, email)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"status": "success", "message": "Borrower creation request accepted"})
        );
    }

    /// A borrower taken all the way to `APPROVED` (zero delays assumed); returns its id.
    pub async fn approved_borrower(
        &self,
        sandbox: &RunningSandbox,
        nik: &str,
        email: &str,
    ) -> String {
        let id = self.verified_borrower(sandbox, nik, email).await;
        let (status, body) = self
            .post_empty(&format!("/api/core/users/{id}/approve"))
            .await;
        assert_eq!(status, 200, "{body}");
        eventually(|| async {
            let (_, b) = self.get(&format!("/api/core/users/{id}")).await;
            b["status"] == "APPROVED"
        })
        .await;
        id
    }

    /// A borrower in `VERIFIED`; returns its id.
    pub async fn verified_borrower(
        &self,
        sandbox: &RunningSandbox,
        nik: &str,
        email: &str,
    ) -> String {
        self.create_personal(nik, email).await;
        let id = eventually_some(|| async { sandbox.borrower_id_by_nik(nik) }).await;
        eventually(|| async {
            let (_, b) = self.get(&format!("/api/core/users/{id}")).await;
            b["status"] == "VERIFIED"
        })
        .await;
        id
    }

    /// A single-payment loan in `PENDING`.
    pub async fn single_loan(&self, user_id: &str, unique_id: &str, account: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/core/loans/{user_id}"),
                single_loan_body(unique_id, account),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A loan taken to `DISBURSED` with the control API.
    pub async fn disbursed_loan(
        &self,
        sandbox: &RunningSandbox,
        user_id: &str,
        unique_id: &str,
    ) -> Value {
        self.single_loan(user_id, unique_id, "1234567890").await;
        let (s, b) = self
            .post(
                "/api/core/loans/signing/initiate",
                json!({"unique_id": unique_id}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        sandbox.sign_loan(unique_id).expect("sign");
        let (s, b) = self
            .post_empty(&format!("/api/core/loans/{unique_id}/disbursement"))
            .await;
        assert_eq!(s, 200, "{b}");
        sandbox.complete_disbursement(unique_id).expect("complete");
        let (_, loan) = self
            .get(&format!("/api/core/loans/details/{unique_id}"))
            .await;
        assert_eq!(loan["status"], "DISBURSED");
        loan
    }
}

pub fn personal(nik: &str, email: &str) -> Value {
    json!({
        "type": "PERSONAL",
        "authorised_signatory": {
            "first_name": "Budi",
            "last_name": "Santoso",
            "birth_date": "1995-11-01",
            "birth_place": "Jakarta",
            "email": email,
            "mother_maiden_name": "Sari",
            "marital_status": "MARRIED",
            "gender": "MALE",
            "title": "BPK",
            "domicile": "ID",
            "religion": "ISLAM",
            "job": "PRIVATE_SECTOR_EMPLOYEE",
            "education": "ELEMENTARY_SCHOOL",
            "address": {
                "street_address": "Jl. Sudirman No. 1",
                "rt": "01",
                "rw": "01",
                "province": "JAWA_BARAT",
                "city": "Bandung",
                "district": "Coblong",
                "village": "Dago",
                "postal_code": "40135",
                "country": "ID"
            },
            "mobile_number": "+6281234567890",
            "bank_account": [
                {"holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"}
            ],
            "documents": {
                "ktp": {
                    "number": nik,
                    "file": "base64_or_url",
                    "issuing_city": "Jakarta",
                    "expiry_date": "2099-11-01"
                },
                "selfie": {"file": "base64_or_url"}
            },
            "monthly_income_range": "LESS_THAN_3_MILLION",
            "emergency_contact_name": "Humairah",
            "emergency_contact_number": "08123456789",
            "housing_status": "OWN_HOME",
            "source_of_fund": "SALARY",
            "place_of_work": "Finfra",
            "work_address": "Mega Kuningan",
            "number_of_dependents": 3,
            "spouse_name": "Mia",
            "spouse_identification_number": "3275062309984412",
            "spouse_date_of_birth": "1999-03-01",
            "prenuptial_agreement": "true"
        }
    })
}

pub fn entity() -> Value {
    json!({
        "name": "PT Maju Jaya",
        "address": {
            "street_address": "Jl. Gatot Subroto 5", "rt": "002", "rw": "003",
            "province": "DKI_JAKARTA", "city": "Jakarta Selatan", "district": "Setiabudi",
            "village": "Kuningan", "postal_code": "12950"
        },
        "phone_number": "+6287711998822",
        "email": "finance@majujaya.co.id",
        "business_type": "OTHER",
        "industry": "PRIVATE_PERSON_NAME",
        "nationality": "ID",
        "residence": "ID",
        "npwp": "01.234.567.8-901.000",
        "legal_entity": "PT",
        "establishment_date": "2010-05-01",
        "establishment_place": "Jakarta",
        "deed_date": "2010-05-01",
        "deed_number": "AHU-12345",
        "managements": [{
            "name": "Budi Santoso", "position": "OWNER_MANAGEMENT",
            "email_address": "budi@majujaya.co.id", "mobile_number": "+6281234567890",
            "address": "Jl. Sudirman No. 1", "gender": "MALE", "identity_number": "3275062009921981"
        }]
    })
}

pub fn single_loan_body(unique_id: &str, account: &str) -> Value {
    json!({
        "unique_id": unique_id,
        "principal_amount": "5000000.00",
        "interest_amount": "250000.00",
        "fee_amount": "10000.00",
        "due_date": "2026-12-31",
        "purpose": "Working capital",
        "disbursement_account": {
            "holder_name": "Budi Santoso",
            "number": account,
            "swift_code": "BNINIDJA"
        }
    })
}

/// Polls `check` until true (5 s at most).
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

/// Polls `get` until it yields a value (5 s at most).
pub async fn eventually_some<T, F, Fut>(mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(v) = get().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("value not available within 5 s");
}

/// One callback as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub auth_key: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer `500` to this many calls first.
    fail_first: Arc<Mutex<usize>>,
    auth_key: String,
}

/// A tiny partner callback receiver: records every call, checks `finfra-auth-key`.
pub struct Receiver {
    pub base_url: Url,
    pub auth_key: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Self {
        let auth_key = "partner-callback-key".to_owned();
        let state = ReceiverState {
            received: Arc::default(),
            fail_first: Arc::new(Mutex::new(fail_first)),
            auth_key: auth_key.clone(),
        };
        let received = Arc::clone(&state.received);
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            base_url: Url::parse(&format!("http://{addr}/")).unwrap(),
            auth_key,
            received,
        }
    }

    pub fn target(&self) -> CallbackTarget {
        CallbackTarget {
            base_url: self.base_url.clone(),
            auth_key: self.auth_key.clone(),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Status callbacks' titles, in arrival order.
    pub fn titles(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|r| r.body["callback_title"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn receive(State(state): State<ReceiverState>, req: Request) -> StatusCode {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let auth_key = req
        .headers()
        .get("finfra-auth-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    {
        let mut fail = state.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    if auth_key.as_deref() != Some(state.auth_key.as_str()) {
        return StatusCode::UNAUTHORIZED;
    }
    state.received.lock().unwrap().push(Received {
        path,
        auth_key,
        body,
    });
    StatusCode::OK
}
