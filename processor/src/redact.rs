//! Redact: a parsed failure report → the row both stores write, with the privacy rule
//! applied once, here.
//!
//! Input: a [`FailureReport`] exactly as the reporter sent it, its provenance and the
//! `[failure_reports]` privacy settings. Output: a [`FailureRow`]. Invariant: nothing
//! personal reaches a store unless the settings allow it. By default:
//! - every address keeps its domain and loses its local part (`jane@example.com` →
//!   `*@example.com`), in the envelope sender and recipient, the original `From` and
//!   `To` (whose display names are dropped too) and both `Authentication-Results`;
//! - the original subject is not stored;
//! - the original body is never stored unless `store_body` is set.
//!
//! Domains, IPs, DKIM selectors, dates and the `Message-ID` are kept: they are what a
//! postmaster investigates with.

use std::net::IpAddr;

use serde::Deserialize;

use ruaflow_schema::failure::FailureReport;

use crate::normalize::{network_of, DAY};
use crate::store::Origin;

/// What of a failure report's original message may be stored (`[failure_reports]`).
/// Everything is off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Keep the local parts of addresses and the display names of `From` and `To`.
    pub store_local_parts: bool,
    /// Keep the original message's subject.
    pub store_subject: bool,
    /// Keep the original message's body (up to `max_field_bytes`, as sent).
    pub store_body: bool,
}

/// One failure report as both stores hold it (table `failure_reports`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// The report identity ([`FailureReport::key`]).
    pub key: [u8; 16],
    /// When the failing message arrived, unix seconds: `Arrival-Date`, else the
    /// original `Date`, else when ruaflow received the report.
    pub arrival: i64,
    /// The UTC midnight of `arrival`, unix seconds.
    pub day: i64,
    /// Who sent the report (`""` when unknown).
    pub reporter: String,
    /// `Feedback-Type` (`""` when absent).
    pub feedback_type: String,
    /// The reported (policy) domain (`""` when absent).
    pub domain: String,
    /// The sending IP.
    pub source_ip: Option<IpAddr>,
    /// Its /24 or /48 (`""` without an IP).
    pub network: String,
    /// `Auth-Failure` values, comma separated.
    pub auth_failures: String,
    /// `Delivery-Result`.
    pub delivery_result: Option<String>,
    /// `DKIM-Domain`.
    pub dkim_domain: Option<String>,
    /// `DKIM-Selector`.
    pub dkim_selector: Option<String>,
    /// The domain SPF was checked for.
    pub spf_domain: Option<String>,
    /// `Identity-Alignment`.
    pub identity_alignment: Option<String>,
    /// `Original-Mail-From`, redacted.
    pub mail_from: Option<String>,
    /// `Original-Rcpt-To`, redacted.
    pub rcpt_to: Option<String>,
    /// The report's `Authentication-Results`, redacted.
    pub authentication_results: Option<String>,
    /// The original `From`, redacted.
    pub header_from: Option<String>,
    /// The original `To`, redacted.
    pub header_to: Option<String>,
    /// The original `Subject`, when allowed.
    pub subject: Option<String>,
    /// The original `Date`, unix seconds.
    pub date: Option<i64>,
    /// The original `Message-ID`.
    pub message_id: Option<String>,
    /// The original's `Authentication-Results` headers, redacted, one per line.
    pub original_authentication_results: Option<String>,
    /// The original body, when allowed.
    pub body: Option<String>,
    /// What was left out, comma separated: `local_parts`, `subject`, `body` (each only
    /// when the report had something of it).
    pub redacted: String,
}

/// Builds the stored row of `report`, applying `privacy`.
pub fn failure_row(report: &FailureReport, origin: &Origin, privacy: &PrivacyConfig) -> FailureRow {
    let original = report.original.as_ref();
    let arrival = report.arrival.or_else(|| original.and_then(|o| o.date)).unwrap_or(origin.received_at);
    let mut redacted = Vec::new();
    let mut had_address = false;
    let mut address = |text: Option<&str>, list: bool| -> Option<String> {
        let text = text?;
        if privacy.store_local_parts {
            return Some(text.to_owned());
        }
        let (out, changed) = if list { addresses_only(text) } else { redact_addresses(text) };
        had_address |= changed;
        Some(out)
    };
    let mail_from = address(report.original_mail_from.as_deref(), false);
    let rcpt_to = address(report.original_rcpt_to.as_deref(), false);
    let authentication_results = address(report.authentication_results.as_deref(), false);
    let header_from = address(original.and_then(|o| o.from.as_deref()), true);
    let header_to = address(original.and_then(|o| o.to.as_deref()), true);
    let joined = original.map(|o| o.authentication_results.join("\n")).filter(|a| !a.is_empty());
    let original_authentication_results = address(joined.as_deref(), false);
    if had_address {
        redacted.push("local_parts");
    }
    let mut allow = |value: Option<&String>, allowed: bool, what: &'static str| match value {
        Some(_) if !allowed => {
            redacted.push(what);
            None
        }
        value => value.cloned(),
    };
    let subject = allow(original.and_then(|o| o.subject.as_ref()), privacy.store_subject, "subject");
    let body = allow(original.and_then(|o| o.body.as_ref()), privacy.store_body, "body");
    FailureRow {
        key: report.key(),
        arrival,
        day: arrival.div_euclid(DAY) * DAY,
        reporter: report.reporter.clone().unwrap_or_default(),
        feedback_type: report.feedback_type.clone().unwrap_or_default(),
        domain: report.reported_domain.clone().unwrap_or_default(),
        source_ip: report.source_ip,
        network: report.source_ip.map(network_of).unwrap_or_default(),
        auth_failures: report.auth_failures.join(","),
        delivery_result: report.delivery_result.clone(),
        dkim_domain: report.dkim_domain.clone(),
        dkim_selector: report.dkim_selector.clone(),
        spf_domain: report.spf_domain.clone(),
        identity_alignment: report.identity_alignment.clone(),
        mail_from,
        rcpt_to,
        authentication_results,
        header_from,
        header_to,
        subject,
        date: original.and_then(|o| o.date),
        message_id: original.and_then(|o| o.message_id.clone()),
        original_authentication_results,
        body,
        redacted: redacted.join(","),
    }
}

