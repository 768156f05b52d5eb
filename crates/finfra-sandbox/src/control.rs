//! The control API: what happens outside Finfra's API (a borrower signs, the bank pays, a
//! borrower pays into a virtual account) and the sandbox's own knobs (readiness, faults,
//! tokens, the ledger). Served under `/_sandbox/` without auth, rate limit or faults, and
//! offered as the same operations on [`crate::RunningSandbox`].

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::body::Body;
use crate::callbacks::{CallbackRecord, didit_callback, invoice_callback};
use crate::config::{CallbackTarget, Faults};
use crate::error::{ApiError, ApiResult, SandboxError};
use crate::ledger::Ledger;
use crate::state::{BorrowerStatus, money};
use crate::validate::parse_money;

/// One borrower as the control API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorrowerSummary {
    /// `None` while the create request is still being processed (status `CREATING`).
    pub id: Option<String>,
    pub nik: String,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub email: String,
    pub kyc_id: Option<String>,
}

/// One loan as the control API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanSummary {
    pub unique_id: String,
    pub user_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub total_amount: String,
    pub paid_amount: String,
    pub virtual_account_external_id: Option<String>,
}

/// The control operations, shared by the HTTP control API and [`crate::RunningSandbox`].
impl App {
    pub fn ledger(&self) -> Ledger {
        self.with_state(|s| s.ledger.clone())
    }

    pub fn reset_ledger(&self) {
        self.with_state(|s| s.ledger = Ledger::default());
    }

    pub fn borrowers(&self) -> Vec<BorrowerSummary> {
        self.with_state(|s| {
            s.borrowers
                .iter()
                .map(|b| BorrowerSummary {
                    id: (b.status != BorrowerStatus::Creating).then(|| b.id.clone()),
                    nik: b.input.nik.clone(),
                    status: b.status.as_str().to_owned(),
                    kind: if b.input.business {
                        "BUSINESS"
                    } else {
                        "PERSONAL"
                    }
                    .to_owned(),
                    email: b.input.email.clone(),
                    kyc_id: b.kyc_id.clone(),
                })
                .collect()
        })
    }

    pub fn borrower_by_nik(&self, nik: &str) -> Option<BorrowerSummary> {
        self.borrowers().into_iter().find(|b| b.nik == nik)
    }

    pub fn loans(&self) -> Vec<LoanSummary> {
        self.with_state(|s| {
            s.loans
                .iter()
                .map(|l| LoanSummary {
                    unique_id: l.unique_id.clone(),
                    user_id: l.user_id.clone(),
                    kind: l.kind.as_str().to_owned(),
                    status: l.status.as_str().to_owned(),
                    total_amount: money(l.total()),
                    paid_amount: money(l.paid()),
                    virtual_account_external_id: l
                        .virtual_account
                        .as_ref()
                        .map(|va| va.external_id.clone()),
                })
                .collect()
        })
    }

    pub fn loan_json(&self, unique_id: &str) -> Option<Value> {
        self.with_state(|s| s.loan(unique_id).ok().map(crate::state::Loan::render))
    }

    pub fn sign_loan(self: &Arc<Self>, unique_id: &str) -> Result<(), SandboxError> {
        self.act(|s| s.sign_loan(unique_id, Utc::now()))
    }

    pub fn complete_disbursement(self: &Arc<Self>, unique_id: &str) -> Result<(), SandboxError> {
        self.act(|s| s.complete_disbursement(unique_id, Utc::now()))
    }

    pub fn fail_disbursement(
        self: &Arc<Self>,
        unique_id: &str,
        reason: &str,
    ) -> Result<(), SandboxError> {
        self.act(|s| s.fail_disbursement(unique_id, reason, Utc::now()))
    }

    pub fn pay(
        self: &Arc<Self>,
        external_id: &str,
        amount: Decimal,
    ) -> Result<Value, SandboxError> {
        self.act(|s| s.pay_virtual_account(external_id, amount, Utc::now()))
    }

    pub fn set_ready(&self, ready: bool) {
        self.with_state(|s| s.ready = ready);
    }

    pub fn set_faults(&self, faults: Faults) {
        self.with_state(|s| s.faults.set(faults));
    }

    pub fn faults(&self) -> Faults {
        self.with_state(|s| s.faults.faults.clone())
    }

    pub fn revoke_tokens(&self) {
        self.with_state(|s| s.tokens.revoke_access());
    }

