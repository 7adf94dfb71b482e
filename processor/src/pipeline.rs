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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruaflow_schema::dmarc::{DmarcReader, Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;
use ruaflow_schema::unpack::{unpack, Content};
pub use ruaflow_schema::Delivery;
use ruaflow_schema::{Error as SchemaError, Limits};
use tracing::{debug, info, warn};

use crate::barrier::{Ack, Barrier};
use crate::store::{ErrorClass, InputTally, Origin, Store, StoreError};

/// Messages waiting for the writer. When full, workers block: back-pressure reaches
/// the queue, and through it the sources.
const WRITER_QUEUE: usize = 64;
/// Chunks of records buffered per report between its worker and the writer; when full,
/// the worker's parser pauses, so memory per report is bounded.
const STREAM_CHUNKS: usize = 8;
/// Records per chunk.
const CHUNK_RECORDS: usize = 2048;
/// How long the writer waits for more work before committing a batch that a source is
/// waiting on. Short enough for an HTTP client, long enough to batch a burst.
const IDLE_COMMIT: Duration = Duration::from_millis(20);

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
    /// One info line per stored report, once its batch is committed (a watching run: a
    /// report at a time is news; a bulk load of thousands is not).
    pub log_reports: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()).max(1),
            batch_records: 100_000,
            batch_interval: Duration::from_millis(500),
            limits: Limits::default(),
            log_reports: false,
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
    /// DMARC failure reports seen (recognized, not stored).
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

enum Chunk {
    Header(Box<ReportHeader>),
    Records(Vec<Record>),
    End(Vec<String>),
    Failed(SchemaError),
}

enum ToWriter {
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
    Failure,
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
            scope.spawn(move || worker(queue, &to_writer, &config.limits, db_path.as_deref()));
        }
        drop(to_writer);
        write_loop(&mut store, &writer_rx, config, &progress, hook)
    })?;
    store.close()?;
    Ok(store)
}

/// A worker: takes deliveries until the queue closes, parses, streams to the writer.
fn worker(
    queue: &Mutex<tokio::sync::mpsc::Receiver<Delivery>>,
    to_writer: &SyncSender<ToWriter>,
    limits: &Limits,
    db_path: Option<&std::path::Path>,
) {
    // A read-only connection lets a worker skip byte-identical redeliveries without
    // parsing them (WAL readers do not block the writer).
    let seen = db_path.and_then(|p| {
        rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
    });
    loop {
        let delivery = {
            let Ok(mut queue) = queue.lock() else { return };
            queue.blocking_recv()
        };
        let Some(Delivery { envelope, ack }) = delivery else { return };
        let origin = Arc::new(Origin {
            sha256: envelope.sha256,
            source: envelope.source.as_str(),
            origin: envelope.origin.clone(),
            filename: envelope.filename.clone(),
            received_at: envelope.received_at,
            size: envelope.bytes.len() as u64,
        });
        let duplicate = seen.as_ref().is_some_and(|c| {
            c.prepare_cached("SELECT 1 FROM envelopes WHERE sha256 = ?1")
                .and_then(|mut s| s.exists([&envelope.sha256[..]]))
                .unwrap_or(false)
        });
        let mut kept = None;
        if duplicate {
            // Byte-identical to an input stored before: nothing to do.
        } else if let Some(reason) = envelope.read_error {
            // The source could not read it: a dead letter with the source's reason.
            let dead = ToWriter::Dead { origin: Arc::clone(&origin), location: String::new(), reason };
            if to_writer.send(dead).is_err() {
                return;
            }
        } else {
            // A panic in a parser is a bug, but it must cost one input, not the pipeline:
            // the input becomes a dead letter and this worker goes on.
            let raw = Arc::new(envelope.bytes);
            kept = Some(Arc::clone(&raw));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                process(&raw, &origin, to_writer, limits)
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(())) => return, // the writer is gone (it failed); nothing more can be stored
                Err(_) => {
                    tracing::error!(origin = %origin.origin, "parser panicked; input kept as a dead letter");
                    let dead = ToWriter::Dead {
                        origin: Arc::clone(&origin),
                        location: String::new(),
                        reason: "internal error: the parser panicked on this input".into(),
                    };
                    if to_writer.send(dead).is_err() {
                        return;
                    }
                }
            }
        }
        if to_writer.send(ToWriter::Done { origin, duplicate, ack, raw: kept }).is_err() {
            return;
        }
    }
}

