//! Streaming DMARC aggregate report reader.
//!
//! Input: any `BufRead` of XML (already decompressed, capped by [`crate::unpack`]).
//! Output: a [`ReportHeader`], then [`Record`]s one at a time, so memory stays flat
//! whatever the report size. Invariants: never panics; tolerant of unknown elements,
//! namespaces, case and the quirks listed in the crate docs; strict about what a report
//! means (a record without a usable source IP or count is skipped with a warning, never
//! guessed). No DTD is read and no entity other than the five predefined ones and
//! character references is expanded.

use std::io::BufRead;
use std::net::IpAddr;

use quick_xml::events::{BytesStart, Event};

use super::model::*;
use super::tags::{field_at, Field, Tag};
use crate::capped::MarkupGuard;
use crate::error::{clip, Error};
use crate::limits::{LimitExceeded, Limits};
use crate::text::{decode_text, is_single_byte_label, parse_count, parse_epoch, trim_ascii};
use crate::warnings::Warnings;

/// The RFC 9990 namespace; its presence on `<feedback>` marks the newer schema.
const NS_DMARC_2: &[u8] = b"urn:ietf:params:xml:ns:dmarc-2.0";

/// A record as read so far; validated when `</record>` closes.
struct RecordDraft {
    /// Parsed as soon as read; the raw text is kept only when it cannot be used.
    source_ip: Result<IpAddr, String>,
    count: Result<u64, String>,
    disposition: Option<Disposition>,
    dkim: Option<DmarcResult>,
    spf: Option<DmarcResult>,
    reasons: Vec<OverrideReason>,
    header_from: String,
    envelope_from: Option<String>,
    envelope_to: Option<String>,
    dkim_auth: Vec<DkimAuth>,
    spf_auth: Vec<SpfAuth>,
}

impl Default for RecordDraft {
    fn default() -> Self {
        Self {
            source_ip: Err(String::new()),
            count: Err(String::new()),
            disposition: None,
            dkim: None,
            spf: None,
            reasons: Vec::new(),
            header_from: String::new(),
            envelope_from: None,
            envelope_to: None,
            dkim_auth: Vec::new(),
            spf_auth: Vec::new(),
        }
    }
}

/// What one XML event meant for the caller.
enum Step {
    Continue,
    RecordStarted,
    RecordDone,
    Eof,
}

/// Pull parser over one aggregate report: call [`DmarcReader::header`] once, then
/// [`DmarcReader::next_record`] until it returns `None`.
pub struct DmarcReader<R: BufRead> {
    xml: quick_xml::Reader<MarkupGuard<R>>,
    buf: Vec<u8>,
    limits: Limits,
    stack: Vec<Tag>,
    /// Index in `stack` of `<feedback>` once seen. Elements around it (IKEA's stray
    /// `<xs:schema>` wrapper) are tolerated.
    root: Option<usize>,
    /// The leaf being read, and its raw text so far.
    leaf: Option<Field>,
    text: Vec<u8>,
    single_byte: bool,
    schema: SchemaVersion,
    version: Option<String>,
    meta: ReportMetadata,
    policy: PolicyPublished,
    policies_seen: u32,
    header_done: bool,
    in_record: bool,
    draft: RecordDraft,
    finished: Option<Record>,
    /// Set once `</feedback>` closed; anything after it is not read.
    done: bool,
    records_seen: u64,
    warnings: Warnings,
}

impl<R: BufRead> DmarcReader<R> {
    /// Wraps a reader of XML text.
    pub fn new(input: R, limits: &Limits) -> Self {
        let mut xml = quick_xml::Reader::from_reader(MarkupGuard::new(input, limits.max_field_bytes));
        let config = xml.config_mut();
        // Leniency for real receivers: mismatched end tags come from raw `<` in text
        // (parsedmarc's `invalid_xml.xml`), bare `&` from names like "AT&T".
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.allow_dangling_amp = true;
        config.check_comments = false;
        Self {
            xml,
            buf: Vec::with_capacity(256),
            limits: limits.clone(),
            stack: Vec::with_capacity(8),
            root: None,
            leaf: None,
            text: Vec::with_capacity(64),
            single_byte: false,
            schema: SchemaVersion::Rfc7489,
            version: None,
            meta: ReportMetadata::default(),
            policy: PolicyPublished::default(),
            policies_seen: 0,
            header_done: false,
            in_record: false,
            draft: RecordDraft::default(),
            finished: None,
            done: false,
            records_seen: 0,
            warnings: Warnings::new(limits.max_warnings),
        }
    }

