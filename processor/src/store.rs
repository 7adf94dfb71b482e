//! What the pipeline's writer needs from a store. Two backends implement it: the SQLite
//! file of the embedded deployment ([`crate::sqlite`]) and ClickHouse for the distributed
//! one ([`crate::clickhouse`]); the pipeline itself is one and the same.
//!
//! Contract: the writer computes, the stores persist. Everything a report means — its
//! identity ([`ReportFacts`]), each record's verdict, the aggregates per source and
//! selector ([`Aggregates`]), its totals — is computed once by the pipeline's writer and
//! handed to the store, which writes it. Writes go into an open batch; [`Store::commit`]
//! makes the batch durable and releases its acknowledgements only then (DESIGN.md
//! invariant 1). Every write is idempotent by report identity or by envelope hash, so a
//! batch written twice changes no total (invariant 2).

use ruaflow_schema::dmarc::{Record, ReportHeader};
use ruaflow_schema::tlsrpt::TlsReport;
use ruaflow_schema::{ReportKey, Source};

use crate::aggregate::Aggregates;
use crate::barrier::Sealed;
use crate::normalize::Verdict;

/// What the writer knows of a report before its contents, for every store alike.
#[derive(Debug)]
pub struct ReportFacts<'a> {
    /// Its identity.
    pub key: ReportKey,
    /// [`ReportKey::digest`], the ClickHouse sorting key.
    pub digest: [u8; 16],
    /// The UTC day its range belongs to (unix seconds of midnight).
    pub day: i64,
    /// The input it came from.
    pub origin: &'a Origin,
    /// Where inside the input.
    pub location: &'a str,
}

impl<'a> ReportFacts<'a> {
    /// The facts of a report with identity `key`.
    pub fn new(key: ReportKey, origin: &'a Origin, location: &'a str) -> Self {
        let day = crate::normalize::day_of(key.begin, key.end);
        Self { digest: key.digest(), key, day, origin, location }
    }
}

/// A DMARC report's totals, known at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportTotals {
    /// Records stored.
    pub records: u64,
    /// Messages over them.
    pub messages: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// ClickHouse refused a statement or could not be reached.
    #[error("clickhouse: {0}")]
    ClickHouse(String),
    /// The dead-letter queue did not take a dead letter.
    #[error("dead-letter queue: {0}")]
    DeadLetterQueue(String),
    /// The detector group's topic did not take a report digest.
    #[error("digest queue: {0}")]
    DigestQueue(String),
    /// The database was written by a newer ruaflow.
    #[error("database schema version {found} is newer than this ruaflow supports ({supported})")]
    TooNew {
        /// Version found in the store.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The database lacks migrations this build needs (run `ruaflow migrate`).
    #[error("database schema version {found} is older than this ruaflow needs ({needed}); run `ruaflow migrate` first")]
    TooOld {
        /// Version found in the store.
        found: i64,
        /// Version this build needs.
        needed: i64,
    },
}

/// What a store error means for the write that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The store is briefly unavailable (busy, locked, unreachable): the same write may
    /// succeed later.
    Retriable,
    /// The data itself was refused (too big, against a constraint, a value the column
    /// cannot hold): no retry can help. The report that caused it becomes a dead letter
    /// with the error as its reason, and the batch goes on.
    Data,
    /// The store cannot go on (disk full, an I/O error, corruption, a schema mismatch):
    /// stop and say so; an operator must act.
    Fatal,
}

impl StoreError {
    /// Classifies the error (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        use rusqlite::ErrorCode;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorClass::Retriable,
                ErrorCode::TooBig | ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch => {
                    ErrorClass::Data
                }
                _ => ErrorClass::Fatal,
            },
            StoreError::Sqlite(
                rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::IntegralValueOutOfRange(..),
            ) => ErrorClass::Data,
            StoreError::Sqlite(_) | StoreError::TooNew { .. } | StoreError::TooOld { .. } => {
                ErrorClass::Fatal
            }
            StoreError::ClickHouse(_) | StoreError::DeadLetterQueue(_) | StoreError::DigestQueue(_) => {
                ErrorClass::Retriable
            }
        }
    }

    /// True when retrying the same write later may succeed (the file is busy or locked).
    pub fn is_retriable(&self) -> bool {
        self.class() == ErrorClass::Retriable
    }
}

