//! What Finfra sends to the partner (CONTRACT §7): the four callback bodies, typed, and
//! the check of the `finfra-auth-key` header they carry.
//!
//! | path | type |
//! |---|---|
//! | `POST /api/core/ftm/users/{callbackTitle}/status` | [`StatusCallback`] |
//! | `POST /api/core/payment-gateway/virtual-account/status` | [`VirtualAccountPayment`] |
//! | `POST /api/core/payment-gateway/invoices/status` | [`InvoiceCallback`] |
//! | `POST /api/core/users/didit/session/callback?verificationSessionId=&status=` | [`DiditSessionCallback`] (query) |
//!
//! Delivery is at least once and unordered: the receiver dedupes on `event_id` (status
//! callbacks) or `id` (payments) and must not assume `loan_signed` precedes
//! `loan_disbursed`. This module only types and authenticates; the receiver decides.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};

use crate::lenient::{self, string_enum};
use crate::model::borrower::BorrowerStatus;
use crate::model::loan::LoanStatus;
use crate::model::virtual_account::BankCode;

/// A field of a callback body that correlates it with a workflow: what a waiting workflow
/// waits on (with the title of the callback), and a column of finflow's callback inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationKey {
    /// `identity_number` (the NIK) of a user or `credit_score` status callback: how
    /// `user_created` is matched, since the create call returns no id (CONTRACT §3).
    IdentityNumber,
    /// `user_id` of a status callback.
    UserId,
    /// `kyc_id` of a status callback, on borrowers created on a KYC session.
    KycId,
    /// `loan_unique_id` of a loan status callback.
    LoanUniqueId,
    /// `external_id` of a virtual-account payment or invoice callback.
    ExternalId,
}

impl CorrelationKey {
    /// Every key.
    pub const ALL: [Self; 5] = [
        Self::IdentityNumber,
        Self::UserId,
        Self::KycId,
        Self::LoanUniqueId,
        Self::ExternalId,
    ];

    /// The field's name in the callback body (and the inbox's column).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentityNumber => "identity_number",
            Self::UserId => "user_id",
            Self::KycId => "kyc_id",
            Self::LoanUniqueId => "loan_unique_id",
            Self::ExternalId => "external_id",
        }
    }

    /// The key named `name` (as [`Self::as_str`] gives it), if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.as_str() == name)
    }
}

impl fmt::Display for CorrelationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header every callback carries with the partner's key.
pub const AUTH_KEY_HEADER: &str = "finfra-auth-key";

string_enum! {
    /// The `{callbackTitle}` path segment and `callback_title` field of a status callback.
    /// BNPL loans announce their events with `bnpl_` instead of `loan_`; use
    /// [`CallbackTitle::loan_event`] to treat both alike.
    pub enum CallbackTitle {
        UserCreated => "user_created",
        UserVerified => "user_verified",
        UserApproved => "user_approved",
        UserRejected => "user_rejected",
        UserBlocked => "user_blocked",
        CreditScore => "credit_score",
        LoanCreated => "loan_created",
        LoanSigned => "loan_signed",
        LoanDisbursed => "loan_disbursed",
        LoanDisbursementFailed => "loan_disbursement_failed",
        LoanRejected => "loan_rejected",
        LoanPaid => "loan_paid",
        BnplCreated => "bnpl_created",
        BnplSigned => "bnpl_signed",
        BnplDisbursed => "bnpl_disbursed",
        BnplDisbursementFailed => "bnpl_disbursement_failed",
        BnplRejected => "bnpl_rejected",
        BnplPaid => "bnpl_paid",
    }
}

/// A borrower status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserEvent {
    Created,
    Verified,
    Approved,
    Rejected,
    Blocked,
}

impl UserEvent {
    /// The borrower status this event announces.
    pub fn status(self) -> BorrowerStatus {
        match self {
            Self::Created => BorrowerStatus::Pending,
            Self::Verified => BorrowerStatus::Verified,
            Self::Approved => BorrowerStatus::Approved,
            Self::Rejected => BorrowerStatus::Rejected,
            Self::Blocked => BorrowerStatus::Blocked,
        }
    }
}

