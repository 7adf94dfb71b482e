//! The alert mail: what a postmaster reads in the inbox.
//!
//! Input: an [`Alert`], the sender, the recipients and the time. Output: one text/plain
//! UTF-8 message whose subject names the state or severity, the kind, the domain and the
//! report day; whose body holds the whole summary (with its advice, or the resolved
//! notice), the figures, the sources, selectors and reporters.
//! Invariants: report data is untrusted, so every string from it is escaped
//! ([`escape_unsafe`]: a CR or LF in a domain or selector shows as `\u{d}` and can
//! neither end a header nor start a new one) and capped before it reaches a header or
//! the body, and lettre encodes what is left (RFC 2047 in headers, quoted-printable or
//! base64 in the body). The Message-ID is a digest of the notice's identity — (kind,
//! domain, subject, day, state), as the detectors key their notices — so a notice sent
//! twice is recognizably one message, and every notice of one (kind, domain, subject)
//! refers to one thread root, so the resolved notice threads under the firing one.

use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::Message;
use ruaflow_schema::alert::{Alert, AlertKind, AlertState};
use ruaflow_schema::text::{escape_unsafe, thousands, wrap};
use ruaflow_schema::time::{format_date, format_datetime};
use sha2::{Digest, Sha256};

use crate::sink::webhook::number;
use crate::sink::SinkError;

/// Body lines are wrapped at this many characters (RFC 5322 recommends 78 at most).
const WIDTH: usize = 72;

/// The longest a name from a report (domain, selector, host, organization) may be in a
/// subject or a list, in characters; longer ones are cut with `…`.
const MAX_NAME_CHARS: usize = 120;

/// The longest summary kept, in characters: far more than a detector writes, so it is
/// never cut in practice, but a bound all the same on what a report can put in a mail.
const MAX_SUMMARY_CHARS: usize = 16 * 1024;

/// How many entries of a list in `details` are shown.
const MAX_LIST_ITEMS: usize = 10;

/// The message for `alert`, from `from` to all of `to`, dated `now` (unix seconds).
pub(super) fn compose(alert: &Alert, from: &Mailbox, to: &[Mailbox], now: i64) -> Result<Message, SinkError> {
    let id_domain = id_domain(from);
    let thread = thread_id(alert, &id_domain);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(alert))
        .date(UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)))
        .message_id(Some(message_id(alert, &id_domain)))
        .in_reply_to(thread.clone())
        .references(thread)
        .user_agent(concat!("ruaflow/", env!("CARGO_PKG_VERSION")).to_owned())
        .header(ContentType::TEXT_PLAIN)
        // RFC 3834: vacation responders and other robots do not answer it.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        // For filters (Sieve, procmail): only our own words, never report data.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Ruaflow-Alert"),
            format!("{}; severity={}; state={}", alert.kind.as_str(), alert.severity.as_str(), state(alert)),
        ));
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder.body(body(alert)).map_err(|e| SinkError::Message(e.to_string()))
}

/// `[ruaflow] CRITICAL dkim_replay_suspected example.com 2026-10-01`, with the notice's
/// subject in brackets where it has one (`tls_failure_spike example.com
/// (starttls-not-supported)`); `[ruaflow] RESOLVED … (was critical)` once resolved.
pub(super) fn subject(alert: &Alert) -> String {
    let about = notice_subject(alert);
    let about = if about.is_empty() { String::new() } else { format!(" ({})", name(about)) };
    let (kind, domain, day) = (alert.kind.as_str(), name(&alert.domain), format_date(alert.window_start));
    match alert.state {
        AlertState::Firing => {
            let severity = alert.severity.as_str().to_ascii_uppercase();
            format!("[ruaflow] {severity} {kind} {domain}{about} {day}")
        }
        AlertState::Resolved => {
            format!("[ruaflow] RESOLVED {kind} {domain}{about} {day} (was {})", alert.severity.as_str())
        }
    }
}

/// The Message-ID of this notice: `<kind.DIGEST@domain>`, the digest over the notice's
/// identity, so the same notice always gets the same Message-ID.
pub(super) fn message_id(alert: &Alert, id_domain: &str) -> String {
    let day = alert.window_start.to_string();
    let digest = digest(&[alert.kind.as_str(), &alert.domain, notice_subject(alert), &day, state(alert)]);
    format!("<{}.{digest}@{id_domain}>", alert.kind.as_str())
}

