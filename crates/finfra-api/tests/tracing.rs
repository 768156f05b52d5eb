//! What the client logs: a `finfra.request` span per exchange with the method, the path
//! *template*, the status and the latency, and never a NIK, a name, a phone number, a token
//! or a secret, even at `trace` level and even when requests fail.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use finfra_api::model::loan::CreateSinglePaymentLoan;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn spans_name_templates_and_statuses_but_no_personal_data_or_secrets() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("finfra_api=trace")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // A current-thread test runtime: the guard covers every task the client runs.
    let _guard = tracing::subscriber::set_default(subscriber);

    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let nik = common::nik(4242);
    let user_id = common::approved_borrower(&sandbox, &client, 4242).await;
    client.credit_history(&nik).await.expect("credit history");
    // A failure is logged too: a loan for an unknown (well-formed) borrower is a 404.
    let missing = "0123456789abcdef01234567";
    let loan: CreateSinglePaymentLoan = common::single_loan("trace-loan-1");
    let error = client
        .create_single_payment_loan(missing, &loan)
        .await
        .expect_err("unknown borrower");
    assert_eq!(error.status(), Some(404));

    let logs = captured.text();
    assert!(logs.contains("finfra.request"), "no request span:\n{logs}");
    for expected in [
        "path=\"/api/core/users/{userId}\"",
        "path=\"/api/core/users/{identityNumber}/credit-history\"",
        "path=\"/api/core/loans/{userId}\"",
        "status=404",
        "latency_ms=",
        "method=POST",
    ] {
        assert!(logs.contains(expected), "{expected} missing from:\n{logs}");
    }
    for secret_or_pii in [
        nik.as_str(),
        user_id.as_str(),
        missing,
        "Budi",
        "Santoso",
        "+6281234567890",
        "budi@example.com",
        sandbox.client_secret(),
        "Bearer",
        "Basic ",
        "eyJ",
    ] {
        assert!(
            !logs.contains(secret_or_pii),
            "{secret_or_pii:?} appears in the logs:\n{logs}"
        );
    }
}