/// A loan status change, whichever the loan type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoanEvent {
    Created,
    Signed,
    Disbursed,
    DisbursementFailed,
    Rejected,
    Paid,
}

impl LoanEvent {
    /// The loan status this event announces.
    pub fn status(self) -> LoanStatus {
        match self {
            Self::Created => LoanStatus::Pending,
            Self::Signed => LoanStatus::Signed,
            Self::Disbursed => LoanStatus::Disbursed,
            Self::DisbursementFailed => LoanStatus::DisbursementFailed,
            Self::Rejected => LoanStatus::Rejected,
            Self::Paid => LoanStatus::Paid,
        }
    }
}

/// A loan event and whether it came under a `bnpl_` title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoanEventKind {
    pub event: LoanEvent,
    pub bnpl: bool,
}

impl CallbackTitle {
    /// The borrower event, for `user_*` titles.
    pub fn user_event(&self) -> Option<UserEvent> {
        Some(match self {
            Self::UserCreated => UserEvent::Created,
            Self::UserVerified => UserEvent::Verified,
            Self::UserApproved => UserEvent::Approved,
            Self::UserRejected => UserEvent::Rejected,
            Self::UserBlocked => UserEvent::Blocked,
            _ => return None,
        })
    }

    pub fn is_user_event(&self) -> bool {
        self.user_event().is_some()
    }

    /// The loan event, for `loan_*` and `bnpl_*` titles alike.
    pub fn loan_event(&self) -> Option<LoanEventKind> {
        let (event, bnpl) = match self {
            Self::LoanCreated => (LoanEvent::Created, false),
            Self::LoanSigned => (LoanEvent::Signed, false),
            Self::LoanDisbursed => (LoanEvent::Disbursed, false),
            Self::LoanDisbursementFailed => (LoanEvent::DisbursementFailed, false),
            Self::LoanRejected => (LoanEvent::Rejected, false),
            Self::LoanPaid => (LoanEvent::Paid, false),
            Self::BnplCreated => (LoanEvent::Created, true),
            Self::BnplSigned => (LoanEvent::Signed, true),
            Self::BnplDisbursed => (LoanEvent::Disbursed, true),
            Self::BnplDisbursementFailed => (LoanEvent::DisbursementFailed, true),
            Self::BnplRejected => (LoanEvent::Rejected, true),
            Self::BnplPaid => (LoanEvent::Paid, true),
            _ => return None,
        };
        Some(LoanEventKind { event, bnpl })
    }

    pub fn is_loan_event(&self) -> bool {
        self.loan_event().is_some()
    }

    pub fn is_credit_score(&self) -> bool {
        *self == Self::CreditScore
    }
}

/// Body of `POST /api/core/ftm/users/{callbackTitle}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCallback {
    /// Unique per event; the same event may be delivered more than once.
    pub event_id: String,
    pub callback_title: CallbackTitle,
    #[serde(with = "lenient::timestamp")]
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// NIK; on user and `credit_score` events. Correlates `user_created` with the create
    /// request, which returned no id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_number: Option<String>,
    /// Only when the borrower was created on a KYC session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyc_id: Option<String>,
    /// On loan events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loan_unique_id: Option<String>,
    /// The borrower's status on user events, the loan's on loan events; see
    /// [`Self::borrower_status`] and [`Self::loan_status`]. Its meaning on `credit_score` is
    /// undefined, so absent or `null` reads as `""` rather than refusing (and so losing) the
    /// event.
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub status: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub data: CallbackData,
}

impl StatusCallback {
    /// `status` read as a borrower status, on user events.
    pub fn borrower_status(&self) -> Option<BorrowerStatus> {
        self.callback_title
            .is_user_event()
            .then(|| BorrowerStatus::from(self.status.as_str()))
    }

    /// `status` read as a loan status, on loan (and BNPL) events.
    pub fn loan_status(&self) -> Option<LoanStatus> {
        self.callback_title
            .is_loan_event()
            .then(|| LoanStatus::from(self.status.as_str()))
    }
}

