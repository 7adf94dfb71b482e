//! Mail messages and mbox files: every MIME part that can hold a report.
//!
//! Input: one message (or an mbox of them) in memory; output: each report-bearing part to
//! the walker, DMARC failure reports as such, and a broken entry for a message that holds
//! none. Invariants (the stack is the scarce resource here, since a message can nest
//! messages tens of thousands deep in a few megabytes):
//! - mail-parser is asked to decode nothing: it parses the structure iteratively, and
//!   this module decodes each part's transfer encoding itself ([`super::transfer`]). Left
//!   to itself, mail-parser parses a base64 `message/rfc822` part recursively and copies
//!   the result recursively, with no bound on the depth it copies.
//! - before parsing, the lines that can become parser values (header fields, MIME
//!   boundaries) are counted and capped at `max_mime_headers`: mail-parser builds a
//!   value for each, so its memory stays a few MiB whatever the message; and since every
//!   level of nesting needs such a line, so does the depth of what it builds.
//! - nested messages are walked to `max_mime_depth` deep at most, parts to
//!   `max_mime_parts`, and a parsed message is taken apart iteratively, never dropped as a
//!   deep tree (whose recursive drop would overflow the stack).

use std::sync::OnceLock;

use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};

use super::transfer::TransferEncoding;
use super::{join, sniff, Content, Format, Found, Walker, SNIFF_BYTES};
use crate::error::Error;
use crate::failure::{FailureReport, OriginalMessage, ReportMessage};
use crate::limits::LimitExceeded;

/// The parser: every MIME header is read except `Content-Transfer-Encoding`, which is
/// ignored so that mail-parser never decodes (or recursively parses) a part's body.
fn parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        MessageParser::new()
            .with_mime_headers()
            .with_address_headers()
            .with_date_headers()
            .with_message_ids()
            .header_text(HeaderName::Subject)
            .ignore_header(HeaderName::ContentTransferEncoding)
    })
}

/// A parsed message, taken apart iteratively when it goes out of scope.
struct Parsed<'x>(Message<'x>);

impl Drop for Parsed<'_> {
    fn drop(&mut self) {
        let mut pending = vec![std::mem::take(&mut self.0)];
        while let Some(mut message) = pending.pop() {
            for part in &mut message.parts {
                if matches!(part.body, PartType::Message(_)) {
                    if let PartType::Message(nested) = std::mem::take(&mut part.body) {
                        pending.push(nested);
                    }
                }
            }
            // `message` now holds no nested message: dropping it recurses no further.
        }
    }
}

/// The parts of one failure report message, collected until all its parts were seen.
struct ReportParts {
    /// Who sent it and the original message.
    context: ReportMessage,
    /// Its ARF parts, with their locations.
    arf: Vec<(String, FailureReport)>,
}

/// What the walk of one message found, across its nested messages.
#[derive(Default)]
struct Findings {
    /// Documents handed to the visitor (reports, failure reports, broken parts).
    reports: usize,
    /// The first text/plain part of a `multipart/report`: Exim's failure report format.
    summary_text: Option<String>,
}