    /// Reads up to the first record and returns the metadata and policy.
    pub fn header(&mut self) -> Result<ReportHeader, Error> {
        loop {
            match self.step()? {
                Step::RecordStarted | Step::Eof => break,
                Step::Continue | Step::RecordDone => {}
            }
        }
        self.header_done = true;
        if self.root.is_none() {
            return Err(Error::NotAReport("no <feedback> element".into()));
        }
        let meta = &mut self.meta;
        if meta.org_name.is_empty() {
            // Some receivers leave org_name empty (parsedmarc's `invalid_utf_8.xml`); the
            // domain of the contact address identifies the reporter just as well.
            let fallback = meta.email.rsplit('@').next().unwrap_or_default().to_owned();
            if fallback.is_empty() {
                return Err(Error::MissingField("report_metadata/org_name"));
            }
            self.warnings.push(|| format!("empty org_name; using the email domain {fallback:?}"));
            meta.org_name = fallback;
        }
        if meta.report_id.is_empty() {
            return Err(Error::MissingField("report_metadata/report_id"));
        }
        if self.policy.domain.is_empty() {
            return Err(Error::MissingField("policy_published/domain"));
        }
        if meta.end < meta.begin {
            return Err(Error::InvalidField {
                field: "date_range",
                value: format!("end {} before begin {}", meta.end, meta.begin),
            });
        }
        Ok(ReportHeader {
            schema: self.schema,
            version: self.version.clone(),
            metadata: self.meta.clone(),
            policy: self.policy.clone(),
        })
    }