/// The thread every notice of one (kind, domain, subject) refers to.
fn thread_id(alert: &Alert, id_domain: &str) -> String {
    let digest = digest(&[alert.kind.as_str(), &alert.domain, notice_subject(alert)]);
    format!("<thread.{}.{digest}@{id_domain}>", alert.kind.as_str())
}

/// 32 hex digits of the SHA-256 of the parts, each ended by a NUL (which no part holds
/// as its own character, so ("ab", "c") and ("a", "bc") differ).
fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ruaflow notice\0");
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The right-hand side of Message-IDs: the sender's domain when it is plain ASCII (a
/// Message-ID cannot be encoded), `ruaflow.invalid` otherwise.
fn id_domain(from: &Mailbox) -> String {
    let domain = from.email.domain();
    if !domain.is_empty() && domain.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')) {
        domain.to_ascii_lowercase()
    } else {
        "ruaflow.invalid".to_owned()
    }
}

/// What the notice is about within its (kind, domain), as the detectors key their
/// notices (`detect/notice.rs`): the TLS result type, the DKIM or SPF method, the new
/// network, the silent reporter; empty for the domain-wide signals. [`Alert`] does not
/// carry it, so it is read from where each detector puts it.
fn notice_subject(alert: &Alert) -> &str {
    let detail = |key: &str| alert.details.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    match alert.kind {
        AlertKind::TlsFailureSpike => detail("result_type"),
        AlertKind::AuthRegression => detail("method"),
        AlertKind::NewAuthenticatedSource => alert.sources.first().map_or("", |s| s.network.as_str()),
        AlertKind::ReporterSilence => alert.reporters.first().map_or("", |r| r.org.as_str()),
        AlertKind::DkimReplaySuspected | AlertKind::SpoofingSpike => "",
    }
}

fn state(alert: &Alert) -> &'static str {
    match alert.state {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    }
}

/// The text body: headline, summary, figures, the lists, and where to look further.
pub(super) fn body(alert: &Alert) -> String {
    let mut out = String::new();
    let (kind, domain) = (alert.kind.as_str(), name(&alert.domain));
    let headline = match alert.state {
        AlertState::Firing => {
            format!("{}: {kind} for {domain}", alert.severity.as_str().to_ascii_uppercase())
        }
        AlertState::Resolved => format!("RESOLVED: {kind} for {domain} (was {})", alert.severity.as_str()),
    };
    paragraph(&mut out, &headline, "");
    out.push('\n');
    paragraph(&mut out, &capped(&alert.summary, MAX_SUMMARY_CHARS), "");
    out.push('\n');

    let mut figures = vec![("Report day", format!("{} (UTC)", format_date(alert.window_start)))];
    if alert.first_seen > 0 {
        figures.push(("First seen", format_datetime(alert.first_seen)));
    }
    figures.push(("Observed", figure(alert.observed)));
    figures.push(("Baseline", figure(alert.baseline)));
    for (label, value) in &figures {
        paragraph(&mut out, &format!("{label}: {value}"), "    ");
    }
    for (key, value) in &alert.details {
        details_entry(&mut out, key, value);
    }

    if !alert.sources.is_empty() {
        out.push_str("\nTop sources:\n");
        for s in &alert.sources {
            let mut about = vec![format!("{} messages", thousands(s.messages))];
            about.extend(s.ptr.as_deref().map(name));
            match (s.asn, s.as_org.as_deref()) {
                (Some(asn), Some(org)) => about.push(format!("AS{asn} {}", name(org))),
                (Some(asn), None) => about.push(format!("AS{asn}")),
                (None, Some(org)) => about.push(name(org)),
                (None, None) => {}
            }
            about.extend(s.country.as_deref().map(name));
            let line = format!("- {} ({}): {}", name(&s.ip), name(&s.network), about.join(", "));
            paragraph(&mut out, &line, "    ");
        }
    }
    if !alert.selectors.is_empty() {
        out.push_str("\nDKIM keys (selector._domainkey.domain):\n");
        for s in &alert.selectors {
            let key = match s.selector.as_str() {
                "" => format!("d={} (selector not reported)", name(&s.domain)),
                selector => format!("{}._domainkey.{}", name(selector), name(&s.domain)),
            };
            paragraph(&mut out, &format!("- {key}: {} messages", thousands(s.messages)), "    ");
        }
    }
    if !alert.reporters.is_empty() {
        out.push_str("\nReporters:\n");
        for r in &alert.reporters {
            paragraph(&mut out, &format!("- {}: {} messages", name(&r.org), thousands(r.messages)), "    ");
        }
    }
    out.push_str("\n-- \n");
    paragraph(
        &mut out,
        &format!(
            "Sent by ruaflow. `ruaflow alerts --domain {domain}` lists this domain's alerts; \
             `ruaflow report --domain {domain}` shows its sources and rates."
        ),
        "",
    );
    out
}

