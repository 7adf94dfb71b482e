//! One stop signal for a whole process.
//!
//! Anything may trigger it — SIGINT/SIGTERM, a store that cannot go on, a source that
//! finds its work done in one-shot mode — once; the first reason is kept. Every source
//! and loop watches the same value: async tasks await [`Shutdown::triggered`], threads
//! wait on [`Shutdown::wait_timeout`] (a scan interval a stop cuts short), so nothing
//! polls a flag. Completion is the queue's: each source lets go of its queue sender when
//! it stops, the queue closes once the last has, and the pipeline drains what is in it
//! and returns (see the CLI's assembler). (mini-redis's `Shutdown` is the model.)

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The stop signal; clones share it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// For async waiters.
    watch: tokio::sync::watch::Sender<bool>,
    /// The reason, set once; with `stopped` for threads that wait.
    reason: Mutex<Option<String>>,
    stopped: Condvar,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal not triggered yet.
    pub fn new() -> Self {
        let (watch, _) = tokio::sync::watch::channel(false);
        Self { inner: Arc::new(Inner { watch, reason: Mutex::new(None), stopped: Condvar::new() }) }
    }

    /// Asks everything to stop; the first reason given is the one kept.
    pub fn trigger(&self, reason: impl Into<String>) {
        let Ok(mut current) = self.inner.reason.lock() else { return };
        if current.is_none() {
            *current = Some(reason.into());
            self.inner.watch.send_replace(true);
            self.inner.stopped.notify_all();
        }
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        *self.inner.watch.borrow()
    }

    /// Why it was triggered, once it was.
    pub fn reason(&self) -> Option<String> {
        self.inner.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Resolves once triggered.
    pub async fn triggered(&self) {
        let mut watch = self.inner.watch.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = watch.wait_for(|stopped| *stopped).await;
    }

    /// Waits until triggered or `timeout` passed; true when triggered.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let Ok(reason) = self.inner.reason.lock() else { return true };
        match self.inner.stopped.wait_timeout_while(reason, timeout, |r| r.is_none()) {
            Ok((reason, _)) => reason.is_some(),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_and_tasks_see_the_first_reason() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.wait_timeout(Duration::from_millis(10)), "not triggered yet");
        let waiter = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || shutdown.wait_timeout(Duration::from_secs(30)))
        };
        let task = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                runtime.block_on(shutdown.triggered());
            })
        };
        shutdown.trigger("signal");
        shutdown.trigger("later");
        assert!(waiter.join().expect("thread"), "the waiting thread woke up");
        task.join().expect("the waiting task finished");
        assert!(shutdown.is_triggered());
        assert_eq!(shutdown.reason().as_deref(), Some("signal"));
        // Waiting after the fact returns at once.
        assert!(shutdown.wait_timeout(Duration::from_secs(30)));
    }
}
