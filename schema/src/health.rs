//! Whether the process can still store what its sources accept.
//!
//! Set by the stage that finds it cannot go on (the pipeline's writer, when its store
//! fails for good); read by the sources, which refuse new work at once instead of
//! waiting for an acknowledgement that will not come, and by `/healthz`, which then
//! answers 503 with the reason. Failing also triggers the process's [`Shutdown`], when
//! the health was made with one: a process that cannot store stops, with the reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::shutdown::Shutdown;

/// A shared health flag: healthy until [`Health::fail`] is called.
#[derive(Debug, Clone, Default)]
pub struct Health {
    failing: Arc<AtomicBool>,
    problem: Arc<Mutex<Option<String>>>,
    shutdown: Option<Shutdown>,
}

impl Health {
    /// A health whose failure also stops the process through `shutdown`.
    pub fn stopping(shutdown: Shutdown) -> Self {
        Self { shutdown: Some(shutdown), ..Self::default() }
    }

    /// Marks the process as unable to go on, with the reason (the first reason stays),
    /// and triggers the shutdown if there is one.
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if let Ok(mut problem) = self.problem.lock() {
            problem.get_or_insert_with(|| reason.clone());
        }
        self.failing.store(true, Ordering::Release);
        if let Some(shutdown) = &self.shutdown {
            shutdown.trigger(reason);
        }
    }

    /// True once [`Health::fail`] was called (a lock-free check for polling loops).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Why the process cannot go on, or `None` while it can.
    pub fn problem(&self) -> Option<String> {
        if !self.is_failing() {
            return None;
        }
        self.problem.lock().map_or_else(|_| Some("health state poisoned".into()), |p| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_stays() {
        let health = Health::default();
        assert_eq!(health.problem(), None);
        let shared = health.clone();
        shared.fail("store failed: disk full");
        shared.fail("later");
        assert_eq!(health.problem().as_deref(), Some("store failed: disk full"));

        let shutdown = Shutdown::new();
        Health::stopping(shutdown.clone()).fail("cannot write");
        assert_eq!(shutdown.reason().as_deref(), Some("cannot write"));
    }
}
