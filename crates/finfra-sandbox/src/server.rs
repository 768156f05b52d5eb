//! Starting, running and stopping a sandbox.
//!
//! The sandbox runs its own accept loop instead of `axum::serve`, because an ambiguous fault
//! needs to close a connection *without* answering: each connection is served by hyper's
//! HTTP/1 connection driver with a service that calls the router and, when the gateway
//! marked the response with [`DropConnection`], returns an error instead of the response;
//! hyper then aborts the connection and the client sees a connection error although the
//! operation was applied.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rust_decimal::Decimal;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tracing::{debug, info, warn};
use url::Url;

use crate::app::{App, stopped};
use crate::callbacks::CallbackRecord;
use crate::config::{CallbackTarget, Faults, SandboxConfig};
use crate::control::{BorrowerSummary, LoanSummary};
use crate::error::SandboxError;
use crate::gateway::DropConnection;
use crate::ledger::Ledger;
use crate::routes;

/// Entry point: `Sandbox::start(SandboxConfig::for_tests()).await?`.
pub struct Sandbox;

impl Sandbox {
    /// Binds `config.listen` and serves until [`RunningSandbox::shutdown`] (or drop).
    /// Must be called within a Tokio runtime; background work (transitions, callbacks) runs
    /// on that runtime.
    ///
    /// # Errors
    /// The address can't be bound, the config has no client, or the HTTP client for
    /// callbacks can't be built.
    pub async fn start(config: SandboxConfig) -> std::io::Result<RunningSandbox> {
        if config.clients.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "SandboxConfig::clients must name at least one client",
            ));
        }
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let base_url = match &config.public_url {
            Some(url) => url.clone(),
            None => local_url(addr)?,
        };
        let (stop, stopped) = watch::channel(false);
        let app = Arc::new(App::new(
            Arc::new(config),
            base_url.clone(),
            tokio::runtime::Handle::current(),
            stopped.clone(),
        )?);
        let router = routes::router(Arc::clone(&app));
        let server = tokio::spawn(accept_loop(listener, router, stopped));
        info!(%base_url, "finfra sandbox listening");
        Ok(RunningSandbox {
            app,
            addr,
            base_url,
            stop,
            server: Some(server),
        })
    }
}

/// `http://{addr}/`, with an unspecified address (`0.0.0.0`) replaced by loopback.
fn local_url(addr: SocketAddr) -> std::io::Result<Url> {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    Url::parse(&format!("http://{}/", SocketAddr::new(ip, addr.port())))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// The error that makes hyper drop a connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("ambiguous fault: connection dropped after the operation was applied")]
struct AmbiguousDrop;

async fn accept_loop(listener: TcpListener, router: Router, stop: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(stop.clone()) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // E.g. out of file descriptors: back off briefly rather than spin.
                    warn!(error.message = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let conn_stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut req: hyper::Request<Incoming>| {
                let router = router.clone();
                async move {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let response = match router.oneshot(req).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    if response.extensions().get::<DropConnection>().is_some() {
                        Err(AmbiguousDrop)
                    } else {
                        Ok(response)
                    }
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        debug!(error.message = %e, %peer, "connection ended with an error");
                    }
                }
                // Shutting down: drop the connection, in-flight requests included.
                () = stopped(conn_stop) => {}
            }
        });
    }
}

/// A started sandbox. Dropping it stops it too (without waiting).
pub struct RunningSandbox {
    app: Arc<App>,
    addr: SocketAddr,
    base_url: Url,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl RunningSandbox {
    /// `http://127.0.0.1:{port}/` (or the configured `public_url`).
    #[must_use]
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first configured client's id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.app
            .config
            .clients
            .first()
            .map_or("", |c| c.client_id.as_str())
    }

    /// The first configured client's secret.
    #[must_use]
    pub fn client_secret(&self) -> &str {
        self.app
            .config
            .clients
            .first()
            .map_or("", |c| c.client_secret.as_str())
    }

