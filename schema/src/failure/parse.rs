//! Reading failure reports: ARF fields, Exim's plain-text summary, the original
//! message's headers, and who sent the report.

use std::collections::BTreeMap;

use mail_parser::{Address, Message, MessageParser};

use super::model::{FailureReport, OriginalMessage};
use crate::text::trim_ascii;

/// The line after which Exim quotes the original headers in its summary.
const EXIM_HEADERS_MARKER: &str = "This is a copy of the headers";

/// What unpack collects from one `multipart/report` message before it hands the
/// failure report on: the ARF part arrives before the original message, and the
/// report needs both.
#[derive(Debug, Default)]
pub struct ReportMessage {
    /// The domain of the report message's `From`.
    pub reporter: Option<String>,
    /// The original message (or its headers), when a part carried it.
    pub original: Option<OriginalMessage>,
}

impl ReportMessage {
    /// Starts from the report message itself: who sent it.
    pub fn of(message: &Message<'_>) -> Self {
        let reporter = message
            .from()
            .and_then(Address::first)
            .and_then(|a| a.address())
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, domain)| trim_ascii(domain).trim_end_matches('>').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        Self { reporter, original: None }
    }

    /// Completes `report` with what the message around it said.
    pub fn complete(&self, mut report: FailureReport) -> FailureReport {
        if self.reporter.is_some() {
            report.reporter = self.reporter.clone();
        }
        if report.original.is_none() {
            report.original = self.original.clone();
        }
        report
    }
}

impl FailureReport {
    /// Reads an ARF `message/feedback-report` body: `Name: value` lines, with folded
    /// continuation lines. Values longer than `max_field` bytes are cut.
    pub fn from_arf(text: &str, max_field: usize) -> Self {
        Self::from_fields(header_fields(text, max_field))
    }

    /// Reads the plain-text summary Exim sends (`Sender Domain: …`, `Sender IP Address: …`,
    /// then the original headers after "This is a copy of the headers…"). Returns `None`
    /// when the text has neither a sender domain nor a sender IP.
    pub fn from_exim_summary(text: &str, max_field: usize) -> Option<Self> {
        let (summary, headers) = match text.find(EXIM_HEADERS_MARKER) {
            Some(at) => {
                let rest = &text[at..];
                (&text[..at], rest.split_once('\n').map(|(_, h)| h))
            }
            None => (text, None),
        };
        let mut fields = Vec::new();
        let mut alignment = Vec::new();
        for line in summary.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let key = trim_ascii(key).to_ascii_lowercase();
            let value = clip(trim_ascii(value).to_owned(), max_field);
            let arf_key = match key.as_str() {
                "sender domain" => "reported-domain",
                "sender ip address" => "source-ip",
                "received date" => "arrival-date",
                "dmarc results" => "delivery-result",
                "spf alignment" | "dkim alignment" => {
                    if value.eq_ignore_ascii_case("yes") {
                        alignment.push(if key.starts_with("spf") { "spf" } else { "dkim" });
                    }
                    continue;
                }
                _ => continue,
            };
            fields.push((arf_key.to_owned(), value));
        }
        if !fields.iter().any(|(k, _)| k == "reported-domain" || k == "source-ip") {
            return None;
        }
        fields.push(("feedback-type".into(), "auth-failure".into()));
        fields.push(("auth-failure".into(), "dmarc".into()));
        let aligned = if alignment.is_empty() { "none".to_owned() } else { alignment.join(",") };
        fields.push(("identity-alignment".into(), aligned));
        let mut report = Self::from_fields(fields);
        report.original = headers.and_then(|h| OriginalMessage::from_headers(h, max_field));
        Some(report)
    }

    /// Builds the report from its fields in order (repeats kept for `Auth-Failure`).
    fn from_fields(list: Vec<(String, String)>) -> Self {
        let mut auth_failures: Vec<String> = Vec::new();
        for (_, value) in list.iter().filter(|(k, _)| k == "auth-failure") {
            for word in value.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
                let word = word.to_ascii_lowercase();
                if !auth_failures.contains(&word) {
                    auth_failures.push(word);
                }
            }
        }
        let mut fields = BTreeMap::new();
        for (key, value) in list {
            // The first of a repeated field wins, except that later non-empty values
            // replace empty ones.
            let slot = fields.entry(key).or_insert_with(String::new);
            if slot.is_empty() {
                *slot = value;
            }
        }
        let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
        let arrival_date = get("arrival-date").or_else(|| get("received-date"));
        let original_mail_from = get("original-mail-from");
        let spf_domain = get("spf-dns")
            .and_then(|v| v.split(':').nth(1).map(|d| trim_ascii(d).to_ascii_lowercase()))
            .or_else(|| original_mail_from.as_deref().and_then(domain_of))
            .filter(|d| !d.is_empty());
        Self {
            reporter: get("reporting-mta").map(|m| {
                let host = m.rsplit_once(';').map_or(m.as_str(), |(_, h)| h);
                trim_ascii(host).to_ascii_lowercase()
            }),
            feedback_type: get("feedback-type").map(|v| v.to_ascii_lowercase()),
            reported_domain: get("reported-domain").map(|d| d.to_ascii_lowercase()),
            source_ip: get("source-ip").and_then(|ip| trim_ascii(&ip).parse().ok()),
            arrival: arrival_date.as_deref().and_then(parse_date),
            arrival_date,
            original_mail_from,
            original_rcpt_to: get("original-rcpt-to"),
            auth_failures,
            delivery_result: get("delivery-result"),
            dkim_domain: get("dkim-domain").map(|d| d.to_ascii_lowercase()),
            dkim_selector: get("dkim-selector"),
            spf_domain,
            identity_alignment: get("identity-alignment").map(|v| v.to_ascii_lowercase()),
            authentication_results: get("authentication-results"),
            original: None,
            fields,
        }
    }
}

