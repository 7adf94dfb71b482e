//! A parse worker: takes deliveries from the queue, unpacks and parses them, and streams
//! what it finds to the writer — a report's records in bounded chunks, so a report of any
//! size takes bounded memory. A parser panic costs one input (a dead letter), not the
//! pipeline.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use ruaflow_schema::dmarc::DmarcReader;
use ruaflow_schema::unpack::{unpack, Content};
use ruaflow_schema::{Delivery, Limits};

use super::{Chunk, PipelineConfig, ToWriter, CHUNK_RECORDS, STREAM_CHUNKS};
use crate::store::Origin;

/// A worker: takes deliveries until the queue closes, parses, streams to the writer.
pub(super) fn run(
    queue: &Mutex<tokio::sync::mpsc::Receiver<Delivery>>,
    to_writer: &SyncSender<ToWriter>,
    config: &PipelineConfig,
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
            let delivery = queue.blocking_recv();
            metrics::gauge!("ruaflow_queue_depth").set(queue.len() as f64);
            delivery
        };
        let Some(Delivery { envelope, ack }) = delivery else { return };
        let origin = Arc::new(Origin {
            sha256: envelope.sha256,
            source: envelope.source,
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
                process(&raw, &origin, to_writer, config)
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
    config: &PipelineConfig,
) -> Result<(), ()> {
    let limits = &config.limits;
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
            Content::Failure(report) => send(ToWriter::Failure {
                origin: Arc::clone(origin),
                location,
                row: Box::new(crate::redact::failure_row(&report, origin, &config.privacy)),
            }),
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
