//! Borrower endpoints: create (plain and KYC path), get, update, approve, block, and the
//! borrower-level checks (RDF biometric, hub status).

use reqwest::Method;

use super::FinfraClient;
use super::path;
use super::transport::{AuthScheme, Call};
use crate::error::Error;
use crate::model::Accepted;
use crate::model::borrower::{BlockBorrower, Borrower, BorrowerPatch, CreateBorrower};
use crate::model::ekyc::{HubCheckResult, HubProvider, RdfBiometricResult};

impl FinfraClient {
    /// `POST /api/core/users`: asks Finfra to create a borrower, optionally linked to a KYC
    /// session through the `kyc-id` header.
    ///
    /// The answer carries no id: it arrives in the `user_created` callback, or through
    /// [`Self::get_kyc_submission`] when a KYC session was used. Not idempotent: a repeat
    /// with the same NIK gets `409`.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Conflict`] when the NIK is registered.
    pub async fn create_borrower(
        &self,
        borrower: &CreateBorrower,
        kyc_id: Option<&str>,
    ) -> Result<Accepted, Error> {
        let mut call = Call::new(
            Method::POST,
            "/api/core/users",
            self.url(&["api", "core", "users"])?,
            AuthScheme::Bearer,
        )
        .json(borrower)?;
        if let Some(kyc_id) = kyc_id {
            call = call.header(
                "kyc-id",
                path::header("kyc-id", path::kyc_id("kyc-id", kyc_id)?)?,
            );
        }
        self.inner.json(&call).await
    }

    /// `POST /api/core/{kycIdPath}/users`: creates a borrower linked to KYC session `kyc_id`.
    ///
    /// # Errors
    /// As [`Self::create_borrower`].
    pub async fn create_borrower_for_kyc(
        &self,
        kyc_id: &str,
        borrower: &CreateBorrower,
    ) -> Result<Accepted, Error> {
        let kyc_id = path::kyc_id("kycIdPath", kyc_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/{kycIdPath}/users",
            self.url(&["api", "core", kyc_id, "users"])?,
            AuthScheme::Bearer,
        )
        .json(borrower)?;
        self.inner.json(&call).await
    }

    /// `GET /api/core/users/{userId}`.
    ///
    /// # Errors
    /// [`Error::Rejected`] with `404` for an unknown borrower.
    pub async fn get_borrower(&self, user_id: &str) -> Result<Borrower, Error> {
        let user_id = path::user_id(user_id)?;
        let call = Call::new(
            Method::GET,
            "/api/core/users/{userId}",
            self.url(&["api", "core", "users", user_id])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `PATCH /api/core/users/{userId}` with the fields to change; returns the borrower.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Conflict`] for a blocked borrower.
    pub async fn update_borrower(
        &self,
        user_id: &str,
        patch: &BorrowerPatch,
    ) -> Result<Borrower, Error> {
        let user_id = path::user_id(user_id)?;
        let call = Call::new(
            Method::PATCH,
            "/api/core/users/{userId}",
            self.url(&["api", "core", "users", user_id])?,
            AuthScheme::Bearer,
        )
        .json(patch)?;
        self.inner.json(&call).await
    }

    /// `POST /api/core/users/{userId}/approve` (no auth): the partner's approval after KYC
    /// verification. Approving twice is a no-op.
    ///
    /// # Errors
    /// [`Error::Conflict`] while KYC is incomplete, or for a rejected or blocked borrower.
    pub async fn approve_borrower(&self, user_id: &str) -> Result<Borrower, Error> {
        let user_id = path::user_id(user_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/users/{userId}/approve",
            self.url(&["api", "core", "users", user_id, "approve"])?,
            AuthScheme::None,
        );
        self.inner.json(&call).await
    }

    /// `POST /api/core/users/{userId}/block` (no auth), with an optional reason.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Conflict`] for a rejected borrower.
    pub async fn block_borrower(
        &self,
        user_id: &str,
        block: Option<&BlockBorrower>,
    ) -> Result<Borrower, Error> {
        let user_id = path::user_id(user_id)?;
        let mut call = Call::new(
            Method::POST,
            "/api/core/users/{userId}/block",
            self.url(&["api", "core", "users", user_id, "block"])?,
            AuthScheme::None,
        );
        if let Some(block) = block {
            call = call.json(block)?;
        }
        self.inner.json(&call).await
    }

    /// `POST /api/core/users/{userId}/rdf/verify-biometric`: starts the RDF biometric check.
    ///
    /// # Errors
    /// [`Error::Rejected`] with `404` for an unknown borrower.
    pub async fn verify_biometric_rdf(&self, user_id: &str) -> Result<RdfBiometricResult, Error> {
        let user_id = path::user_id(user_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/users/{userId}/rdf/verify-biometric",
            self.url(&["api", "core", "users", user_id, "rdf", "verify-biometric"])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `GET /api/core/users/{userId}/status/{callbackTitle}`: the borrower's check with a hub
    /// (`VERIHUBS`, `ASLIRI`, ...). Poll while the status is `PENDING`.
    ///
    /// # Errors
    /// [`Error::Rejected`] with `404` for an unknown borrower.
    pub async fn hub_status(
        &self,
        user_id: &str,
        provider: &HubProvider,
    ) -> Result<HubCheckResult, Error> {
        let user_id = path::user_id(user_id)?;
        let provider = path::opaque("callbackTitle", provider.as_str())?;
        let call = Call::new(
            Method::GET,
            "/api/core/users/{userId}/status/{callbackTitle}",
            self.url(&["api", "core", "users", user_id, "status", provider])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }
}