/// One `details` entry: `key: value`, a list one item per line, an object compact.
fn details_entry(out: &mut String, key: &str, value: &serde_json::Value) {
    let key = name(key);
    match value {
        serde_json::Value::Array(items) => {
            paragraph(out, &format!("{key}:"), "");
            for item in items.iter().take(MAX_LIST_ITEMS) {
                paragraph(out, &format!("- {}", detail_value(item)), "    ");
            }
            if items.len() > MAX_LIST_ITEMS {
                paragraph(out, &format!("- and {} more", items.len() - MAX_LIST_ITEMS), "    ");
            }
        }
        value => paragraph(out, &format!("{key}: {}", detail_value(value)), "    "),
    }
}

/// A value from `details`: numbers as figures, strings escaped, objects as `k=v, k=v`.
fn detail_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), figure),
        serde_json::Value::String(s) => name(s),
        serde_json::Value::Object(map) => {
            map.iter().map(|(k, v)| format!("{}={}", name(k), detail_value(v))).collect::<Vec<_>>().join(", ")
        }
        other => capped(&other.to_string(), MAX_NAME_CHARS),
    }
}

/// Appends `text` wrapped at [`WIDTH`], continuation lines indented by `indent`.
fn paragraph(out: &mut String, text: &str, indent: &str) {
    for (i, line) in wrap(text, WIDTH - indent.len()).iter().enumerate() {
        if i > 0 {
            out.push_str(indent);
        }
        out.push_str(line);
        out.push('\n');
    }
}

/// A whole number with thousands separators, other values as the webhooks show them.
fn figure(value: f64) -> String {
    if value.fract() == 0.0 && (0.0..1e15).contains(&value) {
        thousands(value as u64)
    } else {
        number(value)
    }
}

/// A name from a report, escaped and cut to [`MAX_NAME_CHARS`].
fn name(text: &str) -> String {
    capped(text, MAX_NAME_CHARS)
}

