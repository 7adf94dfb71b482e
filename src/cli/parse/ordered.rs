//! Output of many files rendered in parallel, printed in input order, in bounded memory.
//!
//! Each file renders into its own [`Slot`]. A slot's text is held until the file before
//! it is printed; a slot that grows past `spill_bytes` waits for its turn and then writes
//! straight through, so one huge report streams instead of being held whole. At most
//! `window` files are rendered ahead of the one being printed.
//!
//! No deadlock: files are admitted in index order, so the file whose turn it is was
//! admitted and is being rendered by a worker that never waits for another turn.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The shared printer.
pub struct Ordered<W> {
    state: Mutex<State<W>>,
    changed: Condvar,
    spill_bytes: usize,
    window: usize,
}

struct State<W> {
    out: W,
    /// The index of the file being printed.
    turn: usize,
    /// Rendered files waiting for their turn.
    finished: BTreeMap<usize, Vec<u8>>,
    /// The first write error (a closed pipe): everything after it fails fast.
    failed: Option<std::io::ErrorKind>,
}

impl<W: Write> Ordered<W> {
    /// Prints to `out`.
    pub fn new(out: W, spill_bytes: usize, window: usize) -> Self {
        let state = State { out, turn: 0, finished: BTreeMap::new(), failed: None };
        Self { state: Mutex::new(state), changed: Condvar::new(), spill_bytes, window: window.max(1) }
    }

    /// Waits until file `index` may be rendered, and returns its slot.
    pub fn slot(&self, index: usize) -> std::io::Result<Slot<'_, W>> {
        let state = self.wait_until(|s| index < s.turn + self.window)?;
        drop(state);
        Ok(Slot { printer: self, index, buf: Vec::new(), streaming: false })
    }

    /// Gives back the output once every slot is finished.
    pub fn into_inner(self) -> std::io::Result<W> {
        let state = self.state.into_inner().map_err(|_| std::io::Error::other("printer poisoned"))?;
        match state.failed {
            Some(kind) => Err(kind.into()),
            None => Ok(state.out),
        }
    }

    fn wait_until(&self, ready: impl Fn(&State<W>) -> bool) -> std::io::Result<MutexGuard<'_, State<W>>> {
        let poisoned = |_| std::io::Error::other("printer poisoned");
        let mut state = self.state.lock().map_err(poisoned)?;
        loop {
            if let Some(kind) = state.failed {
                return Err(kind.into());
            }
            if ready(&state) {
                return Ok(state);
            }
            state = self.changed.wait(state).map_err(poisoned)?;
        }
    }
}

impl<W: Write> State<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Err(err) = self.out.write_all(bytes) {
            self.failed = Some(err.kind());
            return Err(err);
        }
        Ok(())
    }

    /// Moves the turn past `index` and prints the finished files that follow it.
    fn advance(&mut self) -> std::io::Result<()> {
        self.turn += 1;
        while let Some(text) = self.finished.remove(&self.turn) {
            self.write(&text)?;
            self.turn += 1;
        }
        Ok(())
    }
}

/// The output of one file.
pub struct Slot<'a, W: Write> {
    printer: &'a Ordered<W>,
    index: usize,
    buf: Vec<u8>,
    /// Set once this file waited for its turn and writes straight through.
    streaming: bool,
}

impl<W: Write> Slot<'_, W> {
    /// True once what was written can no longer be taken back (it was printed).
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// How much is held, to [`Slot::truncate`] back to.
    pub fn mark(&self) -> usize {
        self.buf.len()
    }

    /// Takes back what was written since `mark`, when it is still held (not streaming).
    pub fn truncate(&mut self, mark: usize) {
        if !self.streaming {
            self.buf.truncate(mark);
        }
    }

    /// Completes the file: prints it now if it is its turn, else leaves it for later.
    pub fn finish(mut self) -> std::io::Result<()> {
        let printer = self.printer;
        let mut state = printer.state.lock().map_err(|_| std::io::Error::other("printer poisoned"))?;
        let result = if self.streaming || state.turn == self.index {
            let buf = std::mem::take(&mut self.buf);
            state.write(&buf).and_then(|()| state.advance())
        } else {
            state.finished.insert(self.index, std::mem::take(&mut self.buf));
            Ok(())
        };
        printer.changed.notify_all();
        result
    }
}

impl<W: Write> Write for Slot<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= self.printer.spill_bytes {
            let index = self.index;
            let mut state = self.printer.wait_until(|s| s.turn == index)?;
            self.streaming = true;
            let buf = std::mem::take(&mut self.buf);
            state.write(&buf)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_print_in_order_and_big_ones_stream() {
        let printer = Ordered::new(Vec::new(), 16, 4);
        std::thread::scope(|scope| {
            // Rendered out of order on several threads; the big one streams.
            for index in (0..8).rev() {
                let printer = &printer;
                scope.spawn(move || {
                    let mut slot = printer.slot(index).expect("slot");
                    let text = if index == 3 { "3".repeat(100) } else { index.to_string() };
                    for chunk in text.as_bytes().chunks(7) {
                        slot.write_all(chunk).expect("write");
                    }
                    slot.write_all(b"\n").expect("write");
                    slot.finish().expect("finish");
                });
            }
        });
        let out = String::from_utf8(printer.into_inner().expect("out")).expect("utf-8");
        let expected: Vec<String> =
            (0..8).map(|i| if i == 3 { "3".repeat(100) } else { i.to_string() }).collect();
        assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    }
}