/// Characters that end a local part when scanning back from `@`.
fn ends_local_part(c: char) -> bool {
    c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | '"' | '\'' | ',' | ';' | ':' | '[' | ']')
}

/// Characters of a domain after `@`.
fn in_domain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// One address found in a text: the byte range of its local part and its domain.
struct Found<'a> {
    local: std::ops::Range<usize>,
    domain: &'a str,
}

/// Every `local@domain` in `text`, in order.
fn find_addresses(text: &str) -> Vec<Found<'_>> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let before = &text[..at];
        let start = if let Some(quoted) = before.strip_suffix('"') {
            // A quoted local part: `"john doe"@example.com`.
            quoted.rfind('"').unwrap_or(quoted.len())
        } else {
            let start = before
                .rfind(ends_local_part)
                .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8));
            // `smtp.mailfrom=jane@example.com`: keep the method and property before `=`.
            match before[start..].split_once('=') {
                Some((key, _)) if is_ptype_property(key) => start + key.len() + 1,
                _ => start,
            }
        };
        let after = &text[at + 1..];
        let domain_len = after.find(|c: char| !in_domain(c)).unwrap_or(after.len());
        if start < at && domain_len > 0 {
            found.push(Found { local: start..at, domain: &after[..domain_len] });
        }
    }
    found
}

/// `smtp.mailfrom`, `header.from`, `policy.iprev`: an Authentication-Results
/// `ptype.property` (RFC 8601 §2.2).
fn is_ptype_property(key: &str) -> bool {
    key.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    })
}

/// `text` with the local part of every address replaced by `*`; true when one was.
fn redact_addresses(text: &str) -> (String, bool) {
    let found = find_addresses(text);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in &found {
        out.push_str(&text[last..f.local.start]);
        out.push('*');
        last = f.local.end;
    }
    out.push_str(&text[last..]);
    (out, !found.is_empty())
}

/// An address list (`Jane Doe <jane@example.com>, b@x.example`) as `*@domain` only,
/// display names dropped; true when anything was left out.
fn addresses_only(text: &str) -> (String, bool) {
    let found = find_addresses(text);
    if found.is_empty() {
        // A display name without an address is personal too.
        return (String::new(), !text.trim().is_empty());
    }
    let mut list: Vec<String> = found.iter().map(|f| format!("*@{}", f.domain)).collect();
    // `"jane@example.com" <jane@example.com>`: the name repeats the address.
    list.dedup();
    (list.join(", "), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruaflow_schema::failure::OriginalMessage;

    fn origin() -> Origin {
        Origin {
            sha256: [0; 32],
            source: ruaflow_schema::Source::Dir,
            origin: "x".into(),
            filename: None,
            received_at: 1_700_000_000,
            size: 0,
        }
    }

    #[test]
    fn local_parts_go_and_domains_stay() {
        let cases = [
            ("jane@example.com", "*@example.com"),
            ("<bounces+1137616-c1ad-xsj399=163.com@email.entrata.com>", "<*@email.entrata.com>"),
            (
                "163.com; spf=pass smtp.mailfrom=bounces+11=163.com@email.entrata.com; dkim=pass header.i=@x.example",
                "163.com; spf=pass smtp.mailfrom=*@email.entrata.com; dkim=pass header.i=@x.example",
            ),
            ("\"john doe\"@example.com", "*@example.com"),
            ("dmarc=fail header.from=example.com", "dmarc=fail header.from=example.com"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_addresses(input).0, expected, "{input}");
        }
        assert_eq!(
            addresses_only("Jane Doe <jane@example.com>, b@x.example").0,
            "*@example.com, *@x.example"
        );
        assert_eq!(addresses_only("Undisclosed recipients"), (String::new(), true));
    }

    #[test]
    fn default_privacy_redacts_and_the_config_allows() {
        let report = FailureReport {
            reported_domain: Some("example.com".into()),
            original_mail_from: Some("jane@example.com".into()),
            original: Some(OriginalMessage {
                from: Some("Jane <jane@example.com>".into()),
                subject: Some("Payroll".into()),
                body: Some("secret".into()),
                body_bytes: 6,
                ..OriginalMessage::default()
            }),
            ..FailureReport::default()
        };
        let row = failure_row(&report, &origin(), &PrivacyConfig::default());
        assert_eq!(row.mail_from.as_deref(), Some("*@example.com"));
        assert_eq!(row.header_from.as_deref(), Some("*@example.com"));
        assert_eq!((row.subject, row.body), (None, None));
        assert_eq!(row.redacted, "local_parts,subject,body");
        assert_eq!((row.arrival, row.day), (1_700_000_000, 1_699_920_000), "no date: when received");
        let all = PrivacyConfig { store_local_parts: true, store_subject: true, store_body: true };
        let row = failure_row(&report, &origin(), &all);
        assert_eq!(row.header_from.as_deref(), Some("Jane <jane@example.com>"));
        assert_eq!(row.subject.as_deref(), Some("Payroll"));
        assert_eq!(row.body.as_deref(), Some("secret"));
        assert_eq!(row.redacted, "");
    }
}
