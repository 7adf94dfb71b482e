//! Unpack: raw bytes → the report documents inside them.
//!
//! Input: one raw input exactly as received (a file, an attachment, a whole message).
//! Output: each XML or JSON document found, as a capped stream, and each failure report,
//! handed to a visitor. Formats are recognized by content, never by name or MIME type:
//! gzip (any number of layers up to the cap, so the double gzip some tools write works),
//! raw zlib, zip (every member), mail messages and mbox files (every MIME part, nested
//! `message/rfc822` included), XML, JSON.
//!
//! Invariant: this module owns every decompression in the project. Every decoder's
//! output is charged to one [`Budget`] per input (`max_decompressed_bytes`, all layers
//! and archive members together), each buffered document is bounded by
//! `max_buffered_bytes`, nesting by `max_compression_layers` and `max_mime_depth`; a cap
//! that is hit is reported as [`LimitExceeded`] naming it. Recursion follows only those
//! bounded nestings, so no input can exhaust the stack.
//!
//! Layout: this file sniffs and walks; [`mail`] walks MIME messages and mbox files,
//! [`transfer`] decodes base64 and quoted-printable, [`zip`] reads archives.

mod mail;
mod transfer;
mod zip;

use std::io::{BufRead, BufReader, Cursor, Read};

use flate2::read::{MultiGzDecoder, ZlibDecoder};

use crate::capped::{Budget, Capped};
use crate::error::Error;
use crate::failure::FailureReport;
use crate::limits::{LimitExceeded, Limits};

/// How many leading bytes are inspected to recognize a format.
const SNIFF_BYTES: usize = 512;

/// One document found in the input.
pub struct Found<'a> {
    /// Where in the input it was found: empty for the input itself, otherwise a path
    /// such as `report.zip/member.xml` or `part 2/report.xml.gz`.
    pub location: String,
    /// The document.
    pub content: Content<'a>,
}

/// What a found document is.
#[allow(clippy::large_enum_variant)] // short-lived, handed to the visitor by value once
pub enum Content<'a> {
    /// An XML document (a DMARC aggregate report, if anything), decompressed and capped.
    Xml(&'a mut dyn BufRead),
    /// A JSON document (a TLS report, if anything), decompressed and capped.
    Json(&'a mut dyn BufRead),
    /// A DMARC failure (forensic) report.
    Failure(Box<FailureReport>),
    /// Something that should have held a report and could not be decoded.
    Broken(Error),
}

/// The formats [`sniff`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// gzip (RFC 1952), `1f 8b`.
    Gzip,
    /// zlib (RFC 1950) without gzip framing, as some receivers send.
    Zlib,
    /// A zip archive.
    Zip,
    /// An Internet message (.eml).
    Mail,
    /// An mbox file (messages separated by `From ` lines).
    Mbox,
    /// XML text.
    Xml,
    /// JSON text.
    Json,
    /// No bytes (or only whitespace).
    Empty,
    /// Anything else.
    Unknown,
}

impl Format {
    /// What the format is called in an error message.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip data",
            Format::Zlib => "zlib data",
            Format::Zip => "a zip archive",
            Format::Mail => "a mail message",
            Format::Mbox => "an mbox file",
            Format::Xml => "xml",
            Format::Json => "json",
            Format::Empty => "an empty body",
            Format::Unknown => "unrecognized content",
        }
    }
}

/// Recognizes the format of a document from its first bytes.
pub fn sniff(head: &[u8]) -> Format {
    match head {
        [0x1f, 0x8b, ..] => return Format::Gzip,
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => return Format::Zip,
        _ => {}
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Format::Empty;
    };
    let text = &text[start..];
    match text[0] {
        b'<' => Format::Xml,
        b'{' | b'[' => Format::Json,
        _ if text.starts_with(b"From ") => Format::Mbox,
        _ if looks_like_header(text) => Format::Mail,
        _ if is_zlib_header(head) => Format::Zlib,
        _ => Format::Unknown,
    }
}