/// Unpacks and parses one envelope, sending everything found to the writer. Errs only
/// when the writer has gone away.
fn process(
    raw: &[u8],
    origin: &Arc<Origin>,
    to_writer: &SyncSender<ToWriter>,
    limits: &Limits,
) -> Result<(), ()> {
    let send = |msg| to_writer.send(msg).map_err(|_| ());
    unpack(raw, limits, &mut |found| {
        let location = found.location;
        match found.content {
            Content::Xml(reader) => {
                let (tx, rx) = sync_channel(STREAM_CHUNKS);
                send(ToWriter::Dmarc { origin: Arc::clone(origin), location, chunks: rx })?;
                stream_dmarc(reader, limits, &tx);
                Ok(())
            }
            Content::Json(reader) => {
                let parsed = ruaflow_schema::read::read_json(reader, limits)
                    .and_then(|bytes| ruaflow_schema::tlsrpt::parse_report(&bytes, limits));
                match parsed {
                    Ok(report) => {
                        send(ToWriter::Tls { origin: Arc::clone(origin), location, report: Box::new(report) })
                    }
                    Err(err) => {
                        send(ToWriter::Dead { origin: Arc::clone(origin), location, reason: err.to_string() })
                    }
                }
            }
            Content::Failure(_) => send(ToWriter::Failure),
            Content::Broken(err) => {
                send(ToWriter::Dead { origin: Arc::clone(origin), location, reason: err.to_string() })
            }
        }
    })
}

/// Parses one aggregate report into chunks. Stops early, quietly, when the writer drops
/// the stream (the report is a duplicate).
fn stream_dmarc(reader: &mut dyn std::io::BufRead, limits: &Limits, tx: &SyncSender<Chunk>) {
    let mut parser = DmarcReader::new(reader, limits);
    match parser.header() {
        Ok(header) => {
            if tx.send(Chunk::Header(Box::new(header))).is_err() {
                return;
            }
        }
        Err(err) => {
            let _ = tx.send(Chunk::Failed(err));
            return;
        }
    }
    let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
    loop {
        match parser.next_record() {
            Ok(Some(record)) => {
                chunk.push(record);
                if chunk.len() == CHUNK_RECORDS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                    if tx.send(Chunk::Records(full)).is_err() {
                        return;
                    }
                }
            }
            Ok(None) => break,
            Err(err) => {
                let _ = tx.send(Chunk::Failed(err));
                return;
            }
        }
    }
    if !chunk.is_empty() && tx.send(Chunk::Records(chunk)).is_err() {
        return;
    }
    let _ = tx.send(Chunk::End(parser.take_warnings()));
}

