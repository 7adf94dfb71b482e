//! The warnings of one report, bounded.
//!
//! Input: one warning at a time from a parser; output: the first
//! [`crate::Limits::max_warnings`] of them and a count of the rest. Invariant: a report
//! with ten million bad records costs a counter, not ten million strings (in memory, on
//! stderr, or in the store).

/// Warnings kept for one report: the first `max`, then only counted.
#[derive(Debug, Clone, Default)]
pub struct Warnings {
    kept: Vec<String>,
    total: u64,
    max: usize,
}

impl Warnings {
    /// Keeps at most `max` warnings.
    pub fn new(max: u32) -> Self {
        Self { kept: Vec::new(), total: 0, max: max as usize }
    }

    /// Notes a warning; `text` is only called when the warning is kept.
    pub fn push(&mut self, text: impl FnOnce() -> String) {
        self.total += 1;
        if self.kept.len() < self.max {
            self.kept.push(text());
        }
    }

    /// Every warning noted, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept warnings, then one line saying how many more there were.
    pub fn into_vec(self) -> Vec<String> {
        let mut out = self.kept;
        let dropped = self.total - out.len() as u64;
        if dropped > 0 {
            out.push(format!("… and {dropped} more warnings"));
        }
        out
    }

    /// Takes what was noted so far (see [`Warnings::into_vec`]) and starts again.
    pub fn take(&mut self) -> Vec<String> {
        let max = self.max as u32;
        std::mem::replace(self, Warnings::new(max)).into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_and_counts_the_rest() {
        let mut warnings = Warnings::new(2);
        let mut formatted = 0;
        for i in 0..1000 {
            warnings.push(|| {
                formatted += 1;
                format!("w{i}")
            });
        }
        assert_eq!(formatted, 2, "only kept warnings are formatted");
        assert_eq!(warnings.total(), 1000);
        assert_eq!(warnings.take(), ["w0", "w1", "… and 998 more warnings"]);
        assert!(warnings.take().is_empty());
    }
}
