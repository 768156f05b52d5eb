//! Credit bureau bodies (CONTRACT §4): the score report, credit history, and the CLIK and
//! AFPI credit reports.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::lenient::{self, string_enum};

string_enum! {
    /// A credit bureau, as named in the `credit-source` header (lower case on the wire).
    pub enum CreditSource {
        Afpi => "afpi",
        Clik => "clik",
    }
}

impl CreditSource {
    /// The `credit-source` header value for a set of sources, spelled as the reference
    /// does (`afpi`, `clik` or `afpi,clik`): each source once, known ones in that order
    /// whatever the order given (unknown ones, which the client refuses to send, after).
    /// An empty slice gives `""`; send no header at all instead to get Finfra's default (both).
    pub fn header_value(sources: &[CreditSource]) -> String {
        let mut names: Vec<&str> = Self::KNOWN
            .iter()
            .copied()
            .filter(|known| sources.iter().any(|s| s.as_str() == *known))
            .collect();
        for source in sources {
            if !names.contains(&source.as_str()) {
                names.push(source.as_str());
            }
        }
        names.join(",")
    }
}

/// Body of `POST /api/core/users/score-report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreReportRequest {
    pub user_id: String,
}

string_enum! {
    /// Credit grade, `A` (best) to `E`.
    pub enum CreditGrade {
        A => "A",
        B => "B",
        C => "C",
        D => "D",
        E => "E",
    }
}

/// Answer of the score report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreReport {
    pub user_id: String,
    /// 300 to 900.
    pub score: u32,
    pub grade: CreditGrade,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub sources: Vec<SourceSummary>,
    #[serde(with = "lenient::timestamp")]
    pub generated_at: DateTime<Utc>,
}

/// One bureau's contribution to a score report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub source: CreditSource,
    pub active_loans: u32,
    pub overdue_loans: u32,
    pub max_days_past_due: u32,
    #[serde(with = "lenient::money")]
    pub outstanding_amount: Decimal,
}

string_enum! {
    /// Standing of one loan in a bureau's records.
    pub enum CreditRecordStatus {
        Current => "CURRENT",
        Late => "LATE",
        WrittenOff => "WRITTEN_OFF",
    }
}

/// One loan in a bureau's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRecord {
    /// The lender.
    pub provider: String,
    #[serde(with = "lenient::money")]
    pub loan_amount: Decimal,
    #[serde(with = "lenient::money")]
    pub outstanding_amount: Decimal,
    pub status: CreditRecordStatus,
    pub days_past_due: u32,
}

/// Answer of `GET /api/core/users/{identityNumber}/credit-history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditHistory {
    pub identity_number: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub records: Vec<CreditRecord>,
}

/// Body of `POST /api/core/users/clik/credit-report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClikCreditReportRequest {
    pub user_id: String,
}

string_enum! {
    /// `INDIVIDUAL` for PERSONAL borrowers, `COMPANY` for BUSINESS ones.
    pub enum ReportType {
        Individual => "INDIVIDUAL",
        Company => "COMPANY",
    }
}

/// Answer of the CLIK credit report. The report itself is CLIK's document, which the
/// contract does not describe: it is kept as raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClikCreditReport {
    pub user_id: String,
    pub report_type: ReportType,
    #[serde(default)]
    pub report: serde_json::Value,
}

/// Answer of `GET /api/core/users/{identityNumber}/{reffid}/afpi/credit-report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfpiCreditReport {
    pub identity_number: String,
    pub reffid: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub records: Vec<CreditRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_value_joins_in_order() {
        assert_eq!(
            CreditSource::header_value(&[CreditSource::Afpi, CreditSource::Clik]),
            "afpi,clik"
        );
        assert_eq!(CreditSource::header_value(&[CreditSource::Clik]), "clik");
    }

    #[test]
    fn header_value_is_one_of_the_documented_spellings() {
        use CreditSource::{Afpi, Clik};
        assert_eq!(CreditSource::header_value(&[Clik, Afpi]), "afpi,clik");
        assert_eq!(CreditSource::header_value(&[Afpi, Afpi]), "afpi");
        assert_eq!(CreditSource::header_value(&[Clik, Afpi, Clik]), "afpi,clik");
    }

    #[test]
    fn score_report_reads_money_as_string_or_number() {
        let r: ScoreReport = serde_json::from_value(json!({
            "user_id": "6a41ff87dda4eefd0b7b0300", "score": 712, "grade": "B",
            "sources": [
                {"source": "afpi", "active_loans": 1, "overdue_loans": 0, "max_days_past_due": 0, "outstanding_amount": "1500000.00"},
                {"source": "clik", "active_loans": 2, "overdue_loans": 1, "max_days_past_due": 12, "outstanding_amount": 250000}
            ],
            "generated_at": "2026-01-02T03:04:05Z"
        }))
        .unwrap();
        assert_eq!(r.grade, CreditGrade::B);
        assert_eq!(
            r.sources[0].outstanding_amount,
            Decimal::new(150_000_000, 2)
        );
        assert_eq!(r.sources[1].outstanding_amount, Decimal::from(250_000));
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(out["sources"][0]["outstanding_amount"], json!("1500000.00"));
        assert_eq!(out["sources"][1]["outstanding_amount"], json!("250000"));
    }

    #[test]
    fn credit_history_records() {
        let h: CreditHistory = serde_json::from_value(json!({
            "identity_number": "3275062009921981",
            "records": [{"provider": "X", "loan_amount": "1000000", "outstanding_amount": "0",
                         "status": "WRITTEN_OFF", "days_past_due": 200}]
        }))
        .unwrap();
        assert_eq!(h.records[0].status, CreditRecordStatus::WrittenOff);
        let c: ClikCreditReport = serde_json::from_value(json!({
            "user_id": "u", "report_type": "COMPANY", "report": {"anything": [1, 2]}
        }))
        .unwrap();
        assert_eq!(c.report_type, ReportType::Company);
        assert_eq!(c.report["anything"][1], json!(2));
    }
}