impl OriginalMessage {
    /// Reads the headers (and body) of an original message that mail-parser parsed.
    pub fn from_message(message: &Message<'_>, max_field: usize, with_body: bool) -> Self {
        let text = |s: Option<&str>| s.map(|s| clip(unfold(s), max_field)).filter(|s| !s.is_empty());
        let authentication_results = message
            .headers_raw()
            .filter(|(name, _)| name.eq_ignore_ascii_case("authentication-results"))
            .map(|(_, value)| clip(unfold(value), max_field))
            .filter(|v| !v.is_empty())
            .collect();
        let (body, body_bytes) = match (with_body, message.parts.first()) {
            (true, Some(root)) => {
                let raw = message
                    .raw_message
                    .get(root.offset_body as usize..root.offset_end as usize)
                    .unwrap_or_default();
                let kept = &raw[..raw.len().min(max_field)];
                (Some(crate::text::decode_field(kept, false)), raw.len() as u64)
            }
            _ => (None, 0),
        };
        Self {
            from: text(message.from().map(addresses).as_deref()),
            to: text(message.to().map(addresses).as_deref()),
            subject: text(message.subject()),
            date: message.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp()),
            message_id: text(message.message_id().map(|id| format!("<{id}>")).as_deref()),
            authentication_results,
            body: body.filter(|_| body_bytes > 0),
            body_bytes,
        }
    }

    /// Reads a block of header lines (a `text/rfc822-headers` part, Exim's quoted
    /// headers). `None` when it holds no header.
    pub fn from_headers(text: &str, max_field: usize) -> Option<Self> {
        let text = text.trim_start_matches(['\r', '\n']);
        let message = MessageParser::default().parse_headers(text.as_bytes())?;
        message.parts.first().filter(|p| !p.headers.is_empty())?;
        Some(Self::from_message(&message, max_field, false))
    }
}

/// `Name <address>` (or the address alone), comma separated.
fn addresses(address: &Address<'_>) -> String {
    let list: Vec<String> = address
        .iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(addr)) if !name.is_empty() => format!("{name} <{addr}>"),
            (_, Some(addr)) => addr.to_owned(),
            (Some(name), None) => name.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    list.join(", ")
}

/// The domain of an address (`<a@b.example>` → `b.example`), lowercased.
fn domain_of(address: &str) -> Option<String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).filter(|d| !d.is_empty())
}

/// An RFC 5322 date as unix seconds.
fn parse_date(text: &str) -> Option<i64> {
    mail_parser::DateTime::parse_rfc822(text).filter(|d| d.is_valid()).map(|d| d.to_timestamp())
}

