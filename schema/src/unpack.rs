//! Unpack: raw bytes → the report documents inside them.
//!
//! Input: one raw input exactly as received (a file, an attachment, a whole message).
//! Output: each XML or JSON document found, as a capped stream, and each failure report,
//! handed to a visitor. Formats are recognized by content, never by name or MIME type:
//! gzip (any number of layers up to the cap, so the double gzip some tools write works),
//! raw zlib, zip (every member), mail messages and mbox files (every MIME part, nested
//! `message/rfc822` included), XML, JSON.
//!
//! Invariant: this module owns every decompression in the project. Each decoder is
//! wrapped in a [`Capped`] reader, each buffered document is bounded by
//! `max_buffered_bytes`, and nesting by `max_compression_layers`; a cap that is hit is
//! reported as [`LimitExceeded`] naming it.

use std::io::{BufRead, BufReader, Cursor, Read};

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::error::Error;
use crate::failure::{FailureReport, OriginalMessage, ReportMessage};
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
    let mut walker = Walker { limits, visit, mime_parts: 0 };
    if input.len() as u64 > limits.max_input_bytes {
        let err = LimitExceeded::InputBytes(limits.max_input_bytes).into();
        return walker.broken(String::new(), err);
    }
    walker.bytes(String::new(), input, 0)
}

struct Walker<'v, E> {
    limits: &'v Limits,
    visit: &'v mut dyn FnMut(Found<'_>) -> Result<(), E>,
    mime_parts: u32,
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
        let cap = self.limits.max_decompressed_bytes;
        match format {
            Format::Gzip | Format::Zlib => {
                if layers >= self.limits.max_compression_layers {
                    let err = LimitExceeded::CompressionLayers(self.limits.max_compression_layers);
                    return self.broken(location, err.into());
                }
                let decoded: Box<dyn Read + '_> = if format == Format::Gzip {
                    Box::new(Capped::new(MultiGzDecoder::new(input), cap))
                } else {
                    Box::new(Capped::new(ZlibDecoder::new(input), cap))
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

    fn zip(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
        if layers >= self.limits.max_compression_layers {
            let err = LimitExceeded::CompressionLayers(self.limits.max_compression_layers);
            return self.broken(location, err.into());
        }
        let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
            Ok(archive) => archive,
            Err(err) => return self.broken(location, zip_error(err)),
        };
        if archive.len() > self.limits.max_zip_entries as usize {
            let err = LimitExceeded::ZipEntries(self.limits.max_zip_entries);
            return self.broken(location, err.into());
        }
        let mut found = 0;
        for index in 0..archive.len() {
            let member = match archive.by_index(index) {
                Ok(member) => member,
                Err(err) => {
                    self.broken(join(&location, &format!("entry {index}")), zip_error(err))?;
                    continue;
                }
            };
            if member.is_dir() {
                continue;
            }
            found += 1;
            let name = join(&location, member.name());
            let capped = Capped::new(member, self.limits.max_decompressed_bytes);
            self.stream(name, Box::new(BufReader::with_capacity(64 << 10, capped)), layers + 1)?;
        }
        if found == 0 {
            return self.broken(location, Error::NotAReport("zip archive has no files".into()));
        }
        Ok(())
    }

    fn mbox(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
        let messages = mail_parser::mailbox::mbox::MessageIterator::new(data);
        for (index, message) in messages.enumerate() {
            let name = join(&location, &format!("message {}", index + 1));
            match message {
                Ok(message) => self.mail(name, message.contents(), layers)?,
                Err(err) => self.broken(name, Error::from_io(&err, "mbox"))?,
            }
        }
        Ok(())
    }

    fn mail(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
        // mail-parser asserts on some malformed multipart structures (a `debug_assert!`
        // its fuzzed inputs reach); a broken message must be a dead letter, not a crash.
        let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(data));
        let Ok(Some(message)) = parsed else {
            return self.broken(location, Error::Unrecognized("unreadable mail message".into()));
        };
        let mut reports = 0usize;
        let mut summary_text = None;
        self.message(&location, &message, layers, &mut reports, &mut summary_text)?;
        if reports > 0 {
            return Ok(());
        }
        // Exim's failure report has no ARF part, only a plain-text summary.
        let max_field = self.limits.max_field_bytes as usize;
        if let Some(report) =
            summary_text.as_deref().and_then(|t| FailureReport::from_exim_summary(t, max_field))
        {
            let report = ReportMessage::of(&message).complete(report);
            return (self.visit)(Found { location, content: Content::Failure(Box::new(report)) });
        }
        let subject = message.subject().map(|s| format!(" (subject {:?})", crate::error::clip(s)));
        self.broken(location, Error::NoReportInMessage(subject.unwrap_or_default()))
    }

    /// Visits the parts of one message; `reports` counts documents handed to the visitor.
    fn message(
        &mut self,
        location: &str,
        message: &mail_parser::Message<'_>,
        layers: u32,
        reports: &mut usize,
        summary_text: &mut Option<String>,
    ) -> Result<(), E> {
        let is_type = |ct: Option<&mail_parser::ContentType<'_>>, t: &str, sub: &str| {
            ct.is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case(t)
                    && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case(sub))
            })
        };
        // A report is `multipart/report`, or any message with an ARF part: NetEase sends
        // its failure reports as `multipart/mixed`.
        let is_report = is_type(message.content_type(), "multipart", "report")
            || message.parts.iter().any(|p| is_type(p.content_type(), "message", "feedback-report"));
        let max_field = self.limits.max_field_bytes as usize;
        // A failure report's parts come in order — summary, ARF fields, original
        // message — and the report needs all of them, so its ARF parts wait here until
        // every part was seen.
        let mut context = ReportMessage::of(message);
        let mut arf_parts = Vec::new();
        for (index, part) in message.parts.iter().enumerate() {
            self.mime_parts += 1;
            if self.mime_parts > self.limits.max_mime_parts {
                let err = LimitExceeded::MimeParts(self.limits.max_mime_parts);
                *reports += 1;
                return self.broken(location.to_owned(), err.into());
            }
            let name = join(location, &format!("part {}", index + 1));
            let (ctype, subtype) = part
                .content_type()
                .map(|ct| (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase()))
                .unwrap_or_default();
            match &part.body {
                PartType::Multipart(_) => {}
                PartType::Message(nested) => {
                    // The original message inside a failure report is evidence, not a report.
                    if is_report {
                        context.original = Some(OriginalMessage::from_message(nested, max_field, true));
                    } else {
                        self.message(&name, nested, layers, reports, summary_text)?;
                    }
                }
                PartType::Text(text) | PartType::Html(text) => {
                    if ctype == "message" && subtype == "feedback-report" {
                        *reports += 1;
                        arf_parts.push((name, FailureReport::from_arf(text, max_field)));
                    } else if is_report && ctype == "text" && subtype == "rfc822-headers" {
                        context.original = OriginalMessage::from_headers(text, max_field);
                    } else if matches!(sniff(text.as_bytes()), Format::Xml | Format::Json)
                        && !(ctype == "text" && subtype == "html")
                        && !(ctype == "text" && subtype == "rfc822-headers")
                    {
                        *reports += 1;
                        self.stream(name, Box::new(text.as_bytes()), layers)?;
                    } else if is_report && summary_text.is_none() && ctype == "text" && subtype == "plain" {
                        *summary_text = Some(text.to_string());
                    }
                }
                PartType::Binary(data) | PartType::InlineBinary(data) => {
                    if ctype == "message" && subtype == "feedback-report" {
                        *reports += 1;
                        let text = crate::text::decode_field(data, false);
                        arf_parts.push((name, FailureReport::from_arf(&text, max_field)));
                        continue;
                    }
                    match sniff(&data[..data.len().min(SNIFF_BYTES)]) {
                        // Images, PDFs, signatures: not ours, not an error.
                        Format::Unknown | Format::Empty | Format::Mail | Format::Mbox => {}
                        _ => {
                            *reports += 1;
                            self.bytes(name, data, layers)?;
                        }
                    }
                }
            }
        }
        for (name, report) in arf_parts {
            let report = Box::new(context.complete(report));
            (self.visit)(Found { location: name, content: Content::Failure(report) })?;
        }
        Ok(())
    }
}

