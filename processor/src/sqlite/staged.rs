//! The sender model's rows a batch changes, staged in memory: each row is read once and
//! written once, at the batch's commit, however many of the batch's reports change it;
//! the open report's changes can be undone alone (its savepoint is rolled back). At most
//! [`STAGED_MAX`] rows are staged, so one huge report stays bounded.

use super::senders::SenderTable;
use crate::sender::Sender;

/// Rows staged at most; beyond, a batch's (or one huge report's) further rows are written
/// through, so memory stays bounded.
pub(super) const STAGED_MAX: usize = 10_000;

/// The key of a model row: table, policy domain, source.
pub(super) type RowKey = (SenderTable, String, String);

/// The sender model's rows changed in the open batch, each read once and written once at
/// the commit however many of the batch's reports change it; with what undoes the open
/// report's changes when it is rolled back alone.
#[derive(Default)]
pub(super) struct Staged {
    rows: std::collections::HashMap<RowKey, StagedRow>,
    /// Rows staged before the open report, as they were before it changed them.
    undo: Vec<(RowKey, Sender)>,
    /// The open report's number.
    report: u64,
}

/// A staged row, with the reports that staged it and last changed it.
struct StagedRow {
    row: Sender,
    born: u64,
    changed: u64,
}

impl Staged {
    /// The staged row of `key`, for the open report to change (its state before the
    /// report is kept, to be restored if the report is rolled back); `None` when the row
    /// is not staged.
    pub(super) fn change(&mut self, key: &RowKey) -> Option<&mut Sender> {
        let staged = self.rows.get_mut(key)?;
        if staged.changed != self.report && staged.born != self.report {
            self.undo.push((key.clone(), staged.row.clone()));
        }
        staged.changed = self.report;
        Some(&mut staged.row)
    }

    /// Stages a row the open report brought in (read from the table, or new).
    pub(super) fn stage(&mut self, key: RowKey, row: Sender) {
        let report = self.report;
        self.rows.insert(key, StagedRow { row, born: report, changed: report });
    }

    /// Every staged row, in key order, leaving none staged.
    pub(super) fn drain_sorted(&mut self) -> Vec<(RowKey, Sender)> {
        self.undo.clear();
        let mut rows: Vec<(RowKey, Sender)> =
            self.rows.drain().map(|(key, staged)| (key, staged.row)).collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// A report begins: its changes can be undone until it is released.
    pub(super) fn begin_report(&mut self) {
        self.report += 1;
        self.undo.clear();
    }

    /// The open report is kept.
    pub(super) fn release_report(&mut self) {
        self.undo.clear();
    }

    /// The open report is rolled back: the rows it staged go, the rows it changed are as
    /// before it.
    pub(super) fn roll_back_report(&mut self) {
        let report = self.report;
        self.rows.retain(|_, r| r.born != report);
        for (key, before) in self.undo.drain(..) {
            if let Some(row) = self.rows.get_mut(&key) {
                row.row = before;
                row.changed = 0;
            }
        }
    }

    /// The batch is abandoned.
    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.undo.clear();
    }

    /// Rows staged.
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }
}
