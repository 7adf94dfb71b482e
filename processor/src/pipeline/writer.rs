//! The writer: the only owner of the store. Writes what the workers send, one report at
//! a time (a report the store refuses becomes a dead letter and the batch goes on),
//! commits in batches, and seals each batch's acknowledgements into the commit (see
//! [`crate::barrier`]). It also keeps, per input in flight, what it produced: its reports
//! and its dead letters, at most `max_dead_letters` of them and one copy of its bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use ruaflow_schema::Limits;
use tracing::{debug, warn};

use super::{Chunk, CommitHook, PipelineConfig, Progress, Summary, ToWriter, IDLE_COMMIT};
use crate::barrier::Barrier;
use crate::store::{ErrorClass, InputTally, Origin, Store, StoreError};

/// The writer: the only owner of the store. Commits in batches; fires acks after.
pub(super) fn run<S: Store>(
    store: &mut S,
    rx: &Receiver<ToWriter>,
    config: &PipelineConfig,
    progress: &Progress,
    hook: &mut dyn CommitHook<S>,
) -> Result<(), StoreError> {
    let mut writer =
        Writer { store, limits: &config.limits, batch: Batch::default(), inputs: HashMap::new() };
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
        self.store.commit(barrier.seal())?;
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
                for warning in &report.warnings {
                    warn!(report_id = %report.report_id, reporter = %report.organization_name, warning = %warning, "report read with a warning");
                }
                match self.store.tlsrpt(&report, &origin, &location) {
                    Ok(true) => {
                        self.stored(&origin, 0, 0);
                        if let Some(domain) = report.policy_domain() {
                            let day = crate::normalize::day_of(report.start, report.end);
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
            ToWriter::Failure { origin, location, row } => {
                match self.store.failure_report(&row, &origin, &location) {
                    Ok(true) => {
                        self.batch.summary.failure_reports += 1;
                        self.inputs.entry(input_key(&origin)).or_default().tally.reports += 1;
                        Ok(())
                    }
                    Ok(false) => {
                        self.batch.summary.duplicate_reports += 1;
                        Ok(())
                    }
                    Err(err) => self.refused(&origin, &location, err),
                }
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
