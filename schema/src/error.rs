//! The one error type of the schema crate: why a raw input yielded no report.

use crate::limits::LimitExceeded;

/// Why decoding or parsing failed. Messages are lowercase and name the cap, field or
/// position involved, since they end up in dead letters that an operator reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cap from [`crate::Limits`] was hit.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The input is empty.
    #[error("input is empty")]
    Empty,
    /// The bytes are not any format ruaflow reads.
    #[error("unrecognized content: {0}")]
    Unrecognized(String),
    /// A compressed layer or archive is corrupt or truncated.
    #[error("corrupt {format} data: {detail}")]
    Corrupt {
        /// `gzip`, `zlib`, `zip`.
        format: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The XML is broken beyond what leniency can recover.
    #[error("malformed xml at byte {position}: {detail}")]
    Xml {
        /// Byte offset in the decompressed document.
        position: u64,
        /// What went wrong.
        detail: String,
    },
    /// The JSON is broken or does not have the TLSRPT shape.
    #[error("malformed json: {0}")]
    Json(String),
    /// The document is well-formed but not a DMARC or TLS report.
    #[error("not a report: {0}")]
    NotAReport(String),
    /// A field the report cannot mean anything without is missing or empty.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// A required field has a value that cannot be read.
    #[error("invalid {field}: {value:?}")]
    InvalidField {
        /// The field's path, e.g. `date_range/begin`.
        field: &'static str,
        /// The value as sent (truncated).
        value: String,
    },
    /// A mail message holds no report.
    #[error("mail message holds no report{0}")]
    NoReportInMessage(String),
    /// Reading the input failed for a reason other than a cap (should not happen in memory).
    #[error("read failed: {0}")]
    Io(String),
}

impl Error {
    /// Classifies an `io::Error` from a capped decompressing reader: a cap error comes back
    /// as itself, a decoder error as [`Error::Corrupt`].
    pub(crate) fn from_io(err: &std::io::Error, format: &'static str) -> Self {
        match limit_of(err) {
            Some(limit) => Error::Limit(limit),
            None => match err.kind() {
                std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::InvalidInput
                | std::io::ErrorKind::UnexpectedEof => Error::Corrupt { format, detail: err.to_string() },
                _ => Error::Io(err.to_string()),
            },
        }
    }
}

/// The cap carried inside an `io::Error` raised by [`crate::unpack`]'s capped readers.
pub(crate) fn limit_of(err: &std::io::Error) -> Option<LimitExceeded> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<LimitExceeded>()).copied()
}

/// Shortens a value for an error message.
pub(crate) fn clip(value: &str) -> String {
    const MAX: usize = 80;
    if value.len() <= MAX {
        return value.to_owned();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}
