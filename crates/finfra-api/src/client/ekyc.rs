//! e-KYC endpoints: OCR, biometric KYC, and the KYC session (submission status, submit).
//!
//! The `kyc_id` a first OCR call returns is the handle of the whole e-KYC flow; it is a JWT
//! and is sent only in sensitive headers and path segments, never logged.

use reqwest::Method;

use super::FinfraClient;
use super::path;
use super::transport::{AuthScheme, Call};
use crate::error::Error;
use crate::model::ekyc::{
    BiometricRequest, BiometricResponse, DataSource, KycSubmission, KycSubmitted, OcrRequest,
    OcrResponse,
};

impl FinfraClient {
    /// `POST /api/core/users/ocr`: reads a KTP. Without `kyc_id` a new KYC session starts and
    /// its id is in the answer; `data_source` picks the OCR provider.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Rejected`] for an unreadable document.
    pub async fn ocr(
        &self,
        request: &OcrRequest,
        data_source: Option<&DataSource>,
        kyc_id: Option<&str>,
    ) -> Result<OcrResponse, Error> {
        let mut call = Call::new(
            Method::POST,
            "/api/core/users/ocr",
            self.url(&["api", "core", "users", "ocr"])?,
            AuthScheme::Bearer,
        )
        .json(request)?;
        if let Some(source) = data_source {
            if source.is_unknown() {
                return Err(path::invalid(
                    "data-source",
                    format!(
                        "must be one of {} (got {:?})",
                        DataSource::KNOWN.join(", "),
                        source.as_str()
                    ),
                ));
            }
            call = call.header("data-source", path::header("data-source", source.as_str())?);
        }
        if let Some(kyc_id) = kyc_id {
            call = call.header(
                "kyc-id",
                path::header("kyc-id", path::kyc_id("kyc-id", kyc_id)?)?,
            );
        }
        self.inner.json(&call).await
    }

    /// `POST /api/core/users/biometric`: liveness and face match of a selfie, in KYC session
    /// `kyc_id` (optional in the reference).
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending.
    pub async fn biometric_kyc(
        &self,
        request: &BiometricRequest,
        kyc_id: Option<&str>,
    ) -> Result<BiometricResponse, Error> {
        let mut call = Call::new(
            Method::POST,
            "/api/core/users/biometric",
            self.url(&["api", "core", "users", "biometric"])?,
            AuthScheme::Bearer,
        )
        .json(request)?;
        if let Some(kyc_id) = kyc_id {
            call = call.header(
                "kyc-id",
                path::header("kyc-id", path::kyc_id("kyc-id", kyc_id)?)?,
            );
        }
        self.inner.json(&call).await
    }

    /// `GET /api/core/kyc/{kycIdPath}/submission`: the session's status and, once created,
    /// the borrower's id (the way to find it without the callback).
    ///
    /// # Errors
    /// [`Error::Rejected`] with `404` for an unknown session.
    pub async fn get_kyc_submission(&self, kyc_id: &str) -> Result<KycSubmission, Error> {
        let kyc_id = path::kyc_id("kycIdPath", kyc_id)?;
        let call = Call::new(
            Method::GET,
            "/api/core/kyc/{kycIdPath}/submission",
            self.url(&["api", "core", "kyc", kyc_id, "submission"])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `POST /api/core/kyc/{kycIdPath}/submit`: finalises the session for processing.
    ///
    /// # Errors
    /// [`Error::Rejected`] with `400` when no borrower was created on the session.
    pub async fn submit_kyc(&self, kyc_id: &str) -> Result<KycSubmitted, Error> {
        let kyc_id = path::kyc_id("kycIdPath", kyc_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/kyc/{kycIdPath}/submit",
            self.url(&["api", "core", "kyc", kyc_id, "submit"])?,
            AuthScheme::Bearer,
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
    use crate::model::document::DocumentType;

    #[tokio::test]
    async fn an_undocumented_data_source_is_refused_before_sending() {
        // Port 9 (discard): nothing must be sent, so nothing needs to listen.
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        let client =
            FinfraClient::new(ClientConfig::new(base, Credentials::new("p", "s"))).unwrap();
        let request = OcrRequest {
            document_type: DocumentType::Ktp,
            file: "https://x/ktp.jpg".into(),
        };
        let source = DataSource::Unknown("DUKCAPIL".into());
        let Err(Error::Invalid(errors)) = client.ocr(&request, Some(&source), None).await else {
            panic!("expected a validation error");
        };
        assert!(errors.has("data-source"), "{errors}");
    }
}
