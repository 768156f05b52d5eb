//! The demo's closing report on stdout: counts by kind, state and status; what happened to
//! the borrowers, the loans and the money; what Finfra (the sandbox) threw at the engine and
//! how many callbacks arrived; why the failures failed (and whether the mix asked for it);
//! and the SQL to look inside.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use finfra_sandbox::{Ledger, LoanSummary};
use rust_decimal::Decimal;
use store::StatusCount;
use worker::sample::Intent;

use super::db::Row;
use super::journeys::{Journey, ONBOARD, ORIGINATE};
use worker::inprocess::stopped;

/// Everything the report is made of.
pub struct Summary<'a> {
    pub journeys: &'a [Journey],
    pub seed: u64,
    pub elapsed: Duration,
    /// `None`: every workflow stopped; `Some(limit)`: the run was cut at `--timeout`.
    pub timed_out: Option<Duration>,
    pub counts: &'a [StatusCount],
    pub rows: &'a [Row],
    pub ledger: &'a Ledger,
    pub loans: &'a [LoanSummary],
    /// Finfra callbacks this run stored in `callback_inbox`.
    pub callbacks_stored: i64,
    /// The sandbox's largest callback reordering delay.
    pub reorder: Duration,
    pub journal_outcomes: &'a [(String, i64)],
    /// How to run SQL on this database: `sqlite3 finflow-demo.db` or `psql '<url>' -c`.
    pub sql_prefix: String,
    /// On a database that may hold other work (PostgreSQL), the condition that picks this
    /// run's workflows: `business_key like 'demo-ab12cd-%'`.
    pub only_this_run: Option<String>,
}

/// Where a label's text starts.
const INDENT: usize = 12;