/// The `data` object of a status callback: the extras the contract names, typed, and
/// everything else kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallbackData {
    /// On `credit_score`; a number, or a string of digits.
    #[serde(
        default,
        with = "lenient::option_u32",
        skip_serializing_if = "Option::is_none"
    )]
    pub score: Option<u32>,
    /// On rejections and failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On disbursements: the bank transfer reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Body of `POST /api/core/payment-gateway/virtual-account/status` (Xendit's shape): a
/// repayment into a loan's virtual account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAccountPayment {
    /// Unique per payment: the dedupe key.
    pub id: String,
    /// The `external_id` the virtual-account request returned.
    pub external_id: String,
    pub payment_id: String,
    pub account_number: String,
    pub bank_code: BankCode,
    #[serde(with = "lenient::money")]
    pub amount: Decimal,
    #[serde(with = "lenient::timestamp")]
    pub transaction_timestamp: DateTime<Utc>,
}

string_enum! {
    /// Outcome of an invoice.
    pub enum InvoiceStatus {
        Paid => "PAID",
        Expired => "EXPIRED",
    }
}

/// Body of `POST /api/core/payment-gateway/invoices/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceCallback {
    pub id: String,
    pub external_id: String,
    pub status: InvoiceStatus,
    #[serde(with = "lenient::money")]
    pub amount: Decimal,
    /// Absent or `null` on `EXPIRED`.
    #[serde(
        default,
        with = "lenient::option_money",
        skip_serializing_if = "Option::is_none"
    )]
    pub paid_amount: Option<Decimal>,
    #[serde(
        default,
        with = "lenient::option_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub paid_at: Option<DateTime<Utc>>,
}

/// The query of `POST /api/core/users/didit/session/callback`: Didit's liveness result.
/// Both parameters are optional and `""` reads as absent. The body, if any, is not
/// described anywhere; a receiver keeps it as `serde_json::Value`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiditSessionCallback {
    #[serde(
        rename = "verificationSessionId",
        default,
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub verification_session_id: Option<String>,
    /// Didit's status (the reference says "default: 0"); kept as sent.
    #[serde(
        default,
        deserialize_with = "lenient::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
}

impl DiditSessionCallback {
    /// Reads the parameters from a raw query string (without the `?`), for receivers
    /// that do not parse queries with serde. Unknown parameters are ignored; a repeated
    /// one keeps its last value.
    pub fn from_query(query: &str) -> Self {
        let mut out = Self::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = (!value.is_empty()).then(|| value.into_owned());
            match key.as_ref() {
                "verificationSessionId" => out.verification_session_id = value,
                "status" => out.status = value,
                _ => {}
            }
        }
        out
    }
}

/// Longest callback key accepted, in bytes. Keys are padded to this length so that a
/// comparison takes the same time whatever the key's length.
pub const MAX_AUTH_KEY_LEN: usize = 512;

/// A configured callback key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthKeyError {
    #[error("the callback auth key is empty")]
    Empty,
    #[error("the callback auth key is longer than {MAX_AUTH_KEY_LEN} bytes")]
    TooLong,
}

struct PaddedKey {
    /// The key's bytes followed by zeros, `MAX_AUTH_KEY_LEN` long.
    padded: SecretSlice<u8>,
    len: u64,
}

impl PaddedKey {
    fn new(key: &SecretString) -> Result<Self, AuthKeyError> {
        let bytes = key.expose_secret().as_bytes();
        if bytes.is_empty() {
            return Err(AuthKeyError::Empty);
        }
        if bytes.len() > MAX_AUTH_KEY_LEN {
            return Err(AuthKeyError::TooLong);
        }
        let mut padded = vec![0u8; MAX_AUTH_KEY_LEN];
        padded[..bytes.len()].copy_from_slice(bytes);
        let len = u64::try_from(bytes.len()).map_err(|_| AuthKeyError::TooLong)?;
        Ok(Self {
            padded: padded.into(),
            len,
        })
    }
}

