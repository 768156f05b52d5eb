//! Loan endpoints (CONTRACT §5).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, NaiveTime, Utc};
use serde_json::Value;

use crate::app::App;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::state::LoanFilter;
use crate::validate::loan::{bnpl_loan, single_field, single_loan, virtual_account};
use crate::validate::{Rule, empty, parse_date, parse_money};

const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: usize = 100;
const QUERY_KEYS: &[&str] = &[
    "userId",
    "uniqueId",
    "pageNumber",
    "pageSize",
    "startDate",
    "endDate",
    "startRangeAmount",
    "endRangeAmount",
];

/// A date filter: `YYYY-MM-DD` (start of that day; for `endDate`, the end of it) or RFC 3339.
fn parse_bound(s: &str, end: bool) -> Option<DateTime<Utc>> {
    if let Some(d) = parse_date(s) {
        let d = if end { d.succ_opt()? } else { d };
        return Some(d.and_time(NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parses the list query strictly: unknown or repeated parameters are `400`, as are a
/// `pageSize` above 100 and malformed dates or amounts. Every problem is reported.
pub(crate) fn loan_filter(query: Option<&str>) -> ApiResult<LoanFilter> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))?;
    let mut f = LoanFilter {
        page_number: 1,
        page_size: DEFAULT_PAGE_SIZE,
        ..LoanFilter::default()
    };
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (key, value) in &pairs {
        if seen.contains(key) {
            problems.push(format!("{key} is given more than once"));
            continue;
        }
        seen.push(key.clone());
        let bad = |what: &str| format!("{key} {what}");
        match key.as_str() {
            "userId" => f.user_id = Some(value.clone()),
            "uniqueId" if value.len() < 6 => problems.push(bad("must be at least 6 characters")),
            "uniqueId" => f.unique_id = Some(value.clone()),
            "pageNumber" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => f.page_number = n,
                _ => problems.push(bad("must be an integer of at least 1")),
            },
            "pageSize" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => f.page_size = n,
                Ok(n) if n > MAX_PAGE_SIZE => {
                    problems.push(bad(&format!("must be at most {MAX_PAGE_SIZE}")));
                }
                _ => problems.push(bad("must be an integer from 1 to 100")),
            },
            "startDate" | "endDate" => match parse_bound(value, key == "endDate") {
                Some(t) if key == "startDate" => f.from = Some(t),
                Some(t) => f.until = Some(t),
                None => problems.push(bad("must be a date (YYYY-MM-DD) or an RFC 3339 timestamp")),
            },
            "startRangeAmount" | "endRangeAmount" => match parse_money(value) {
                Some(a) if key == "startRangeAmount" => f.min_amount = Some(a),
                Some(a) => f.max_amount = Some(a),
                None => problems.push(bad("must be a decimal amount, e.g. 5000000.00")),
            },
            _ => problems.push(format!(
                "{key} is not a known query parameter (known: {})",
                QUERY_KEYS.join(", ")
            )),
        }
    }
    if let (Some(a), Some(b)) = (f.from, f.until)
        && a >= b
    {
        problems.push("startDate must be before endDate".to_owned());
    }
    if let (Some(a), Some(b)) = (f.min_amount, f.max_amount)
        && a > b
    {
        problems.push("startRangeAmount must not exceed endRangeAmount".to_owned());
    }
    if problems.is_empty() {
        Ok(f)
    } else {
        Err(ApiError::validation(&problems))
    }
}

pub(super) async fn list(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let filter = loan_filter(query.as_deref())?;
    Ok(Json(app.with_state(|s| s.list_loans(&filter))))
}

pub(super) async fn create_single(
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let input = single_loan(&body.value, body.form)?;
    app.act(|s| s.create_single_loan(&user_id, input, Utc::now()))
        .map(Json)
}

pub(super) async fn create_bnpl(
    State(app): State<Arc<App>>,
    Path(user_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let input = bnpl_loan(&body.value, body.form)?;
    app.act(|s| s.create_bnpl_loan(&user_id, input, Utc::now()))
        .map(Json)
}

pub(super) async fn details(
    State(app): State<Arc<App>>,
    Path(unique_id): Path<String>,
) -> ApiResult<Json<Value>> {
    if unique_id.len() < 6 {
        return Err(ApiError::bad_request(
            "Validation failed: uniqueId must be at least 6 characters",
        ));
    }
    app.with_state(|s| s.loan(&unique_id).map(crate::state::Loan::render))
        .map(Json)
}

/// `POST /api/core/loans/signing/initiate`: body `{"unique_id"}` (a flat body, so also
/// accepted form-encoded).
pub(super) async fn initiate_signing(
    State(app): State<Arc<App>>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let unique_id = single_field(&body.value, body.form, "unique_id", Rule::UniqueId)?;
    app.act(|s| s.initiate_signing(&unique_id, Utc::now()))
        .map(Json)
}

pub(super) async fn disburse(
    State(app): State<Arc<App>>,
    Path(unique_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    empty(&body.value)?;
    app.act(|s| s.disburse(&unique_id)).map(Json)
}

pub(super) async fn reject(
    State(app): State<Arc<App>>,
    Path(unique_id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let reason = single_field(&body.value, body.form, "reason", Rule::Text)?;
    app.act(|s| s.reject_loan(&unique_id, &reason, Utc::now()))
        .map(Json)
}

pub(super) async fn request_virtual_account(
    State(app): State<Arc<App>>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (unique_id, bank_code) = virtual_account(&body.value, body.form)?;
    app.act(|s| s.request_virtual_account(&unique_id, &bank_code, Utc::now()))
        .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_above_100_is_refused() {
        let e = loan_filter(Some("pageSize=101")).unwrap_err();
        assert!(
            e.message.contains("pageSize must be at most 100"),
            "{}",
            e.message
        );
        assert_eq!(loan_filter(Some("pageSize=100")).unwrap().page_size, 100);
        assert_eq!(loan_filter(None).unwrap().page_size, 10);
    }

    #[test]
    fn unknown_and_malformed_parameters_are_all_reported() {
        let e = loan_filter(Some("page=2&startRangeAmount=abc&uniqueId=abc")).unwrap_err();
        assert!(e.message.contains("page is not a known query parameter"));
        assert!(
            e.message
                .contains("startRangeAmount must be a decimal amount")
        );
        assert!(e.message.contains("uniqueId must be at least 6 characters"));
    }

    #[test]
    fn end_date_includes_the_whole_day() {
        let f = loan_filter(Some("startDate=2025-01-01&endDate=2025-01-31")).unwrap();
        assert_eq!(f.until.unwrap().to_rfc3339(), "2025-02-01T00:00:00+00:00");
    }
}