impl Summary<'_> {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let done = match self.timed_out {
            None => format!("finished in {:.1} s", self.elapsed.as_secs_f64()),
            Some(limit) => format!(
                "TIMED OUT after {} s, work still in flight",
                limit.as_secs()
            ),
        };
        let _ = writeln!(
            out,
            "\nfinflow demo: {} journeys {done} (seed {}; --seed {} runs the same mix again)\n",
            self.journeys.len(),
            self.seed,
            self.seed
        );
        self.table(&mut out);
        let _ = writeln!(out);
        self.facts(&mut out);
        self.failures(&mut out);
        self.not_finished(&mut out);
        self.look_inside(&mut out);
        out
    }

    fn table(&self, out: &mut String) {
        let width = |f: &dyn Fn(&StatusCount) -> usize, header: &str| {
            self.counts
                .iter()
                .map(f)
                .max()
                .unwrap_or(0)
                .max(header.len())
        };
        let (kw, sw, tw) = (
            width(&|c| c.kind.len(), "KIND"),
            width(&|c| c.state.len(), "STATE"),
            width(&|c| c.status.as_str().len(), "STATUS"),
        );
        let line = |out: &mut String, kind: &str, state: &str, status: &str, count: &str| {
            let _ = writeln!(
                out,
                "  {kind:<kw$}  {state:<sw$}  {status:<tw$}  {count:>5}"
            );
        };
        line(out, "KIND", "STATE", "STATUS", "COUNT");
        for c in self.counts {
            line(
                out,
                &c.kind,
                &c.state,
                c.status.as_str(),
                &c.count.to_string(),
            );
        }
        let total: i64 = self.counts.iter().map(|c| c.count).sum();
        line(out, "total", "", "", &total.to_string());
    }

    fn facts(&self, out: &mut String) {
        let l = self.ledger;
        let onboardings: Vec<&Row> = self.rows.iter().filter(|r| r.kind == ONBOARD).collect();
        let count = |f: &dyn Fn(&Row) -> bool| onboardings.iter().filter(|r| f(r)).count();
        let approved = count(&|r| r.status == "completed" && r.state == "approved");
        let declined = count(&|r| r.status == "completed" && r.state == "declined");
        let rejected = count(&|r| r.status == "failed" && code(r) == "kyc_rejected");
        let other = onboardings.len() - approved - declined - rejected;
        let mut borrowers = format!(
            "{approved} approved, {declined} declined by the credit policy, {rejected} \
             rejected by Finfra at KYC"
        );
        if other > 0 {
            let _ = write!(borrowers, ", {other} otherwise");
        }
        labelled(out, "Borrowers", &borrowers);

        let loans: Vec<&Row> = self.rows.iter().filter(|r| r.kind == ORIGINATE).collect();
        let paid = loans
            .iter()
            .filter(|r| r.status == "completed" && r.state == "paid")
            .count();
        let bnpl = self
            .loans
            .iter()
            .filter(|l| l.status == "PAID" && l.kind == "BNPL")
            .count();
        let sum = |pick: fn(&LoanSummary) -> &str| -> Decimal {
            self.loans
                .iter()
                .filter_map(|l| pick(l).parse::<Decimal>().ok())
                .sum()
        };
        labelled(
            out,
            "Loans",
            &format!(
                "{paid} of {} paid in full ({} single-payment, {bnpl} BNPL): IDR {} repaid of \
                 IDR {} owed (principal, interest and fees)",
                loans.len(),
                paid.saturating_sub(bnpl),
                thousands(sum(|l| l.paid_amount.as_str())),
                thousands(sum(|l| l.total_amount.as_str())),
            ),
        );

        let disbursed: u64 = l.disbursements_accepted.values().sum();
        let twice = l
            .disbursements_accepted
            .values()
            .filter(|&&n| n > 1)
            .count();
        let once = if twice == 0 {
            "exactly one per disbursed loan".to_owned()
        } else {
            format!("{twice} loans disbursed more than once")
        };
        let payments: u64 = l.payments_applied.values().sum();
        labelled(
            out,
            "Money",
            &format!(
                "{disbursed} disbursements accepted by Finfra, {once}; {payments} repayments \
                 into virtual accounts by the simulated borrowers"
            ),
        );

        let requests: u64 = l.requests.values().sum();
        let fault = |kind: &str| l.faults_injected.get(kind).copied().unwrap_or(0);
        let limited: u64 = l.rate_limited.values().sum();
        labelled(
            out,
            "Faults",
            &format!(
                "{requests} requests to Finfra: {} answered 5xx, {} answered 429 with \
                 Retry-After, {} dropped without an answer after being applied; {} sent inside \
                 a Retry-After window",
                fault("500"),
                fault("429") + fault("429_without_retry_after") + limited,
                fault("ambiguous") + fault("ambiguous_timeout"),
                l.total_requests_inside_retry_after(),
            ),
        );

        let emitted: u64 = l.callbacks_emitted.values().sum();
        labelled(
            out,
            "Callbacks",
            &format!(
                "{emitted} events sent by Finfra, {} of them twice, up to {} ms out of order; \
                 {} stored by the receiver, each once (callback_inbox)",
                l.callbacks_duplicated,
                self.reorder.as_millis(),
                self.callbacks_stored,
            ),
        );

        let outcome = |name: &str| {
            self.journal_outcomes
                .iter()
                .find(|(o, _)| o == name)
                .map_or(0, |(_, n)| *n)
        };
        let rows: i64 = self.journal_outcomes.iter().map(|(_, n)| n).sum();
        labelled(
            out,
            "Journal",
            &format!(
                "{rows} steps recorded: {} retried later, {} ambiguous (Finfra read before \
                 anything is sent again), {} held by the fleet-wide pause after a 429, {} \
                 resumed by a callback",
                outcome("retry"),
                outcome("ambiguous"),
                outcome("rate_limited"),
                outcome("callback"),
            ),
        );
    }

    /// Whether the mix asked for this failure: the borrower was meant to be rejected or
    /// declined (or left to the score), or, for a loan, its onboarding did not approve.
    fn expected(&self, row: &Row, journeys: &HashMap<&str, &Journey>) -> bool {
        if row.kind == ORIGINATE {
            return !self.rows.iter().any(|r| {
                r.kind == ONBOARD && r.business_key == row.business_key && r.state == "approved"
            });
        }
        journeys
            .get(row.business_key.as_str())
            .is_some_and(|j| j.applicant.intent != Intent::Approve)
    }

    fn failures(&self, out: &mut String) {
        let journeys: HashMap<&str, &Journey> =
            self.journeys.iter().map(|j| (j.key.as_str(), j)).collect();
        let mut groups: BTreeMap<(bool, &str, &str), Vec<&Row>> = BTreeMap::new();
        for r in self.rows.iter().filter(|r| r.status == "failed") {
            let unexpected = !self.expected(r, &journeys);
            groups
                .entry((unexpected, r.kind.as_str(), code(r)))
                .or_default()
                .push(r);
        }
        if groups.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nFailures: the mix asks for KYC rejections (+reject) and credit-policy declines \
             (+lowscore,\n+overdue; business-single-payment also declines a score under 650); \
             a loan whose borrower\nwas not approved fails with the onboarding's reason."
        );
        for ((unexpected, kind, code), rows) in groups {
            let example = rows[0];
            let why = example.last_error.as_deref().unwrap_or("no error recorded");
            let why = why
                .strip_prefix(code)
                .and_then(|rest| rest.strip_prefix(':'))
                .unwrap_or(why)
                .trim();
            let _ = writeln!(
                out,
                "  {:>3} {kind} {code}{}, e.g. {}\n        {}",
                rows.len(),
                if unexpected { " (UNEXPECTED)" } else { "" },
                example.business_key,
                shorten(why, 90),
            );
        }
    }

    fn not_finished(&self, out: &mut String) {
        let open: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.status != "completed" && r.status != "failed")
            .collect();
        if open.is_empty() {
            return;
        }
        let attention = open
            .iter()
            .filter(|r| r.status.parse().is_ok_and(stopped))
            .count();
        let _ = writeln!(
            out,
            "\nNot finished: {} workflows ({attention} need attention), e.g.:",
            open.len()
        );
        for r in open.iter().take(5) {
            let _ = writeln!(
                out,
                "  {} {} {}/{} {}",
                r.kind,
                r.business_key,
                r.state,
                r.status,
                shorten(r.last_error.as_deref().unwrap_or(""), 80),
            );
        }
    }

    fn look_inside(&self, out: &mut String) {
        let example = self
            .rows
            .iter()
            .find(|r| r.kind == ORIGINATE && r.state == "paid")
            .or_else(|| self.rows.iter().find(|r| r.kind == ORIGINATE))
            .map_or("", |r| r.business_key.as_str());
        let filter = self
            .only_this_run
            .as_ref()
            .map_or_else(String::new, |only| format!(" where {only}"));
        let _ = writeln!(out, "\nLook inside (every step is in the database):");
        for (what, query) in [
            (
                "every workflow",
                format!(
                    "select kind, business_key, status, state from workflow_overview{filter} \
                     order by business_key, kind"
                ),
            ),
            (
                "the loans",
                format!(
                    "select business_key, loan_type, loan_status, total_amount, amount_paid \
                     from loans{filter}"
                ),
            ),
            (
                "one journey, step by step",
                format!(
                    "select w.kind, j.seq, j.step, j.action, j.outcome, j.finfra_status, j.error \
                     from step_journal j join workflows w on w.id = j.workflow_id \
                     where w.business_key = '{example}' order by w.kind, j.seq"
                ),
            ),
            (
                "retries, ambiguous answers, 429 pauses",
                match &self.only_this_run {
                    Some(only) => format!(
                        "select outcome, count(*) from step_journal j join workflows w \
                         on w.id = j.workflow_id where {only} group by outcome"
                    ),
                    None => {
                        "select outcome, count(*) from step_journal group by outcome".to_owned()
                    }
                },
            ),
            (
                "callbacks received",
                "select source, title, count(*) from callback_inbox group by source, title"
                    .to_owned(),
            ),
        ] {
            let _ = writeln!(out, "  # {what}\n  {} \"{query}\"", self.sql_prefix);
        }
    }
}