/// Checks the `finfra-auth-key` header of a callback against the configured key, and,
/// during a rotation, the previous one.
///
/// The comparison is constant-time: the presented value is padded to
/// [`MAX_AUTH_KEY_LEN`] and compared, with its length, against every configured key,
/// without stopping at the first match, so timing reveals neither the keys' content nor
/// their length nor which key matched.
pub struct AuthKeyVerifier {
    keys: Vec<PaddedKey>,
}

impl AuthKeyVerifier {
    /// One key.
    ///
    /// # Errors
    ///
    /// [`AuthKeyError`] when the key is empty or longer than [`MAX_AUTH_KEY_LEN`].
    pub fn new(current: &SecretString) -> Result<Self, AuthKeyError> {
        Ok(Self {
            keys: vec![PaddedKey::new(current)?],
        })
    }

    /// The current key and the previous one, both accepted while Finfra switches over.
    ///
    /// # Errors
    ///
    /// [`AuthKeyError`] when either key is empty or too long.
    pub fn rotating(current: &SecretString, previous: &SecretString) -> Result<Self, AuthKeyError> {
        Ok(Self {
            keys: vec![PaddedKey::new(current)?, PaddedKey::new(previous)?],
        })
    }

    /// Whether `presented` (the header's value; `None` when missing) is a configured key.
    pub fn verify(&self, presented: Option<&str>) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        let bytes = presented.as_bytes();
        let mut padded = [0u8; MAX_AUTH_KEY_LEN];
        let copied = bytes.len().min(MAX_AUTH_KEY_LEN);
        padded[..copied].copy_from_slice(&bytes[..copied]);
        // An over-long value still runs the comparisons; its length can never match.
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);

        let mut matched = Choice::from(0);
        for key in &self.keys {
            matched |= padded.as_slice().ct_eq(key.padded.expose_secret()) & len.ct_eq(&key.len);
        }
        // The buffer holds a valid key when the check passes: do not leave it on the stack.
        secrecy::zeroize::Zeroize::zeroize(&mut padded);
        bool::from(matched)
    }

    /// How many keys are accepted (1, or 2 during a rotation).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