impl<E> Walker<'_, E> {
    pub(super) fn mbox(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
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

    /// One message: its parts, then the Exim summary fallback, else a broken entry.
    pub(super) fn mail(&mut self, location: String, data: &[u8], layers: u32) -> Result<(), E> {
        if self.mail_depth >= self.limits.max_mime_depth {
            return self.broken(location, LimitExceeded::MimeDepth(self.limits.max_mime_depth).into());
        }
        if structure_lines(data) > self.limits.max_mime_headers as usize {
            return self.broken(location, LimitExceeded::MimeHeaders(self.limits.max_mime_headers).into());
        }
        // mail-parser has asserted on malformed multipart structures (a `debug_assert!`
        // fuzzing reached); a broken message must be a dead letter, not a crash.
        let parsed = std::panic::catch_unwind(|| parser().parse(data));
        let Ok(Some(message)) = parsed else {
            return self.broken(location, Error::Unrecognized("unreadable mail message".into()));
        };
        let message = Parsed(message);
        let mut findings = Findings::default();
        self.mail_depth += 1;
        let walked = self.message(&location, &message.0, data, layers, &mut findings);
        self.mail_depth -= 1;
        walked?;
        if findings.reports > 0 {
            return Ok(());
        }
        let max_field = self.limits.max_field_bytes as usize;
        let summary =
            findings.summary_text.as_deref().and_then(|t| FailureReport::from_exim_summary(t, max_field));
        if let Some(report) = summary {
            let report = ReportMessage::of(&message.0).complete(report);
            return (self.visit)(Found { location, content: Content::Failure(Box::new(report)) });
        }
        let subject = message.0.subject().map(|s| format!(" (subject {:?})", crate::error::clip(s)));
        self.broken(location, Error::NoReportInMessage(subject.unwrap_or_default()))
    }

    /// Visits the parts of one message. `raw` is the buffer the message was parsed from
    /// (header offsets point into it).
    fn message(
        &mut self,
        location: &str,
        message: &Message<'_>,
        raw: &[u8],
        layers: u32,
        findings: &mut Findings,
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
        // A failure report's parts come in order — summary, ARF fields, original
        // message — and the report needs all of them, so its ARF parts wait here until
        // every part was seen.
        let mut report = ReportParts { context: ReportMessage::of(message), arf: Vec::new() };
        for (index, part) in message.parts.iter().enumerate() {
            self.mime_parts += 1;
            if self.mime_parts > self.limits.max_mime_parts {
                findings.reports += 1;
                return self.broken(
                    location.to_owned(),
                    LimitExceeded::MimeParts(self.limits.max_mime_parts).into(),
                );
            }
            let name = join(location, &format!("part {}", index + 1));
            let (ctype, subtype) = part
                .content_type()
                .map(|ct| (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase()))
                .unwrap_or_default();
            let encoding = transfer_encoding(part, raw);
            let is_message = ctype == "message" && (subtype == "rfc822" || subtype == "global");
            if is_message && is_report {
                // The original message inside a failure report is evidence, not a report:
                // its headers (and body) complete the failure report.
                report.context.original = Some(self.original(part, raw, encoding));
                continue;
            }
            if is_message && encoding != TransferEncoding::Identity {
                // A base64 or quoted-printable message/rfc822 (RFC 2046 forbids it; some
                // clients forward that way): mail-parser saw only the encoded text, so
                // decode the part's body and read it as a message of its own.
                let encoded = match &part.body {
                    PartType::Message(_) | PartType::Multipart(_) => {
                        raw.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default()
                    }
                    _ => part.contents(),
                };
                findings.reports += 1;
                self.mail(name, &encoding.decode(encoded), layers)?;
                continue;
            }
            match &part.body {
                PartType::Multipart(_) => {}
                PartType::Message(_) if is_report => {}
                PartType::Message(nested) => {
                    if self.mail_depth >= self.limits.max_mime_depth {
                        findings.reports += 1;
                        let err = LimitExceeded::MimeDepth(self.limits.max_mime_depth);
                        return self.broken(name, err.into());
                    }
                    self.mail_depth += 1;
                    let walked = self.message(&name, nested, raw, layers, findings);
                    self.mail_depth -= 1;
                    walked?;
                }
                PartType::Text(_) | PartType::Html(_) | PartType::Binary(_) | PartType::InlineBinary(_) => {
                    let body = encoding.decode(part.contents());
                    let is_text = matches!(part.body, PartType::Text(_) | PartType::Html(_));
                    let in_report = is_report.then_some(&mut report);
                    self.leaf(name, (&ctype, &subtype), &body, is_text, in_report, layers, findings)?;
                }
            }
        }
        for (name, arf) in report.arf {
            let content = Content::Failure(Box::new(report.context.complete(arf)));
            (self.visit)(Found { location: name, content })?;
        }
        Ok(())
    }

    /// The original message of a failure report, from its `message/rfc822` part.
    fn original(
        &self,
        part: &mail_parser::MessagePart<'_>,
        raw: &[u8],
        encoding: TransferEncoding,
    ) -> OriginalMessage {
        let max_field = self.limits.max_field_bytes as usize;
        match &part.body {
            PartType::Message(nested) if encoding == TransferEncoding::Identity => {
                OriginalMessage::from_message(nested, max_field, true)
            }
            _ => {
                // Encoded (RFC 2046 forbids it, some reporters do it) or not parsed as a
                // message: decode the body and read its headers and body from that.
                let encoded = match &part.body {
                    PartType::Message(_) | PartType::Multipart(_) => {
                        raw.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default()
                    }
                    _ => part.contents(),
                };
                let decoded = encoding.decode(encoded);
                match std::panic::catch_unwind(|| parser().parse_headers(&decoded[..])) {
                    Ok(Some(headers)) => {
                        let message = Parsed(headers);
                        let mut original = OriginalMessage::from_message(&message.0, max_field, false);
                        let body =
                            decoded.get(message.0.parts.first().map_or(0, |p| p.offset_body as usize)..);
                        if let Some(body) = body.filter(|b| !b.is_empty()) {
                            original.body_bytes = body.len() as u64;
                            original.body =
                                Some(crate::text::decode_field(&body[..body.len().min(max_field)], false));
                        }
                        original
                    }
                    _ => OriginalMessage::default(),
                }
            }
        }
    }

    /// One leaf part, decoded.
    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    fn leaf(
        &mut self,
        name: String,
        (ctype, subtype): (&str, &str),
        body: &[u8],
        is_text: bool,
        mut in_report: Option<&mut ReportParts>,
        layers: u32,
        findings: &mut Findings,
    ) -> Result<(), E> {
        let max_field = self.limits.max_field_bytes as usize;
        if ctype == "message" && subtype == "feedback-report" {
            findings.reports += 1;
            let text = crate::text::decode_field(body, false);
            let arf = FailureReport::from_arf(&text, max_field);
            match in_report {
                Some(report) => report.arf.push((name, arf)),
                None => (self.visit)(Found { location: name, content: Content::Failure(Box::new(arf)) })?,
            }
            return Ok(());
        }
        if let Some(report) = in_report.as_deref_mut() {
            if ctype == "text" && subtype == "rfc822-headers" {
                let text = crate::text::decode_field(body, false);
                report.context.original = OriginalMessage::from_headers(&text, max_field);
                return Ok(());
            }
        }
        let in_report = in_report.is_some();
        let format = sniff(&body[..body.len().min(SNIFF_BYTES)]);
        if is_text {
            if matches!(format, Format::Xml | Format::Json)
                && !(ctype == "text" && (subtype == "html" || subtype == "rfc822-headers"))
            {
                findings.reports += 1;
                return self.stream(name, Box::new(body), layers);
            }
            if in_report && findings.summary_text.is_none() && ctype == "text" && subtype == "plain" {
                findings.summary_text = Some(crate::text::decode_field(body, false));
            }
            return Ok(());
        }
        match format {
            // Images, PDFs, signatures, attached messages: not ours, not an error.
            Format::Unknown | Format::Empty | Format::Mail | Format::Mbox => Ok(()),
            _ => {
                findings.reports += 1;
                self.bytes(name, body, layers)
            }
        }
    }
}

