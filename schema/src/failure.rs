//! DMARC failure (forensic) reports: recognized, summarized, not stored yet.
//!
//! Input: the text of an ARF `message/feedback-report` part (RFC 5965 / RFC 6591), or the
//! plain-text summary some MTAs send instead (Exim's "DMARC Forensic Report" has no ARF
//! part). Output: a [`FailureReport`] with the fields a postmaster looks at first.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::text::trim_ascii;

/// The fields of one failure report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FailureReport {
    /// `Feedback-Type` (normally `auth-failure`).
    pub feedback_type: Option<String>,
    /// `Reported-Domain`: the domain that failed.
    pub reported_domain: Option<String>,
    /// `Source-IP`: the sending IP.
    pub source_ip: Option<IpAddr>,
    /// `Arrival-Date`, as sent.
    pub arrival_date: Option<String>,
    /// `Original-Mail-From`.
    pub original_mail_from: Option<String>,
    /// `Original-Rcpt-To`.
    pub original_rcpt_to: Option<String>,
    /// `Auth-Failure` (`dmarc`, `dkim`, `spf`).
    pub auth_failure: Option<String>,
    /// `Delivery-Result`.
    pub delivery_result: Option<String>,
    /// `DKIM-Domain`.
    pub dkim_domain: Option<String>,
    /// `DKIM-Selector`.
    pub dkim_selector: Option<String>,
    /// `Authentication-Results`.
    pub authentication_results: Option<String>,
    /// Every field of the report, keys lowercased, values unfolded (later repeats win).
    pub fields: BTreeMap<String, String>,
}

impl FailureReport {
    /// Reads an ARF `message/feedback-report` body: `Name: value` lines, with folded
    /// continuation lines.
    pub fn from_arf(text: &str) -> Self {
        Self::from_fields(header_fields(text))
    }

    /// Reads the plain-text summary Exim sends (`Sender Domain: …`, `Sender IP Address: …`).
    /// Returns `None` when the text has neither.
    pub fn from_exim_summary(text: &str) -> Option<Self> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let key = trim_ascii(key).to_ascii_lowercase();
            let value = trim_ascii(value).to_owned();
            let arf_key = match key.as_str() {
                "sender domain" => "reported-domain",
                "sender ip address" => "source-ip",
                "received date" => "arrival-date",
                "dmarc results" => "delivery-result",
                _ => continue,
            };
            fields.entry(arf_key.to_owned()).or_insert(value);
        }
        if !fields.contains_key("reported-domain") && !fields.contains_key("source-ip") {
            return None;
        }
        fields.insert("feedback-type".into(), "auth-failure".into());
        Some(Self::from_fields(fields))
    }

    fn from_fields(fields: BTreeMap<String, String>) -> Self {
        let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            feedback_type: get("feedback-type"),
            reported_domain: get("reported-domain").map(|d| d.to_ascii_lowercase()),
            source_ip: get("source-ip").and_then(|ip| trim_ascii(&ip).parse().ok()),
            arrival_date: get("arrival-date").or_else(|| get("received-date")),
            original_mail_from: get("original-mail-from"),
            original_rcpt_to: get("original-rcpt-to"),
            auth_failure: get("auth-failure"),
            delivery_result: get("delivery-result"),
            dkim_domain: get("dkim-domain"),
            dkim_selector: get("dkim-selector"),
            authentication_results: get("authentication-results"),
            fields,
        }
    }
}

/// Parses `Name: value` header lines with RFC 5322 folding; stops at the first blank line.
fn header_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
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
                value.push(' ');
                value.push_str(trim_ascii(line));
            }
            continue;
        }
        if let Some((key, value)) = current.take() {
            fields.insert(key, value);
        }
        if let Some((key, value)) = line.split_once(':') {
            current = Some((trim_ascii(key).to_ascii_lowercase(), trim_ascii(value).to_owned()));
        }
    }
    if let Some((key, value)) = current {
        fields.insert(key, value);
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arf_fields_with_folding() {
        let report = FailureReport::from_arf(
            "Feedback-Type: auth-failure\r\nUser-Agent: x\r\nSource-IP: 192.0.2.1\r\n\
             Authentication-Results: mx.example;\r\n\tdkim=fail\r\nReported-Domain: Example.COM\r\n",
        );
        assert_eq!(report.feedback_type.as_deref(), Some("auth-failure"));
        assert_eq!(report.reported_domain.as_deref(), Some("example.com"));
        assert_eq!(report.source_ip, "192.0.2.1".parse().ok());
        assert_eq!(report.authentication_results.as_deref(), Some("mx.example; dkim=fail"));
    }

    #[test]
    fn exim_summary_needs_its_fields() {
        let report = FailureReport::from_exim_summary(
            "A message failed.\n\n  Sender Domain: example.com\n  Sender IP Address: 203.0.113.68\n",
        )
        .expect("summary");
        assert_eq!(report.reported_domain.as_deref(), Some("example.com"));
        assert!(FailureReport::from_exim_summary("hello: world").is_none());
    }
}
