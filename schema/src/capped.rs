//! Capped readers: the byte budgets every decoder and parser reads through.
//!
//! Input: a reader of untrusted bytes; output: the same bytes, until a cap is passed,
//! then an `io::Error` carrying the [`LimitExceeded`] that was hit (see
//! [`crate::error::Error::from_io`]). Invariant: no decoder output and no parser buffer
//! grows past its cap, whatever the input looks like.
//!
//! - [`Budget`]: the bytes all decompressors of one input may still produce, shared by
//!   every layer and archive member of that input (64 zip entries pointing at one member
//!   cost 64 × its size out of one budget, not one budget each).
//! - [`Capped`]: a decompressor's output charged to a [`Budget`], optionally also held to
//!   a size the container declared (a zip member's uncompressed size).
//! - [`MarkupGuard`]: bounds what the XML tokenizer may buffer for one event.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::rc::Rc;

use crate::limits::LimitExceeded;

/// Bytes the decompressors of one input may still produce, shared by all of them.
#[derive(Debug, Clone)]
pub struct Budget {
    remaining: Rc<Cell<u64>>,
    cap: u64,
}

impl Budget {
    /// A budget of `cap` bytes ([`crate::Limits::max_decompressed_bytes`]).
    pub fn new(cap: u64) -> Self {
        Self { remaining: Rc::new(Cell::new(cap)), cap }
    }

    /// What is left.
    pub fn remaining(&self) -> u64 {
        self.remaining.get()
    }

    fn exceeded(&self) -> std::io::Error {
        std::io::Error::other(LimitExceeded::DecompressedBytes(self.cap))
    }
}

/// A reader whose output is charged to a [`Budget`] and, when the container declared a
/// size, held to it: a member that inflates past its declared size is corrupt (or an
/// amplification attempt) and fails with `InvalidData`.
pub struct Capped<R> {
    inner: R,
    budget: Budget,
    /// Bytes still allowed by the declared size, if there is one.
    declared: Option<u64>,
}

impl<R: Read> Capped<R> {
    /// Charges `inner`'s output to `budget`.
    pub fn new(inner: R, budget: Budget) -> Self {
        Self { inner, budget, declared: None }
    }

    /// Also fails once more than `size` bytes came out (a declared uncompressed size).
    pub fn with_declared_size(mut self, size: u64) -> Self {
        self.declared = Some(size);
        self
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let allowed = self.budget.remaining().min(self.declared.unwrap_or(u64::MAX));
        if allowed == 0 {
            // Exactly at a cap: only a clean end of stream is acceptable.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ if self.declared == Some(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "member inflates past its declared size",
                )),
                _ => Err(self.budget.exceeded()),
            };
        }
        let want = buf.len().min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.budget.remaining.set(self.budget.remaining() - n as u64);
        if let Some(declared) = &mut self.declared {
            *declared -= n as u64;
        }
        Ok(n)
    }
}

/// Bounds the bytes the XML tokenizer consumes for one event.
///
/// quick-xml buffers a whole text node, tag, comment, CDATA section or doctype before it
/// hands it out, so without a bound a run of text (or of `>` characters, or a comment full
/// of markup) becomes a buffer as large as the document. The parser calls
/// [`MarkupGuard::start_event`] before asking for each event; this reader then exposes at
/// most the event budget (twice `max_field_bytes` plus room for a tag's attributes) and
/// fails with [`LimitExceeded::FieldBytes`] once an event needs more. It hands out the
/// inner reader's buffer in place, so it adds no copy.
pub struct MarkupGuard<R> {
    inner: R,
    /// Bytes consumed since the current event started.
    used: u64,
    max_event: u64,
    max_field_bytes: u32,
}

impl<R> MarkupGuard<R> {
    /// Guards `inner` with an event budget derived from `max_field_bytes`.
    pub fn new(inner: R, max_field_bytes: u32) -> Self {
        Self { inner, used: 0, max_event: 2 * u64::from(max_field_bytes) + 1024, max_field_bytes }
    }

    /// Starts the budget of a new event.
    pub fn start_event(&mut self) {
        self.used = 0;
    }
}

impl<R: BufRead> Read for MarkupGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for MarkupGuard<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.used > self.max_event {
            return Err(std::io::Error::other(LimitExceeded::FieldBytes(self.max_field_bytes)));
        }
        // One byte past the budget, so that an event that needs more is seen to need it.
        let allowed = usize::try_from(self.max_event - self.used + 1).unwrap_or(usize::MAX);
        let buf = self.inner.fill_buf()?;
        Ok(&buf[..buf.len().min(allowed)])
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.used += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::limit_of;

    #[test]
    fn capped_charges_one_budget_for_all_readers() {
        let budget = Budget::new(150);
        let mut out = Vec::new();
        Capped::new(&[0u8; 100][..], budget.clone()).read_to_end(&mut out).expect("first fits");
        let err = Capped::new(&[0u8; 100][..], budget.clone()).read_to_end(&mut out).expect_err("budget");
        assert_eq!(limit_of(&err), Some(LimitExceeded::DecompressedBytes(150)));
        assert_eq!(budget.remaining(), 0);

        let mut exact = Vec::new();
        Capped::new(&[0u8; 10][..], Budget::new(10)).read_to_end(&mut exact).expect("exactly at cap");
        assert_eq!(exact.len(), 10);
    }

    #[test]
    fn capped_holds_a_declared_size() {
        let mut out = Vec::new();
        let err = Capped::new(&[0u8; 100][..], Budget::new(1 << 20))
            .with_declared_size(10)
            .read_to_end(&mut out)
            .expect_err("declared 10");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(limit_of(&err), None);
        let mut out = Vec::new();
        Capped::new(&[0u8; 10][..], Budget::new(1 << 20))
            .with_declared_size(10)
            .read_to_end(&mut out)
            .expect("as declared");
    }

    #[test]
    fn markup_guard_bounds_each_event_not_each_run() {
        // A run of `>` resets nothing: the budget is per event, whatever the bytes.
        let run = vec![b'>'; 10_000];
        let mut guard = MarkupGuard::new(&run[..], 16);
        guard.start_event();
        let mut out = Vec::new();
        let err = guard.read_to_end(&mut out).expect_err("event cap");
        assert_eq!(limit_of(&err), Some(LimitExceeded::FieldBytes(16)));
        assert!(out.len() <= 2 * 16 + 1024 + 1, "read {} bytes", out.len());

        // Small events, each within its budget, read to the end.
        let doc = b"<a>short</a>".repeat(1000);
        let mut guard = MarkupGuard::new(&doc[..], 16);
        let mut total = 0;
        loop {
            guard.start_event();
            let buf = guard.fill_buf().expect("fits");
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(12);
            guard.consume(n);
            total += n;
        }
        assert_eq!(total, doc.len());
    }
}
