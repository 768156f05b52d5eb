//! Credit endpoints: score report, credit history, CLIK and AFPI reports.
//!
//! NIKs travel in some of these paths; they are checked (16 digits) before the URL is built
//! and never appear in a span or an error.

use reqwest::Method;

use super::FinfraClient;
use super::path;
use super::transport::{AuthScheme, Call};
use crate::error::Error;
use crate::model::credit::{
    AfpiCreditReport, ClikCreditReport, ClikCreditReportRequest, CreditHistory, CreditSource,
    ScoreReport, ScoreReportRequest,
};

impl FinfraClient {
    /// `POST /api/core/users/score-report`: the borrower's credit score from the bureaus in
    /// `sources` (header `credit-source`, e.g. `afpi,clik`); an empty slice sends no header,
    /// and Finfra asks both.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Rejected`] with `404` for an unknown borrower.
    pub async fn score_report(
        &self,
        request: &ScoreReportRequest,
        sources: &[CreditSource],
    ) -> Result<ScoreReport, Error> {
        let mut call = Call::new(
            Method::POST,
            "/api/core/users/score-report",
            self.url(&["api", "core", "users", "score-report"])?,
            AuthScheme::Bearer,
        )
        .json(request)?;
        if let Some(unknown) = sources.iter().find(|s| s.is_unknown()) {
            return Err(path::invalid(
                "credit-source",
                format!("must be afpi or clik (got {:?})", unknown.as_str()),
            ));
        }
        if !sources.is_empty() {
            let value = CreditSource::header_value(sources);
            call = call.header("credit-source", path::header("credit-source", &value)?);
        }
        self.inner.json(&call).await
    }

    /// `GET /api/core/users/{identityNumber}/credit-history`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `identity_number` is not 16 digits.
    pub async fn credit_history(&self, identity_number: &str) -> Result<CreditHistory, Error> {
        let nik = path::identity_number(identity_number)?;
        let call = Call::new(
            Method::GET,
            "/api/core/users/{identityNumber}/credit-history",
            self.url(&["api", "core", "users", nik, "credit-history"])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `POST /api/core/users/clik/credit-report`: an individual or company report from CLIK.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending.
    pub async fn clik_credit_report(
        &self,
        request: &ClikCreditReportRequest,
    ) -> Result<ClikCreditReport, Error> {
        let call = Call::new(
            Method::POST,
            "/api/core/users/clik/credit-report",
            self.url(&["api", "core", "users", "clik", "credit-report"])?,
            AuthScheme::Bearer,
        )
        .json(request)?;
        self.inner.json(&call).await
    }

    /// `GET /api/core/users/{identityNumber}/{reffid}/afpi/credit-report` (no auth).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `identity_number` is not 16 digits or `reffid` is empty.
    pub async fn afpi_credit_report(
        &self,
        identity_number: &str,
        reffid: &str,
    ) -> Result<AfpiCreditReport, Error> {
        let nik = path::identity_number(identity_number)?;
        let reffid = path::opaque("reffid", reffid)?;
        let call = Call::new(
            Method::GET,
            "/api/core/users/{identityNumber}/{reffid}/afpi/credit-report",
            self.url(&["api", "core", "users", nik, reffid, "afpi", "credit-report"])?,
            AuthScheme::None,
        );
        self.inner.json(&call).await
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::ClientConfig;
    use crate::auth::Credentials;

    #[tokio::test]
    async fn an_undocumented_credit_source_is_refused_before_sending() {
        // Port 9 (discard): nothing must be sent, so nothing needs to listen.
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        let client =
            FinfraClient::new(ClientConfig::new(base, Credentials::new("p", "s"))).unwrap();
        let request = ScoreReportRequest {
            user_id: "6a41ff87dda4eefd0b7b0300".into(),
        };
        let sources = [CreditSource::Afpi, CreditSource::Unknown("pefindo".into())];
        let Err(Error::Invalid(errors)) = client.score_report(&request, &sources).await else {
            panic!("expected a validation error");
        };
        assert!(errors.has("credit-source"), "{errors}");
    }
}