/// A reader that fails with [`LimitExceeded::DecompressedBytes`] once more than `cap`
/// bytes have come out of `inner`.
pub struct Capped<R> {
    inner: R,
    remaining: u64,
    cap: u64,
}

impl<R: Read> Capped<R> {
    /// Caps `inner` at `cap` bytes.
    pub fn new(inner: R, cap: u64) -> Self {
        Self { inner, remaining: cap, cap }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            // Exactly at the cap: only a clean end of stream is acceptable.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(LimitExceeded::DecompressedBytes(self.cap))),
            };
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
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

fn zip_error(err: zip::result::ZipError) -> Error {
    match err {
        zip::result::ZipError::Io(io) => Error::from_io(&io, "zip"),
        other => Error::Corrupt { format: "zip", detail: other.to_string() },
    }
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

    #[test]
    fn capped_reader_stops_at_the_cap() {
        let mut out = Vec::new();
        let err = Capped::new(&[0u8; 100][..], 10).read_to_end(&mut out).expect_err("cap");
        assert_eq!(crate::error::limit_of(&err), Some(LimitExceeded::DecompressedBytes(10)));
        let mut out = Vec::new();
        Capped::new(&[0u8; 10][..], 10).read_to_end(&mut out).expect("exactly at cap");
        assert_eq!(out.len(), 10);
    }
}