    pub fn set_callback(&self, target: Option<CallbackTarget>) {
        self.with_state(|s| s.callback = target);
    }

    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.with_state(|s| s.sent.iter().cloned().collect())
    }

    /// Sends an invoice callback (`PAID` or `EXPIRED`); invoices have no API of their own.
    pub fn send_invoice(
        self: &Arc<Self>,
        external_id: &str,
        paid: bool,
        amount: Decimal,
    ) -> Result<(), SandboxError> {
        if amount <= Decimal::ZERO || amount.scale() > 2 {
            return Err(SandboxError::Invalid(
                "amount must be positive with at most 2 decimals".into(),
            ));
        }
        let now = Utc::now();
        let (status, paid_amount, paid_at) = if paid {
            ("PAID", amount, Some(now))
        } else {
            ("EXPIRED", Decimal::ZERO, None)
        };
        let n = invoice_callback(
            external_id,
            status,
            &money(amount),
            &money(paid_amount),
            paid_at,
        );
        self.act(|s| s.notify(n));
        Ok(())
    }

    /// Sends a Didit liveness-session callback.
    pub fn send_didit(self: &Arc<Self>, session_id: &str, status: &str) {
        let n = didit_callback(session_id, status, Utc::now());
        self.act(|s| s.notify(n));
    }
}

/// A control body: JSON (or form) into a private type with unknown fields refused.
fn parse<T: DeserializeOwned>(body: Body) -> ApiResult<T> {
    let value = if body.value.is_null() {
        json!({})
    } else {
        body.value
    };
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("Validation failed: {e}")))
}