/// `Label      text`, the text wrapped at 100 columns under itself.
fn labelled(out: &mut String, label: &str, text: &str) {
    let mut line = format!("{label:<INDENT$}");
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > 100 {
            let _ = writeln!(out, "{line}");
            line = " ".repeat(INDENT);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}

/// The reason code a failed workflow's `last_error` starts with (`kyc_rejected: ...`), else
/// its state.
fn code(row: &Row) -> &str {
    row.last_error
        .as_deref()
        .and_then(|e| e.split_once(':'))
        .map(|(code, _)| code.trim())
        .filter(|code| !code.is_empty() && !code.contains(' '))
        .unwrap_or(row.state.as_str())
}

/// `12,345,678.00`.
fn thousands(amount: Decimal) -> String {
    let text = format!("{:.2}", amount.round_dp(2));
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest.to_owned()),
        None => ("", text),
    };
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{cents}")
}

/// The first line of `text`, at most `max` characters.
fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}...", line.chars().take(max - 3).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_get_thousands_separators() {
        assert_eq!(thousands(Decimal::new(123_456_789, 2)), "1,234,567.89");
        assert_eq!(thousands(Decimal::from(999)), "999.00");
        assert_eq!(thousands(Decimal::from(1000)), "1,000.00");
        assert_eq!(thousands(Decimal::from(-1000)), "-1,000.00");
        assert_eq!(thousands(Decimal::ZERO), "0.00");
    }

    #[test]
    fn labelled_text_wraps_under_itself() {
        let mut out = String::new();
        labelled(&mut out, "Loans", &"word ".repeat(30));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("Loans       word"));
        assert!(lines[1].starts_with("            word"));
        assert!(lines.iter().all(|l| l.len() <= 100));
    }

    #[test]
    fn failure_codes_come_from_last_error() {
        let row = |state: &str, error: Option<&str>| Row {
            kind: ONBOARD.to_owned(),
            business_key: "k".to_owned(),
            status: "failed".to_owned(),
            state: state.to_owned(),
            last_error: error.map(str::to_owned),
        };
        assert_eq!(
            code(&row("failed", Some("kyc_rejected: Finfra rejected"))),
            "kyc_rejected"
        );
        assert_eq!(code(&row("failed", Some("no code: here"))), "failed");
        assert_eq!(code(&row("failed", None)), "failed");
    }
}