impl fmt::Debug for AuthKeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKeyVerifier")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status_body(title: &str, status: &str, data: serde_json::Value) -> serde_json::Value {
        json!({
            "event_id": "evt_01", "callback_title": title, "occurred_at": "2026-06-29T05:15:51.591Z",
            "user_id": "6a41ff87dda4eefd0b7b0300", "loan_unique_id": "loan-000123",
            "status": status, "data": data
        })
    }

    #[test]
    fn user_created_with_identity_number_and_kyc_id() {
        let cb: StatusCallback = serde_json::from_value(json!({
            "event_id": "evt_01", "callback_title": "user_created",
            "occurred_at": "2026-06-29T05:15:51.591Z", "user_id": "6a41ff87dda4eefd0b7b0300",
            "identity_number": "3275062009921981", "kyc_id": "eyJ.x.y", "status": "PENDING", "data": {}
        }))
        .unwrap();
        assert_eq!(cb.callback_title, CallbackTitle::UserCreated);
        assert_eq!(cb.callback_title.user_event(), Some(UserEvent::Created));
        assert_eq!(cb.borrower_status(), Some(BorrowerStatus::Pending));
        assert_eq!(cb.loan_status(), None);
        assert_eq!(cb.identity_number.as_deref(), Some("3275062009921981"));
        assert_eq!(cb.kyc_id.as_deref(), Some("eyJ.x.y"));
        assert_eq!(cb.data, CallbackData::default());
    }

    #[test]
    fn credit_score_data() {
        for score in [json!(712), json!("712")] {
            let cb: StatusCallback = serde_json::from_value(status_body(
                "credit_score",
                "APPROVED",
                json!({"score": score, "grade": "B"}),
            ))
            .unwrap();
            assert!(cb.callback_title.is_credit_score());
            assert_eq!(cb.data.score, Some(712));
            assert_eq!(cb.data.extra.get("grade"), Some(&json!("B")));
            assert_eq!(cb.borrower_status(), None);
        }
    }

    #[test]
    fn loan_and_bnpl_titles_mean_the_same() {
        let pairs = [
            ("loan_created", "bnpl_created", LoanEvent::Created),
            ("loan_signed", "bnpl_signed", LoanEvent::Signed),
            ("loan_disbursed", "bnpl_disbursed", LoanEvent::Disbursed),
            (
                "loan_disbursement_failed",
                "bnpl_disbursement_failed",
                LoanEvent::DisbursementFailed,
            ),
            ("loan_rejected", "bnpl_rejected", LoanEvent::Rejected),
            ("loan_paid", "bnpl_paid", LoanEvent::Paid),
        ];
        for (loan, bnpl, event) in pairs {
            assert_eq!(
                CallbackTitle::from(loan).loan_event(),
                Some(LoanEventKind { event, bnpl: false })
            );
            assert_eq!(
                CallbackTitle::from(bnpl).loan_event(),
                Some(LoanEventKind { event, bnpl: true })
            );
            assert!(!CallbackTitle::from(bnpl).is_user_event());
        }
        let cb: StatusCallback = serde_json::from_value(status_body(
            "bnpl_disbursed",
            "DISBURSED",
            json!({"reference": "TRX-9"}),
        ))
        .unwrap();
        let kind = cb.callback_title.loan_event().unwrap();
        assert!(kind.bnpl);
        assert_eq!(kind.event.status(), LoanStatus::Disbursed);
        assert_eq!(cb.loan_status(), Some(LoanStatus::Disbursed));
        assert_eq!(cb.data.reference.as_deref(), Some("TRX-9"));

        let cb: StatusCallback = serde_json::from_value(status_body(
            "loan_disbursement_failed",
            "DISBURSEMENT_FAILED",
            json!({"reason": "account closed"}),
        ))
        .unwrap();
        assert_eq!(cb.data.reason.as_deref(), Some("account closed"));
        assert_eq!(cb.loan_status(), Some(LoanStatus::DisbursementFailed));
    }

    #[test]
    fn unknown_title_round_trips_and_data_null_is_empty() {
        let body = status_body("bnpl_restructured", "RESTRUCTURED", json!(null));
        let cb: StatusCallback = serde_json::from_value(body).unwrap();
        assert_eq!(
            cb.callback_title,
            CallbackTitle::Unknown("bnpl_restructured".into())
        );
        assert_eq!(cb.callback_title.loan_event(), None);
        assert_eq!(cb.loan_status(), None);
        assert_eq!(cb.data, CallbackData::default());
        let out = serde_json::to_value(&cb).unwrap();
        assert_eq!(out["callback_title"], json!("bnpl_restructured"));
        assert_eq!(out["occurred_at"], json!("2026-06-29T05:15:51.591Z"));
    }

    #[test]
    fn data_round_trips_with_extras() {
        let data = json!({"score": 800, "reason": "r", "reference": "x", "nested": {"a": [1]}});
        let parsed: CallbackData = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(parsed.extra.len(), 1);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), data);
    }

    #[test]
    fn virtual_account_payment() {
        for amount in [json!("1716666.67"), json!(1716666.67)] {
            let p: VirtualAccountPayment = serde_json::from_value(json!({
                "id": "pay_1", "external_id": "va-1", "payment_id": "xnd_1", "account_number": "8808123456789",
                "bank_code": "BNI", "amount": amount, "transaction_timestamp": "2026-07-01T10:00:00+07:00"
            }))
            .unwrap();
            assert_eq!(p.amount, Decimal::new(171_666_667, 2));
            assert_eq!(p.bank_code, BankCode::Bni);
            assert_eq!(
                p.transaction_timestamp.to_rfc3339(),
                "2026-07-01T03:00:00+00:00"
            );
            assert_eq!(
                serde_json::to_value(&p).unwrap()["amount"],
                json!("1716666.67")
            );
        }
    }

    #[test]
    fn invoice_paid_and_expired() {
        let paid: InvoiceCallback = serde_json::from_value(json!({
            "id": "inv_1", "external_id": "loan-000123-1", "status": "PAID", "amount": "5150000.00",
            "paid_amount": "5150000.00", "paid_at": "2026-07-01T03:00:00Z"
        }))
        .unwrap();
        assert_eq!(paid.status, InvoiceStatus::Paid);
        assert_eq!(paid.paid_amount, Some(Decimal::new(515_000_000, 2)));
        let expired: InvoiceCallback = serde_json::from_value(json!({
            "id": "inv_2", "external_id": "loan-000123-2", "status": "EXPIRED", "amount": "5150000.00",
            "paid_amount": null, "paid_at": null
        }))
        .unwrap();
        assert_eq!(expired.status, InvoiceStatus::Expired);
        assert_eq!((expired.paid_amount, expired.paid_at), (None, None));
        let out = serde_json::to_value(&expired).unwrap();
        assert!(out.get("paid_at").is_none());
    }

    #[test]
    fn didit_query() {
        let q =
            DiditSessionCallback::from_query("verificationSessionId=abc-123&status=Approved&x=1");
        assert_eq!(q.verification_session_id.as_deref(), Some("abc-123"));
        assert_eq!(q.status.as_deref(), Some("Approved"));
        assert_eq!(
            DiditSessionCallback::from_query("verificationSessionId=&status="),
            DiditSessionCallback::default()
        );
        let q = DiditSessionCallback::from_query("status=In%20Review");
        assert_eq!(q.status.as_deref(), Some("In Review"));
        // The serde path, as a web framework's query extractor would use it.
        let q: DiditSessionCallback =
            serde_json::from_value(json!({"verificationSessionId": "abc-123", "status": ""}))
                .unwrap();
        assert_eq!(
            (q.verification_session_id.as_deref(), q.status),
            (Some("abc-123"), None)
        );
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn verifier_with_one_key() {
        let v = AuthKeyVerifier::new(&secret("k3y-current-0123456789")).unwrap();
        assert!(v.verify(Some("k3y-current-0123456789")));
        assert!(!v.verify(None));
        assert!(!v.verify(Some("")));
        assert!(!v.verify(Some("k3y-current-012345678")));
        assert!(!v.verify(Some("k3y-current-01234567890")));
        assert!(!v.verify(Some("K3Y-CURRENT-0123456789")));
        // A key followed by padding-like zero bytes is still a different key.
        assert!(!v.verify(Some("k3y-current-0123456789\0")));
        assert!(!v.verify(Some(&"k".repeat(MAX_AUTH_KEY_LEN + 10))));
        assert_eq!(v.key_count(), 1);
    }

    #[test]
    fn verifier_with_two_keys_during_rotation() {
        let v = AuthKeyVerifier::rotating(&secret("new-key"), &secret("old-key-longer")).unwrap();
        assert!(v.verify(Some("new-key")));
        assert!(v.verify(Some("old-key-longer")));
        assert!(!v.verify(Some("other-key")));
        assert!(!v.verify(None));
        assert_eq!(v.key_count(), 2);
    }

    #[test]
    fn verifier_rejects_unusable_keys_and_hides_them() {
        assert_eq!(
            AuthKeyVerifier::new(&secret("")).unwrap_err(),
            AuthKeyError::Empty
        );
        let long = "x".repeat(MAX_AUTH_KEY_LEN + 1);
        assert_eq!(
            AuthKeyVerifier::new(&secret(&long)).unwrap_err(),
            AuthKeyError::TooLong
        );
        assert_eq!(
            AuthKeyVerifier::rotating(&secret("a"), &secret("")).unwrap_err(),
            AuthKeyError::Empty
        );
        let max = "y".repeat(MAX_AUTH_KEY_LEN);
        assert!(
            AuthKeyVerifier::new(&secret(&max))
                .unwrap()
                .verify(Some(&max))
        );
        let v = AuthKeyVerifier::rotating(&secret("super-secret-1"), &secret("super-secret-0"))
            .unwrap();
        let dbg = format!("{v:?}");
        assert!(!dbg.contains("super-secret"), "{dbg}");
        assert_eq!(dbg, "AuthKeyVerifier { keys: 2, .. }");
        assert_eq!(AUTH_KEY_HEADER, "finfra-auth-key");
    }
}
