//! The shared application object: configuration, the state behind its mutex, and the one
//! place that turns [`Effect`]s into spawned work (timers and callback deliveries).

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::watch;
use url::Url;

use crate::callbacks::{self, CallbackRecord};
use crate::config::SandboxConfig;
use crate::ledger::bump;
use crate::state::{Effect, MAX_RECORDED_CALLBACKS, State, Transition};

pub(crate) struct App {
    pub config: Arc<SandboxConfig>,
    state: Mutex<State>,
    /// For callbacks; never through a proxy, the receiver is usually on localhost.
    pub http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
}

impl App {
    pub fn new(
        config: Arc<SandboxConfig>,
        base_url: Url,
        runtime: tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            state: Mutex::new(State::new(Arc::clone(&config), base_url)),
            config,
            http,
            runtime,
            shutdown,
        })
    }

    /// Reads or changes the state without causing effects (counters, snapshots).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self
            .state
            .lock()
            .expect("sandbox state mutex poisoned: an operation panicked while holding it");
        f(&mut state)
    }

    /// Runs an operation on the state, then carries out the effects it queued. The lock is
    /// released before anything is spawned and is never held across an `.await`.
    pub fn act<R>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, timers, deliveries) = self.with_state(|s| {
            let result = f(s);
            let effects = std::mem::take(&mut s.outbox);
            // Plan deliveries under the lock so that the seeded RNG is drawn in event order.
            let mut deliveries = Vec::new();
            let mut timers = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Notify(n) => {
                        bump(&mut s.ledger.callbacks_emitted, &n.title);
                        if s.sent.len() == MAX_RECORDED_CALLBACKS {
                            s.sent.pop_front();
                        }
                        s.sent.push_back(CallbackRecord {
                            title: n.title.clone(),
                            path: n.path.clone(),
                            body: n.body.clone(),
                        });
                        if let Some(loan) = State::loan_of(&n)
                            && self.config.delivery.drops_loan(&loan)
                        {
                            *s.ledger.callbacks_dropped.entry(loan).or_default() += 1;
                        } else if let Some(target) = s.callback.clone() {
                            let delays =
                                callbacks::plan(&mut s.delivery_rng, &self.config.delivery);
                            if delays.len() > 1 {
                                s.ledger.callbacks_duplicated += 1;
                            }
                            for delay in delays {
                                deliveries.push((target.clone(), n.clone(), delay));
                            }
                        }
                    }
                    Effect::After(delay, t) => timers.push((delay, t)),
                }
            }
            (result, timers, deliveries)
        });
        for (target, n, delay) in deliveries {
            self.spawn(callbacks::deliver(Arc::clone(self), target, n, delay));
        }
        for (delay, transition) in timers {
            let app = Arc::clone(self);
            self.spawn(async move {
                callbacks::wait(delay).await;
                app.apply(transition);
            });
        }
        result
    }

    /// Runs a delayed transition. Not generic on purpose: `act` spawns it, and a generic
    /// closure here would make `act` instantiate itself without end.
    fn apply(self: &Arc<Self>, transition: Transition) {
        self.act(|s| s.apply(transition, Utc::now()));
    }

    /// Spawns background work that stops when the sandbox shuts down.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                () = stopped(shutdown) => {}
                () = work => {}
            }
        });
    }
}

/// Completes when the sandbox is told to stop (or its handle is gone).
pub(crate) async fn stopped(mut shutdown: watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once: it must not live across an await.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
