//! Borrowers (CONTRACT §3): creation, the KYC-driven status machine, approve, block, patch,
//! and the response shape with the reference's quirks.
//!
//! ```text
//! (create accepted) CREATING --async--> PENDING --(KYC review, async)--> VERIFIED | REJECTED
//! VERIFIED --approve--> APPROVED_BY_PARTNER --(final review, async)--> APPROVED
//! any but REJECTED --block--> BLOCKED
//! ```
//! `CREATING` is the sandbox's name for "accepted, not yet processed": the borrower has no
//! visible id yet (`404`), as with real Finfra where the id arrives by callback.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{State, Transition, timestamp};
use crate::callbacks::{StatusEvent, status_callback};
use crate::error::{ApiError, ApiResult};
use crate::ledger::bump;
use crate::magic::{self, Tags};
use crate::validate::borrower::{BorrowerInput, merge_patch, validate_borrower};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BorrowerStatus {
    Creating,
    Pending,
    Verified,
    ApprovedByPartner,
    Approved,
    Rejected,
    Blocked,
}

impl BorrowerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BorrowerStatus::Creating => "CREATING",
            BorrowerStatus::Pending => "PENDING",
            BorrowerStatus::Verified => "VERIFIED",
            BorrowerStatus::ApprovedByPartner => "APPROVED_BY_PARTNER",
            BorrowerStatus::Approved => "APPROVED",
            BorrowerStatus::Rejected => "REJECTED",
            BorrowerStatus::Blocked => "BLOCKED",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Borrower {
    pub id: String,
    pub status: BorrowerStatus,
    /// The create body as sent (nulls dropped), with accepted patches merged in.
    pub body: Value,
    pub input: BorrowerInput,
    pub kyc_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub reject_reason: Option<String>,
    /// Hub checks answered so far, per provider (for `+hubpending`).
    pub hub_polls: HashMap<String, u32>,
    /// RDF verifications answered so far (for `+rdfpending`).
    pub rdf_calls: u32,
}

impl Borrower {
    pub fn tags(&self) -> Tags {
        Tags::from_email(&self.input.email)
    }
}

/// Drops `null` members recursively: CONTRACT §1 counts them as absent.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

impl State {
    /// A visible borrower (not `CREATING`), or `404`.
    pub fn borrower(&self, user_id: &str) -> ApiResult<&Borrower> {
        self.borrowers
            .get(user_id)
            .filter(|b| b.status != BorrowerStatus::Creating)
            .ok_or_else(|| ApiError::not_found(format!("Borrower {user_id} not found")))
    }

    pub(super) fn borrower_mut(&mut self, user_id: &str) -> ApiResult<&mut Borrower> {
        self.borrowers
            .get_mut(user_id)
            .filter(|b| b.status != BorrowerStatus::Creating)
            .ok_or_else(|| ApiError::not_found(format!("Borrower {user_id} not found")))
    }

    /// `POST /api/core/users` and `POST /api/core/{kycIdPath}/users` with a valid body: the
    /// NIK is reserved now, the borrower appears later.
    pub fn create_borrower(
        &mut self,
        body: &Value,
        input: BorrowerInput,
        kyc_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        if let Some(kyc_id) = kyc_id {
            let session = self
                .kyc
                .get(kyc_id)
                .ok_or_else(|| ApiError::not_found("KYC session not found"))?;
            if session.borrower_id.is_some() {
                return Err(ApiError::conflict(
                    "A borrower was already created for this KYC session",
                ));
            }
        }
        if self.nik_index.contains_key(&input.nik) {
            bump(&mut self.ledger.borrower_conflicts_per_nik, &input.nik);
            return Err(ApiError::conflict(
                "Borrower with this identity number already exists",
            ));
        }
        let id = self.hex(24);
        bump(&mut self.ledger.borrowers_created_per_nik, &input.nik);
        self.nik_index.insert(input.nik.clone(), id.clone());
        if let Some(session) = kyc_id.and_then(|k| self.kyc.get_mut(k)) {
            session.borrower_id = Some(id.clone());
        }
        self.borrowers.insert(
            id.clone(),
            Borrower {
                id: id.clone(),
                status: BorrowerStatus::Creating,
                body: without_nulls(body),
                input,
                kyc_id: kyc_id.map(str::to_owned),
                created_at: now,
                reject_reason: None,
                hub_polls: HashMap::new(),
                rdf_calls: 0,
            },
        );
        let delay = self.config.timing.borrower_created;
        self.later(delay, Transition::BorrowerCreated { user_id: id });
        Ok(())
    }

