//! The worker's handler slots, handed out work already under way first.
//!
//! A process advances at most `concurrency` workflows at once. What waits for a slot comes
//! in two classes, each first come first served: a workflow this process has already
//! started and that parked (woken again by its callback or timer) or one the due scan has
//! already claimed, before a workflow new to it (a fresh submission). Under a burst of
//! submissions the workflows already under way then finish first instead of queueing behind
//! every newcomer: a callback resumes its workflow within about one step's time, not after
//! the whole backlog (the bench's "resume after a callback under load"). Newcomers are not
//! starved for long: each workflow under way reaches a wait or its end after a few steps.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Which queue a request for a slot joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Work under way: a workflow resumed, or claimed already.
    UnderWay,
    /// A workflow this process has not advanced before.
    New,
}

/// `total` slots; see the module docs.
#[derive(Debug)]
pub struct Slots {
    total: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    under_way: VecDeque<oneshot::Sender<()>>,
    new: VecDeque<oneshot::Sender<()>>,
}

/// A slot held; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.give_back();
    }
}

/// A request waiting for its slot. Dropped after a slot was handed to it but before it was
/// taken (a cancelled handler), it gives the slot on.
struct Waiting {
    slots: Arc<Slots>,
    handed: oneshot::Receiver<()>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.handed.try_recv().is_ok() {
            self.slots.give_back();
        }
    }
}

impl Slots {
    /// `total` slots, at least one.
    #[must_use]
    pub fn new(total: usize) -> Arc<Self> {
        let total = total.max(1);
        Arc::new(Self {
            total,
            state: Mutex::new(State {
                free: total,
                under_way: VecDeque::new(),
                new: VecDeque::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Slots free now (none while anything waits).
    pub fn free(&self) -> usize {
        self.state().free
    }

    /// Whether no slot is held.
    pub fn idle(&self) -> bool {
        self.free() == self.total
    }

    /// Waits for a slot in `class`'s queue.
    pub async fn acquire(self: &Arc<Self>, class: Class) -> Slot {
        let handed = {
            let mut state = self.state();
            if state.free > 0 {
                state.free -= 1;
                return Slot {
                    slots: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            match class {
                Class::UnderWay => state.under_way.push_back(tx),
                Class::New => state.new.push_back(tx),
            }
            rx
        };
        let mut waiting = Waiting {
            slots: self.clone(),
            handed,
        };
        let handed = (&mut waiting.handed).await;
        debug_assert!(
            handed.is_ok(),
            "a waiting request's sender is dropped only after it was sent on or with `Slots`"
        );
        // Taken: from here the slot is the caller's, given back when `Slot` drops.
        waiting.handed = oneshot::channel().1;
        Slot {
            slots: self.clone(),
        }
    }

    /// Hands a slot given back to the first waiting request, work under way first; frees it
    /// when nothing waits.
    fn give_back(&self) {
        let mut state = self.state();
        loop {
            let next = match state.under_way.pop_front() {
                Some(next) => next,
                None => match state.new.pop_front() {
                    Some(next) => next,
                    None => {
                        state.free += 1;
                        return;
                    }
                },
            };
            // A request dropped while it waited is skipped.
            if next.send(()).is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn work_under_way_gets_the_next_slot_before_earlier_new_work() {
        let slots = Slots::new(1);
        let held = slots.acquire(Class::New).await;
        assert_eq!(slots.free(), 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, class) in [
            ("new-1", Class::New),
            ("new-2", Class::New),
            ("resumed-1", Class::UnderWay),
            ("resumed-2", Class::UnderWay),
        ] {
            let (slots, order) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(class).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            settle().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["resumed-1", "resumed-2", "new-1", "new-2"],
            "each class in arrival order, work under way first"
        );
        assert!(slots.idle());
    }

    #[tokio::test]
    async fn a_request_cancelled_while_it_waits_loses_no_slot() {
        let slots = Slots::new(2);
        let a = slots.acquire(Class::New).await;
        let b = slots.acquire(Class::New).await;
        // Cancelled before any slot came free.
        let early = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(Class::UnderWay).await }
        });
        settle().await;
        early.abort();
        let _ = early.await;
        // Cancelled after a slot was handed to it, before it ran to take it.
        let late = {
            let slots = slots.clone();
            let mut late = Box::pin(async move { slots.acquire(Class::New).await });
            assert!(futures_util::poll!(&mut late).is_pending());
            late
        };
        drop(a);
        drop(late);
        assert_eq!(
            slots.free(),
            1,
            "the slot handed to the dropped request is free"
        );
        drop(b);
        assert!(slots.idle());
        let _again = tokio::time::timeout(Duration::from_secs(1), slots.acquire(Class::New))
            .await
            .expect("slots still given out");
    }
}
