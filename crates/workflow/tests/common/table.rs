//! The table runner, for any machine: each row is a state, an event and the expected state
//! name and action kind (plus, where it matters, the status, the request, or a check).

use chrono::{DateTime, Utc};

use workflow::{Action, ActionKind, CallPurpose, Event, Handled, Status, Transition, Workflow};

use super::t0;

/// One row: from `state`, on `event` at `now`, expect `to` and an action of kind `action`.
pub struct Row<W: Workflow> {
    pub name: String,
    pub state: W::State,
    pub event: Event,
    pub now: DateTime<Utc>,
    to: &'static str,
    action: ActionKind,
    status: Option<Status>,
    request: Option<&'static str>,
    purpose: Option<CallPurpose>,
    handled: Option<Handled>,
    checks: Vec<fn(&Transition<W::State>)>,
}

pub fn row<W: Workflow>(
    name: &str,
    state: W::State,
    event: Event,
    to: &'static str,
    action: ActionKind,
) -> Row<W> {
    Row {
        name: name.to_owned(),
        state,
        event,
        now: t0(),
        to,
        action,
        status: None,
        request: None,
        purpose: None,
        handled: None,
        checks: Vec::new(),
    }
}

impl<W: Workflow> Row<W> {
    /// Decides at `now` instead of `t0`.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    pub fn status(mut self, status: Status) -> Self {
        self.status = Some(status);
        self
    }

    /// The `Call`'s request name (`create_borrower`, `get_kyc_submission`, ...).
    pub fn request(mut self, name: &'static str) -> Self {
        self.request = Some(name);
        self
    }

    pub fn purpose(mut self, purpose: CallPurpose) -> Self {
        self.purpose = Some(purpose);
        self
    }

    pub fn ignored(mut self) -> Self {
        self.handled = Some(Handled::Ignored);
        self
    }

    pub fn check(mut self, check: fn(&Transition<W::State>)) -> Self {
        self.checks.push(check);
        self
    }

    pub fn decide(&self) -> Transition<W::State> {
        W::decide(&self.state, &self.event, self.now)
    }

    /// Runs the row; `Err` says what differs.
    fn verify(&self) -> Result<(), String> {
        let t = self.decide();
        let summary = W::summary(&t.state);
        let mut problems = Vec::new();
        if summary.state != self.to {
            problems.push(format!("state {} (expected {})", summary.state, self.to));
        }
        if t.action.kind() != self.action {
            problems.push(format!(
                "action {:?} (expected {:?})",
                t.action.kind(),
                self.action
            ));
        }
        if let Some(status) = self.status
            && summary.status != status
        {
            problems.push(format!("status {} (expected {status})", summary.status));
        }
        if let Some(name) = self.request {
            let got = t.action.request().map(|r| r.name());
            if got != Some(name) {
                problems.push(format!("request {got:?} (expected {name})"));
            }
        }
        if let Some(purpose) = self.purpose {
            let got = match &t.action {
                Action::Call { purpose, .. } => Some(*purpose),
                _ => None,
            };
            if got != Some(purpose) {
                problems.push(format!("purpose {got:?} (expected {purpose:?})"));
            }
        }
        if let Some(handled) = self.handled
            && t.handled != handled
        {
            problems.push(format!("handled {:?} (expected {handled:?})", t.handled));
        }
        if !problems.is_empty() {
            return Err(format!(
                "{}: {} — note: {}",
                self.name,
                problems.join(", "),
                t.note
            ));
        }
        for check in &self.checks {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&t)));
            if outcome.is_err() {
                return Err(format!("{}: a check failed — note: {}", self.name, t.note));
            }
        }
        Ok(())
    }
}

/// Runs every row, then reports all the rows that failed at once.
pub fn run<W: Workflow>(rows: &[Row<W>]) {
    let failures: Vec<String> = rows.iter().filter_map(|r| r.verify().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