/// zlib (RFC 1950 §2.2): CMF says deflate with a window of at most 32 KiB and the
/// header checksum holds. Checked after the text formats, since two ASCII letters can
/// pass this test by chance.
fn is_zlib_header(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// True when the text opens with an RFC 5322 header field (`Name: value`).
fn looks_like_header(text: &[u8]) -> bool {
    let name_len = text.iter().take_while(|&&b| b.is_ascii_graphic() && b != b':').count();
    name_len > 0 && name_len < 80 && text.get(name_len) == Some(&b':')
}

/// Walks `input` and calls `visit` for every document in it. The visitor is called at
/// least once: with [`Content::Broken`] when nothing in the input could be read.
///
/// Errors from the visitor stop the walk and are returned as they are.
pub fn unpack<E>(
    input: &[u8],
    limits: &Limits,
    visit: &mut dyn FnMut(Found<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let budget = Budget::new(limits.max_decompressed_bytes);
    let mut walker = Walker { limits, visit, budget, mime_parts: 0, mail_depth: 0 };
    if input.len() as u64 > limits.max_input_bytes {
        let err = LimitExceeded::InputBytes(limits.max_input_bytes).into();
        return walker.broken(String::new(), err);
    }
    walker.bytes(String::new(), input, 0)
}

/// The JSON of one RFC 8460 §3 HTTPS delivery: the body is a TLS report as JSON, or as
/// gzip-compressed JSON (one layer), and nothing else. Whatever else it is (another
/// format, an archive, a mail message, more layers) is refused as
/// [`Error::Unrecognized`] naming what it is; a gzip layer that is corrupt or inflates past
/// `max_buffered_bytes` with the error saying so.
pub fn tlsrpt_delivery(input: &[u8], limits: &Limits) -> Result<Vec<u8>, Error> {
    if input.len() as u64 > limits.max_input_bytes {
        return Err(LimitExceeded::InputBytes(limits.max_input_bytes).into());
    }
    let refuse = |what: Format| {
        Error::Unrecognized(format!(
            "{} where RFC 8460 delivers one TLS report as json or gzip-compressed json",
            what.name()
        ))
    };
    match sniff(&input[..input.len().min(SNIFF_BYTES)]) {
        Format::Json => Ok(input.to_vec()),
        Format::Gzip => {
            let budget = Budget::new(limits.max_decompressed_bytes);
            let mut decoded = Capped::new(MultiGzDecoder::new(input), budget);
            let json = read_capped(&mut decoded, limits.max_buffered_bytes)?;
            match sniff(&json[..json.len().min(SNIFF_BYTES)]) {
                Format::Json => Ok(json),
                inner => Err(refuse(inner)),
            }
        }
        other => Err(refuse(other)),
    }
}

struct Walker<'v, E> {
    limits: &'v Limits,
    visit: &'v mut dyn FnMut(Found<'_>) -> Result<(), E>,
    /// What the decompressors of this input may still produce.
    budget: Budget,
    /// MIME parts visited so far, all messages of the input together.
    mime_parts: u32,
    /// How many mail messages enclose the one being walked.
    mail_depth: u32,
}