/// The writer: the only owner of the store. Commits in batches; fires acks after.
fn write_loop<S: Store>(
    store: &mut S,
    rx: &Receiver<ToWriter>,
    config: &PipelineConfig,
    progress: &Progress,
    hook: &mut dyn CommitHook<S>,
) -> Result<(), StoreError> {
    let mut writer = Writer {
        store,
        limits: &config.limits,
        log_reports: config.log_reports,
        batch: Batch::default(),
        inputs: HashMap::new(),
    };
    let mut barrier = Barrier::default();
    let mut batch_started = Instant::now();
    loop {
        let mut wait = config.batch_interval.saturating_sub(batch_started.elapsed());
        if !barrier.is_empty() {
            // A source is waiting for its ack (an HTTP client, an IMAP message): under
            // load messages keep coming and the batch fills; when the queue goes quiet
            // for IDLE_COMMIT, commit now instead of waiting out the interval.
            wait = wait.min(IDLE_COMMIT);
        }
        let msg = match rx.recv_timeout(wait) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) if !barrier.is_empty() && !writer.batch.is_empty() => {
                writer.commit(&mut barrier, progress, hook)?;
                batch_started = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(msg) = msg {
            if writer.batch.is_empty() {
                batch_started = Instant::now();
            }
            writer.store.begin()?;
            writer.handle(msg, &mut barrier)?;
        }
        let due =
            writer.batch.records >= config.batch_records || batch_started.elapsed() >= config.batch_interval;
        if due && !writer.batch.is_empty() {
            writer.commit(&mut barrier, progress, hook)?;
            batch_started = Instant::now();
        }
    }
    writer.commit(&mut barrier, progress, hook)
}

/// What the open batch holds, published to [`Progress`] only once committed.
#[derive(Default)]
struct Batch {
    messages_in: u64,
    summary: Summary,
    records: u64,
    touched: Vec<(String, i64)>,
    /// With [`PipelineConfig::log_reports`]: the reports stored, logged after the commit.
    stored: Vec<StoredReport>,
}

/// A report stored in the open batch, for its log line.
struct StoredReport {
    reporter: String,
    report_id: String,
    domain: String,
    day: i64,
    counts: StoredCounts,
    origin: Arc<Origin>,
}

/// What a stored report counted.
enum StoredCounts {
    Dmarc { records: u64, messages: u64 },
    Tls { sessions: u64, failed: u64 },
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.messages_in == 0
    }
}

/// What one input in flight has produced so far.
#[derive(Default)]
struct Input {
    tally: InputTally,
    /// Dead letters beyond `max_dead_letters`: counted, summed up in one more.
    suppressed: u64,
    /// The first reason, for the dead-letter queue's summary.
    first_reason: Option<String>,
}

/// The writer's state: the store, the open batch, and the inputs in flight (keyed by
/// their `Origin`'s address, unique while the input is in flight).
struct Writer<'a, S> {
    store: &'a mut S,
    limits: &'a Limits,
    log_reports: bool,
    batch: Batch,
    inputs: HashMap<usize, Input>,
}

/// A key for an input in flight.
fn input_key(origin: &Arc<Origin>) -> usize {
    Arc::as_ptr(origin) as usize
}

