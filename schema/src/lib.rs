//! ruaflow-schema: everything about the bytes and the records, and the messages between
//! the stages. No network and no IO (only `tokio::sync`, for the stop signal).
//!
//! ```text
//! raw bytes ──> unpack ──────────────> XML  ──> dmarc::DmarcReader ──> ReportHeader, Record…
//!  (file,        (sniff by content,     JSON ──> tlsrpt::parse_report ──> TlsReport
//!   attachment,   gzip/zlib/zip/MIME,   ARF  ──> failure::FailureReport
//!   message)      capped by Limits)     broken ─> Error (a dead letter's reason)
//! ```
//!
//! Parsers are pure and synchronous, never panic, and read every untrusted byte through
//! the caps in [`Limits`]. The DMARC parser streams records one at a time, so memory stays
//! flat whatever the report size.
//!
//! Layout:
//! - [`alert`]: the alert every detector emits and every sink receives
//! - [`envelope`]: raw bytes + provenance, the message between ingest and processor
//! - [`identity`]: a report's identity, the key both stores deduplicate by
//! - [`limits`]: the caps on every untrusted read; [`capped`]: the readers that enforce them
//! - [`warnings`]: a report's warnings, bounded
//! - [`unpack`]: format sniffing, bounded decompression, zip and MIME walking
//! - [`dmarc`]: aggregate report model and streaming parser
//! - [`tlsrpt`]: SMTP TLS report model and parser
//! - [`failure`]: DMARC failure (forensic) report recognition
//! - [`health`]: whether the process can still store what its sources accept
//! - [`shutdown`]: the one stop signal of a process
//! - [`multipart`]: `multipart/form-data` upload bodies (the HTTP endpoint's form uploads)
//! - [`read`]: unpack + parse into whole values, or a streaming survey of an input
//! - [`secret`]: passwords and tokens in the config: from the file, a file, or the environment
//! - [`error`], [`text`], [`time`], [`clock`]: the error type, lenient text decoding,
//!   dates, the wall clock

#![forbid(unsafe_code)]

pub mod alert;
pub mod capped;
pub mod clock;
pub mod dmarc;
pub mod envelope;
pub mod error;
pub mod failure;
pub mod health;
pub mod identity;
pub mod limits;
pub mod multipart;
pub mod read;
pub mod secret;
pub mod shutdown;
pub mod text;
pub mod time;
pub mod tlsrpt;
// The one module allowed to decompress (see clippy.toml): every decoder in it is capped.
#[allow(clippy::disallowed_types)]
pub mod unpack;
mod vocab;
pub mod warnings;

pub use envelope::{Ack, Delivery, Envelope, Source};
pub use error::Error;
pub use health::Health;
pub use identity::{ReportKey, ReportKind};
pub use limits::{LimitExceeded, Limits};
pub use read::{read_reports, survey, Located, Parsed, Survey};
pub use secret::{Secret, SecretError};
pub use shutdown::Shutdown;
