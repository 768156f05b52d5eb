//! Credit bureaus and verification providers (CONTRACT §4): score reports, credit history,
//! CLIK and AFPI reports, hub checks, RDF biometric verification. Outcomes come from the
//! magic values (see the crate docs).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{State, money, timestamp};
use crate::callbacks::{StatusEvent, status_callback};
use crate::error::ApiResult;
use crate::magic::{self, Bureau, Tags};

const LENDERS: &[&str] = &["KREDIT PINTAR", "AKULAKU", "KREDIVO", "EASYCASH", "ADAKAMI"];

impl State {
    /// The tags of the borrower with this NIK, if any: a bureau also knows people who are not
    /// our borrowers (they get the defaults).
    fn tags_for_nik(&self, nik: &str) -> Tags {
        self.nik_index
            .get(nik)
            .and_then(|id| self.borrowers.get(id))
            .map(super::Borrower::tags)
            .unwrap_or_default()
    }

    /// `POST /api/core/users/score-report`, plus a `credit_score` callback.
    pub fn score_report(
        &mut self,
        user_id: &str,
        sources: &[&str],
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let b = self.borrower(user_id)?;
        let tags = b.tags();
        let nik = b.input.nik.clone();
        let score = magic::score(&nik, tags);
        let grade = magic::grade(score);
        let bureau = magic::bureau(&nik, tags);
        let sources: Vec<Value> = sources
            .iter()
            .map(|s| {
                json!({
                    "source": s,
                    "active_loans": bureau.active_loans,
                    "overdue_loans": bureau.overdue_loans,
                    "max_days_past_due": bureau.max_days_past_due,
                    "outstanding_amount": money(bureau.outstanding),
                })
            })
            .collect();
        let n = status_callback(
            StatusEvent {
                title: "credit_score".into(),
                user_id,
                identity_number: Some(&nik),
                kyc_id: b.kyc_id.as_deref(),
                status: b.status.as_str(),
                data: [
                    ("score".to_owned(), json!(score)),
                    ("grade".to_owned(), json!(grade)),
                ]
                .into_iter()
                .collect(),
                ..StatusEvent::default()
            },
            now,
        );
        self.notify(n);
        Ok(json!({
            "user_id": user_id,
            "score": score,
            "grade": grade,
            "sources": sources,
            "generated_at": timestamp(now),
        }))
    }

    /// The records a bureau holds on a NIK (credit history, AFPI report).
    pub fn credit_records(&self, nik: &str) -> Vec<Value> {
        let Bureau {
            active_loans,
            overdue_loans,
            max_days_past_due,
            outstanding,
        } = magic::bureau(nik, self.tags_for_nik(nik));
        let n = rust_decimal::Decimal::from(active_loans.max(1));
        (0..active_loans)
            .map(|i| {
                let late = i < overdue_loans;
                let each = outstanding / n;
                json!({
                    "provider": LENDERS[i as usize % LENDERS.len()],
                    "loan_amount": money((each * rust_decimal::Decimal::from(2)).round_dp(2)),
                    "outstanding_amount": money(each.round_dp(2)),
                    "status": if late { "LATE" } else { "CURRENT" },
                    "days_past_due": if late { max_days_past_due } else { 0 },
                })
            })
            .collect()
    }

    /// `POST /api/core/users/clik/credit-report`.
    pub fn clik_report(&self, user_id: &str) -> ApiResult<Value> {
        let b = self.borrower(user_id)?;
        let tags = b.tags();
        let score = magic::score(&b.input.nik, tags);
        let bureau = magic::bureau(&b.input.nik, tags);
        let mut report = json!({
            "score": score,
            "grade": magic::grade(score),
            "active_loans": bureau.active_loans,
            "overdue_loans": bureau.overdue_loans,
            "max_days_past_due": bureau.max_days_past_due,
            "outstanding_amount": money(bureau.outstanding),
        });
        let report_type = if b.input.business {
            report["company_name"] = b
                .body
                .pointer("/entity/name")
                .cloned()
                .unwrap_or(Value::Null);
            "COMPANY"
        } else {
            report["full_name"] = json!(b.input.full_name);
            "INDIVIDUAL"
        };
        Ok(json!({"user_id": user_id, "report_type": report_type, "report": report}))
    }

    /// `GET /api/core/users/{userId}/status/{callbackTitle}`.
    pub fn hub_check(
        &mut self,
        user_id: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Value> {
        let b = self.borrower_mut(user_id)?;
        let tags = b.tags();
        let polls = b.hub_polls.entry(provider.to_owned()).or_default();
        *polls += 1;
        let status = if tags.hubfail {
            "FAILED"
        } else if tags.hubpending && *polls == 1 {
            "PENDING"
        } else {
            "PASSED"
        };
        Ok(json!({
            "user_id": user_id,
            "provider": provider,
            "status": status,
            "checked_at": timestamp(now),
        }))
    }

    /// `POST /api/core/users/{userId}/rdf/verify-biometric`.
    pub fn rdf_verify(&mut self, user_id: &str) -> ApiResult<Value> {
        let b = self.borrower_mut(user_id)?;
        let tags = b.tags();
        b.rdf_calls += 1;
        let status = if tags.rdffail {
            "FAILED"
        } else if tags.rdfpending && b.rdf_calls == 1 {
            "PENDING"
        } else {
            "VERIFIED"
        };
        Ok(json!({"user_id": user_id, "status": status}))
    }
}