impl<S: Store> Writer<'_, S> {
    fn commit(
        &mut self,
        barrier: &mut Barrier,
        progress: &Progress,
        hook: &mut dyn CommitHook<S>,
    ) -> Result<(), StoreError> {
        self.store.commit_then_ack(barrier)?;
        let s = std::mem::take(&mut self.batch);
        let add = |c: &AtomicU64, v: u64| c.fetch_add(v, Ordering::Relaxed);
        add(&progress.envelopes, s.summary.envelopes);
        add(&progress.duplicate_envelopes, s.summary.duplicate_envelopes);
        add(&progress.reports, s.summary.reports);
        add(&progress.duplicate_reports, s.summary.duplicate_reports);
        add(&progress.records, s.summary.records);
        add(&progress.messages, s.summary.messages);
        add(&progress.dead_letters, s.summary.dead_letters);
        add(&progress.failure_reports, s.summary.failure_reports);
        for r in &s.stored {
            let day = ruaflow_schema::time::format_date(r.day);
            match r.counts {
                StoredCounts::Dmarc { records, messages } => info!(
                    kind = "dmarc", reporter = %r.reporter, report_id = %r.report_id, domain = %r.domain,
                    day = %day, records, messages, origin = %r.origin.origin, "report stored"
                ),
                StoredCounts::Tls { sessions, failed } => info!(
                    kind = "tlsrpt", reporter = %r.reporter, report_id = %r.report_id, domain = %r.domain,
                    day = %day, sessions, failed, origin = %r.origin.origin, "report stored"
                ),
            }
        }
        if !s.touched.is_empty() {
            let mut touched = s.touched;
            touched.sort();
            touched.dedup();
            hook.after_commit(self.store, &touched);
        }
        Ok(())
    }

    fn handle(&mut self, msg: ToWriter, barrier: &mut Barrier) -> Result<(), StoreError> {
        self.batch.messages_in += 1;
        match msg {
            ToWriter::Dmarc { origin, location, chunks } => self.dmarc(&origin, &location, &chunks),
            ToWriter::Tls { origin, location, report } => {
                match self.store.tlsrpt(&report, &origin, &location) {
                    Ok(true) => {
                        self.stored(&origin, 0, 0);
                        let day = crate::normalize::day_of(report.start, report.end);
                        if self.log_reports {
                            let failed = report.failed_sessions();
                            self.batch.stored.push(StoredReport {
                                reporter: report.organization_name.clone(),
                                report_id: report.report_id.clone(),
                                domain: report.policy_domain().unwrap_or_default().to_owned(),
                                day,
                                counts: StoredCounts::Tls {
                                    sessions: report.successful_sessions() + failed,
                                    failed,
                                },
                                origin: Arc::clone(&origin),
                            });
                        }
                        if let Some(domain) = report.policy_domain() {
                            self.batch.touched.push((domain.to_owned(), day));
                        }
                        Ok(())
                    }
                    Ok(false) => {
                        self.batch.summary.duplicate_reports += 1;
                        Ok(())
                    }
                    Err(err) => self.refused(&origin, &location, err),
                }
            }
            ToWriter::Dead { origin, location, reason } => self.dead(&origin, &location, &reason),
            ToWriter::Failure => {
                self.batch.summary.failure_reports += 1;
                Ok(())
            }
            ToWriter::Done { origin, duplicate, ack, raw } => {
                if duplicate {
                    self.batch.summary.duplicate_envelopes += 1;
                } else {
                    self.input_done(&origin, raw.as_ref())?;
                    self.batch.summary.envelopes += 1;
                }
                if let Some(ack) = ack {
                    barrier.hold(ack);
                }
                Ok(())
            }
        }
    }

    /// Streams one aggregate report from its worker into the store.
    fn dmarc(
        &mut self,
        origin: &Arc<Origin>,
        location: &str,
        chunks: &Receiver<Chunk>,
    ) -> Result<(), StoreError> {
        let header = match chunks.recv() {
            Ok(Chunk::Header(header)) => header,
            Ok(Chunk::Failed(err)) => return self.dead(origin, location, &err.to_string()),
            _ => return self.dead(origin, location, "parser stopped before the report header"),
        };
        let mut open = match self.store.begin_dmarc(&header, origin, location) {
            Ok(Some(open)) => open,
            Ok(None) => {
                debug!(report_id = %header.metadata.report_id, reporter = %header.metadata.org_name, "duplicate report skipped");
                self.batch.summary.duplicate_reports += 1;
                return Ok(()); // dropping `chunks` stops the worker's parser
            }
            Err(err) => return self.refused(origin, location, err),
        };
        let (mut records, mut messages) = (0u64, 0u64);
        loop {
            match chunks.recv() {
                Ok(Chunk::Records(chunk)) => {
                    for record in &chunk {
                        if let Err(err) = self.store.dmarc_record(&mut open, record) {
                            self.store.abort_report(open)?;
                            return self.refused(origin, location, err);
                        }
                        messages += record.count;
                    }
                    records += chunk.len() as u64;
                }
                Ok(Chunk::End(warnings)) => {
                    for warning in &warnings {
                        warn!(report_id = %header.metadata.report_id, reporter = %header.metadata.org_name, warning = %warning, "report read with a warning");
                    }
                    if let Err(err) = self.store.finish_dmarc(open, &warnings) {
                        return self.refused(origin, location, err);
                    }
                    self.stored(origin, records, messages);
                    let m = &header.metadata;
                    let day = crate::normalize::day_of(m.begin, m.end);
                    if self.log_reports {
                        self.batch.stored.push(StoredReport {
                            reporter: m.org_name.clone(),
                            report_id: m.report_id.clone(),
                            domain: header.policy.domain.clone(),
                            day,
                            counts: StoredCounts::Dmarc { records, messages },
                            origin: Arc::clone(origin),
                        });
                    }
                    self.batch.touched.push((header.policy.domain.clone(), day));
                    return Ok(());
                }
                Ok(Chunk::Failed(err)) => {
                    self.store.abort_report(open)?;
                    return self.dead(origin, location, &err.to_string());
                }
                Ok(Chunk::Header(_)) | Err(_) => {
                    self.store.abort_report(open)?;
                    return self.dead(origin, location, "parser stopped in the middle of the report");
                }
            }
        }
    }

    /// Counts a stored report.
    fn stored(&mut self, origin: &Arc<Origin>, records: u64, messages: u64) {
        let s = &mut self.batch.summary;
        s.reports += 1;
        s.records += records;
        s.messages += messages;
        self.batch.records += records;
        self.inputs.entry(input_key(origin)).or_default().tally.reports += 1;
    }

    /// A store error while writing one report: when the data itself was refused, the
    /// report (already rolled back by the store) becomes a dead letter and the batch goes
    /// on; anything else stops the writer.
    fn refused(&mut self, origin: &Arc<Origin>, location: &str, err: StoreError) -> Result<(), StoreError> {
        match err.class() {
            ErrorClass::Data => self.dead(origin, location, &format!("the store refused the report: {err}")),
            ErrorClass::Retriable | ErrorClass::Fatal => Err(err),
        }
    }

    /// Records a dead letter, up to `max_dead_letters` per input; the rest are counted
    /// and summed up when the input is done.
    fn dead(&mut self, origin: &Arc<Origin>, location: &str, reason: &str) -> Result<(), StoreError> {
        let input = self.inputs.entry(input_key(origin)).or_default();
        input.first_reason.get_or_insert_with(|| reason.to_owned());
        if input.tally.dead_letters >= u64::from(self.limits.max_dead_letters) {
            input.suppressed += 1;
            return Ok(());
        }
        input.tally.dead_letters += 1;
        self.batch.summary.dead_letters += 1;
        warn!(origin = %origin.origin, location = %location, reason = %reason, "dead letter");
        self.store.dead_letter(origin, location, reason)
    }

    /// Closes the books on one input: the summing-up dead letter, its bytes when it
    /// produced dead letters (once), and its row.
    fn input_done(&mut self, origin: &Arc<Origin>, raw: Option<&Arc<Vec<u8>>>) -> Result<(), StoreError> {
        let mut input = self.inputs.remove(&input_key(origin)).unwrap_or_default();
        if input.suppressed > 0 {
            let reason = format!(
                "{} more parts of this input held no readable report (max_dead_letters is {})",
                input.suppressed, self.limits.max_dead_letters
            );
            warn!(origin = %origin.origin, more = input.suppressed, "dead letters summed up");
            self.store.dead_letter(origin, "…", &reason)?;
            input.tally.dead_letters += 1;
            self.batch.summary.dead_letters += 1;
        }
        if let (Some(first), Some(raw)) = (&input.first_reason, raw) {
            let more = input.tally.dead_letters + input.suppressed - 1;
            let reasons = if more == 0 { first.clone() } else { format!("{first} (and {more} more)") };
            let keep = usize::try_from(self.limits.max_dead_letter_bytes).unwrap_or(usize::MAX);
            match self.store.dead_letter_input(origin, raw, keep, &reasons) {
                Err(err) if err.class() == ErrorClass::Data => {
                    warn!(origin = %origin.origin, error = %err, "the store refused the bytes of a dead letter's input");
                }
                other => other?,
            }
        }
        self.store.envelope_done(origin, &input.tally)
    }
}
