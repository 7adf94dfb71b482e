//! The pipeline as one component: deliveries in, a real (in-memory) SQLite store out.
//! What one input may cost the store, and what a store that refuses a report does to the
//! rest of the batch.

use std::sync::Arc;

use ruaflow_processor::pipeline::{self, Delivery, PipelineConfig, Progress};
use ruaflow_processor::sqlite::SqliteStore;
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