    /// Returns the next valid record, or `None` at the end of the report. Records that
    /// cannot be used are skipped and noted in [`DmarcReader::warnings`].
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        loop {
            match self.step()? {
                Step::RecordDone => {
                    if let Some(record) = self.finished.take() {
                        return Ok(Some(record));
                    }
                }
                Step::Eof => return Ok(None),
                Step::Continue | Step::RecordStarted => {}
            }
        }
    }

    /// Takes the warnings collected so far: the first `max_warnings` of them, then one
    /// line counting the rest.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.warnings.take()
    }

    fn step(&mut self) -> Result<Step, Error> {
        if self.done {
            return Ok(Step::Eof);
        }
        // The event borrows the buffer; taking it out of `self` leaves `self` free.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.xml.get_mut().start_event();
        let step = match self.xml.read_event_into(&mut buf) {
            Ok(event) => self.handle(event),
            Err(err) => Err(self.xml_error(err)),
        };
        self.buf = buf;
        step
    }

    fn handle(&mut self, event: Event<'_>) -> Result<Step, Error> {
        match event {
            Event::Start(start) => self.open(&start, false),
            Event::Empty(start) => self.open(&start, true),
            Event::End(end) => {
                let tag = Tag::of(end.local_name().as_ref());
                self.close_named(tag, end.name().as_ref())
            }
            Event::Text(text) => {
                if self.leaf.is_some() {
                    let bytes = text.into_inner();
                    self.push_text(&bytes)?;
                }
                Ok(Step::Continue)
            }
            Event::CData(data) => {
                if self.leaf.is_some() {
                    let bytes = data.into_inner();
                    self.push_text(&bytes)?;
                }
                Ok(Step::Continue)
            }
            Event::GeneralRef(reference) => {
                if self.leaf.is_some() {
                    let name = reference.into_inner();
                    let resolved = resolve_reference(&name);
                    self.push_text(resolved.as_bytes())?;
                }
                Ok(Step::Continue)
            }
            Event::Decl(decl) => {
                if let Some(Ok(label)) = decl.encoding() {
                    self.single_byte = is_single_byte_label(&label);
                }
                Ok(Step::Continue)
            }
            // No DTD processing: the doctype is skipped unread, so no entity it declares
            // is ever expanded (billion laughs, external entities).
            Event::DocType(_) | Event::Comment(_) | Event::PI(_) => Ok(Step::Continue),
            Event::Eof => {
                if self.in_record {
                    return Err(Error::Xml {
                        position: self.xml.buffer_position(),
                        detail: "document ends inside a <record>".into(),
                    });
                }
                Ok(Step::Eof)
            }
        }
    }

    fn open(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<Step, Error> {
        if self.leaf.is_some() {
            // A `<` inside a leaf's text (parsedmarc's `invalid_xml.xml` has
            // `<email><bad-xml@bad-xml.net></email>` and `bad<xml.net</header_from>`):
            // the "tag" is text. If it swallowed our closing tag, close the leaf.
            let raw: &[u8] = start;
            if let Some(cut) = find(raw, b"</") {
                self.push_text(b"<")?;
                self.push_text(&raw[..cut])?;
                let closing = &raw[cut + 2..];
                let tag = Tag::of(local_part(closing));
                return self.close_named(tag, closing);
            }
            self.push_text(b"<")?;
            self.push_text(raw)?;
            self.push_text(if empty { b"/>" } else { b">" })?;
            return Ok(Step::Continue);
        }
        let tag = Tag::of(start.local_name().as_ref());
        if self.stack.len() >= self.limits.max_xml_depth as usize {
            return Err(LimitExceeded::XmlDepth(self.limits.max_xml_depth).into());
        }
        self.stack.push(tag);
        let mut step = Step::Continue;
        match self.root {
            None if tag == Tag::Feedback => {
                self.root = Some(self.stack.len() - 1);
                self.schema = schema_of(start, self.limits.max_xml_attributes)?;
            }
            None => {}
            Some(root) => {
                let path = &self.stack[root + 1..];
                match path {
                    [Tag::Record] => {
                        if self.in_record {
                            return Err(self.structure_error("<record> inside <record>"));
                        }
                        self.records_seen += 1;
                        if self.records_seen > self.limits.max_records {
                            return Err(LimitExceeded::Records(self.limits.max_records).into());
                        }
                        self.in_record = true;
                        self.draft = RecordDraft::default();
                        if !self.header_done {
                            step = Step::RecordStarted;
                        }
                    }
                    [Tag::PolicyPublished] => {
                        self.policies_seen += 1;
                        if self.policies_seen == 2 {
                            self.warnings.push(|| "several <policy_published>; the first one is used".into());
                        }
                    }
                    [Tag::Record, Tag::AuthResults, Tag::Dkim] => self.draft.dkim_auth.push(DkimAuth {
                        domain: String::new(),
                        selector: None,
                        result: DkimResult::None,
                        human_result: None,
                    }),
                    [Tag::Record, Tag::AuthResults, Tag::Spf] => self.draft.spf_auth.push(SpfAuth {
                        domain: String::new(),
                        scope: None,
                        result: SpfResult::None,
                        human_result: None,
                    }),
                    [Tag::Record, Tag::Row, Tag::PolicyEvaluated, Tag::Reason] => self
                        .draft
                        .reasons
                        .push(OverrideReason { kind: OverrideType::OtherReason, comment: None }),
                    _ => {}
                }
                self.leaf = field_at(path);
                self.text.clear();
            }
        }
        if empty {
            let closed = self.close_top()?;
            return Ok(match closed {
                Step::Continue => step,
                other => other,
            });
        }
        Ok(step)
    }

    /// Closes the element named by an end tag. A name that matches no open element is
    /// ignored (or kept as text inside a leaf); one that matches an ancestor closes
    /// everything up to it, as lenient HTML parsers do.
    fn close_named(&mut self, tag: Tag, raw: &[u8]) -> Result<Step, Error> {
        if self.stack.last() == Some(&tag) && (tag != Tag::Unknown || self.leaf.is_none()) {
            return self.close_top();
        }
        let Some(pos) = self.stack.iter().rposition(|t| *t == tag && tag != Tag::Unknown) else {
            if self.leaf.is_some() {
                self.push_text(b"</")?;
                self.push_text(raw)?;
                self.push_text(b">")?;
            } else if tag == Tag::Unknown && !self.stack.is_empty() {
                // An unknown element closing with another unknown name: close it.
                return self.close_top();
            }
            return Ok(Step::Continue);
        };
        let mut result = Step::Continue;
        while self.stack.len() > pos {
            if let step @ (Step::RecordDone | Step::Eof) = self.close_top()? {
                result = step;
            }
        }
        Ok(result)
    }

    fn close_top(&mut self) -> Result<Step, Error> {
        let Some(root) = self.root else {
            self.stack.pop();
            return Ok(Step::Continue);
        };
        if let Some(field) = self.leaf.take() {
            // The text buffer is taken out so the decoded value can borrow it.
            let mut text = std::mem::take(&mut self.text);
            self.assign(field, trim_ascii(&decode_text(&text, self.single_byte)));
            text.clear();
            self.text = text;
        }
        let was_record = self.stack.len() == root + 2 && self.stack.last() == Some(&Tag::Record);
        let closes_root = self.stack.len() == root + 1;
        self.stack.pop();
        if closes_root {
            // Anything after </feedback> is ignored, as are wrappers around it.
            self.done = true;
            return Ok(Step::Eof);
        }
        if was_record {
            self.in_record = false;
            self.finished = self.finish_record();
            return Ok(Step::RecordDone);
        }
        Ok(Step::Continue)
    }

    fn assign(&mut self, field: Field, value: &str) {
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let in_header = !self.header_done && !self.in_record;
        let first_policy = self.policies_seen <= 1;
        match field {
            Field::Version if in_header => self.version = opt(value),
            Field::OrgName if in_header => self.meta.org_name = value.to_owned(),
            Field::Email if in_header => self.meta.email = value.to_owned(),
            Field::ExtraContactInfo if in_header => self.meta.extra_contact_info = opt(value),
            Field::ReportId if in_header => self.meta.report_id = value.to_owned(),
            Field::Begin | Field::End if in_header => {
                let Some(epoch) = parse_epoch(value) else {
                    self.warnings.push(|| format!("unreadable date_range value {:?}", clip(value)));
                    return;
                };
                if field == Field::Begin {
                    self.meta.begin = epoch;
                } else {
                    self.meta.end = epoch;
                }
            }
            Field::Error if in_header && !value.is_empty() => {
                self.meta.errors.push(value.to_owned());
            }
            Field::Generator if in_header => self.meta.generator = opt(value),
            Field::PolicyDomain if in_header && first_policy => {
                self.policy.domain = value.to_ascii_lowercase()
            }
            Field::Adkim if in_header && first_policy => {
                self.policy.adkim = opt(value).map(|v| Alignment::parse(&v))
            }
            Field::Aspf if in_header && first_policy => {
                self.policy.aspf = opt(value).map(|v| Alignment::parse(&v))
            }
            Field::P if in_header && first_policy => self.policy.p = opt(value).map(|v| Policy::parse(&v)),
            Field::Sp if in_header && first_policy => self.policy.sp = opt(value).map(|v| Policy::parse(&v)),
            Field::Np if in_header && first_policy => self.policy.np = opt(value).map(|v| Policy::parse(&v)),
            Field::Pct if in_header && first_policy => self.policy.pct = value.parse().ok(),
            Field::Fo if in_header && first_policy => self.policy.fo = opt(value),
            Field::Testing if in_header && first_policy => {
                self.policy.testing = opt(value).map(|v| Testing::parse(&v))
            }
            Field::DiscoveryMethod if in_header && first_policy => self.policy.discovery_method = opt(value),
            Field::SourceIp => self.draft.source_ip = parse_ip(value).ok_or_else(|| value.to_owned()),
            Field::Count => self.draft.count = parse_count(value).ok_or_else(|| value.to_owned()),
            Field::Disposition => self.draft.disposition = opt(value).map(|v| Disposition::parse(&v)),
            Field::EvalDkim => self.draft.dkim = opt(value).map(|v| DmarcResult::parse(&v)),
            Field::EvalSpf => self.draft.spf = opt(value).map(|v| DmarcResult::parse(&v)),
            Field::ReasonType => {
                if let Some(reason) = self.draft.reasons.last_mut() {
                    reason.kind = OverrideType::parse(value);
                }
            }
            Field::ReasonComment => {
                if let Some(reason) = self.draft.reasons.last_mut() {
                    reason.comment = opt(value);
                }
            }
            Field::HeaderFrom => self.draft.header_from = value.to_ascii_lowercase(),
            Field::EnvelopeFrom => self.draft.envelope_from = opt(value).map(|v| v.to_ascii_lowercase()),
            Field::EnvelopeTo => self.draft.envelope_to = opt(value).map(|v| v.to_ascii_lowercase()),
            Field::DkimDomain => {
                if let Some(dkim) = self.draft.dkim_auth.last_mut() {
                    dkim.domain = value.to_ascii_lowercase();
                }
            }
            Field::DkimSelector => {
                if let Some(dkim) = self.draft.dkim_auth.last_mut() {
                    dkim.selector = opt(value);
                }
            }
            Field::DkimResult => {
                if let Some(dkim) = self.draft.dkim_auth.last_mut() {
                    dkim.result = DkimResult::parse(value);
                }
            }
            Field::DkimHuman => {
                if let Some(dkim) = self.draft.dkim_auth.last_mut() {
                    dkim.human_result = opt(value);
                }
            }
            Field::SpfDomain => {
                if let Some(spf) = self.draft.spf_auth.last_mut() {
                    spf.domain = value.to_ascii_lowercase();
                }
            }
            Field::SpfScope => {
                if let Some(spf) = self.draft.spf_auth.last_mut() {
                    spf.scope = opt(value).map(|v| SpfScope::parse(&v));
                }
            }
            Field::SpfResult => {
                if let Some(spf) = self.draft.spf_auth.last_mut() {
                    spf.result = SpfResult::parse(value);
                }
            }
            Field::SpfHuman => {
                if let Some(spf) = self.draft.spf_auth.last_mut() {
                    spf.human_result = opt(value);
                }
            }
            // Header fields met again after the records started are ignored.
            _ => {}
        }
    }

    fn finish_record(&mut self) -> Option<Record> {
        let draft = std::mem::take(&mut self.draft);
        let n = self.records_seen;
        let source_ip = match draft.source_ip {
            Ok(ip) => ip,
            Err(raw) => {
                self.warnings.push(|| format!("record {n} skipped: no usable source_ip ({:?})", clip(&raw)));
                return None;
            }
        };
        let count = match draft.count {
            Ok(count) => count,
            Err(raw) => {
                self.warnings.push(|| format!("record {n} skipped: no usable count ({:?})", clip(&raw)));
                return None;
            }
        };
        let disposition = draft.disposition.unwrap_or_else(|| {
            self.warnings.push(|| format!("record {n}: no disposition, read as none"));
            Disposition::None
        });
        Some(Record {
            source_ip,
            count,
            disposition,
            dkim: draft.dkim,
            spf: draft.spf,
            reasons: draft.reasons,
            header_from: draft.header_from,
            envelope_from: draft.envelope_from,
            envelope_to: draft.envelope_to,
            dkim_auth: draft.dkim_auth,
            spf_auth: draft.spf_auth,
        })
    }

    fn push_text(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.text.len() + bytes.len() > self.limits.max_field_bytes as usize {
            return Err(LimitExceeded::FieldBytes(self.limits.max_field_bytes).into());
        }
        self.text.extend_from_slice(bytes);
        Ok(())
    }

    fn xml_error(&self, err: quick_xml::Error) -> Error {
        if let quick_xml::Error::Io(io) = &err {
            return Error::from_io(io, "compressed");
        }
        Error::Xml { position: self.xml.error_position(), detail: err.to_string() }
    }

    fn structure_error(&self, detail: &str) -> Error {
        Error::Xml { position: self.xml.buffer_position(), detail: detail.to_owned() }
    }
}