/// Folded whitespace (line breaks, tabs, runs of spaces) as single spaces.
fn unfold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Parses `Name: value` header lines with RFC 5322 folding, in order; stops at the first
/// blank line after a field.
fn header_fields(text: &str, max_field: usize) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if current.is_some() || !fields.is_empty() {
                break;
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut() {
                if value.len() < max_field {
                    value.push(' ');
                    value.push_str(trim_ascii(line));
                }
            }
            continue;
        }
        if let Some((key, value)) = current.take() {
            fields.push((key, clip(value, max_field)));
        }
        if let Some((key, value)) = line.split_once(':') {
            current = Some((trim_ascii(key).to_ascii_lowercase(), trim_ascii(value).to_owned()));
        }
    }
    if let Some((key, value)) = current {
        fields.push((key, clip(value, max_field)));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 << 10;

    #[test]
    fn arf_fields_with_folding_and_repeats() {
        let report = FailureReport::from_arf(
            "Feedback-Type: auth-failure\r\nUser-Agent: x\r\nSource-IP: 192.0.2.1\r\n\
             Authentication-Results: mx.example;\r\n\tdkim=fail\r\nReported-Domain: Example.COM\r\n\
             Auth-Failure: dkim\r\nAuth-Failure: SPF, dkim\r\nSPF-DNS: txt : Mail.Example : v=spf1 -all\r\n\
             Arrival-Date: Tue, 30 Apr 2019 02:09:00 +0000\r\nIdentity-Alignment: DKIM\r\n",
            MAX,
        );
        assert_eq!(report.feedback_type.as_deref(), Some("auth-failure"));
        assert_eq!(report.reported_domain.as_deref(), Some("example.com"));
        assert_eq!(report.source_ip, "192.0.2.1".parse().ok());
        assert_eq!(report.authentication_results.as_deref(), Some("mx.example; dkim=fail"));
        assert_eq!(report.auth_failures, ["dkim", "spf"]);
        assert_eq!(report.spf_domain.as_deref(), Some("mail.example"));
        assert_eq!(report.arrival, Some(1_556_590_140));
        assert_eq!(report.identity_alignment.as_deref(), Some("dkim"));
    }

    #[test]
    fn spf_domain_falls_back_to_the_envelope_sender_and_values_are_capped() {
        let report = FailureReport::from_arf(
            &format!("Original-Mail-From: <bounce@Mail.Example>\nDelivery-Result: {}\n", "x".repeat(100)),
            30,
        );
        assert_eq!(report.spf_domain.as_deref(), Some("mail.example"));
        assert_eq!(report.delivery_result.as_deref().map(str::len), Some(30));
    }

    #[test]
    fn exim_summary_needs_its_fields_and_reads_the_quoted_headers() {
        let report = FailureReport::from_exim_summary(
            "A message failed.\n\n  Sender Domain: example.com\n  Sender IP Address: 203.0.113.68\n\
             \x20 SPF Alignment: no\n  DKIM Alignment: yes\n\n\
             ------ This is a copy of the headers that were received before the error was detected.\n\n\
             From: <user@example.com>\nSubject: Payment\nMessage-Id: <abc@example.com>\n\
             Authentication-Results: mx;\n\tspf=softfail\n",
            MAX,
        )
        .expect("summary");
        assert_eq!(report.reported_domain.as_deref(), Some("example.com"));
        assert_eq!(report.identity_alignment.as_deref(), Some("dkim"));
        assert_eq!(report.auth_failures, ["dmarc"]);
        let original = report.original.expect("headers");
        assert_eq!(original.from.as_deref(), Some("user@example.com"));
        assert_eq!(original.subject.as_deref(), Some("Payment"));
        assert_eq!(original.message_id.as_deref(), Some("<abc@example.com>"));
        assert_eq!(original.authentication_results, ["mx; spf=softfail"]);
        assert!(FailureReport::from_exim_summary("hello: world", MAX).is_none());
    }

    #[test]
    fn original_message_headers_and_capped_body() {
        let raw = "From: \"Sender\" <s@example.com>\r\nTo: a@x.example, b@y.example\r\n\
                   Subject: =?utf-8?B?SMOpbGxv?=\r\nDate: Tue, 30 Apr 2019 02:09:09 +0000\r\n\
                   Message-ID: <id@example.com>\r\n\r\n0123456789abcdef0123456789abcdef";
        let message = MessageParser::default().parse(raw.as_bytes()).expect("message");
        let original = OriginalMessage::from_message(&message, 24, true);
        assert_eq!(original.from.as_deref(), Some("Sender <s@example.com>"));
        assert_eq!(original.to.as_deref(), Some("a@x.example, b@y.example"));
        assert_eq!(original.subject.as_deref(), Some("Héllo"));
        assert_eq!(original.date, Some(1_556_590_149));
        assert_eq!(original.body.as_deref(), Some("0123456789abcdef01234567"));
        assert_eq!(original.body_bytes, 32);
        assert!(OriginalMessage::from_message(&message, 24, false).body.is_none());
    }
}
