//! The embedded pipeline: deliveries → parse workers → one store writer → commit → acks.
//!
//! ```text
//!  queue (Delivery) ──> worker 1..N: unpack, parse ──┐  one bounded stream of record
//!                                                    ├─> chunks per report, in order
//!                                                    v
//!                       writer: SQLite batch ── commit ──> barrier: acks ──> on_commit hook
//! ```
//!
//! Input: [`Delivery`]s (an Envelope plus its acknowledgement) from a bounded queue.
//! Output: reports, records, aggregates and dead letters in the store; each delivery
//! acknowledged after the batch holding it committed. Invariants: records stream from a
//! worker to the writer in bounded chunks, so a report of any size takes bounded memory;
//! a report is written whole or not at all (savepoint); duplicates by bytes or by report
//! identity change no total; a report that fails part-way becomes a dead letter with the
//! reason, and the pipeline goes on.
//!
//! Layout: this file holds the configuration, the counters, the messages between the
//! stages and [`run`], which assembles them; [`worker`] parses, [`writer`] stores.

mod worker;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruaflow_schema::dmarc::{Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;
pub use ruaflow_schema::Delivery;
use ruaflow_schema::{Error as SchemaError, Health, Limits};

use crate::barrier::Ack;
use crate::store::{Origin, Store, StoreError};

/// Messages waiting for the writer. When full, workers block: back-pressure reaches
/// the queue, and through it the sources.
pub(super) const WRITER_QUEUE: usize = 64;
/// Chunks of records buffered per report between its worker and the writer; when full,
/// the worker's parser pauses, so memory per report is bounded.
pub(super) const STREAM_CHUNKS: usize = 8;
/// Records per chunk.
pub(super) const CHUNK_RECORDS: usize = 2048;
/// How long the writer waits for more work before committing a batch that a source is
/// waiting on. Short enough for an HTTP client, long enough to batch a burst.
pub(super) const IDLE_COMMIT: Duration = Duration::from_millis(20);

/// How the pipeline batches and parses.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Parse worker threads.
    pub workers: usize,
    /// Commit after this many records in the batch.
    pub batch_records: u64,
    /// Commit at least this often while data flows.
    pub batch_interval: Duration,
    /// Caps on untrusted input.
    pub limits: Limits,
    /// Marked failing, with the reason, the moment the writer cannot go on (the sources
    /// then refuse new work and `/healthz` says why).
    pub health: Health,
    /// What of a failure report's original message may be stored.
    pub privacy: crate::redact::PrivacyConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()).max(1),
            batch_records: 100_000,
            batch_interval: Duration::from_millis(500),
            limits: Limits::default(),
            health: Health::default(),
            privacy: crate::redact::PrivacyConfig::default(),
        }
    }
}

/// Counters the pipeline keeps while it runs (read them for progress).
#[derive(Debug, Default)]
pub struct Progress {
    /// Envelopes fully processed and committed.
    pub envelopes: AtomicU64,
    /// Envelopes skipped because identical bytes were stored before.
    pub duplicate_envelopes: AtomicU64,
    /// Reports stored (DMARC and TLS).
    pub reports: AtomicU64,
    /// Reports skipped because a report with the same identity was stored before.
    pub duplicate_reports: AtomicU64,
    /// DMARC records stored.
    pub records: AtomicU64,
    /// Messages over the stored records.
    pub messages: AtomicU64,
    /// Dead letters written.
    pub dead_letters: AtomicU64,
    /// DMARC failure reports stored (a failure report stored before counts as a
    /// duplicate report).
    pub failure_reports: AtomicU64,
}

/// A plain copy of [`Progress`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// See [`Progress::envelopes`].
    pub envelopes: u64,
    /// See [`Progress::duplicate_envelopes`].
    pub duplicate_envelopes: u64,
    /// See [`Progress::reports`].
    pub reports: u64,
    /// See [`Progress::duplicate_reports`].
    pub duplicate_reports: u64,
    /// See [`Progress::records`].
    pub records: u64,
    /// See [`Progress::messages`].
    pub messages: u64,
    /// See [`Progress::dead_letters`].
    pub dead_letters: u64,
    /// See [`Progress::failure_reports`].
    pub failure_reports: u64,
}

impl Progress {
    /// Reads the counters.
    pub fn summary(&self) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            envelopes: get(&self.envelopes),
            duplicate_envelopes: get(&self.duplicate_envelopes),
            reports: get(&self.reports),
            duplicate_reports: get(&self.duplicate_reports),
            records: get(&self.records),
            messages: get(&self.messages),
            dead_letters: get(&self.dead_letters),
            failure_reports: get(&self.failure_reports),
        }
    }
}

/// Called by the writer after every commit, with the store and the (domain, day) pairs
/// the batch touched: where streaming detection runs.
pub trait CommitHook<S>: Send {
    /// Runs after a commit; errors are logged, never fatal to ingestion.
    fn after_commit(&mut self, store: &mut S, touched: &[(String, i64)]);
}

impl<S> CommitHook<S> for () {
    fn after_commit(&mut self, _: &mut S, _: &[(String, i64)]) {}
}

pub(super) enum Chunk {
    Header(Box<ReportHeader>),
    Records(Vec<Record>),
    End(Vec<String>),
    Failed(SchemaError),
}

pub(super) enum ToWriter {
    Dmarc {
        origin: Arc<Origin>,
        location: String,
        chunks: Receiver<Chunk>,
    },
    Tls {
        origin: Arc<Origin>,
        location: String,
        report: Box<TlsReport>,
    },
    Dead {
        origin: Arc<Origin>,
        location: String,
        reason: String,
    },
    Failure {
        origin: Arc<Origin>,
        location: String,
        row: Box<crate::redact::FailureRow>,
    },
    /// The input is through. `raw` is kept when the input produced dead letters.
    Done {
        origin: Arc<Origin>,
        duplicate: bool,
        ack: Option<Ack>,
        raw: Option<Arc<Vec<u8>>>,
    },
}

/// Runs the pipeline until `queue` is closed and drained, then commits and returns.
/// `db_path`, for a SQLite store, lets workers skip byte-identical inputs unparsed.
pub fn run<S: Store>(
    mut store: S,
    db_path: Option<std::path::PathBuf>,
    queue: tokio::sync::mpsc::Receiver<Delivery>,
    config: &PipelineConfig,
    progress: Arc<Progress>,
    hook: &mut dyn CommitHook<S>,
) -> Result<S, StoreError> {
    let queue = Mutex::new(queue);
    let (to_writer, writer_rx) = sync_channel::<ToWriter>(WRITER_QUEUE);
    std::thread::scope(|scope| {
        for _ in 0..config.workers.max(1) {
            let to_writer = to_writer.clone();
            let queue = &queue;
            let db_path = db_path.clone();
            scope.spawn(move || worker::run(queue, &to_writer, config, db_path.as_deref()));
        }
        drop(to_writer);
        let written = writer::run(&mut store, &writer_rx, config, &progress, hook);
        if let Err(err) = &written {
            // Said at once: the workers may wait on the queue until the sources stop.
            tracing::error!(error = %err, "the pipeline cannot store reports; stopping");
            config.health.fail(format!("storing reports failed: {err}"));
        }
        written
    })?;
    store.close()?;
    Ok(store)
}
