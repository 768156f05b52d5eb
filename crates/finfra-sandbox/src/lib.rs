//! A strict, stateful fake of Finfra's partner API, for tests, the demo, benchmarks and any
//! partner developing offline.
//!
//! It implements `finfra/api-reference.txt` and `finfra/CONTRACT.md` on its own (it does not
//! share a line with the `finfra-api` client, so it catches the client's bugs instead of
//! sharing them): every endpoint with its auth scheme, request validation that names each bad
//! field, the borrower, KYC, document and loan lifecycles advancing asynchronously, callbacks
//! delivered at least once and out of order, a rate limiter, injected faults (including
//! *ambiguous* ones: applied, then the connection dropped), and a ledger of what clients did.
//!
//! # Usage
//!
//! ```no_run
//! use finfra_sandbox::{Sandbox, SandboxConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = Sandbox::start(SandboxConfig::for_tests()).await?;
//! let base = sandbox.base_url(); // http://127.0.0.1:{port}/
//! // ... point the client at `base` with sandbox.client_id() / client_secret() ...
//! sandbox.sign_loan("loan-0001").ok();             // the borrower signs
//! sandbox.complete_disbursement("loan-0001").ok(); // the bank pays out
//! assert!(sandbox.ledger().disbursements_accepted.get("loan-0001").copied().unwrap_or(0) <= 1);
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! [`SandboxConfig::for_tests`]: zero delays, no faults, no rate limit, signing,
//! disbursement and repayment wait for the control API, client `test-client` / `test-secret`.
//! [`SandboxConfig::standalone`]: rate limit on, small delays, loans signed, disbursed and
//! repaid on their own, random credentials. Zero delays still run transitions on a spawned
//! task, never inline: a client must not expect a borrower to exist when the create call
//! returns.
//!
//! # Lifecycles
//!
//! - Borrower: create → (`borrower_created`) `PENDING` + `user_created` → (`kyc_review`)
//!   `VERIFIED` + `user_verified` or `REJECTED` + `user_rejected` → approve →
//!   `APPROVED_BY_PARTNER` → (`final_approval`) `APPROVED` + `user_approved`; block →
//!   `BLOCKED` + `user_blocked`. The create call returns no id; the id arrives in
//!   `user_created` (with `identity_number`, and `kyc_id` on the KYC path) or through
//!   `GET /api/core/kyc/{kycIdPath}/submission`.
//! - Loan: create (`loan_created`) → signing/initiate → `SIGNING` → the borrower signs
//!   (control API or `auto_sign`) → `SIGNED` + `loan_signed` → disbursement → `DISBURSING` →
//!   the bank pays (control API or `auto_disburse`) → `DISBURSED` + `loan_disbursed`, or
//!   refuses → `DISBURSEMENT_FAILED` + `loan_disbursement_failed` → virtual account → payments
//!   (control API, or `auto_repay`: one installment per interval, or a `+paynow` borrower:
//!   everything at once, inside the virtual-account request) → `PAID` + `loan_paid`. BNPL
//!   loans send `bnpl_*` titles. A virtual-account request for a loan not `DISBURSED` gets
//!   `400 "Loan is PAID, not DISBURSED"` (its status named), even when it has an account.
//! - Documents: `POST /api/documents` (multipart) returns `{base}/_storage/{id}?token=...`;
//!   `PUT` the bytes there before `expires_at` (`presign_ttl`), else `403`.
//!
//! # Magic values
//!
//! Outcomes are picked by the data, like a payment provider's test card numbers:
//!
//! | input | outcome |
//! |---|---|
//! | signatory email local part contains `+reject` (`budi+reject@x.id`) | KYC review fails: `REJECTED`, `user_rejected` with `data.reason` |
//! | `+lowscore` | credit score 420, grade E |
//! | `+overdue` | score report sources: 2 overdue loans, 95 days past due; credit history / AFPI: `LATE` records, 95 days past due |
//! | `+hubfail` | `GET .../status/{provider}` answers `FAILED` |
//! | `+hubpending` | hub check `PENDING` on the first poll per provider, then `PASSED` |
//! | `+rdffail` | RDF verify-biometric `FAILED` |
//! | `+rdfpending` | RDF `PENDING` on the first call, then `VERIFIED` |
//! | `+paynow` | the borrower repays each loan in full, in one payment, the moment its virtual account is issued: inside the virtual-account request, before its answer leaves (webhook and `loan_paid` / `bnpl_paid` emitted then), whatever `auto_repay` says. With an ambiguous fault on that request, the client's next request finds the loan `PAID`: `400` (see `virtual_account_requests_after_paid`) |
//! | none of these | score 600..=900 derived from the NIK (grade A–C), hub checks `PASSED`, RDF `VERIFIED`, no overdue loans |
//! | disbursement account number starting with `999` | the bank refuses every disbursement (after `auto_disburse`, or at once when it is `None`): `DISBURSEMENT_FAILED` |
//! | biometric `selfie` containing `spoof` | liveness `FAILED`, face match 0.12 |
//! | biometric `selfie` containing `mismatch` | liveness `PASSED`, face match 0.31 |
//! | OCR `file` containing 16 consecutive digits | those digits are the extracted NIK (birth date and gender decoded from it) |
//! | OCR `file` containing `blurry` | confidence 0.42 (else 0.97) |
//!
//! Tags can be combined: `budi+lowscore+hubpending@x.id`.
//!
//! # Control API
//!
//! Under `/_sandbox/`, no auth, no rate limit, no faults, not counted in the ledger
//! (`GET /_sandbox` lists them). Each has a method on [`RunningSandbox`].
//!
//! | endpoint | Rust | effect |
//! |---|---|---|
//! | `GET /_sandbox/ledger` | [`RunningSandbox::ledger`] | the counters |
//! | `POST /_sandbox/ledger/reset` | [`RunningSandbox::reset_ledger`] | zero them |
//! | `GET /_sandbox/borrowers` | [`RunningSandbox::borrowers`] | id, NIK, status, type, email, kyc_id |
//! | `GET /_sandbox/borrowers/by-nik/{nik}` | [`RunningSandbox::borrower_id_by_nik`] | one borrower |
//! | `GET /_sandbox/loans` | [`RunningSandbox::loans`] | status, amounts, virtual account |
//! | `POST /_sandbox/loans/{unique_id}/sign` | [`RunningSandbox::sign_loan`] | `SIGNING` → `SIGNED` (the loan's `signing_url` points here) |
//! | `POST /_sandbox/loans/{unique_id}/disbursement/complete` | [`RunningSandbox::complete_disbursement`] | `DISBURSING` → `DISBURSED` |
//! | `POST /_sandbox/loans/{unique_id}/disbursement/fail` `{"reason"}` | [`RunningSandbox::fail_disbursement`] | `DISBURSING` → `DISBURSEMENT_FAILED` |
//! | `POST /_sandbox/virtual-accounts/{external_id}/payments` `{"amount":"100000.00"}` | [`RunningSandbox::pay_virtual_account`] | a repayment, VA webhook |
//! | `POST /_sandbox/readiness` `{"ready": false}` | [`RunningSandbox::set_ready`] | readiness `503` |
//! | `GET`/`PUT /_sandbox/faults` ([`Faults`] as JSON, durations in ms) | [`RunningSandbox::faults`], [`RunningSandbox::set_faults`] | injected faults, per endpoint too (a rate outside `0..=1` or a key naming no `/api/` endpoint: `400`) |
//! | `GET /_sandbox/timing` | [`RunningSandbox::config`] | the [`Timing`] in ms (`auto_sign_ms`, `auto_disburse_ms`, `auto_repay_ms`; `null`: control API only) |
//! | `POST /_sandbox/tokens/revoke` | [`RunningSandbox::revoke_tokens`] | every access token → `401` |
//! | `GET /_sandbox/callbacks` | [`RunningSandbox::callbacks`] | every callback emitted |
//! | `PUT`/`DELETE /_sandbox/callback-target` `{"base_url","auth_key"}` | [`RunningSandbox::set_callback`] | where callbacks go |
//! | `POST /_sandbox/invoices` `{"external_id","status":"PAID"\|"EXPIRED","amount"}` | [`RunningSandbox::send_invoice_callback`] | an invoice callback |
//! | `POST /_sandbox/didit-sessions` `{"verification_session_id","status"}` | [`RunningSandbox::send_didit_callback`] | a Didit callback |
//!
//! Control errors use Finfra's error body: `404` unknown object, `409` wrong state, `400` bad
//! input.
//!
//! # Ledger
//!
//! [`Ledger`] (field names are part of the API): `requests` and `requests_by_status` keyed
//! `"POST /api/core/loans/{loanUniqueId}/disbursement"`, `token_requests`,
//! `refresh_requests`, `borrowers_created_per_nik`, `borrower_conflicts_per_nik`,
//! `loans_created`, `disbursements_accepted`, `disbursement_conflicts`,
//! `requests_inside_retry_after`, `requests_in_flight_at_429`, `rate_limited`,
//! `faults_injected`, `callbacks_emitted`, `callbacks_delivered`, `callbacks_failed`,
//! `callback_attempts`, `callbacks_duplicated`, `payments_applied`,
//! `virtual_account_requests_after_paid`.
//!
//! # Faults and rate limit
//!
//! [`Faults`] apply to `/api/*` (the auth endpoints only with `include_auth`), one seeded
//! draw per request: latency, `500`, `429` with or without `Retry-After` (not applied), and
//! ambiguous failures (applied, then the connection is closed without an answer, or the
//! answer is held for `ambiguous_hold`). `endpoints` gives one endpoint rates of its own,
//! keyed as in the ledger (`{"POST /api/core/virtual-account/request": {"ambiguous_rate":
//! 0.3}}`); a `PUT /_sandbox/faults` with a rate outside `0..=1` or a key that names no
//! `/api/` endpoint is refused with `400`. The rate limiter ([`RateLimit`]) is a token bucket
//! per client id (per source IP on endpoints without auth); every `Retry-After` it or a fault
//! gives is remembered, and requests arriving inside it are counted.
//!
//! A request inside a window is judged by when it arrives, the only thing a server sees. A
//! client with several requests in flight (a fleet of workers, a connection pool) has some
//! of them on their way when a `429` answers another: arriving within
//! [`SandboxConfig::retry_after_grace`] of the `429` (250 ms in
//! [`SandboxConfig::standalone`], zero in [`SandboxConfig::for_tests`]), they count as
//! `requests_in_flight_at_429`. Later ones were sent by a client that had been told to
//! wait and count as `requests_inside_retry_after`, which a client honouring `Retry-After`
//! keeps at 0. The grace runs from the window's first `429`: a second one inside the window
//! extends the wait, not the grace.

mod app;
mod auth;
mod body;
mod callbacks;
mod config;
mod control;
mod error;
mod faults;
mod gateway;
mod ledger;
mod magic;
mod rate_limit;
mod routes;
mod server;
mod state;
mod validate;

pub use callbacks::CallbackRecord;
pub use config::{
    CallbackDelivery, CallbackTarget, ClientCredentials, EndpointFaults, Faults, RETRY_AFTER_GRACE,
    RateLimit, SandboxConfig, Timing,
};
pub use control::{BorrowerSummary, LoanSummary};
pub use error::SandboxError;
pub use ledger::Ledger;
pub use magic::credit_score_of;
pub use server::{RunningSandbox, Sandbox};