/// Provenance of the envelope a report or dead letter came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// SHA-256 of the raw bytes.
    pub sha256: [u8; 32],
    /// The kind of source it came from.
    pub source: Source,
    /// Path, mailbox + UID, or remote address.
    pub origin: String,
    /// Original filename, if any.
    pub filename: Option<String>,
    /// When ingest received it, unix seconds.
    pub received_at: i64,
    /// Size of the raw input, in bytes.
    pub size: u64,
}

/// What became of one input, recorded with it once it is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputTally {
    /// Reports stored from it (duplicates of stored reports not counted).
    pub reports: u64,
    /// Dead letters recorded for it.
    pub dead_letters: u64,
}

/// A store the pipeline's single writer fills.
pub trait Store: Send {
    /// A DMARC report being written, between [`Store::begin_dmarc`] and
    /// [`Store::finish_dmarc`] or [`Store::abort_report`].
    type Open;

    /// Opens a batch if none is open.
    fn begin(&mut self) -> Result<(), StoreError>;

    /// Makes the open batch durable and releases `sealed` (its deliveries'
    /// acknowledgements, see [`crate::barrier`]) once it is — before returning, or later
    /// from another thread, as long as batches are released in commit order, none after
    /// a lost one, and [`Store::close`] waits for the last. On an error `sealed` is
    /// dropped unreleased.
    fn commit(&mut self, sealed: Sealed) -> Result<(), StoreError>;

    /// Waits until everything handed to the store is durable (or has failed).
    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Starts a DMARC report; `None` when the store already holds a report with the
    /// same identity (the caller then skips its records). On an error nothing of it is
    /// kept.
    fn begin_dmarc(
        &mut self,
        facts: &ReportFacts<'_>,
        header: &ReportHeader,
    ) -> Result<Option<Self::Open>, StoreError>;

    /// Stores one record of an open report, with its verdict and its source's network.
    fn dmarc_record(
        &mut self,
        report: &mut Self::Open,
        record: &Record,
        verdict: &Verdict<'_>,
        network: &str,
    ) -> Result<(), StoreError>;

    /// Stores aggregates of an open report: the whole report's, or one part of a report
    /// too large to aggregate in memory at once (parts add up). They are also the
    /// report's changes to the sender model, which a store that keeps the model applies.
    fn dmarc_aggregates(&mut self, report: &mut Self::Open, part: &Aggregates) -> Result<(), StoreError>;

    /// Completes an open report with its totals and warnings. On an error the report is
    /// dropped whole, as by [`Store::abort_report`].
    fn finish_dmarc(
        &mut self,
        report: Self::Open,
        totals: ReportTotals,
        warnings: &[String],
    ) -> Result<(), StoreError>;

    /// Drops an open report whose parse failed part-way: nothing of it is kept.
    fn abort_report(&mut self, report: Self::Open) -> Result<(), StoreError>;

    /// Stores a TLS report whole; false when it was stored before. On an error nothing of
    /// it is kept.
    fn tlsrpt(&mut self, facts: &ReportFacts<'_>, report: &TlsReport) -> Result<bool, StoreError>;

    /// Stores a failure report (already redacted); false when it was stored before. On
    /// an error nothing of it is kept.
    fn failure_report(
        &mut self,
        row: &crate::redact::FailureRow,
        origin: &Origin,
        location: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a dead letter: which input, where in it, and why. A dead letter for the
    /// same input and location is stored once.
    fn dead_letter(&mut self, origin: &Origin, location: &str, reason: &str) -> Result<(), StoreError>;

    /// Keeps the bytes of an input that produced dead letters, once per input: the first
    /// `keep` bytes of `raw` (`max_dead_letter_bytes`) in the store, the whole input in a
    /// dead-letter queue if the store has one; `reasons` sums up why its parts were
    /// refused.
    fn dead_letter_input(
        &mut self,
        origin: &Origin,
        raw: &std::sync::Arc<Vec<u8>>,
        keep: usize,
        reasons: &str,
    ) -> Result<(), StoreError>;

    /// Records that an input was fully processed, and what became of it.
    fn envelope_done(&mut self, origin: &Origin, tally: &InputTally) -> Result<(), StoreError>;
}
