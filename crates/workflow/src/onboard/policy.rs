//! The credit policy decision: the definition's `[credit]` rules against what the bureaus
//! said. Pure, and the only place the rules live.

use finfra_api::model::credit::{CreditHistory, CreditRecordStatus, ScoreReport};

use crate::definition::CreditPolicy;

use super::state::CreditFacts;

/// The facts of a score report (overdue loans summed over bureaus, the worst days past due).
#[must_use]
pub fn from_score_report(report: &ScoreReport) -> CreditFacts {
    CreditFacts {
        score: report.score,
        grade: report.grade.clone(),
        sources: report.sources.iter().map(|s| s.source.clone()).collect(),
        overdue_loans: report.sources.iter().map(|s| s.overdue_loans).sum(),
        max_days_past_due: report
            .sources
            .iter()
            .map(|s| s.max_days_past_due)
            .max()
            .unwrap_or(0),
        history_bad_records: None,
        history_max_days_past_due: None,
    }
}

/// Adds the credit history to the facts.
pub fn add_history(facts: &mut CreditFacts, history: &CreditHistory) {
    let bad = history
        .records
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                CreditRecordStatus::Late | CreditRecordStatus::WrittenOff
            )
        })
        .count();
    facts.history_bad_records = Some(u32::try_from(bad).unwrap_or(u32::MAX));
    facts.history_max_days_past_due = Some(
        history
            .records
            .iter()
            .map(|r| r.days_past_due)
            .max()
            .unwrap_or(0),
    );
}

/// Each rule of `policy` the facts fail, in words; empty means approve.
///
/// Overdue loans are the larger of the score report's count and the history's late or
/// written-off records (the two sources overlap, so they are not added); days past due are
/// the worst of both.
#[must_use]
pub fn decline_reasons(policy: &CreditPolicy, facts: &CreditFacts) -> Vec<String> {
    let mut reasons = Vec::new();
    if facts.score < policy.min_score {
        reasons.push(format!(
            "credit score {} is below the minimum {}",
            facts.score, policy.min_score
        ));
    }
    let overdue = facts
        .overdue_loans
        .max(facts.history_bad_records.unwrap_or(0));
    if overdue > policy.max_overdue_loans {
        reasons.push(format!(
            "{overdue} overdue loans (at most {} allowed)",
            policy.max_overdue_loans
        ));
    }
    let days = facts
        .max_days_past_due
        .max(facts.history_max_days_past_due.unwrap_or(0));
    if days > policy.max_days_past_due {
        reasons.push(format!(
            "{days} days past due (at most {} allowed)",
            policy.max_days_past_due
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use finfra_api::model::credit::{CreditGrade, CreditSource};

    use super::*;

    fn policy() -> CreditPolicy {
        CreditPolicy {
            sources: vec![CreditSource::Afpi],
            min_score: 600,
            max_overdue_loans: 0,
            max_days_past_due: 30,
            history: true,
        }
    }

    fn facts(score: u32, overdue: u32, days: u32) -> CreditFacts {
        CreditFacts {
            score,
            grade: CreditGrade::B,
            sources: vec![CreditSource::Afpi],
            overdue_loans: overdue,
            max_days_past_due: days,
            history_bad_records: None,
            history_max_days_past_due: None,
        }
    }

    #[test]
    fn each_rule_declines_on_its_own() {
        assert!(decline_reasons(&policy(), &facts(600, 0, 30)).is_empty());
        assert_eq!(
            decline_reasons(&policy(), &facts(599, 0, 0)),
            ["credit score 599 is below the minimum 600"]
        );
        assert_eq!(
            decline_reasons(&policy(), &facts(700, 1, 0)),
            ["1 overdue loans (at most 0 allowed)"]
        );
        assert_eq!(
            decline_reasons(&policy(), &facts(700, 0, 31)),
            ["31 days past due (at most 30 allowed)"]
        );
        assert_eq!(decline_reasons(&policy(), &facts(420, 2, 95)).len(), 3);
    }

    #[test]
    fn the_history_counts_too() {
        let mut f = facts(700, 0, 0);
        f.history_bad_records = Some(2);
        f.history_max_days_past_due = Some(95);
        assert_eq!(decline_reasons(&policy(), &f).len(), 2);
    }
}