    /// A user status callback for `b`.
    fn user_event(
        &mut self,
        user_id: &str,
        title: &str,
        data: Map<String, Value>,
        now: DateTime<Utc>,
    ) {
        let Some(b) = self.borrowers.get(user_id) else {
            return;
        };
        let n = status_callback(
            StatusEvent {
                title: title.to_owned(),
                user_id: &b.id,
                identity_number: Some(&b.input.nik),
                kyc_id: b.kyc_id.as_deref(),
                status: b.status.as_str(),
                data,
                ..StatusEvent::default()
            },
            now,
        );
        self.notify(n);
    }

    pub(super) fn borrower_created(&mut self, user_id: &str, now: DateTime<Utc>) {
        let Some(b) = self.borrowers.get_mut(user_id) else {
            return;
        };
        if b.status != BorrowerStatus::Creating {
            return;
        }
        b.status = BorrowerStatus::Pending;
        b.created_at = now;
        self.user_event(user_id, "user_created", Map::new(), now);
        let delay = self.config.timing.kyc_review;
        self.later(
            delay,
            Transition::KycReviewed {
                user_id: user_id.to_owned(),
            },
        );
    }

    pub(super) fn kyc_reviewed(&mut self, user_id: &str, now: DateTime<Utc>) {
        let Some(b) = self.borrowers.get_mut(user_id) else {
            return;
        };
        if b.status != BorrowerStatus::Pending {
            return;
        }
        if b.tags().reject {
            b.status = BorrowerStatus::Rejected;
            b.reject_reason = Some(magic::KYC_REJECT_REASON.to_owned());
            let data = [("reason".to_owned(), json!(magic::KYC_REJECT_REASON))];
            self.user_event(user_id, "user_rejected", data.into_iter().collect(), now);
        } else {
            b.status = BorrowerStatus::Verified;
            self.user_event(user_id, "user_verified", Map::new(), now);
        }
    }

    pub(super) fn finally_approved(&mut self, user_id: &str, now: DateTime<Utc>) {
        let Some(b) = self.borrowers.get_mut(user_id) else {
            return;
        };
        if b.status != BorrowerStatus::ApprovedByPartner {
            return;
        }
        b.status = BorrowerStatus::Approved;
        self.user_event(user_id, "user_approved", Map::new(), now);
    }

    /// `POST /api/core/users/{userId}/approve`.
    pub fn approve_borrower(&mut self, user_id: &str) -> ApiResult<Value> {
        let b = self.borrower_mut(user_id)?;
        match b.status {
            BorrowerStatus::Pending => {
                return Err(ApiError::conflict("KYC verification is not complete"));
            }
            BorrowerStatus::Rejected => return Err(ApiError::conflict("Borrower is rejected")),
            BorrowerStatus::Blocked => return Err(ApiError::conflict("Borrower is blocked")),
            // Approving twice is a no-op (CONTRACT §3).
            BorrowerStatus::ApprovedByPartner | BorrowerStatus::Approved => {}
            BorrowerStatus::Verified => {
                b.status = BorrowerStatus::ApprovedByPartner;
                let delay = self.config.timing.final_approval;
                self.later(
                    delay,
                    Transition::FinallyApproved {
                        user_id: user_id.to_owned(),
                    },
                );
            }
            BorrowerStatus::Creating => {
                return Err(ApiError::not_found(format!("Borrower {user_id} not found")));
            }
        }
        self.render_borrower(user_id)
    }

    /// `POST /api/core/users/{userId}/block`.
    pub fn block_borrower(
        &mut self,
        user_id: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let b = self.borrower_mut(user_id)?;
        match b.status {
            BorrowerStatus::Rejected => {
                return Err(ApiError::conflict("A rejected borrower cannot be blocked"));
            }
            BorrowerStatus::Blocked => {}
            _ => {
                b.status = BorrowerStatus::Blocked;
                let data = reason
                    .map(|r| ("reason".to_owned(), json!(r)))
                    .into_iter()
                    .collect();
                self.user_event(user_id, "user_blocked", data, now);
            }
        }
        self.render_borrower(user_id)
    }

