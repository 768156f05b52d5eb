//! Loan endpoints: list (one page, or every page as a stream), create single-payment and
//! BNPL loans, detail, signing, disbursement, rejection, and the repayment virtual account.

use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use reqwest::Method;
use url::Url;

use super::FinfraClient;
use super::path;
use super::transport::{AuthScheme, Call};
use crate::error::Error;
use crate::model::loan::{
    CreateBnplLoan, CreateSinglePaymentLoan, DisbursementAccepted, InitiateSigning, ListLoansQuery,
    Loan, LoanPage, MAX_PAGE_SIZE, RejectLoan, SigningSession,
};
use crate::model::virtual_account::{VirtualAccount, VirtualAccountRequest};
use crate::validate::Validate;

impl FinfraClient {
    /// `GET /api/core/loans` with the query's filters: one page.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending (e.g. a page size above 100).
    pub async fn list_loans(&self, query: &ListLoansQuery) -> Result<LoanPage, Error> {
        query.validate()?;
        let mut url = self.url(&["api", "core", "loans"])?;
        append_query(&mut url, query)?;
        let call = Call::new(Method::GET, "/api/core/loans", url, AuthScheme::Bearer);
        self.inner.json(&call).await
    }

    /// Every loan matching `query`, page after page from `query`'s page number (default 1),
    /// [`MAX_PAGE_SIZE`] (the largest Finfra allows) at a time unless the query sets a size.
    /// Stops at the first error.
    ///
    /// Pages are read one at a time as the stream is polled; a loan created meanwhile may
    /// shift the pages and be skipped or seen twice, as with any offset pagination.
    pub fn list_all_loans(
        &self,
        query: ListLoansQuery,
    ) -> impl Stream<Item = Result<Loan, Error>> + Send + 'static {
        let client = self.clone();
        let mut query = query;
        let first = query.page_number.unwrap_or(1);
        let size = query.page_size.unwrap_or(MAX_PAGE_SIZE).max(1);
        query.page_size = Some(size);
        stream::try_unfold(Some(first), move |page| {
            let client = client.clone();
            let mut query = query.clone();
            async move {
                let Some(number) = page else {
                    return Ok::<_, Error>(None);
                };
                query.page_number = Some(number);
                let page = client.list_loans(&query).await?;
                let fetched = u64::from(number) * u64::from(size);
                let more = !page.data.is_empty()
                    && page.data.len() as u64 >= u64::from(size)
                    && fetched < page.total_items;
                let next = more.then(|| number.checked_add(1)).flatten();
                Ok(Some((stream::iter(page.data.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// `POST /api/core/loans/{userId}`: a single-payment loan for an `APPROVED` borrower.
    /// Idempotent through the body's `unique_id`: a repeat gets `409`.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Rejected`] `400` when the borrower is not
    /// approved; [`Error::Conflict`] when the `unique_id` is taken.
    pub async fn create_single_payment_loan(
        &self,
        user_id: &str,
        loan: &CreateSinglePaymentLoan,
    ) -> Result<Loan, Error> {
        let user_id = path::user_id(user_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/loans/{userId}",
            self.url(&["api", "core", "loans", user_id])?,
            AuthScheme::Bearer,
        )
        .json(loan)?;
        self.inner.json(&call).await
    }

    /// `POST /api/core/loans/{userId}/bnpl`: an instalment loan for an `APPROVED` borrower.
    ///
    /// # Errors
    /// As [`Self::create_single_payment_loan`].
    pub async fn create_bnpl_loan(
        &self,
        user_id: &str,
        loan: &CreateBnplLoan,
    ) -> Result<Loan, Error> {
        let user_id = path::user_id(user_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/loans/{userId}/bnpl",
            self.url(&["api", "core", "loans", user_id, "bnpl"])?,
            AuthScheme::Bearer,
        )
        .json(loan)?;
        self.inner.json(&call).await
    }

    /// `GET /api/core/loans/details/{uniqueId}`: the loan with its schedule. The read that
    /// reconciles an ambiguous create, sign or disburse.
    ///
    /// # Errors
    /// [`Error::Rejected`] with `404` for an unknown loan.
    pub async fn get_loan(&self, unique_id: &str) -> Result<Loan, Error> {
        let unique_id = path::unique_id("uniqueId", unique_id)?;
        let call = Call::new(
            Method::GET,
            "/api/core/loans/details/{uniqueId}",
            self.url(&["api", "core", "loans", "details", unique_id])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `POST /api/core/loans/signing/initiate`: starts (or returns the running) signing
    /// session.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Conflict`] when already signed or rejected.
    pub async fn initiate_signing(
        &self,
        request: &InitiateSigning,
    ) -> Result<SigningSession, Error> {
        let call = Call::new(
            Method::POST,
            "/api/core/loans/signing/initiate",
            self.url(&["api", "core", "loans", "signing", "initiate"])?,
            AuthScheme::Bearer,
        )
        .json(request)?;
        self.inner.json(&call).await
    }

    /// `POST /api/core/loans/{loanUniqueId}/disbursement` (empty body): sends the money.
    ///
    /// **Irreversible.** On an ambiguous failure ([`Error::is_ambiguous`]) read the loan
    /// with [`Self::get_loan`] before ever sending this again.
    ///
    /// # Errors
    /// [`Error::Rejected`] `400` when not signed; [`Error::Conflict`] when already
    /// disbursing, disbursed, paid or rejected.
    pub async fn disburse_loan(&self, loan_unique_id: &str) -> Result<DisbursementAccepted, Error> {
        let unique_id = path::unique_id("loanUniqueId", loan_unique_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/loans/{loanUniqueId}/disbursement",
            self.url(&["api", "core", "loans", unique_id, "disbursement"])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `POST /api/core/loans/{loanUniqueId}/reject` with a reason.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Conflict`] from `DISBURSING` on.
    pub async fn reject_loan(
        &self,
        loan_unique_id: &str,
        reject: &RejectLoan,
    ) -> Result<Loan, Error> {
        let unique_id = path::unique_id("loanUniqueId", loan_unique_id)?;
        let call = Call::new(
            Method::POST,
            "/api/core/loans/{loanUniqueId}/reject",
            self.url(&["api", "core", "loans", unique_id, "reject"])?,
            AuthScheme::Bearer,
        )
        .json(reject)?;
        self.inner.json(&call).await
    }

    /// `POST /api/core/virtual-account/request`: the account the borrower repays into. Asking
    /// again returns the same account.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; [`Error::Rejected`] `400` before disbursement.
    pub async fn request_virtual_account(
        &self,
        request: &VirtualAccountRequest,
    ) -> Result<VirtualAccount, Error> {
        let call = Call::new(
            Method::POST,
            "/api/core/virtual-account/request",
            self.url(&["api", "core", "virtual-account", "request"])?,
            AuthScheme::Bearer,
        )
        .json(request)?;
        self.inner.json(&call).await
    }
}

/// Appends the query's set fields as URL query pairs (absent and `null` fields are left
/// out), using the names its `Serialize` gives (`userId`, `pageNumber`, ...).
///
/// # Errors
/// [`Error::Encode`] when the query does not serialize to a flat object.
fn append_query(url: &mut Url, query: &ListLoansQuery) -> Result<(), Error> {
    let serde_json::Value::Object(fields) = serde_json::to_value(query).map_err(Error::Encode)?
    else {
        return Err(Error::Encode(serde::ser::Error::custom(
            "the loan query is not an object",
        )));
    };
    let mut pairs = url.query_pairs_mut();
    for (name, value) in fields {
        let value = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                return Err(Error::Encode(serde::ser::Error::custom(
                    "a loan query field is not a scalar",
                )));
            }
        };
        pairs.append_pair(&name, &value);
    }
    drop(pairs);
    // An empty query leaves a bare `?`: remove it.
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(())
}
