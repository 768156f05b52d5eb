//! Fault injection: one seeded draw per faultable request decides its fate.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Faults;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `500` instead of the operation.
    Error500,
    /// `429` instead of the operation, with this `Retry-After` or none.
    TooManyRequests(Option<u64>),
    /// Apply, then close the connection without an answer.
    Ambiguous,
    /// Apply, then answer only after this long.
    AmbiguousTimeout(Duration),
}

impl Fault {
    /// Key in [`crate::Ledger::faults_injected`].
    pub fn name(self) -> &'static str {
        match self {
            Fault::Error500 => "500",
            Fault::TooManyRequests(Some(_)) => "429",
            Fault::TooManyRequests(None) => "429_without_retry_after",
            Fault::Ambiguous => "ambiguous",
            Fault::AmbiguousTimeout(_) => "ambiguous_timeout",
        }
    }
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub faults: Faults,
    rng: StdRng,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        Self {
            rng: StdRng::seed_from_u64(faults.seed),
            faults,
        }
    }

    /// Replaces the faults and restarts the RNG from their seed.
    pub fn set(&mut self, faults: Faults) {
        *self = Self::new(faults);
    }

    /// Draws the extra latency and the fault of one request to `endpoint` (its ledger key),
    /// with that endpoint's own rates where [`Faults::endpoints`] gives some.
    pub fn draw(&mut self, endpoint: &str) -> (Option<Duration>, Option<Fault>) {
        // Always the same three draws, so a request's fate depends only on its position.
        let u: f64 = self.rng.random();
        let r: f64 = self.rng.random();
        let retry_after: u64 = self.rng.random_range(1..=2);
        let f = &self.faults;
        let own = f.endpoints.get(endpoint).copied().unwrap_or_default();
        let pick = |own: Option<f64>, general: f64| own.unwrap_or(general);
        let latency = f.latency.map(|(min, max)| {
            if max <= min {
                min
            } else {
                min + (max - min).mul_f64(u)
            }
        });
        let mut edge = 0.0;
        let mut hit = |rate: f64| {
            edge += rate.max(0.0);
            r < edge
        };
        let fault = if hit(pick(own.error_500_rate, f.error_500_rate)) {
            Some(Fault::Error500)
        } else if hit(pick(own.error_429_rate, f.error_429_rate)) {
            Some(Fault::TooManyRequests(Some(retry_after)))
        } else if hit(pick(
            own.error_429_without_retry_after_rate,
            f.error_429_without_retry_after_rate,
        )) {
            Some(Fault::TooManyRequests(None))
        } else if hit(pick(own.ambiguous_rate, f.ambiguous_rate)) {
            Some(Fault::Ambiguous)
        } else if hit(pick(own.ambiguous_timeout_rate, f.ambiguous_timeout_rate)) {
            Some(Fault::AmbiguousTimeout(f.ambiguous_hold))
        } else {
            None
        };
        (latency, fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EndpointFaults;

    #[test]
    fn no_faults_by_default() {
        let mut f = FaultState::new(Faults::default());
        assert!((0..1000).all(|_| f.draw("GET /api/core/loans") == (None, None)));
    }

    #[test]
    fn rates_are_roughly_honoured_and_reproducible() {
        let faults = Faults {
            seed: 42,
            error_500_rate: 0.1,
            ambiguous_rate: 0.2,
            ..Faults::default()
        };
        let draws = |n| {
            let mut f = FaultState::new(faults.clone());
            (0..n)
                .map(|_| f.draw("POST /api/core/users").1)
                .collect::<Vec<_>>()
        };
        let all = draws(10_000);
        assert_eq!(all, draws(10_000));
        let count = |x| all.iter().filter(|f| **f == Some(x)).count();
        assert!((800..1200).contains(&count(Fault::Error500)));
        assert!((1700..2300).contains(&count(Fault::Ambiguous)));
    }

    #[test]
    fn everything_fails_at_rate_one() {
        let mut f = FaultState::new(Faults {
            error_500_rate: 1.0,
            ..Faults::default()
        });
        assert!((0..100).all(|_| f.draw("POST /api/core/users").1 == Some(Fault::Error500)));
    }

    #[test]
    fn an_endpoint_may_have_rates_of_its_own() {
        const VA: &str = "POST /api/core/virtual-account/request";
        let faults = Faults {
            seed: 3,
            error_500_rate: 0.1,
            ..Faults::default()
        }
        .with_endpoint(
            VA,
            EndpointFaults {
                ambiguous_rate: Some(0.5),
                ..EndpointFaults::default()
            },
        );
        let mut f = FaultState::new(faults);
        let (mut va, mut other) = (Vec::new(), Vec::new());
        for i in 0..10_000 {
            if i % 2 == 0 {
                va.push(f.draw(VA).1);
            } else {
                other.push(f.draw("POST /api/core/users").1);
            }
        }
        let count = |v: &[Option<Fault>], x| v.iter().filter(|f| **f == Some(x)).count();
        // The endpoint's own ambiguous rate, on top of the general 500s it keeps.
        assert!((2000..3000).contains(&count(&va, Fault::Ambiguous)));
        assert!((350..650).contains(&count(&va, Fault::Error500)));
        // Other endpoints keep the general rates only.
        assert_eq!(count(&other, Fault::Ambiguous), 0);
        assert!((350..650).contains(&count(&other, Fault::Error500)));
    }
}
