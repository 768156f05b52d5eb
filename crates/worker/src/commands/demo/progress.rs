//! Live progress on stderr: on a terminal, one bar per workflow kind (how many have
//! finished, and the states the others are in) and a line of what the sandbox has seen,
//! redrawn a few times a second; elsewhere (a pipe, CI) one plain line every few seconds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use finfra_sandbox::Ledger;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use store::StatusCount;

use worker::inprocess::stopped;

/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    multi: MultiProgress,
    /// Per kind, in the order given.
    bars: Vec<(String, ProgressBar)>,
    finfra: ProgressBar,
    started: Instant,
    last_plain: Option<Instant>,
}

impl Progress {
    /// A bar for each `(kind, how many were submitted)`.
    pub fn new(kinds: &[(&str, u64)]) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let bar_style =
            ProgressStyle::with_template("{prefix:>16} [{bar:24}] {pos:>4}/{len:<4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let line_style = ProgressStyle::with_template("{prefix:>16} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = kinds
            .iter()
            .map(|(kind, total)| {
                let bar = multi.add(ProgressBar::new(*total));
                bar.set_style(bar_style.clone());
                bar.set_prefix((*kind).to_owned());
                ((*kind).to_owned(), bar)
            })
            .collect();
        let finfra = multi.add(ProgressBar::new_spinner());
        finfra.set_style(line_style);
        finfra.set_prefix("finfra sandbox");
        Self {
            multi,
            bars,
            finfra,
            started: Instant::now(),
            last_plain: None,
        }
    }

    /// Shows the latest counts (this run's workflows) and ledger.
    pub fn update(&mut self, counts: &[StatusCount], ledger: &Ledger) {
        let by_kind = per_kind(counts);
        if self.multi.is_hidden() {
            self.plain(&by_kind);
            return;
        }
        for (kind, bar) in &self.bars {
            let Some(kind) = by_kind.get(kind.as_str()) else {
                bar.set_message("waiting for the first step");
                continue;
            };
            bar.set_position(kind.stopped);
            bar.set_message(kind.states());
        }
        self.finfra.set_message(finfra_line(ledger, self.started));
    }

    /// Leaves the last display on screen.
    pub fn finish(&self) {
        for (_, bar) in &self.bars {
            bar.abandon();
        }
        self.finfra.abandon();
    }

    fn plain(&mut self, by_kind: &BTreeMap<&str, KindCounts>) {
        if self.last_plain.is_some_and(|t| t.elapsed() < PLAIN_EVERY) {
            return;
        }
        self.last_plain = Some(Instant::now());
        let kinds: Vec<String> = self
            .bars
            .iter()
            .map(|(kind, bar)| {
                let stopped = by_kind.get(kind.as_str()).map_or(0, |k| k.stopped);
                format!("{kind} {stopped}/{} finished", bar.length().unwrap_or(0))
            })
            .collect();
        eprintln!(
            "finflow demo: {:>3} s: {}",
            self.started.elapsed().as_secs(),
            kinds.join(", ")
        );
    }
}

/// One kind's counts.
#[derive(Default)]
struct KindCounts {
    stopped: u64,
    /// `(count, state, finished)`.
    states: Vec<(u64, String, bool)>,
}

impl KindCounts {
    /// `12 paid, 3 failed | 5 repaying, 2 await_signed`: finished states first, then the
    /// ones in flight, each by count.
    fn states(&self) -> String {
        let mut states = self.states.clone();
        states.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)).then(a.1.cmp(&b.1)));
        let part = |finished: bool| {
            states
                .iter()
                .filter(|s| s.2 == finished)
                .map(|(n, state, _)| format!("{n} {state}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (part(true), part(false)) {
            (done, flight) if flight.is_empty() => done,
            (done, flight) if done.is_empty() => format!("in flight: {flight}"),
            (done, flight) => format!("{done} | in flight: {flight}"),
        }
    }
}

fn per_kind(counts: &[StatusCount]) -> BTreeMap<&str, KindCounts> {
    let mut by_kind: BTreeMap<&str, KindCounts> = BTreeMap::new();
    for c in counts {
        let kind = by_kind.entry(c.kind.as_str()).or_default();
        let n = u64::try_from(c.count).unwrap_or(0);
        let finished = stopped(c.status);
        if finished {
            kind.stopped += n;
        }
        // A state can appear under several statuses (running, waiting): one entry each.
        match kind
            .states
            .iter_mut()
            .find(|(_, state, done)| *state == c.state && *done == finished)
        {
            Some(entry) => entry.0 += n,
            None => kind.states.push((n, c.state.clone(), finished)),
        }
    }
    by_kind
}

/// `1234 requests (31 5xx, 4 429, 12 dropped) | 512 callbacks (+48 duplicates) | 61 payments | 14 s`
fn finfra_line(ledger: &Ledger, started: Instant) -> String {
    let requests: u64 = ledger.requests.values().sum();
    let fault = |kind: &str| ledger.faults_injected.get(kind).copied().unwrap_or(0);
    let limited: u64 = ledger.rate_limited.values().sum();
    let payments: u64 = ledger.payments_applied.values().sum();
    format!(
        "{requests} requests ({} 5xx, {} 429, {} dropped after applying) | {} callbacks (+{} duplicates) | {payments} repayments | {} s",
        fault("500"),
        fault("429") + fault("429_without_retry_after") + limited,
        fault("ambiguous") + fault("ambiguous_timeout"),
        ledger.callbacks_emitted.values().sum::<u64>(),
        ledger.callbacks_duplicated,
        started.elapsed().as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use store::Status;

    use super::*;

    fn count(kind: &str, state: &str, status: Status, count: i64) -> StatusCount {
        StatusCount {
            kind: kind.to_owned(),
            state: state.to_owned(),
            status,
            count,
        }
    }

    #[test]
    fn finished_states_come_first_then_the_ones_in_flight() {
        let counts = [
            count("originate-loan", "paid", Status::Completed, 3),
            count("originate-loan", "repaying", Status::Waiting, 2),
            count("originate-loan", "repaying", Status::Running, 1),
            count("originate-loan", "failed", Status::Failed, 5),
            count("originate-loan", "await_signed", Status::Waiting, 4),
        ];
        let by_kind = per_kind(&counts);
        let loans = &by_kind["originate-loan"];
        assert_eq!(loans.stopped, 8);
        assert_eq!(
            loans.states(),
            "5 failed, 3 paid | in flight: 4 await_signed, 3 repaying"
        );
    }
}