/// Reads a whole report into memory (for `ruaflow parse` and tests).
pub fn parse_report<R: BufRead>(input: R, limits: &Limits) -> Result<DmarcReport, Error> {
    let mut reader = DmarcReader::new(input, limits);
    let header = reader.header()?;
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    Ok(DmarcReport { header, records, warnings: reader.take_warnings() })
}

/// The schema a `<feedback>` element declares through its namespace attributes. Only
/// this element's attributes are ever read; the duplicate-name check quick-xml would do is
/// quadratic in their number, so it is off and the number is capped instead.
fn schema_of(start: &BytesStart<'_>, max_attributes: u32) -> Result<SchemaVersion, Error> {
    let mut dmarc2 = false;
    for (n, attr) in start.attributes().with_checks(false).enumerate() {
        if n >= max_attributes as usize {
            return Err(LimitExceeded::XmlAttributes(max_attributes).into());
        }
        let Ok(attr) = attr else { continue };
        let key = attr.key.as_ref();
        dmarc2 |= (key == b"xmlns" || key.starts_with(b"xmlns:")) && attr.value.as_ref() == NS_DMARC_2;
    }
    Ok(if dmarc2 { SchemaVersion::Rfc9990 } else { SchemaVersion::Rfc7489 })
}

/// Parses an IP as receivers write it: trimmed, sometimes in brackets.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    let raw = trim_ascii(raw);
    let raw = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
    raw.parse().ok()
}

