//! The workflows this process is advancing right now.
//!
//! A wake-up for one of them (a callback matched to it while it runs, a hint sent twice) is
//! dropped without a claim, which its live lease would refuse anyway: what woke it is seen by
//! that advance's next commit that releases the workflow, which keeps the workflow for it
//! (`StepCommit::hold_for_events`) or makes it due again with a wake-up of its own. So that
//! this wake-up is never the one dropped, an advance leaves the set just before each commit
//! that releases its lease, and joins it again when the commit kept the workflow.
//!
//! A stale claim is a transaction and a round trip; under the bench about one onboarding in
//! three had one for a workflow its own process held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

/// The set, shared by an executor's clones.
#[derive(Debug, Default)]
pub(super) struct Advancing {
    /// Each workflow with the token of the advance that holds it.
    ids: Mutex<HashMap<Uuid, u64>>,
    next: AtomicU64,
}

impl Advancing {
    fn ids(&self) -> MutexGuard<'_, HashMap<Uuid, u64>> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an advance of this process holds `id`.
    pub(super) fn contains(&self, id: Uuid) -> bool {
        self.ids().contains_key(&id)
    }

    /// An advance of `id` begins; it is in the set until [`Here`] leaves or is dropped.
    pub(super) fn enter(self: &Arc<Self>, id: Uuid) -> Here {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.ids().insert(id, token);
        Here {
            set: self.clone(),
            id,
            token,
        }
    }
}

/// One advance's place in the set.
#[derive(Debug)]
pub(super) struct Here {
    set: Arc<Advancing>,
    id: Uuid,
    token: u64,
}

impl Here {
    /// Out of the set (before a commit that releases the workflow). A later advance of the
    /// same workflow in this process has its own place, which this leaves alone.
    pub(super) fn leave(&self) {
        let mut ids = self.set.ids();
        if ids.get(&self.id) == Some(&self.token) {
            ids.remove(&self.id);
        }
    }

    /// Back in the set (the commit kept the workflow for this advance).
    pub(super) fn rejoin(&self) {
        self.set.ids().insert(self.id, self.token);
    }
}

impl Drop for Here {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advance_is_in_the_set_until_it_leaves_or_ends() {
        let set = Arc::new(Advancing::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let here = set.enter(a);
        assert!(set.contains(a));
        assert!(!set.contains(b));
        here.leave();
        assert!(!set.contains(a), "left before a releasing commit");
        here.rejoin();
        assert!(set.contains(a), "kept by the commit");
        drop(here);
        assert!(!set.contains(a), "the advance ended");
    }

    #[test]
    fn an_earlier_advance_ending_leaves_the_next_one_in_place() {
        let set = Arc::new(Advancing::default());
        let id = Uuid::new_v4();
        let first = set.enter(id);
        first.leave();
        // Released, claimed again here and advancing before the first advance returned.
        let second = set.enter(id);
        drop(first);
        assert!(set.contains(id), "the second advance still holds it");
        drop(second);
        assert!(!set.contains(id));
    }
}
