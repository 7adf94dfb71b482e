//! The failure report model: what one report says, exactly as the reporter sent it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One DMARC failure report (RFC 6591 / RFC 9991).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FailureReport {
    /// Who sent the report: the domain of the report message's `From` address (else the
    /// `Reporting-MTA` field's host), lowercased. ARF has no reporter field of its own.
    pub reporter: Option<String>,
    /// `Feedback-Type` (normally `auth-failure`).
    pub feedback_type: Option<String>,
    /// `Reported-Domain`: the domain that failed, lowercased.
    pub reported_domain: Option<String>,
    /// `Source-IP`: the sending IP.
    pub source_ip: Option<IpAddr>,
    /// `Arrival-Date`, as sent.
    pub arrival_date: Option<String>,
    /// `Arrival-Date` as unix seconds, when it reads as an RFC 5322 date.
    pub arrival: Option<i64>,
    /// `Original-Mail-From` (the envelope sender).
    pub original_mail_from: Option<String>,
    /// `Original-Rcpt-To` (the envelope recipient).
    pub original_rcpt_to: Option<String>,
    /// `Auth-Failure` values (`dmarc`, `dkim`, `spf`, `adsp`, `bodyhash`, `revoked`,
    /// `signature`), lowercased, in order, once each; the field may be repeated.
    pub auth_failures: Vec<String>,
    /// `Delivery-Result` (`delivered`, `spam`, `policy`, `reject`, `other`, or what the
    /// reporter wrote).
    pub delivery_result: Option<String>,
    /// `DKIM-Domain`.
    pub dkim_domain: Option<String>,
    /// `DKIM-Selector`.
    pub dkim_selector: Option<String>,
    /// The domain SPF was checked for: the host of `SPF-DNS`, else the domain of
    /// `Original-Mail-From`.
    pub spf_domain: Option<String>,
    /// `Identity-Alignment` (RFC 7489 §7.3): `none`, or which of `dkim`, `spf` aligned.
    pub identity_alignment: Option<String>,
    /// `Authentication-Results` of the report.
    pub authentication_results: Option<String>,
    /// The original message's headers (and body), when the report carries them.
    pub original: Option<OriginalMessage>,
    /// Every field of the report, keys lowercased, values unfolded (of a repeated field,
    /// the first non-empty value).
    pub fields: BTreeMap<String, String>,
}

/// What the report shows of the message that failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OriginalMessage {
    /// `From`, decoded: `Name <address>` or `address`, comma separated.
    pub from: Option<String>,
    /// `To`, decoded, as `from`.
    pub to: Option<String>,
    /// `Subject`, decoded.
    pub subject: Option<String>,
    /// `Date`, unix seconds.
    pub date: Option<i64>,
    /// `Message-ID`, with its angle brackets.
    pub message_id: Option<String>,
    /// Every `Authentication-Results` header, unfolded, in order.
    pub authentication_results: Vec<String>,
    /// The body as sent (transfer encoding kept), up to `max_field_bytes`; `None` when
    /// the report carried only the headers. Not printed by `ruaflow parse`.
    #[serde(skip)]
    pub body: Option<String>,
    /// Size of the whole body in bytes (0 when the report carried only the headers).
    pub body_bytes: u64,
}

impl FailureReport {
    /// The report's identity: the first 16 bytes of the SHA-256 of the reporter, every
    /// report field and the original `Message-ID`. The same report redelivered, resent
    /// in another wrapping or with other line endings has the same key; the field list
    /// holds the arrival date, source IP and message id, so two failures differ.
    pub fn key(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"failure\0");
        h.update(self.reporter.as_deref().unwrap_or_default().as_bytes());
        h.update([0]);
        for (name, value) in &self.fields {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(value.as_bytes());
            h.update([0]);
        }
        let message_id = self.original.as_ref().and_then(|o| o.message_id.as_deref());
        h.update(message_id.unwrap_or_default().as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&h.finalize()[..16]);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_covers_reporter_fields_and_message_id() {
        let mut base = FailureReport { reporter: Some("a.example".into()), ..FailureReport::default() };
        base.fields.insert("source-ip".into(), "192.0.2.1".into());
        let key = base.key();
        assert_eq!(key, base.clone().key());
        let mut other = base.clone();
        other.reporter = Some("b.example".into());
        assert_ne!(other.key(), key);
        let mut other = base.clone();
        other.fields.insert("source-ip".into(), "192.0.2.2".into());
        assert_ne!(other.key(), key);
        let mut other = base.clone();
        other.original = Some(OriginalMessage { message_id: Some("<x@y>".into()), ..Default::default() });
        assert_ne!(other.key(), key);
        // Redaction-relevant parts that are not identity (the body) leave it alone.
        let mut other = base;
        other.original = Some(OriginalMessage { body: Some("hello".into()), ..Default::default() });
        assert_eq!(other.key(), key);
    }
}