/// Lines that start like a header field (`Name:`) or a MIME boundary (`--`): an upper
/// bound on the headers and parts a MIME parser can make of `data`.
fn structure_lines(data: &[u8]) -> usize {
    let starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', data).map(|i| i + 1));
    starts
        .filter(|&start| {
            let line = &data[start.min(data.len())..data.len().min(start + 80)];
            if line.starts_with(b"--") {
                return true;
            }
            let name = line.iter().take_while(|&&b| b != b':' && (0x21..=0x7e).contains(&b)).count();
            name > 0 && line.get(name) == Some(&b':')
        })
        .count()
}

/// The part's transfer encoding, read from the raw header (mail-parser ignores it).
fn transfer_encoding(part: &mail_parser::MessagePart<'_>, raw: &[u8]) -> TransferEncoding {
    part.headers
        .iter()
        .find(|h| h.name == HeaderName::ContentTransferEncoding)
        .and_then(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
        .map_or(TransferEncoding::Identity, TransferEncoding::of)
}

#[cfg(test)]
mod tests {
    use crate::limits::{LimitExceeded, Limits};
    use crate::unpack::{unpack, Content};

    /// What `unpack` reports for `input`, run on a thread with a small stack: a walk that
    /// recursed with the input's nesting would overflow it and abort the test binary.
    fn outcomes(input: Vec<u8>) -> Vec<String> {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let mut out = Vec::new();
                let _: Result<(), ()> = unpack(&input, &Limits::default(), &mut |found| {
                    out.push(match found.content {
                        Content::Broken(err) => format!("broken: {err}"),
                        Content::Xml(_) => "xml".into(),
                        Content::Json(_) => "json".into(),
                        Content::Failure(_) => "failure".into(),
                    });
                    Ok(())
                });
                out
            })
            .expect("spawn")
            .join()
            .expect("no overflow")
    }

    fn nested_messages(levels: usize, innermost: &str) -> Vec<u8> {
        let mut message = "Content-Type: message/rfc822\r\n\r\n".repeat(levels);
        message.insert_str(0, "From: a@example.com\r\n");
        message.push_str(innermost);
        message.into_bytes()
    }

    fn base64(data: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn deeply_nested_messages_stop_at_a_cap() {
        let depth = LimitExceeded::MimeDepth(Limits::default().max_mime_depth).to_string();
        let lines = LimitExceeded::MimeHeaders(Limits::default().max_mime_headers).to_string();
        let deep = nested_messages(60_000, "Subject: x\r\n\r\nhello");
        assert_eq!(outcomes(deep.clone()), [format!("broken: {lines}")], "refused before it is parsed");
        assert_eq!(outcomes(nested_messages(100, "Subject: x\r\n\r\nhello")), [format!("broken: {depth}")]);

        // The same nesting inside a base64 message/rfc822 part, which mail-parser would
        // parse and copy recursively were it left to decode it.
        let mut encoded = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
        encoded.extend(base64(&deep).as_bytes().chunks(76).flat_map(|l| [l, b"\r\n"].concat()));
        encoded.extend_from_slice(b"--b--\r\n");
        assert_eq!(outcomes(encoded), [format!("broken: {lines}")]);
    }

    #[test]
    fn reports_inside_nested_and_encoded_messages_are_found() {
        let report = "Content-Type: text/xml\r\n\r\n<feedback/>";
        assert_eq!(outcomes(nested_messages(3, report)), ["xml"]);
        let inner = nested_messages(
            2,
            "Content-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\n\r\nPGZlZWRiYWNrLz4=",
        );
        let outer = format!(
            "From: a@example.com\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64(&inner)
        );
        assert_eq!(outcomes(outer.into_bytes()), ["xml"]);
        let qp = "From: a@example.com\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=7B=\r\n}";
        assert_eq!(outcomes(qp.as_bytes().to_vec()), ["json"]);
    }

    #[test]
    fn deeply_nested_multiparts_stop_at_the_part_cap() {
        let mut message = String::from("From: a@example.com\r\n");
        for i in 0..20_000 {
            message.push_str(&format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"));
        }
        message.push_str("\r\nhello\r\n");
        let lines = LimitExceeded::MimeHeaders(Limits::default().max_mime_headers).to_string();
        assert_eq!(outcomes(message.into_bytes()), [format!("broken: {lines}")]);
        let mut message = String::from("From: a@example.com\r\n");
        for i in 0..300 {
            message.push_str(&format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"));
        }
        message.push_str("\r\nhello\r\n");
        let parts = LimitExceeded::MimeParts(Limits::default().max_mime_parts).to_string();
        assert_eq!(outcomes(message.into_bytes()), [format!("broken: {parts}")]);
    }
}
