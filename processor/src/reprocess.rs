//! Reprocessing: the inputs that became dead letters go through the pipeline again, from
//! the bytes the store kept (after an upgrade, or a fix of the parser).
//!
//! ```text
//! dead_letter_inputs ──release──> (their dead letters and envelope row forgotten)
//!        │ raw bytes, one input at a time
//!        └──────────> Envelope ──> the pipeline (as any input) ──> reports | dead letters
//!                                                                      │
//!                                       settle: inputs with no dead letter left ─┘ lose their bytes
//! ```
//!
//! Input: the embedded store. Output: what now parses is stored like any report; what
//! still does not is a dead letter again, with today's reason. Invariants: only inputs
//! kept whole (`length(raw) = raw_size`) are retried, since a cut input would fail for
//! the cut; an input's bytes are deleted only after a commit shows it left no dead
//! letter, so a crash at any point loses nothing (its dead letters are re-derived by the
//! next run); a report already stored is recognized by its identity, so running this
//! again, or on an input that was partly stored, counts nothing twice.

use rusqlite::{params, Connection, OptionalExtension};

use ruaflow_schema::envelope::{Envelope, Source};

use crate::store::StoreError;

/// Which dead-letter inputs to retry: those received from `since` on (unix seconds).
const WHOLE: &str = "length(raw) = raw_size AND raw_size > 0 AND received_at >= ?1";

/// What [`release`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Released {
    /// The inputs to feed again, by hash, oldest first.
    pub inputs: Vec<[u8; 32]>,
    /// Inputs not retried: only their first bytes were kept, or none (an empty input,
    /// or one the source could not read).
    pub partial: u64,
}

/// Forgets the dead letters and the envelope row of every input received from `since`
/// on whose bytes were kept whole (so the pipeline reads it again instead of skipping
/// it as already seen), in one transaction; the bytes stay until [`settle`].
pub fn release(conn: &Connection, since: i64) -> Result<Released, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let inputs: Vec<[u8; 32]> = tx
        .prepare(&format!(
            "SELECT envelope_sha256 FROM dead_letter_inputs WHERE {WHOLE} ORDER BY received_at, envelope_sha256"
        ))?
        .query_map([since], |r| r.get::<_, Vec<u8>>(0))?
        .filter_map(|sha| sha.map(|s| <[u8; 32]>::try_from(s.as_slice()).ok()).transpose())
        .collect::<Result<_, _>>()?;
    let partial: i64 = tx.query_row(
        &format!("SELECT COUNT(*) FROM dead_letter_inputs WHERE received_at >= ?1 AND NOT ({WHOLE})"),
        [since],
        |r| r.get(0),
    )?;
    for sha in &inputs {
        tx.execute("DELETE FROM dead_letters WHERE envelope_sha256 = ?1", [&sha[..]])?;
        tx.execute("DELETE FROM envelopes WHERE sha256 = ?1", [&sha[..]])?;
    }
    tx.commit()?;
    Ok(Released { inputs, partial: u64::try_from(partial).unwrap_or(0) })
}

/// The input `sha` as the Envelope it arrived as (its bytes, source, origin, file name
/// and time); `None` when it is gone or no longer matches its hash.
pub fn envelope(conn: &Connection, sha: &[u8; 32]) -> Result<Option<Envelope>, StoreError> {
    let row = conn
        .query_row(
            "SELECT raw, source, origin, filename, received_at FROM dead_letter_inputs WHERE envelope_sha256 = ?1",
            [&sha[..]],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((raw, source, origin, filename, received_at)) = row else { return Ok(None) };
    let source = match source.as_str() {
        "imap" => Source::Imap,
        "http" => Source::Http,
        _ => Source::Dir,
    };
    let mut envelope = Envelope::new(raw, source, origin, received_at);
    envelope.filename = filename;
    Ok((envelope.sha256 == *sha).then_some(envelope))
}

/// After the pipeline committed: deletes the kept bytes of every released input that
/// left no dead letter this time. Returns how many inputs now parse whole.
pub fn settle(conn: &Connection, inputs: &[[u8; 32]]) -> Result<u64, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut resolved = 0;
    for sha in inputs {
        resolved += tx.execute(
            "DELETE FROM dead_letter_inputs WHERE envelope_sha256 = ?1
             AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE envelope_sha256 = ?1)",
            params![&sha[..]],
        )? as u64;
    }
    tx.commit()?;
    Ok(resolved)
}