fn ok() -> Json<Value> {
    Json(json!({"status": "success"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentBody {
    amount: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadyBody {
    ready: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceBody {
    external_id: String,
    status: String,
    amount: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiditBody {
    verification_session_id: String,
    status: String,
}

async fn index() -> Json<Value> {
    Json(json!({
        "GET /_sandbox/ledger": "counters (see the crate docs)",
        "POST /_sandbox/ledger/reset": "zero the counters",
        "GET /_sandbox/borrowers": "all borrowers: id, nik, status",
        "GET /_sandbox/borrowers/by-nik/{nik}": "one borrower by KTP NIK",
        "GET /_sandbox/loans": "all loans",
        "POST /_sandbox/loans/{unique_id}/sign": "the borrower signs (loan must be SIGNING)",
        "POST /_sandbox/loans/{unique_id}/disbursement/complete": "the bank pays out",
        "POST /_sandbox/loans/{unique_id}/disbursement/fail": "the bank refuses: {\"reason\"}",
        "POST /_sandbox/virtual-accounts/{external_id}/payments": "the borrower pays: {\"amount\":\"100000.00\"}",
        "POST /_sandbox/readiness": "{\"ready\": false} makes /healthcheck/readiness answer 503",
        "GET|PUT /_sandbox/faults": "injected faults; \"endpoints\" gives one endpoint rates of its own: {\"POST /api/core/virtual-account/request\": {\"ambiguous_rate\": 0.3}}",
        "GET /_sandbox/timing": "the delays (ms) of transitions and of auto sign, disburse and repay (null: control API only)",
        "POST /_sandbox/tokens/revoke": "invalidate every access token",
        "GET /_sandbox/callbacks": "every callback emitted",
        "PUT|DELETE /_sandbox/callback-target": "{\"base_url\",\"auth_key\"}",
        "POST /_sandbox/invoices": "send an invoice callback: {\"external_id\",\"status\":\"PAID\"|\"EXPIRED\",\"amount\"}",
        "POST /_sandbox/didit-sessions": "send a Didit callback: {\"verification_session_id\",\"status\"}",
    }))
}

/// The configured [`crate::Timing`]: every delay in milliseconds; `null` for a transition
/// that happens only through the control API (`auto_sign`, `auto_disburse`, `auto_repay`).
async fn timing(State(app): State<Arc<App>>) -> Json<Value> {
    let t = app.config.timing;
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Json(json!({
        "borrower_created_ms": ms(t.borrower_created),
        "kyc_review_ms": ms(t.kyc_review),
        "final_approval_ms": ms(t.final_approval),
        "auto_sign_ms": t.auto_sign.map(ms),
        "auto_disburse_ms": t.auto_disburse.map(ms),
        "auto_repay_ms": t.auto_repay.map(ms),
    }))
}

async fn ledger(State(app): State<Arc<App>>) -> Json<Ledger> {
    Json(app.ledger())
}

async fn reset_ledger(State(app): State<Arc<App>>) -> Json<Value> {
    app.reset_ledger();
    ok()
}

async fn borrowers(State(app): State<Arc<App>>) -> Json<Vec<BorrowerSummary>> {
    Json(app.borrowers())
}

async fn borrower_by_nik(
    State(app): State<Arc<App>>,
    Path(nik): Path<String>,
) -> ApiResult<Json<BorrowerSummary>> {
    app.borrower_by_nik(&nik)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("No borrower with NIK {nik}")))
}

async fn loans(State(app): State<Arc<App>>) -> Json<Vec<LoanSummary>> {
    Json(app.loans())
}

async fn sign(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    app.sign_loan(&id)?;
    Ok(ok())
}

async fn complete(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    app.complete_disbursement(&id)?;
    Ok(ok())
}

async fn fail(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let FailBody { reason } = parse(body)?;
    app.fail_disbursement(&id, &reason)?;
    Ok(ok())
}

fn amount(raw: &str) -> ApiResult<Decimal> {
    parse_money(raw).ok_or_else(|| {
        ApiError::bad_request(
            "Validation failed: amount must be a decimal string, e.g. \"100000.00\"",
        )
    })
}

async fn pay(
    State(app): State<Arc<App>>,
    Path(external_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let PaymentBody { amount: raw } = parse(body)?;
    Ok(Json(app.pay(&external_id, amount(&raw)?)?))
}

async fn readiness(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Value>> {
    let ReadyBody { ready } = parse(body)?;
    app.set_ready(ready);
    Ok(ok())
}

async fn get_faults(State(app): State<Arc<App>>) -> Json<Faults> {
    Json(app.faults())
}

async fn put_faults(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Faults>> {
    let faults: Faults = parse(body)?;
    faults
        .check()
        .map_err(|e| ApiError::bad_request(format!("Validation failed: {e}")))?;
    app.set_faults(faults.clone());
    Ok(Json(faults))
}

async fn revoke(State(app): State<Arc<App>>) -> Json<Value> {
    app.revoke_tokens();
    ok()
}

async fn callbacks(State(app): State<Arc<App>>) -> Json<Vec<CallbackRecord>> {
    Json(app.callbacks())
}

async fn put_target(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Value>> {
    let target: CallbackTarget = parse(body)?;
    app.set_callback(Some(target));
    Ok(ok())
}

async fn delete_target(State(app): State<Arc<App>>) -> Json<Value> {
    app.set_callback(None);
    ok()
}

async fn invoice(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Value>> {
    let InvoiceBody {
        external_id,
        status,
        amount: raw,
    } = parse(body)?;
    let paid = match status.as_str() {
        "PAID" => true,
        "EXPIRED" => false,
        _ => {
            return Err(ApiError::bad_request(
                "Validation failed: status must be one of PAID, EXPIRED",
            ));
        }
    };
    app.send_invoice(&external_id, paid, amount(&raw)?)?;
    Ok(ok())
}

async fn didit(State(app): State<Arc<App>>, body: Body) -> ApiResult<Json<Value>> {
    let DiditBody {
        verification_session_id,
        status,
    } = parse(body)?;
    app.send_didit(&verification_session_id, &status);
    Ok(ok())
}

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/_sandbox", get(index))
        .route("/_sandbox/ledger", get(ledger))
        .route("/_sandbox/ledger/reset", post(reset_ledger))
        .route("/_sandbox/borrowers", get(borrowers))
        .route("/_sandbox/borrowers/by-nik/{nik}", get(borrower_by_nik))
        .route("/_sandbox/loans", get(loans))
        .route("/_sandbox/loans/{unique_id}/sign", post(sign))
        .route(
            "/_sandbox/loans/{unique_id}/disbursement/complete",
            post(complete),
        )
        .route("/_sandbox/loans/{unique_id}/disbursement/fail", post(fail))
        .route(
            "/_sandbox/virtual-accounts/{external_id}/payments",
            post(pay),
        )
        .route("/_sandbox/readiness", post(readiness))
        .route("/_sandbox/faults", get(get_faults).put(put_faults))
        .route("/_sandbox/timing", get(timing))
        .route("/_sandbox/tokens/revoke", post(revoke))
        .route("/_sandbox/callbacks", get(callbacks))
        .route(
            "/_sandbox/callback-target",
            put(put_target).delete(delete_target),
        )
        .route("/_sandbox/invoices", post(invoice))
        .route("/_sandbox/didit-sessions", post(didit))
}
