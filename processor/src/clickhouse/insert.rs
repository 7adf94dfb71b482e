//! The inserter: one thread that stores batches in ClickHouse while the pipeline's
//! writer fills the next one.
//!
//! Input: batches of rows with the acknowledgements of the deliveries they hold.
//! Output: the rows in ClickHouse, table by table, then the acknowledgements fired.
//! Invariants: acknowledgements are released only after every insert of their batch
//! succeeded, through the barrier's [`Releaser`] (in order, nothing after a lost batch);
//! batches are stored in the order they were handed over, and at most one batch waits
//! while one is being stored (the writer blocks on the hand-over), so memory stays
//! bounded and back-pressure reaches the consumer. While ClickHouse fails, the batch is
//! retried with backoff, forever unless a stop was requested.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clickhouse::{Client, RowOwned, RowWrite};

use super::{Batch, DeadLetterQueue, DigestQueue, InsertStats, MAX_BACKOFF};
use crate::barrier::{Releaser, Sealed};
use crate::store::StoreError;
use ruaflow_schema::Shutdown;

enum Job {
    Batch(Box<Batch>, Sealed),
    /// Answered once every earlier job is done.
    Sync(SyncSender<()>),
}

/// The handle of the inserter thread.
pub(super) struct Inserter {
    jobs: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Inserter {
    pub(super) fn start(
        client: Client,
        dlq: Option<Box<dyn DeadLetterQueue>>,
        digests: Option<Box<dyn DigestQueue>>,
        shutdown: Shutdown,
        stats: Arc<InsertStats>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        // A rendezvous channel: the hand-over waits until the thread takes the batch.
        let (jobs, rx) = sync_channel::<Job>(0);
        let failed = Arc::new(Mutex::new(None));
        let worker = Worker { client, dlq, digests, shutdown, stats, failed: Arc::clone(&failed), runtime };
        let thread = std::thread::Builder::new()
            .name("clickhouse".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| tracing::error!(error = %e, "cannot start the inserter thread"))
            .ok();
        Self { jobs: Some(jobs), thread, failed }
    }

    fn check(&self) -> Result<(), StoreError> {
        match self.failed.lock().map(|f| f.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(StoreError::ClickHouse(reason)),
            Err(_) => Err(StoreError::ClickHouse("the inserter thread panicked".into())),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.check()?;
        let gone = || StoreError::ClickHouse("the inserter thread stopped".into());
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())
    }

    /// Hands over a batch (waits while the previous one is still being stored).
    pub(super) fn submit(&mut self, batch: Batch, sealed: Sealed) -> Result<(), StoreError> {
        if batch.is_empty() && sealed.is_empty() {
            return self.check();
        }
        self.send(Job::Batch(Box::new(batch), sealed))
    }

    /// Waits until every batch handed over is done.
    pub(super) fn sync(&mut self) -> Result<(), StoreError> {
        let (tx, rx) = sync_channel(1);
        self.send(Job::Sync(tx))?;
        let _ = rx.recv();
        self.check()
    }

    /// Waits for every batch, then stops the thread.
    pub(super) fn close(mut self) -> Result<(), StoreError> {
        let synced = self.sync();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        synced
    }
}

struct Worker {
    client: Client,
    dlq: Option<Box<dyn DeadLetterQueue>>,
    digests: Option<Box<dyn DigestQueue>>,
    shutdown: Shutdown,
    stats: Arc<InsertStats>,
    failed: Arc<Mutex<Option<String>>>,
    runtime: tokio::runtime::Handle,
}

impl Worker {
    fn run(mut self, jobs: std::sync::mpsc::Receiver<Job>) {
        let mut releaser = Releaser::default();
        for job in jobs {
            match job {
                Job::Sync(done) => {
                    let _ = done.send(());
                }
                Job::Batch(_, sealed) if releaser.lost_reason().is_some() => {
                    releaser.lost(sealed, String::new()); // nothing after a lost batch
                }
                Job::Batch(mut batch, sealed) => match self.store(&mut batch) {
                    Ok(()) => {
                        releaser.durable(sealed);
                    }
                    Err(err) => {
                        self.fail(err.to_string());
                        releaser.lost(sealed, err.to_string());
                    }
                },
            }
        }
    }

    fn fail(&self, reason: String) {
        tracing::error!(error = %reason, "giving up on a batch; it stays unacknowledged and will be redelivered");
        if let Ok(mut failed) = self.failed.lock() {
            *failed = Some(reason);
        }
    }

