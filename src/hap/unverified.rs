//! The connections that have not completed pair-verify, oldest first. When the server is at its
//! connection cap, the oldest of them is closed to make room for a new connection, as ADK closes
//! idle sessions at capacity (hap-reference §5.9): abandoned or idle plaintext connections
//! cannot lock controllers out. A verified session is never closed for room; with only those,
//! a new connection is refused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// See the module docs.
#[derive(Default)]
pub(crate) struct Unverified(Mutex<VecDeque<(u64, Arc<Notify>)>>);

impl Unverified {
    /// Registers connection `id`; the returned signal fires when it must close for room.
    pub(crate) fn add(&self, id: u64) -> Arc<Notify> {
        let evict = Arc::new(Notify::new());
        self.lock().push_back((id, Arc::clone(&evict)));
        evict
    }

    /// Forgets connection `id` (verified, or closed).
    pub(crate) fn remove(&self, id: u64) {
        self.lock().retain(|(c, _)| *c != id);
    }

    /// Signals the oldest unverified connection to close; `false` when there is none.
    pub(crate) fn evict_oldest(&self) -> bool {
        let oldest = self.lock().pop_front();
        oldest.is_some_and(|(_, evict)| {
            // A stored permit: the connection sees it even if it is not waiting yet.
            evict.notify_one();
            true
        })
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, Arc<Notify>)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_unverified_connection_is_evicted_first() {
        let u = Unverified::default();
        let (one, two, three) = (u.add(1), u.add(2), u.add(3));
        u.remove(1); // verified
        assert!(u.evict_oldest());
        // Connection 2 was signalled (the permit waits for it), 3 was not.
        tokio::time::timeout(std::time::Duration::from_secs(1), two.notified())
            .await
            .expect("2 evicted");
        let not_three =
            tokio::time::timeout(std::time::Duration::from_millis(50), three.notified());
        assert!(not_three.await.is_err());
        let not_one = tokio::time::timeout(std::time::Duration::from_millis(50), one.notified());
        assert!(not_one.await.is_err());
        assert!(u.evict_oldest());
        u.remove(3);
        assert!(!u.evict_oldest(), "none left");
    }
}
