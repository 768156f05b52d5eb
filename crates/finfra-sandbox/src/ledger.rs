//! The ledger: what clients did to the sandbox and what the sandbox did back, counted, so
//! tests can assert on behaviour that matters ("this loan was disbursed exactly once", "no
//! request was sent inside a Retry-After window").
//!
//! All maps are keyed by strings (`BTreeMap`, so the JSON is sorted and stable). Served as
//! JSON at `GET /_sandbox/ledger`; control (`/_sandbox/*`) requests are not counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ledger {
    /// Requests per endpoint, keyed `"METHOD /path/{template}"` with the reference's parameter
    /// names, e.g. `"POST /api/core/loans/{loanUniqueId}/disbursement"`. Every request counts,
    /// whatever its answer. Unrouted paths count under `"METHOD (unmatched)"`.
    pub requests: BTreeMap<String, u64>,
    /// The same requests by answer status: endpoint → `"200"`/`"409"`/... → count. A request
    /// dropped by an ambiguous fault counts under the status it would have had.
    pub requests_by_status: BTreeMap<String, BTreeMap<String, u64>>,
    /// Calls to `POST /api/auth/token/v2` and the deprecated `/api/auth/token`, any outcome.
    pub token_requests: u64,
    /// Calls to `POST /api/auth/refresh`, any outcome.
    pub refresh_requests: u64,
    /// Accepted (`200`) borrower creations per KTP NIK.
    pub borrowers_created_per_nik: BTreeMap<String, u64>,
    /// Borrower creations refused with `409` because the NIK was taken, per NIK.
    pub borrower_conflicts_per_nik: BTreeMap<String, u64>,
    /// Loans created (`200`) per `unique_id`.
    pub loans_created: BTreeMap<String, u64>,
    /// Disbursements accepted (`200` of the disbursement endpoint, i.e. money sent to the
    /// bank) per loan. More than 1 only after a bank failure and a deliberate retry.
    pub disbursements_accepted: BTreeMap<String, u64>,
    /// Disbursement requests on loans already `DISBURSING`, `DISBURSED` or `PAID` (their
    /// `409`s), per loan: a client that counts on exactly-once should keep this at 0.
    pub disbursement_conflicts: BTreeMap<String, u64>,
    /// Requests that arrived while a `Retry-After` the sandbox gave to the same client (or
    /// source address, `ip:...`) was still running, more than
    /// [`crate::SandboxConfig::retry_after_grace`] after the `429`: sent by a client that had
    /// been told to wait. Per client. A client that honours `Retry-After` keeps this at 0.
    pub requests_inside_retry_after: BTreeMap<String, u64>,
    /// The same requests by endpoint (the ledger's `"METHOD /template"` key), to tell
    /// which of a client's calls did not wait.
    pub requests_inside_retry_after_by_endpoint: BTreeMap<String, u64>,
    /// Requests that arrived inside such a window but within the grace after the `429`:
    /// already on their way when it was answered (a fleet or a connection pool has several
    /// requests in flight). Per client; not a fault of the client.
    pub requests_in_flight_at_429: BTreeMap<String, u64>,
    /// `429`s given by the rate limiter, per client.
    pub rate_limited: BTreeMap<String, u64>,
    /// Injected faults by kind: `500`, `429`, `429_without_retry_after`, `ambiguous`,
    /// `ambiguous_timeout`.
    pub faults_injected: BTreeMap<String, u64>,
    /// Callbacks emitted (one per event, before duplication), by title (`user_created`,
    /// `bnpl_paid`, `virtual_account_payment`, `invoice`, `didit`...).
    pub callbacks_emitted: BTreeMap<String, u64>,
    /// Deliveries that got a `2xx` (a duplicated event counts twice).
    pub callbacks_delivered: u64,
    /// Deliveries given up after the last attempt.
    pub callbacks_failed: u64,
    /// HTTP attempts, successful or not.
    pub callback_attempts: u64,
    /// Extra deliveries created by `duplicate_rate`.
    pub callbacks_duplicated: u64,
    /// Callbacks never delivered because `drop_loan_callbacks_rate` chose their loan, per
    /// loan `unique_id`.
    pub callbacks_dropped: BTreeMap<String, u64>,
    /// Virtual-account payments applied per loan.
    pub payments_applied: BTreeMap<String, u64>,
    /// Virtual-account requests for loans already `PAID` (refused with `400`), per loan. A
    /// paid loan has its account already, so each is a repeated request: typically one whose
    /// first answer was lost while the borrower paid everything (the `+paynow` magic value).
    /// A client that reads the loan after an unknown outcome before asking again keeps this
    /// at 0; one that asks again must take the `400` as "look at the loan", not as a failure.
    pub virtual_account_requests_after_paid: BTreeMap<String, u64>,
}

impl Ledger {
    /// All requests inside a `Retry-After` window, whoever sent them.
    #[must_use]
    pub fn total_requests_inside_retry_after(&self) -> u64 {
        self.requests_inside_retry_after.values().sum()
    }

    /// Requests to one endpoint, e.g. `ledger.requests_to("POST /api/auth/refresh")`.
    #[must_use]
    pub fn requests_to(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests to one endpoint answered with `status`.
    #[must_use]
    pub fn responses(&self, endpoint: &str, status: u16) -> u64 {
        self.requests_by_status
            .get(endpoint)
            .and_then(|m| m.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn record_request(&mut self, endpoint: &str, status: u16) {
        *self.requests.entry(endpoint.to_owned()).or_default() += 1;
        *self
            .requests_by_status
            .entry(endpoint.to_owned())
            .or_default()
            .entry(status.to_string())
            .or_default() += 1;
    }
}

/// `*map[key] += 1`.
pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}