    #[must_use]
    pub fn config(&self) -> &SandboxConfig {
        &self.app.config
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn ledger(&self) -> Ledger {
        self.app.ledger()
    }

    /// Zeroes the counters (e.g. between benchmark phases).
    pub fn reset_ledger(&self) {
        self.app.reset_ledger();
    }

    /// The borrower signs: `SIGNING` → `SIGNED`, `loan_signed` callback.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` when the loan is not `SIGNING`.
    pub fn sign_loan(&self, unique_id: &str) -> Result<(), SandboxError> {
        self.app.sign_loan(unique_id)
    }

    /// The bank pays out: `DISBURSING` → `DISBURSED`, `loan_disbursed` callback.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` when the loan is not `DISBURSING`.
    pub fn complete_disbursement(&self, unique_id: &str) -> Result<(), SandboxError> {
        self.app.complete_disbursement(unique_id)
    }

    /// The bank refuses: `DISBURSING` → `DISBURSEMENT_FAILED`, `loan_disbursement_failed`.
    ///
    /// # Errors
    /// `NotFound`; `Conflict` when the loan is not `DISBURSING`.
    pub fn fail_disbursement(&self, unique_id: &str, reason: &str) -> Result<(), SandboxError> {
        self.app.fail_disbursement(unique_id, reason)
    }

    /// The borrower pays `amount` into the virtual account `external_id`: applied to the
    /// installments in order; the virtual-account webhook goes out, and `loan_paid` /
    /// `bnpl_paid` when nothing is left.
    ///
    /// # Errors
    /// `NotFound` (no such account); `Conflict` (loan not `DISBURSED`); `Invalid` (amount not
    /// positive, more than 2 decimals, or above the outstanding amount).
    pub fn pay_virtual_account(
        &self,
        external_id: &str,
        amount: Decimal,
    ) -> Result<(), SandboxError> {
        self.app.pay(external_id, amount).map(|_| ())
    }

    /// `false` makes `/healthcheck/readiness` answer `503`.
    pub fn set_ready(&self, ready: bool) {
        self.app.set_ready(ready);
    }

    /// Replaces the injected faults (and restarts their RNG from the new seed).
    pub fn set_faults(&self, faults: Faults) {
        self.app.set_faults(faults);
    }

    /// The faults in force (`GET /_sandbox/faults`).
    pub fn faults(&self) -> Faults {
        self.app.faults()
    }

    /// Invalidates every access token issued so far (refresh tokens stay valid).
    pub fn revoke_tokens(&self) {
        self.app.revoke_tokens();
    }

    /// The id of the borrower with this KTP NIK, once created (`None` before the
    /// `user_created` callback).
    #[must_use]
    pub fn borrower_id_by_nik(&self, nik: &str) -> Option<String> {
        self.app.borrower_by_nik(nik).and_then(|b| b.id)
    }

    #[must_use]
    pub fn borrowers(&self) -> Vec<BorrowerSummary> {
        self.app.borrowers()
    }

    #[must_use]
    pub fn loans(&self) -> Vec<LoanSummary> {
        self.app.loans()
    }

    /// The loan as `GET /api/core/loans/details/{uniqueId}` would show it.
    #[must_use]
    pub fn loan(&self, unique_id: &str) -> Option<serde_json::Value> {
        self.app.loan_json(unique_id)
    }

    /// The callbacks emitted so far, in order, whether or not a receiver is configured (the
    /// latest 100,000).
    #[must_use]
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.app.callbacks()
    }

    /// Sets or removes the partner's callback receiver (e.g. once its port is known).
    pub fn set_callback(&self, target: Option<CallbackTarget>) {
        self.app.set_callback(target);
    }

    /// Sends an invoice callback, `PAID` (with `amount` paid) or `EXPIRED`.
    ///
    /// # Errors
    /// `Invalid` when the amount is not positive or has more than 2 decimals.
    pub fn send_invoice_callback(
        &self,
        external_id: &str,
        paid: bool,
        amount: Decimal,
    ) -> Result<(), SandboxError> {
        self.app.send_invoice(external_id, paid, amount)
    }

    /// Sends a Didit liveness-session callback.
    pub fn send_didit_callback(&self, verification_session_id: &str, status: &str) {
        self.app.send_didit(verification_session_id, status);
    }

    /// Stops accepting, drops open connections and background work, and waits for the
    /// accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
        {
            warn!(error.message = %e, "sandbox accept loop ended abnormally");
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
