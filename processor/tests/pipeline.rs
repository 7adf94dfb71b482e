//! The pipeline as one component: deliveries in, a real (in-memory) SQLite store out.
//! What one input may cost the store, and what a store that refuses a report does to the
//! rest of the batch.

use std::sync::Arc;

use ruaflow_processor::barrier::{Releaser, Sealed};
use ruaflow_processor::pipeline::{self, Delivery, PipelineConfig, Progress};
use ruaflow_processor::sqlite::SqliteStore;
use ruaflow_processor::store::{InputTally, Origin, Store, StoreError};
use ruaflow_schema::dmarc::{Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;
use ruaflow_schema::{Envelope, Limits, Source};

/// Runs the pipeline over `inputs` (name, bytes) into `store`; returns the store.
fn run(store: SqliteStore, inputs: Vec<(&str, Vec<u8>)>, limits: Limits) -> (SqliteStore, pipeline::Summary) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Delivery>(inputs.len().max(1));
    for (name, bytes) in inputs {
        let envelope = Envelope::new(bytes, Source::Dir, name.to_owned(), 1_700_000_000);
        tx.try_send(Delivery { envelope, ack: None }).expect("queue has room");
    }
    drop(tx);
    let config = PipelineConfig { workers: 2, limits, ..PipelineConfig::default() };
    let progress = Arc::new(Progress::default());
    let store = pipeline::run(store, None, rx, &config, Arc::clone(&progress), &mut ()).expect("pipeline");
    (store, progress.summary())
}

fn count(store: &SqliteStore, sql: &str) -> i64 {
    store.conn().query_row(sql, [], |r| r.get(0)).expect(sql)
}

fn report(id: &str, records: usize) -> Vec<u8> {
    let record = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row>\
        <identifiers><header_from>example.com</header_from></identifiers></record>";
    format!(
        "<feedback><report_metadata><org_name>r.example</org_name><report_id>{id}</report_id>\
         <date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>\
         <policy_published><domain>example.com</domain></policy_published>{}</feedback>",
        record.repeat(records)
    )
    .into_bytes()
}

#[test]
fn one_input_writes_a_bounded_number_of_dead_letters_and_one_copy_of_its_bytes() {
    let mut mbox = Vec::new();
    for i in 0..400 {
        mbox.extend_from_slice(
            format!("From a@example.com Mon Jan 1 00:00:00 2024\nSubject: {i}\n\nhello\n\n").as_bytes(),
        );
    }
    let size = mbox.len() as i64;
    let limits = Limits { max_dead_letters: 16, max_dead_letter_bytes: 1000, ..Limits::default() };
    let (store, summary) = run(
        SqliteStore::in_memory().expect("store"),
        vec![("mbox", mbox), ("good.xml", report("1", 3))],
        limits,
    );

    assert_eq!(summary.dead_letters, 17, "16 dead letters and one summing up the rest");
    assert_eq!(count(&store, "SELECT count(*) FROM dead_letters"), 17);
    let summed: String = store
        .conn()
        .query_row("SELECT reason FROM dead_letters WHERE location = '…'", [], |r| r.get(0))
        .expect("summary letter");
    assert!(summed.starts_with("384 more parts"), "{summed}");
    assert_eq!(count(&store, "SELECT count(*) FROM dead_letter_inputs"), 1, "one copy per input");
    assert_eq!(count(&store, "SELECT length(raw) FROM dead_letter_inputs"), 1000, "capped");
    assert_eq!(count(&store, "SELECT raw_size FROM dead_letter_inputs"), size);
    assert_eq!(count(&store, "SELECT dead_letters FROM envelopes WHERE origin = 'mbox'"), 17);
    assert_eq!(count(&store, "SELECT reports FROM envelopes WHERE origin = 'mbox'"), 0);
    assert_eq!(count(&store, "SELECT reports FROM envelopes WHERE origin = 'good.xml'"), 1);
    assert_eq!(count(&store, "SELECT dead_letters FROM envelopes WHERE origin = 'good.xml'"), 0);
    assert_eq!(count(&store, "SELECT count(*) FROM dmarc_records"), 3, "the good input is stored");
}

#[test]
fn a_report_the_store_refuses_becomes_a_dead_letter_and_the_batch_commits() {
    let store = SqliteStore::in_memory().expect("store");
    // Values longer than this are refused by SQLite ("string or blob too big"): the
    // stand-in for any report a store cannot hold.
    store.conn().set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 2000).expect("limit");
    let long_id = "x".repeat(3000);
    let inputs =
        vec![("a.xml", report("a", 2)), ("huge.xml", report(&long_id, 2)), ("b.xml", report("b", 2))];
    let (store, summary) = run(store, inputs, Limits { max_dead_letter_bytes: 1000, ..Limits::default() });

    assert_eq!((summary.reports, summary.records, summary.dead_letters), (2, 4, 1), "{summary:?}");
    assert_eq!(count(&store, "SELECT count(*) FROM reports"), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM dmarc_records"), 4, "nothing of the refused report stays");
    let reason: String =
        store.conn().query_row("SELECT reason FROM dead_letters", [], |r| r.get(0)).expect("dead letter");
    assert!(reason.starts_with("the store refused the report"), "{reason}");
    assert_eq!(count(&store, "SELECT count(*) FROM envelopes"), 3, "every input is done");
}

/// A SQLite store whose commits are made durable by a background "inserter" that loses
/// one batch (or, with `fail_commit`, whose commit itself fails): the stand-in for a
/// store that cannot keep what it was given.
struct Lossy {
    inner: SqliteStore,
    commits: usize,
    /// The commit (0-based) that fails outright.
    fail_commit: Option<usize>,
    // (The commit whose batch the inserter loses is known to the inserter thread.)
    /// Hands each commit's batch to the inserter thread.
    inserter: Option<Inserter>,
}

