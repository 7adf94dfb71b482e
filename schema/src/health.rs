//! Whether the process can still store what its sources accept.
//!
//! Set by the stage that finds it cannot go on (the pipeline's writer, when its store
//! fails for good); read by the sources, which refuse new work at once instead of
//! waiting for an acknowledgement that will not come, and by `/healthz`, which then
//! answers 503 with the reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A shared health flag: healthy until [`Health::fail`] is called.
#[derive(Debug, Clone, Default)]
pub struct Health {
    failing: Arc<AtomicBool>,
    problem: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// Marks the process as unable to go on, with the reason (the first reason stays).
    pub fn fail(&self, reason: impl Into<String>) {
        if let Ok(mut problem) = self.problem.lock() {
            problem.get_or_insert_with(|| reason.into());
        }
        self.failing.store(true, Ordering::Release);
    }

    /// True once [`Health::fail`] was called (a lock-free check for polling loops).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The flag behind [`Health::is_failing`], for loops that watch an `AtomicBool`.
    pub fn failing_flag(&self) -> &AtomicBool {
        &self.failing
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
    }
}
