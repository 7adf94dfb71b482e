//! Which offsets may be committed: per partition, only up to the lowest offset still in
//! flight (parse workers finish out of order), so a crash redelivers, never skips.

use std::collections::{BTreeMap, BTreeSet};

/// Offsets per partition: what was handed out and is not yet acknowledged.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    partitions: BTreeMap<i32, PartitionOffsets>,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    in_flight: BTreeSet<i64>,
    /// One past the newest offset handed out.
    next: i64,
    /// The offset last committed (or found committed).
    committed: i64,
}

impl Tracker {
    /// Forgets a partition (revoked in a rebalance: another member owns it now).
    pub(super) fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// A message of `partition` was handed to the pipeline.
    pub(super) fn handed_out(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.in_flight.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// The message was stored: its acknowledgement fired.
    pub(super) fn acked(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.in_flight.remove(&offset);
        }
    }

    /// Offsets that may be committed now: per partition, the lowest offset still in
    /// flight, or one past the newest when none is; only where that moved forward.
    pub(super) fn committable(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(&partition, p)| {
                let upto = p.in_flight.first().copied().unwrap_or(p.next);
                (upto > p.committed).then_some((partition, upto))
            })
            .collect()
    }

    /// Records what was committed.
    pub(super) fn committed(&mut self, offsets: &[(i32, i64)]) {
        for &(partition, offset) in offsets {
            if let Some(p) = self.partitions.get_mut(&partition) {
                p.committed = p.committed.max(offset);
            }
        }
    }

    /// Messages handed out and not yet stored.
    pub(super) fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_committed_only_past_acknowledged_messages() {
        let mut t = Tracker::default();
        for offset in 10..15 {
            t.handed_out(0, offset);
        }
        t.handed_out(1, 3);
        assert_eq!(t.committable(), vec![(0, 10), (1, 3)], "nothing acknowledged yet");
        t.committed(&t.committable());
        assert!(t.committable().is_empty());
        // Workers finish out of order: 12 and 11 done, 10 still in flight.
        t.acked(0, 12);
        t.acked(0, 11);
        assert!(t.committable().is_empty(), "10 is in flight, so nothing past it may be committed");
        t.acked(0, 10);
        assert_eq!(t.committable(), vec![(0, 13)]);
        t.acked(0, 13);
        t.acked(0, 14);
        t.acked(1, 3);
        assert_eq!(t.committable(), vec![(0, 15), (1, 4)]);
        assert_eq!(t.in_flight(), 0);
    }
}