/// The background thread that makes batches durable, and the way to it.
type Inserter = (std::sync::mpsc::Sender<(usize, Sealed)>, std::thread::JoinHandle<()>);

impl Lossy {
    fn new(fail_commit: Option<usize>, lose_batch: Option<usize>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Sealed)>();
        let thread = std::thread::spawn(move || {
            let mut releaser = Releaser::default();
            for (n, sealed) in rx {
                if Some(n) == lose_batch {
                    releaser.lost(sealed, format!("batch {n} lost"));
                } else {
                    releaser.durable(sealed);
                }
            }
        });
        let inner = SqliteStore::in_memory().expect("store");
        Self { inner, commits: 0, fail_commit, inserter: Some((tx, thread)) }
    }
}

impl Drop for Lossy {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Store for Lossy {
    type Open = <SqliteStore as Store>::Open;

    fn begin(&mut self) -> Result<(), StoreError> {
        self.inner.begin()
    }

    fn commit(&mut self, sealed: Sealed) -> Result<(), StoreError> {
        let n = self.commits;
        self.commits += 1;
        if Some(n) == self.fail_commit {
            drop(sealed);
            return Err(StoreError::ClickHouse("commit failed".into()));
        }
        self.inner.commit(Sealed::empty())?;
        let (tx, _) = self.inserter.as_ref().expect("open");
        tx.send((n, sealed)).map_err(|_| StoreError::ClickHouse("inserter gone".into()))
    }

    fn close(&mut self) -> Result<(), StoreError> {
        if let Some((tx, thread)) = self.inserter.take() {
            drop(tx);
            let _ = thread.join();
        }
        Ok(())
    }

    fn begin_dmarc(
        &mut self,
        header: &ReportHeader,
        origin: &Origin,
        location: &str,
    ) -> Result<Option<Self::Open>, StoreError> {
        self.inner.begin_dmarc(header, origin, location)
    }

    fn dmarc_record(&mut self, report: &mut Self::Open, record: &Record) -> Result<(), StoreError> {
        self.inner.dmarc_record(report, record)
    }

    fn finish_dmarc(&mut self, report: Self::Open, warnings: &[String]) -> Result<(), StoreError> {
        self.inner.finish_dmarc(report, warnings)
    }

    fn abort_report(&mut self, report: Self::Open) -> Result<(), StoreError> {
        self.inner.abort_report(report)
    }

    fn tlsrpt(&mut self, report: &TlsReport, origin: &Origin, location: &str) -> Result<bool, StoreError> {
        self.inner.tlsrpt(report, origin, location)
    }

    fn failure_report(
        &mut self,
        row: &ruaflow_processor::redact::FailureRow,
        origin: &Origin,
        location: &str,
    ) -> Result<bool, StoreError> {
        self.inner.failure_report(row, origin, location)
    }

    fn dead_letter(&mut self, origin: &Origin, location: &str, reason: &str) -> Result<(), StoreError> {
        self.inner.dead_letter(origin, location, reason)
    }

    fn dead_letter_input(
        &mut self,
        origin: &Origin,
        raw: &Arc<Vec<u8>>,
        keep: usize,
        reasons: &str,
    ) -> Result<(), StoreError> {
        self.inner.dead_letter_input(origin, raw, keep, reasons)
    }

    fn envelope_done(&mut self, origin: &Origin, tally: &InputTally) -> Result<(), StoreError> {
        self.inner.envelope_done(origin, tally)
    }
}

/// Runs `inputs` reports, one per delivery and one batch each, through `store`; returns
/// the ids whose acknowledgement fired, in firing order, and whether the pipeline failed.
fn acked_ids(store: Lossy, inputs: usize) -> (Vec<usize>, bool) {
    let fired = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::mpsc::channel::<Delivery>(inputs);
    for i in 0..inputs {
        let envelope = Envelope::new(report(&format!("r{i}"), 1), Source::Http, format!("client {i}"), 0);
        let fired = Arc::clone(&fired);
        let ack: ruaflow_schema::Ack = Box::new(move || fired.lock().expect("lock").push(i));
        tx.try_send(Delivery { envelope, ack: Some(ack) }).expect("room");
    }
    drop(tx);
    // One worker keeps the order; one record per batch makes one batch per input.
    let config = PipelineConfig { workers: 1, batch_records: 1, ..PipelineConfig::default() };
    let result = pipeline::run(store, None, rx, &config, Arc::new(Progress::default()), &mut ());
    let fired = fired.lock().expect("lock").clone();
    (fired, result.is_err())
}

#[test]
fn a_failed_commit_acknowledges_nothing_of_its_batch_or_after() {
    // An input's acknowledgement joins the batch after its report's (it follows the
    // report from its worker), so commit n carries the acknowledgement of input n - 1.
    let (fired, failed) = acked_ids(Lossy::new(Some(3), None), 8);
    assert!(failed, "the pipeline reports the failed commit");
    assert_eq!(fired, [0, 1], "only batches committed before the failure are acknowledged");
}

#[test]
fn nothing_after_a_lost_batch_is_acknowledged() {
    // The inserter loses batch 3 after the commit handed it over; batches 4.. are stored
    // fine, but acknowledging them would let a Kafka offset pass the lost data.
    let (fired, failed) = acked_ids(Lossy::new(None, Some(3)), 8);
    assert!(!failed);
    assert_eq!(fired, [0, 1], "commit 3 carried input 2's acknowledgement");
    let (all, _) = acked_ids(Lossy::new(None, None), 8);
    assert_eq!(all, (0..8).collect::<Vec<_>>(), "without a loss every input is acknowledged, in order");
}
