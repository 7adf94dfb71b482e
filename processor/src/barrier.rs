//! The durability barrier: an upstream acknowledgement is sent only after the store has
//! durably accepted the data it covers.
//!
//! ```text
//!  writer: hold(ack) … hold(ack) ── seal() ──> Sealed ──> store.commit(sealed)
//!                                                           │ SQLite: COMMIT, then release
//!                                                           │ ClickHouse: the inserter thread
//!                                                           v   releases after every insert
//!                                     Releaser: in commit order; nothing after a lost batch
//! ```
//!
//! Input: acknowledgements of deliveries whose data was written into the current,
//! uncommitted batch. Output: those acknowledgements fired, right after the batch is
//! durable, and never before. Invariant (DESIGN.md "Nothing lost"): if the commit fails or
//! the process dies first, no acknowledgement of that batch is sent, so the source keeps
//! the data (the file stays unmarked, the IMAP message unmoved, the HTTP client
//! unanswered, the Kafka offset uncommitted) and delivers it again; because every write
//! is idempotent by report identity, the redelivery changes no total.
//!
//! Both stores go through this one helper: the pipeline seals a batch's
//! acknowledgements ([`Barrier::seal`]) and hands the [`Sealed`] batch to the store's
//! commit, which releases it once the data is durable — at once (SQLite) or from the
//! thread that inserts it (ClickHouse). A [`Sealed`] dropped unreleased fires nothing.
//! Where batches become durable asynchronously, a [`Releaser`] releases them in commit
//! order and, once one batch is lost, never releases a later one: acknowledging a later
//! Kafka offset would commit past the lost data.

pub use ruaflow_schema::Ack;

/// Acknowledgements waiting for the current batch to commit.
#[derive(Default)]
pub struct Barrier {
    pending: Vec<Ack>,
}

impl Barrier {
    /// Holds an acknowledgement until the batch that contains its data is durable.
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

    /// Closes the current batch: its acknowledgements, to be released by whoever makes
    /// the batch durable.
    pub fn seal(&mut self) -> Sealed {
        Sealed { acks: std::mem::take(&mut self.pending) }
    }
}

/// The acknowledgements of one batch. [`Sealed::release`] fires them; dropping it fires
/// nothing (the batch was not made durable: its sources deliver it again).
#[must_use = "a sealed batch must be released once durable, or dropped when lost"]
pub struct Sealed {
    acks: Vec<Ack>,
}

impl Sealed {
    /// A batch with nothing to acknowledge (a commit no source waits on).
    pub fn empty() -> Self {
        Sealed { acks: Vec::new() }
    }

    /// How many acknowledgements it holds.
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// The batch is durable: fires every acknowledgement, in the order they were held.
    pub fn release(self) -> usize {
        let n = self.acks.len();
        for ack in self.acks {
            ack();
        }
        n
    }
}

/// Releases sealed batches that become durable one after the other (in commit order),
/// and none after a batch that was lost.
#[derive(Debug, Default)]
pub struct Releaser {
    lost: Option<String>,
}

impl Releaser {
    /// The next batch is durable: releases it, unless an earlier batch was lost.
    pub fn durable(&mut self, sealed: Sealed) -> usize {
        match self.lost {
            None => sealed.release(),
            Some(_) => 0, // dropped: nothing after a lost batch is acknowledged
        }
    }

    /// The next batch is lost for good (given up on): it is not released, and from now
    /// on no batch is.
    pub fn lost(&mut self, sealed: Sealed, reason: String) {
        drop(sealed);
        self.lost.get_or_insert(reason);
    }

    /// Why a batch was lost, once one was.
    pub fn lost_reason(&self) -> Option<&str> {
        self.lost.as_deref()
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
    fn acks_fire_only_when_released() {
        let fired = Arc::new(AtomicUsize::new(0));
        let mut barrier = Barrier::default();
        barrier.hold(counting(&fired));
        barrier.hold(counting(&fired));
        let sealed = barrier.seal();
        assert!(barrier.is_empty(), "the next batch starts empty");
        assert_eq!(fired.load(Ordering::SeqCst), 0, "held, not fired");
        drop(sealed);
        assert_eq!(fired.load(Ordering::SeqCst), 0, "a batch dropped unreleased fires nothing");

        barrier.hold(counting(&fired));
        assert_eq!(barrier.seal().release(), 1);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn nothing_after_a_lost_batch_is_released() {
        let fired = Arc::new(AtomicUsize::new(0));
        let mut barrier = Barrier::default();
        let mut batch = || {
            barrier.hold(counting(&fired));
            barrier.seal()
        };
        let (first, second, third) = (batch(), batch(), batch());
        let mut releaser = Releaser::default();
        assert_eq!(releaser.durable(first), 1);
        releaser.lost(second, "insert failed".into());
        assert_eq!(releaser.durable(third), 0, "stored, but after a lost batch");
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(releaser.lost_reason(), Some("insert failed"));
    }
}
