//! The local queue: a bounded in-process channel between sources and the processor.

/// Envelopes waiting for a parse worker. When full, sources wait: a directory scan pauses
/// and nothing is read ahead of what the processor can take.
pub const CAPACITY: usize = 256;

/// Creates the queue.
pub fn local<T>() -> (tokio::sync::mpsc::Sender<T>, tokio::sync::mpsc::Receiver<T>) {
    tokio::sync::mpsc::channel(CAPACITY)
}