    /// `PATCH /api/core/users/{userId}`: the merged body must still be a valid create body.
    pub fn patch_borrower(&mut self, user_id: &str, patch: &Value, form: bool) -> ApiResult<Value> {
        let b = self.borrower(user_id)?;
        if b.status == BorrowerStatus::Blocked {
            return Err(ApiError::conflict("Borrower is blocked"));
        }
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "Validation failed: request body must be a JSON object",
            ));
        }
        let mut merged = b.body.clone();
        merge_patch(&mut merged, patch);
        let input = validate_borrower(&merged, form)?;
        let old_nik = b.input.nik.clone();
        if input.nik != old_nik {
            if self.nik_index.contains_key(&input.nik) {
                return Err(ApiError::conflict(
                    "Borrower with this identity number already exists",
                ));
            }
            self.nik_index.remove(&old_nik);
            self.nik_index.insert(input.nik.clone(), user_id.to_owned());
        }
        let b = self.borrower_mut(user_id)?;
        b.body = without_nulls(&merged);
        b.input = input;
        self.render_borrower(user_id)
    }

    /// The borrower as `GET /api/core/users/{userId}` shows it, quirks included (CONTRACT §1):
    /// dates as timestamps, `prenuptial_agreement` as a boolean, documents as stored file ids,
    /// empty documents as `{}`.
    pub fn render_borrower(&self, user_id: &str) -> ApiResult<Value> {
        let b = self.borrower(user_id)?;
        let mut out = Map::new();
        out.insert("id".into(), json!(b.id));
        out.insert(
            "partner_id".into(),
            json!(self.config.partner_id.to_string()),
        );
        out.insert("status".into(), json!(b.status.as_str()));
        out.insert(
            "type".into(),
            b.body.get("type").cloned().unwrap_or(Value::Null),
        );
        if let Some(entity) = b.body.get("entity") {
            let mut e = entity.clone();
            dates_as_timestamps(&mut e, &["establishment_date", "deed_date"]);
            out.insert("entity".into(), e);
        }
        let mut s = b
            .body
            .get("authorised_signatory")
            .cloned()
            .unwrap_or(json!({}));
        dates_as_timestamps(&mut s, &["birth_date", "spouse_date_of_birth"]);
        if let Some(p) = s.get_mut("prenuptial_agreement") {
            *p = json!(p.as_str() == Some("true"));
        }
        if let Some(docs) = s.get_mut("documents").and_then(Value::as_object_mut) {
            render_documents(&b.id, docs);
        }
        out.insert("authorised_signatory".into(), s);
        out.insert("created_at".into(), json!(timestamp(b.created_at)));
        Ok(Value::Object(out))
    }
}

fn dates_as_timestamps(v: &mut Value, keys: &[&str]) {
    for key in keys {
        if let Some(d) = v.get_mut(*key)
            && let Some(s) = d.as_str()
        {
            *d = json!(format!("{s}T00:00:00.000Z"));
        }
    }
}

/// Files become the ids Finfra stored them under; `ktp` keeps only `number` and `file`, as in
/// the reference's example; the four usual kinds are always present, `{}` when empty.
fn render_documents(user_id: &str, docs: &mut Map<String, Value>) {
    for kind in ["ktp", "selfie", "npwp", "selfie_with_ktp"] {
        docs.entry(kind).or_insert_with(|| json!({}));
    }
    for (kind, doc) in docs.iter_mut() {
        let Some(d) = doc.as_object_mut() else {
            continue;
        };
        if let Some(file) = d.get("file").and_then(Value::as_str) {
            let id = file_id(user_id, kind, file);
            d.insert("file".into(), json!(id));
        }
        if kind == "ktp" {
            d.retain(|k, _| k == "number" || k == "file");
        }
    }
}

/// A stable 24-hex id for a stored file.
fn file_id(user_id: &str, kind: &str, file: &str) -> String {
    let a = magic::stable_hash(&format!("{user_id}/{kind}"));
    let b = magic::stable_hash(file);
    format!("{a:016x}{:08x}", b & 0xffff_ffff)
}