impl<E> Walker<'_, E> {
    fn broken(&mut self, location: String, err: Error) -> Result<(), E> {
        (self.visit)(Found { location, content: Content::Broken(err) })
    }

    /// A document held in memory (the input itself, a MIME part, a buffered archive).
    fn bytes(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
        match sniff(&data[..data.len().min(SNIFF_BYTES)]) {
            Format::Zip => self.zip(location, data, layers),
            Format::Mail => self.mail(location, data, layers),
            Format::Mbox => self.mbox(location, data, layers),
            _ => self.stream(location, Box::new(data), layers),
        }
    }

    /// A document read as a stream (decompressor output, a zip member).
    fn stream(&mut self, location: String, mut input: Box<dyn BufRead + '_>, layers: u32) -> Result<(), E> {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        if let Err(err) = (&mut input).take(SNIFF_BYTES as u64).read_to_end(&mut head) {
            return self.broken(location, Error::from_io(&err, "compressed"));
        }
        let format = sniff(&head);
        let mut input: Box<dyn BufRead + '_> = Box::new(Cursor::new(head).chain(input));
        match format {
            Format::Gzip | Format::Zlib => {
                if layers >= self.limits.max_compression_layers {
                    let err = LimitExceeded::CompressionLayers(self.limits.max_compression_layers);
                    return self.broken(location, err.into());
                }
                let budget = self.budget.clone();
                let decoded: Box<dyn Read + '_> = if format == Format::Gzip {
                    Box::new(Capped::new(MultiGzDecoder::new(input), budget))
                } else {
                    Box::new(Capped::new(ZlibDecoder::new(input), budget))
                };
                self.stream(location, Box::new(BufReader::with_capacity(64 << 10, decoded)), layers + 1)
            }
            Format::Zip | Format::Mail | Format::Mbox => {
                let data = match read_capped(&mut input, self.limits.max_buffered_bytes) {
                    Ok(data) => data,
                    Err(err) => return self.broken(location, err),
                };
                self.bytes(location, &data, layers)
            }
            Format::Xml => (self.visit)(Found { location, content: Content::Xml(&mut input) }),
            Format::Json => (self.visit)(Found { location, content: Content::Json(&mut input) }),
            Format::Empty => self.broken(location, Error::Empty),
            Format::Unknown => {
                self.broken(location, Error::Unrecognized(describe(input.fill_buf().unwrap_or_default())))
            }
        }
    }
}

/// Reads a whole stream into memory, failing with [`LimitExceeded::BufferedBytes`] past `cap`.
fn read_capped(input: &mut dyn Read, cap: u64) -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    let read = input.take(cap + 1).read_to_end(&mut data);
    if let Err(err) = read {
        return Err(Error::from_io(&err, "compressed"));
    }
    if data.len() as u64 > cap {
        return Err(LimitExceeded::BufferedBytes(cap).into());
    }
    Ok(data)
}

fn join(location: &str, child: &str) -> String {
    if location.is_empty() {
        child.to_owned()
    } else {
        format!("{location}/{child}")
    }
}

/// Describes unrecognized bytes for an error message: printable text is quoted, binary
/// shown as its first bytes in hex.
fn describe(head: &[u8]) -> String {
    let head = &head[..head.len().min(16)];
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("starts with {:?}", String::from_utf8_lossy(head))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("starts with bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlsrpt_deliveries_are_json_or_gzip_json_only() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let gzip = |data: &[u8]| {
            let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).expect("gzip");
            encoder.finish().expect("gzip")
        };
        let limits = Limits::default();
        assert_eq!(tlsrpt_delivery(b"{}", &limits).expect("json"), b"{}");
        assert_eq!(tlsrpt_delivery(&gzip(b" {}"), &limits).expect("gzip json"), b" {}");
        for refused in [
            b"<feedback/>".to_vec(),
            gzip(b"<feedback/>"),
            gzip(&gzip(b"{}")),
            b"PK\x03\x04rest".to_vec(),
            b"From: a@b\r\n\r\n{}".to_vec(),
            Vec::new(),
        ] {
            let err = tlsrpt_delivery(&refused, &limits).expect_err("refused");
            assert!(matches!(err, Error::Unrecognized(_)), "{err}");
        }
    }

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"\x1f\x8b\x08"), Format::Gzip);
        assert_eq!(sniff(b"\x78\x9c\x01"), Format::Zlib);
        assert_eq!(sniff(b"PK\x03\x04"), Format::Zip);
        assert_eq!(sniff(b"\xef\xbb\xbf  <?xml"), Format::Xml);
        assert_eq!(sniff(b"\n{\"a\":1}"), Format::Json);
        assert_eq!(sniff(b"Received: from x"), Format::Mail);
        assert_eq!(sniff(b"From a@b Mon Jan"), Format::Mbox);
        assert_eq!(sniff(b" \n\t"), Format::Empty);
        assert_eq!(sniff(b"hello world"), Format::Unknown);
    }
}
