//! The durability barrier: an upstream acknowledgement is sent only after the store has
//! durably accepted the data it covers.
//!
//! Input: acknowledgements of deliveries whose data was written into the current,
//! uncommitted batch. Output: those acknowledgements fired, in order, right after the
//! batch committed, and never before. Invariant (DESIGN.md "Nothing lost"): if the
//! commit fails or the process dies first, no acknowledgement of that batch is sent, so
//! the source keeps the data (the file stays unmarked, the IMAP message unmoved, the
//! HTTP client unanswered, the Kafka offset uncommitted) and delivers it again; because
//! every write is idempotent by report identity, the redelivery changes no total.

pub use ruaflow_schema::Ack;

/// Acknowledgements waiting for the current batch to commit.
#[derive(Default)]
pub struct Barrier {
    pending: Vec<Ack>,
}

impl Barrier {
    /// Holds an acknowledgement until the batch that contains its data commits.
    pub fn hold(&mut self, ack: Ack) {
        self.pending.push(ack);
    }

    /// How many acknowledgements are waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when none is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes the held acknowledgements, for a store that fires them itself once the
    /// batch is durable (see `Store::commit_then_ack`).
    pub fn take(&mut self) -> Vec<Ack> {
        std::mem::take(&mut self.pending)
    }

    /// Commits with `commit`, then fires every held acknowledgement. On a commit error
    /// nothing is fired, the acknowledgements stay held, and the error is returned: the
    /// caller must stop or retry the whole batch, never skip ahead.
    pub fn commit_then_ack<E>(&mut self, commit: impl FnOnce() -> Result<(), E>) -> Result<usize, E> {
        commit()?;
        let acks = std::mem::take(&mut self.pending);
        let n = acks.len();
        for ack in acks {
            ack();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn counting(counter: &Arc<AtomicUsize>) -> Ack {
        let counter = Arc::clone(counter);
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn acks_fire_only_after_a_successful_commit() {
        let fired = Arc::new(AtomicUsize::new(0));
        let mut barrier = Barrier::default();
        barrier.hold(counting(&fired));
        barrier.hold(counting(&fired));
        assert_eq!(fired.load(Ordering::SeqCst), 0, "held, not fired");

        let failed: Result<usize, &str> = barrier.commit_then_ack(|| Err("disk full"));
        assert!(failed.is_err());
        assert_eq!(fired.load(Ordering::SeqCst), 0, "a failed commit fires nothing");
        assert_eq!(barrier.len(), 2, "and keeps the acks for the retry");

        let committed = Arc::new(AtomicUsize::new(0));
        let seen_at_commit = {
            let fired = Arc::clone(&fired);
            let committed = Arc::clone(&committed);
            barrier.commit_then_ack::<()>(move || {
                committed.store(fired.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
                Ok(())
            })
        };
        assert_eq!(seen_at_commit, Ok(2));
        assert_eq!(committed.load(Ordering::SeqCst), 1, "no ack had fired when the commit ran");
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        assert!(barrier.is_empty());
    }
}