    /// Stores one batch, retrying with backoff while ClickHouse fails.
    fn store(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows = batch.rows();
        let mut backoff = Duration::from_millis(200);
        let mut attempts = 0u32;
        loop {
            let started = Instant::now();
            match self.flush(batch) {
                Ok(()) => {
                    metrics::histogram!("ruaflow_insert_seconds").record(started.elapsed().as_secs_f64());
                    metrics::counter!("ruaflow_rows_inserted_total").increment(rows as u64);
                    self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.failing.store(false, Ordering::Relaxed);
                    return Ok(());
                }
                Err(err) => {
                    attempts += 1;
                    metrics::counter!("ruaflow_insert_failures_total").increment(1);
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.stats.failing.store(true, Ordering::Relaxed);
                    if self.shutdown.is_triggered() && attempts >= 3 {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, attempt = attempts, retry_in_ms = backoff.as_millis() as u64,
                        "insert failed; the batch is held and retried (nothing is acknowledged meanwhile)");
                    // A stop cuts the wait short; the attempts after it are the last.
                    self.shutdown.wait_timeout(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Inserts the batch, step by step; a step done in an earlier attempt is skipped.
    /// Every insert is idempotent, so a step repeated after an unclear failure is too.
    fn flush(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        // Dead letters first go to the queue, whole: an operator replays them from there.
        if batch.done & 1 == 0 {
            if let (Some(dlq), false) = (self.dlq.as_mut(), batch.dlq.is_empty()) {
                dlq.publish(&batch.dlq).map_err(StoreError::DeadLetterQueue)?;
            }
            batch.done |= 1;
        }
        self.runtime.block_on(async {
            if batch.done & (1 << 9) == 0 {
                Self::drop_stored_reports(&self.client, batch).await?;
                batch.done |= 1 << 9;
            }
            Self::insert_details(&self.client, batch).await
        })?;
        // The detector group hears of the reports once their rows are in, and before the
        // `reports` rows say they are: a report redelivered after a crash here is stored
        // again and its digest published again (the detector folds each report once).
        if batch.done & (1 << 12) == 0 {
            if let (Some(queue), false) = (self.digests.as_mut(), batch.digests.is_empty()) {
                queue.publish(&batch.digests).map_err(StoreError::DigestQueue)?;
            }
            batch.done |= 1 << 12;
        }
        self.runtime.block_on(Self::insert_announcements(&self.client, batch))
    }

    /// Removes from the batch every report whose identity is already in `reports` (or,
    /// for a failure report, in `failure_reports`), so the first stored copy of a report
    /// wins, as in the SQLite store. A redelivery of the same bytes would be harmless
    /// anyway (same keys); this matters for a report resent with the same identity but
    /// other contents, and spares the inserts.
    async fn drop_stored_reports(client: &Client, batch: &mut Batch) -> Result<(), StoreError> {
        let mut stored = HashSet::new();
        let reports: Vec<[u8; 16]> = batch.reports.iter().map(|r| r.report_key).collect();
        stored_keys(client, "reports", &reports, &mut stored).await?;
        let failures: Vec<[u8; 16]> = batch.failure_reports.iter().map(|r| r.report_key).collect();
        stored_keys(client, "failure_reports", &failures, &mut stored).await?;
        if stored.is_empty() {
            return Ok(());
        }
        tracing::debug!(reports = stored.len(), "reports stored before skipped");
        metrics::counter!("ruaflow_duplicate_reports_total").increment(stored.len() as u64);
        let keep = |key: &[u8; 16]| !stored.contains(key);
        batch.reports.retain(|r| keep(&r.report_key));
        batch.records.retain(|r| keep(&r.report_key));
        batch.source_days.retain(|r| keep(&r.report_key));
        batch.selector_days.retain(|r| keep(&r.report_key));
        batch.policies.retain(|r| keep(&r.report_key));
        batch.failures.retain(|r| keep(&r.report_key));
        batch.failure_reports.retain(|r| keep(&r.report_key));
        let stored_hex: HashSet<String> = stored.iter().map(|k| ruaflow_schema::envelope::hex(k)).collect();
        batch.digests.retain(|d| !stored_hex.contains(&d.report));
        Ok(())
    }

    async fn insert_details(client: &Client, batch: &mut Batch) -> Result<(), StoreError> {
        // Details before the rows that announce them: a `reports` row implies its
        // records and aggregates are in, and an `envelopes` row that the input is done.
        insert(client, "dmarc_records", &batch.records, &mut batch.done, 1 << 1).await?;
        insert(client, "agg_source_day", &batch.source_days, &mut batch.done, 1 << 2).await?;
        insert(client, "agg_selector_day", &batch.selector_days, &mut batch.done, 1 << 3).await?;
        insert(client, "tlsrpt_policies", &batch.policies, &mut batch.done, 1 << 4).await?;
        insert(client, "tlsrpt_failures", &batch.failures, &mut batch.done, 1 << 5).await?;
        insert(client, "dead_letters", &batch.dead_letters, &mut batch.done, 1 << 6).await?;
        insert(client, "dead_letter_inputs", &batch.dead_letter_inputs, &mut batch.done, 1 << 10).await?;
        insert(client, "failure_reports", &batch.failure_reports, &mut batch.done, 1 << 11).await?;
        Ok(())
    }

    async fn insert_announcements(client: &Client, batch: &mut Batch) -> Result<(), StoreError> {
        insert(client, "reports", &batch.reports, &mut batch.done, 1 << 7).await?;
        insert(client, "envelopes", &batch.envelopes, &mut batch.done, 1 << 8).await?;
        Ok(())
    }
}

/// Adds to `stored` those of `keys` that `table` already holds (by `report_key`).
async fn stored_keys(
    client: &Client,
    table: &str,
    keys: &[[u8; 16]],
    stored: &mut HashSet<[u8; 16]>,
) -> Result<(), StoreError> {
    for chunk in keys.chunks(2000) {
        let list: Vec<String> =
            chunk.iter().map(|k| format!("unhex('{}')", ruaflow_schema::envelope::hex(k))).collect();
        let sql = format!("SELECT hex(report_key) FROM {table} WHERE report_key IN ({})", list.join(","));
        let found: Vec<String> = client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(|e| StoreError::ClickHouse(format!("looking up stored reports in {table}: {e}")))?;
        for key in found {
            let mut bytes = [0u8; 16];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(key.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
            }
            stored.insert(bytes);
        }
    }
    Ok(())
}

/// Inserts `rows` into `table` unless `step` is marked done in `done`, then marks it.
async fn insert<T: RowOwned + RowWrite>(
    client: &Client,
    table: &str,
    rows: &[T],
    done: &mut u16,
    step: u16,
) -> Result<(), StoreError> {
    if *done & step == 0 {
        super::insert_rows(client, table, rows).await?;
    }
    *done |= step;
    Ok(())
}
