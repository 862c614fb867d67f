//! Stopping a run from outside it.
//!
//! A [`Cancel`] is shared by every run of one tree (the root and its `rlm_query` children).
//! Once it fires, a model turn in flight is dropped, a running cell is interrupted through the
//! sandbox's epoch check (within a few milliseconds, whatever the guest is doing: a busy loop,
//! a sleep, a host call), the interrupted cell is logged with the steps before it, and the
//! run ends with [`super::Stop::Cancelled`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A handle that cancels a run. Cheap to clone; every clone cancels the same run.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel").field("fired", &self.is_cancelled()).finish()
    }
}

impl Cancel {
    /// A handle that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run. Idempotent.
    pub fn cancel(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Resolves once the run is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            // The waiter is registered before the flag is read, so a cancel in between is seen.
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_on_cancel_and_after_it() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.cancelled().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("woken").unwrap();
        c.cancel();
        assert!(c.is_cancelled(), "cancelling twice is harmless");
        // Already cancelled: resolves at once.
        tokio::time::timeout(std::time::Duration::from_millis(100), c.cancelled()).await.unwrap();
    }
}