/// Resolves `&name;` for the five predefined entities and character references; any
/// other name is kept literally (there is no DTD to define it).
fn resolve_reference(name: &[u8]) -> String {
    let text = |c: char| c.to_string();
    match name {
        b"lt" => text('<'),
        b"gt" => text('>'),
        b"amp" => text('&'),
        b"apos" => text('\''),
        b"quot" => text('"'),
        [b'#', b'x' | b'X', hex @ ..] => char_from(std::str::from_utf8(hex).ok(), 16, name),
        [b'#', dec @ ..] => char_from(std::str::from_utf8(dec).ok(), 10, name),
        _ => format!("&{};", String::from_utf8_lossy(name)),
    }
}

fn char_from(digits: Option<&str>, radix: u32, name: &[u8]) -> String {
    digits
        .and_then(|d| u32::from_str_radix(d, radix).ok())
        .and_then(char::from_u32)
        .map(String::from)
        .unwrap_or_else(|| format!("&{};", String::from_utf8_lossy(name)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The local part of a possibly prefixed, possibly space-padded element name.
fn local_part(name: &[u8]) -> &[u8] {
    let end = name.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(name.len());
    let name = &name[..end];
    match name.iter().rposition(|&b| b == b':') {
        Some(colon) => &name[colon + 1..],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_event_is_buffered_past_the_field_cap() {
        let limits = Limits { max_field_bytes: 16, ..Limits::default() };
        let head = "<feedback><report_metadata><org_name>o</org_name>";
        // Runs of text, of `>` (which used to reset a run counter), inside a comment full
        // of markup, inside an attribute value and inside CDATA: each is one event that
        // quick-xml would buffer whole.
        let bodies = [
            "x".repeat(5000),
            ">".repeat(5000),
            format!("<!--{}-->", "<a>".repeat(2000)),
            format!("<x a=\"{}\"/>", ">".repeat(5000)),
            format!("<![CDATA[{}]]>", "<>".repeat(3000)),
        ];
        for body in &bodies {
            let xml = format!("{head}{body}</report_metadata></feedback>");
            let chunked = std::io::BufReader::with_capacity(64, xml.as_bytes());
            let err = parse_report(chunked, &limits).expect_err("event cap");
            assert!(
                matches!(err, Error::Limit(LimitExceeded::FieldBytes(16))),
                "{err} for {:?}",
                &body[..20]
            );
        }
        // A long field is refused by the field cap itself, wherever it sits.
        let report = format!("<feedback><report_metadata><org_name>{}</org_name>", "y".repeat(100));
        let err = parse_report(report.as_bytes(), &limits).expect_err("field cap");
        assert!(matches!(err, Error::Limit(LimitExceeded::FieldBytes(16))), "{err}");
    }

    #[test]
    fn attributes_are_capped() {
        let limits = Limits::default();
        let attrs: String = (0..40_000).map(|i| format!(" a{i}=\"\"")).collect();
        let xml = format!("<feedback{attrs}><report_metadata>");
        let err = parse_report(xml.as_bytes(), &Limits { max_field_bytes: 1 << 20, ..limits.clone() })
            .expect_err("attribute cap");
        assert!(matches!(err, Error::Limit(LimitExceeded::XmlAttributes(64))), "{err}");
        let ok = r#"<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0" xmlns:xsi="x"><report_metadata><org_name>o</org_name><report_id>r</report_id><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>d</domain></policy_published></feedback>"#;
        let report = parse_report(ok.as_bytes(), &limits).expect("namespaces read");
        assert_eq!(report.header.schema, SchemaVersion::Rfc9990);
    }
}
