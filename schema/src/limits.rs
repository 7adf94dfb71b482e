//! Caps on every untrusted read.
//!
//! Input: nothing; output: a [`Limits`] value that every decoder and parser takes.
//! Invariant: no byte of a report is read, decompressed or buffered beyond these caps, and
//! the error that stops a read names the cap that was hit (see [`LimitExceeded`]).

use serde::Deserialize;

/// Caps applied while decoding and parsing one raw report (one Envelope).
///
/// The defaults are generous for real receivers (the largest real aggregate reports are a
/// few MiB uncompressed) while keeping a hostile input from taking more than about
/// `max_decompressed_bytes` of memory or CPU.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest raw input accepted, in bytes, before any decompression (32 MiB).
    pub max_input_bytes: u64,
    /// Most bytes decompressed from one input, all its documents, layers and archive
    /// members together, in bytes (1 GiB). Streaming parsers keep memory flat regardless;
    /// the cap bounds CPU time.
    pub max_decompressed_bytes: u64,
    /// Largest decompressed size of a document that has to be held in memory whole (a
    /// TLSRPT JSON report, a mail message, a zip archive found inside gzip), in bytes (64 MiB).
    pub max_buffered_bytes: u64,
    /// Most compression layers (gzip, zlib) wrapped around one document (3).
    pub max_compression_layers: u32,
    /// Most entries read from one zip archive (64).
    pub max_zip_entries: u32,
    /// Deepest XML element nesting (32). DMARC reports nest 5 deep.
    pub max_xml_depth: u32,
    /// Longest text of one XML element or JSON string field, in bytes (64 KiB).
    pub max_field_bytes: u32,
    /// Most records in one DMARC report, or failure details in one TLSRPT report (10,000,000).
    pub max_records: u64,
    /// Most MIME parts visited in one mail message, nested messages included (256).
    pub max_mime_parts: u32,
    /// Lines of one mail message that look like a header field or a MIME boundary (4,096),
    /// counted before the message is parsed: the MIME parser builds a value for each, so
    /// this bounds its memory whatever the message size. A report mail has a few dozen.
    pub max_mime_headers: u32,
    /// Deepest nesting of mail messages inside mail messages (`message/rfc822` parts), the
    /// top-level message counting as 1 (8). Real reports nest 1–3 deep.
    pub max_mime_depth: u32,
    /// Most attributes on one XML element (64). DMARC elements carry one or two.
    pub max_xml_attributes: u32,
    /// Warnings kept per report (20); the rest are counted, and the last kept one says
    /// how many more there were.
    pub max_warnings: u32,
    /// Dead letters recorded per input (16); what one input holds beyond that is summed up
    /// in one more dead letter.
    pub max_dead_letters: u32,
    /// Raw bytes of an input kept with its dead letters, once per input whatever their
    /// number, in bytes (1 MiB).
    pub max_dead_letter_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 32 << 20,
            max_decompressed_bytes: 1 << 30,
            max_buffered_bytes: 64 << 20,
            max_compression_layers: 3,
            max_zip_entries: 64,
            max_xml_depth: 32,
            max_field_bytes: 64 << 10,
            max_records: 10_000_000,
            max_mime_parts: 256,
            max_mime_headers: 4096,
            max_mime_depth: 8,
            max_xml_attributes: 64,
            max_warnings: 20,
            max_dead_letters: 16,
            max_dead_letter_bytes: 1 << 20,
        }
    }
}

/// Which cap a hostile or oversized input ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// [`Limits::max_input_bytes`].
    #[error("input is larger than max_input_bytes ({0} bytes)")]
    InputBytes(u64),
    /// [`Limits::max_decompressed_bytes`].
    #[error("decompressed size exceeds max_decompressed_bytes ({0} bytes)")]
    DecompressedBytes(u64),
    /// [`Limits::max_buffered_bytes`].
    #[error("document to buffer exceeds max_buffered_bytes ({0} bytes)")]
    BufferedBytes(u64),
    /// [`Limits::max_compression_layers`].
    #[error("more than max_compression_layers ({0}) nested compression layers")]
    CompressionLayers(u32),
    /// [`Limits::max_zip_entries`].
    #[error("zip archive has more than max_zip_entries ({0}) entries")]
    ZipEntries(u32),
    /// [`Limits::max_xml_depth`].
    #[error("xml nesting deeper than max_xml_depth ({0})")]
    XmlDepth(u32),
    /// [`Limits::max_field_bytes`].
    #[error("a field is longer than max_field_bytes ({0} bytes)")]
    FieldBytes(u32),
    /// [`Limits::max_records`].
    #[error("report has more than max_records ({0}) records")]
    Records(u64),
    /// [`Limits::max_mime_parts`].
    #[error("mail message has more than max_mime_parts ({0}) parts")]
    MimeParts(u32),
    /// [`Limits::max_mime_headers`].
    #[error("mail message has more than max_mime_headers ({0}) header and boundary lines")]
    MimeHeaders(u32),
    /// [`Limits::max_mime_depth`].
    #[error("mail messages nested deeper than max_mime_depth ({0})")]
    MimeDepth(u32),
    /// [`Limits::max_xml_attributes`].
    #[error("an xml element has more than max_xml_attributes ({0}) attributes")]
    XmlAttributes(u32),
}
