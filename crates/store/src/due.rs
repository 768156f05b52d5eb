//! The in-process hand-over of workflows a store made due: a submit, a callback that woke
//! its workflow, a commit that left events waiting. `next_run_at` (and the due scan that
//! reads it) stays the truth; this is a hint, sent after the commit, that lets a worker in
//! the same process (SQLite) start at once instead of at the next scan. A lagging or absent listener
//! loses nothing but the hint.

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::Store;

/// Hints kept for a slow listener before the oldest are dropped.
const CAPACITY: usize = 4096;

/// The sending side, shared by a store and its clones.
#[derive(Debug, Clone)]
pub(crate) struct Due(broadcast::Sender<Uuid>);

impl Default for Due {
    fn default() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }
}

impl Store {
    /// Workflows this store (or a clone of it, in this process) makes due from now on, each
    /// sent once its transaction has committed. A hint only: claim before acting, as for
    /// any wake-up.
    #[must_use]
    pub fn due_now(&self) -> broadcast::Receiver<Uuid> {
        self.due.0.subscribe()
    }

    /// Hands `id` over to this process's listeners, if any.
    pub(crate) fn hand_over(&self, id: Uuid) {
        // No listener (a CLI, the receiver alone) is the normal case, not an error.
        let _ = self.due.0.send(id);
    }
}
