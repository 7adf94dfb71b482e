//! Webhook bodies: the alert as JSON (generic), or a Slack message.
//!
//! Input: an [`Alert`] and the endpoint's [`WebhookFormat`]. Output: the JSON body to POST.
//! Invariant: both formats carry a `text` field whose first line is [`summary_line`], so a
//! Slack-compatible receiver (Slack, Mattermost, Rocket.Chat) shows something either way.

use std::fmt;

use ruaflow_schema::alert::{Alert, AlertSelector, AlertState};
use ruaflow_schema::time::format_date;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::origin;
use ruaflow_schema::secret::Secret;

use super::SinkError;

/// How many sources a message names.
const TOP_SOURCES: usize = 3;

/// One webhook endpoint.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, `http://` or `https://`. For Slack, the incoming-webhook URL: its
    /// path is a credential, so `Debug` and logs show only scheme, host and port.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set: `"…"`, `{ file = "PATH" }` or
    /// `{ env = "NAME" }`, read at each attempt. `Debug` names where it is, never it.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// The body's shape; `generic` by default.
    #[serde(default)]
    pub format: WebhookFormat,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &origin(&self.url))
            .field("bearer_token", &self.bearer_token)
            .field("format", &self.format)
            .finish()
    }
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The [`Alert`] JSON object plus a one-line `text`.
    #[default]
    Generic,
    /// Only `{"text": …}`: summary, observed/baseline, top sources, selector.
    Slack,
}

/// The body to POST for `alert`.
pub(crate) fn body(alert: &Alert, format: WebhookFormat) -> Result<Vec<u8>, SinkError> {
    let value = match format {
        WebhookFormat::Generic => generic(alert)?,
        WebhookFormat::Slack => json!({ "text": slack_text(alert) }),
    };
    Ok(serde_json::to_vec(&value)?)
}

/// The alert object with `text` added.
fn generic(alert: &Alert) -> Result<Value, SinkError> {
    let mut value = serde_json::to_value(alert)?;
    if let Value::Object(map) = &mut value {
        map.insert("text".to_owned(), Value::String(summary_line(alert)));
    }
    Ok(value)
}

/// Slack message text. Slack reads `&`, `<` and `>` as markup, so they are escaped.
fn slack_text(alert: &Alert) -> String {
    let mut lines = vec![summary_line(alert), observed_line(alert)];
    if !alert.sources.is_empty() {
        lines.push(format!("top sources: {}", sources_list(alert)));
    }
    if !alert.selectors.is_empty() {
        lines.push(format!("selector: {}", selectors_list(&alert.selectors)));
    }
    let text = lines.join("\n");
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One human line: `[CRITICAL] dkim_replay_suspected example.com 2026-10-01: <summary>`,
/// or `[RESOLVED] …` once the signal is back to baseline.
pub fn summary_line(alert: &Alert) -> String {
    let tag = match alert.state {
        AlertState::Firing => alert.severity.as_str().to_ascii_uppercase(),
        AlertState::Resolved => "RESOLVED".to_owned(),
    };
    format!(
        "[{tag}] {} {} {}: {}",
        alert.kind.as_str(),
        alert.domain,
        format_date(alert.window_start),
        alert.summary
    )
}

/// `observed 1234, baseline 12.5`.
pub(crate) fn observed_line(alert: &Alert) -> String {
    format!("observed {}, baseline {}", number(alert.observed), number(alert.baseline))
}

/// `203.0.113.7 (900 messages, AS64500 Example Net, US), …` for the top sources.
pub(crate) fn sources_list(alert: &Alert) -> String {
    let items: Vec<String> = alert
        .sources
        .iter()
        .take(TOP_SOURCES)
        .map(|source| {
            let mut about = vec![format!("{} messages", source.messages)];
            if let Some(ptr) = &source.ptr {
                about.push(ptr.clone());
            }
            match (source.asn, &source.as_org) {
                (Some(asn), Some(org)) => about.push(format!("AS{asn} {org}")),
                (Some(asn), None) => about.push(format!("AS{asn}")),
                (None, Some(org)) => about.push(org.clone()),
                (None, None) => {}
            }
            if let Some(country) = &source.country {
                about.push(country.clone());
            }
            format!("{} ({})", source.ip, about.join(", "))
        })
        .collect();
    let more = alert.sources.len().saturating_sub(TOP_SOURCES);
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{}{tail}", items.join(", "))
}

/// The DNS names of the DKIM keys to rotate: `s1._domainkey.example.com (900 messages)`.
pub(crate) fn selectors_list(selectors: &[AlertSelector]) -> String {
    let items: Vec<String> = selectors
        .iter()
        .map(|s| match s.selector.as_str() {
            "" => format!("d={} (selector not reported, {} messages)", s.domain, s.messages),
            selector => format!("{selector}._domainkey.{} ({} messages)", s.domain, s.messages),
        })
        .collect();
    items.join(", ")
}

/// A figure for humans: whole numbers without decimals, shares to three places.
pub(crate) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruaflow_schema::alert::{AlertKind, AlertSource, Severity};

    fn alert() -> Alert {
        Alert {
            kind: AlertKind::DkimReplaySuspected,
            state: AlertState::Firing,
            domain: "example.com".into(),
            severity: Severity::Critical,
            window_start: 1_790_812_800, // 2026-10-01
            window_end: 1_790_899_200,
            observed: 1234.0,
            baseline: 12.5,
            sources: vec![AlertSource {
                ip: "203.0.113.7".into(),
                network: "203.0.113.0/24".into(),
                messages: 900,
                ptr: None,
                asn: Some(64500),
                as_org: Some("Example Net".into()),
                country: Some("US".into()),
                service: None,
                status: None,
            }],
            selectors: vec![AlertSelector {
                domain: "example.com".into(),
                selector: "s1".into(),
                messages: 900,
            }],
            reporters: vec![],
            first_seen: 1_790_812_800,
            episode: None,
            historical: false,
            summary: "replayed <DKIM> mail & more".into(),
            details: serde_json::Map::new(),
        }
    }

    #[test]
    fn summary_line_names_severity_kind_domain_and_day() {
        let mut alert = alert();
        assert_eq!(
            summary_line(&alert),
            "[CRITICAL] dkim_replay_suspected example.com 2026-10-01: replayed <DKIM> mail & more"
        );
        alert.state = AlertState::Resolved;
        assert!(summary_line(&alert).starts_with("[RESOLVED] dkim_replay_suspected"));
    }

    #[test]
    fn slack_text_is_escaped_and_names_sources_and_selector() {
        let text = slack_text(&alert());
        assert!(text.contains("replayed &lt;DKIM&gt; mail &amp; more"), "{text}");
        assert!(text.contains("observed 1234, baseline 12.5"), "{text}");
        assert!(text.contains("203.0.113.7 (900 messages, AS64500 Example Net, US)"), "{text}");
        assert!(text.contains("s1._domainkey.example.com (900 messages)"), "{text}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1234.0), "1234");
        assert_eq!(number(0.125), "0.125");
        assert_eq!(number(12.3333), "12.333");
        assert_eq!(number(0.5), "0.5");
    }
}
