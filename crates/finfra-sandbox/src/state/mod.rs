//! The sandbox's world: borrowers, KYC sessions, loans, documents, tokens, counters.
//!
//! "Decide, then act": every operation is a method on [`State`] that checks, changes the
//! state and returns the [`Effect`]s it causes (callbacks to send, transitions to run later).
//! It never sleeps or touches the network; [`crate::app::App::run`] carries the effects out.
//! The clock is passed in, so the methods are plain functions of (state, input, now).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use url::Url;

use crate::auth::TokenStore;
use crate::callbacks::Notification;
use crate::config::{CallbackTarget, SandboxConfig};
use crate::faults::FaultState;
use crate::ledger::Ledger;
use crate::rate_limit::Limiter;

pub(crate) mod borrowers;
mod credit;
pub(crate) mod documents;
pub(crate) mod kyc;
pub(crate) mod loans;
mod repayment;
pub(crate) mod schedule;

pub(crate) use borrowers::{Borrower, BorrowerStatus};
pub(crate) use documents::Document;
pub(crate) use kyc::KycSession;
pub(crate) use loans::Loan;
pub(crate) use repayment::LoanFilter;

/// How many emitted callbacks [`State::sent`] keeps.
pub(crate) const MAX_RECORDED_CALLBACKS: usize = 100_000;

/// Something an operation causes beyond its own state change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Send a callback to the partner.
    Notify(Notification),
    /// Run a transition later, on a spawned task (even with a zero delay).
    After(Duration, Transition),
}

/// A state change that happens on Finfra's side, later. Each re-checks the state when it
/// runs and does nothing if the object has moved on meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The accepted create request becomes a `PENDING` borrower.
    BorrowerCreated { user_id: String },
    /// KYC review: `PENDING` → `VERIFIED` or `REJECTED`.
    KycReviewed { user_id: String },
    /// Final review: `APPROVED_BY_PARTNER` → `APPROVED`.
    FinallyApproved { user_id: String },
    /// The borrower signs (demo auto-sign).
    Signed { unique_id: String },
    /// The bank settles the disbursement with this reference: paid, or refused.
    Settled {
        unique_id: String,
        reference: String,
        refused: Option<String>,
    },
    /// The simulated borrower pays the next installment (demo auto-repay).
    Repay { unique_id: String },
}

/// Everything the sandbox remembers. One instance behind one mutex.
pub(crate) struct State {
    pub borrowers: Table<Borrower>,
    /// KTP NIK → borrower id: one borrower per NIK and partner (CONTRACT §3).
    pub nik_index: HashMap<String, String>,
    pub kyc: Table<KycSession>,
    pub loans: Table<Loan>,
    /// Virtual account `external_id` → loan `unique_id`.
    pub va_index: HashMap<String, String>,
    pub documents: Table<Document>,
    pub tokens: TokenStore,
    pub limiter: Limiter,
    pub faults: FaultState,
    pub ledger: Ledger,
    pub ready: bool,
    pub callback: Option<CallbackTarget>,
    /// The callbacks emitted, in order, for tests without a receiver; the oldest are
    /// dropped past [`MAX_RECORDED_CALLBACKS`] so a long benchmark stays bounded.
    pub sent: VecDeque<crate::callbacks::CallbackRecord>,
    /// Ids and tokens. Seeded from the OS (via a v4 UUID): tokens must not be guessable.
    pub rng: StdRng,
    /// Duplicates and reordering of callbacks, seeded from the config: reproducible.
    pub delivery_rng: StdRng,
    pub config: Arc<SandboxConfig>,
    /// Where the sandbox is reached (signing and upload URLs point here).
    pub base_url: Url,
    /// Effects queued by the running operation; [`crate::app::App::act`] drains it.
    pub outbox: Vec<Effect>,
}

impl State {
    pub fn new(config: Arc<SandboxConfig>, base_url: Url) -> Self {
        let os_seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Self {
            borrowers: Table::default(),
            nik_index: HashMap::new(),
            kyc: Table::default(),
            loans: Table::default(),
            va_index: HashMap::new(),
            documents: Table::default(),
            tokens: TokenStore::default(),
            limiter: Limiter::new(config.rate_limit),
            faults: FaultState::new(config.faults.clone()),
            ledger: Ledger::default(),
            ready: true,
            callback: config.callback.clone(),
            sent: VecDeque::new(),
            rng: StdRng::seed_from_u64(os_seed),
            delivery_rng: StdRng::seed_from_u64(config.delivery.seed),
            config,
            base_url,
            outbox: Vec::new(),
        }
    }

    /// The loan a status callback is about (`loan_*` and `bnpl_*` events).
    pub fn loan_of(n: &Notification) -> Option<String> {
        n.body
            .get("loan_unique_id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    /// Queues a callback.
    pub fn notify(&mut self, n: Notification) {
        self.outbox.push(Effect::Notify(n));
    }

    /// Queues a transition to run after `delay`.
    pub fn later(&mut self, delay: Duration, t: Transition) {
        self.outbox.push(Effect::After(delay, t));
    }

    /// `n` random lowercase hex characters.
    pub fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..n)
            .map(|_| char::from(HEX[self.rng.random_range(0..16)]))
            .collect()
    }

    /// `n` random digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect()
    }

    /// Carries out a delayed transition; a transition the object has outgrown does nothing.
    pub fn apply(&mut self, transition: Transition, now: DateTime<Utc>) {
        match transition {
            Transition::BorrowerCreated { user_id } => self.borrower_created(&user_id, now),
            Transition::KycReviewed { user_id } => self.kyc_reviewed(&user_id, now),
            Transition::FinallyApproved { user_id } => self.finally_approved(&user_id, now),
            Transition::Signed { unique_id } => {
                // An auto-sign meets a loan that was rejected or signed meanwhile: nothing to do.
                let _ = self.sign_loan(&unique_id, now);
            }
            Transition::Settled {
                unique_id,
                reference,
                refused,
            } => self.settle(&unique_id, &reference, refused, now),
            Transition::Repay { unique_id } => self.auto_repay(&unique_id, now),
        }
    }
}

/// Rows in insertion order with a unique string key: lists come out in creation order,
/// lookups are O(1).
#[derive(Debug)]
pub(crate) struct Table<T> {
    rows: Vec<T>,
    index: HashMap<String, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// Adds a row; the caller has checked that `key` is new.
    pub fn insert(&mut self, key: String, row: T) {
        self.index.insert(key, self.rows.len());
        self.rows.push(row);
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        self.index.get(key).map(|&i| &self.rows[i])
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut T> {
        self.index.get(key).map(|&i| &mut self.rows[i])
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.rows.iter()
    }
}

/// Timestamps as in the reference: `2026-06-29T05:15:51.591Z`.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Money as a decimal string with exactly two decimals: `"5000000.00"`.
pub(crate) fn money(d: Decimal) -> String {
    let mut d = d;
    d.rescale(2);
    d.to_string()
}