/// `text` with every character that could act (CR, LF, ESC, bidi overrides) written as
/// a visible escape, and cut to `max` characters with `…`.
fn capped(text: &str, max: usize) -> String {
    let escaped = escape_unsafe(text);
    match escaped.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruaflow_schema::alert::{AlertReporter, AlertSelector, AlertSource, Severity};

    fn alert() -> Alert {
        Alert {
            kind: AlertKind::TlsFailureSpike,
            state: AlertState::Firing,
            domain: "example.com".into(),
            severity: Severity::Critical,
            window_start: 1_790_812_800, // 2026-10-01
            window_end: 1_790_899_200,
            observed: 0.42,
            baseline: 0.01,
            sources: vec![AlertSource {
                ip: "203.0.113.7".into(),
                network: "203.0.113.0/24".into(),
                messages: 12_345,
                ptr: Some("mx.example.net".into()),
                asn: Some(64500),
                as_org: Some("Example Net".into()),
                country: Some("NL".into()),
                service: None,
                status: None,
            }],
            selectors: vec![AlertSelector { domain: "example.com".into(), selector: "s1".into(), messages: 900 }],
            reporters: vec![AlertReporter { org: "google.com".into(), messages: 12_345 }],
            first_seen: 1_790_812_800 + 3_600,
            episode: None,
            historical: false,
            summary: "TLS failures for example.com: 42% of sessions failed with starttls-not-supported. Check that \
                      every MX offers STARTTLS with a valid certificate; a sudden rise can be a downgrade attack."
                .into(),
            details: serde_json::json!({
                "result_type": "starttls-not-supported",
                "failed_sessions": 4200,
                "mx_hosts": [{"mx": "mx1.example.com", "failed_sessions": 4200}],
            })
            .as_object()
            .cloned()
            .expect("object"),
        }
    }

    #[test]
    fn subject_names_severity_kind_domain_subject_and_day() {
        let mut alert = alert();
        assert_eq!(
            subject(&alert),
            "[ruaflow] CRITICAL tls_failure_spike example.com (starttls-not-supported) 2026-10-01"
        );
        alert.state = AlertState::Resolved;
        assert_eq!(
            subject(&alert),
            "[ruaflow] RESOLVED tls_failure_spike example.com (starttls-not-supported) 2026-10-01 (was critical)"
        );
    }

    #[test]
    fn message_id_follows_the_notice_identity() {
        let firing = alert();
        let id = message_id(&firing, "example.org");
        assert!(id.starts_with("<tls_failure_spike.") && id.ends_with("@example.org>"), "{id}");
        assert_eq!(id, message_id(&firing.clone(), "example.org"), "the same notice, the same id");
        let mut more = firing.clone();
        more.observed = 0.9;
        more.summary = "updated figures".into();
        assert_eq!(message_id(&more, "example.org"), id, "figures are not the identity");
        let mut other_type = firing.clone();
        other_type.details.insert("result_type".into(), "certificate-expired".into());
        assert_ne!(message_id(&other_type, "example.org"), id, "another subject, another notice");
        let mut next_day = firing.clone();
        next_day.window_start += 86_400;
        assert_ne!(message_id(&next_day, "example.org"), id);
        let mut resolved = firing.clone();
        resolved.state = AlertState::Resolved;
        assert_ne!(message_id(&resolved, "example.org"), id);
        assert_eq!(thread_id(&resolved, "example.org"), thread_id(&next_day, "example.org"), "one thread");
    }

    #[test]
    fn body_holds_the_whole_summary_figures_and_lists() {
        let body = body(&alert());
        let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&alert().summary), "whole summary, wrapped only:\n{body}");
        assert!(body.lines().all(|l| l.chars().count() <= WIDTH), "{body}");
        for expected in [
            "CRITICAL: tls_failure_spike for example.com",
            "Report day: 2026-10-01 (UTC)",
            "First seen: 2026-10-01T01:00:00Z",
            "Observed: 0.42",
            "failed_sessions: 4,200",
            "- failed_sessions=4,200, mx=mx1.example.com",
            "- 203.0.113.7 (203.0.113.0/24): 12,345 messages, mx.example.net, AS64500 Example Net, NL",
            "- s1._domainkey.example.com: 900 messages",
            "- google.com: 12,345 messages",
        ] {
            assert!(flat.contains(expected), "{expected:?} missing from:\n{body}");
        }
    }

    #[test]
    fn hostile_names_cannot_break_out_of_headers_or_lines() {
        let mut hostile = alert();
        hostile.domain = "evil.example\r\nBcc: victim@example.net\r\n\r\nfake body".into();
        hostile.selectors[0].selector = "s1\nX-Injected: 1".into();
        hostile.sources[0].ptr = Some(format!("{}\u{202e}", "a".repeat(500)));
        let subject = subject(&hostile);
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        assert!(subject.contains("evil.example\\u{d}\\u{a}Bcc: victim@example.net"), "{subject}");
        let from: Mailbox = "ruaflow <ruaflow@example.org>".parse().expect("mailbox");
        let to: Mailbox = "postmaster@example.org".parse().expect("mailbox");
        let mail = compose(&hostile, &from, &[to], 1_790_900_000).expect("compose");
        let text = String::from_utf8(mail.formatted()).expect("utf-8");
        let (head, _) = text.split_once("\r\n\r\n").expect("header and body");
        assert!(!head.lines().any(|l| l.starts_with("Bcc") || l.starts_with("X-Injected")), "{head}");
        let body = body(&hostile);
        assert!(!body.lines().any(|l| l.starts_with("X-Injected") || l.starts_with("Bcc")), "{body}");
        assert!(body.contains("s1\\u{a}X-Injected: 1._domainkey.example.com"), "{body}");
        assert!(body.contains("\\u{202e}") || body.contains('…'), "bidi override escaped or cut");
        assert!(!body.contains('\u{202e}'));
    }

    #[test]
    fn a_message_id_needs_an_ascii_domain() {
        let ascii: Mailbox = "a@Example.ORG".parse().expect("mailbox");
        assert_eq!(id_domain(&ascii), "example.org");
        let idn: Mailbox = "a@bücher.example".parse().expect("mailbox");
        assert_eq!(id_domain(&idn), "ruaflow.invalid");
    }
}
