//! Alertmanager v2: `POST {base}/api/v2/alerts` with one postable alert.
//!
//! Input: an [`Alert`] and the current time. Output: a JSON array of one postable alert.
//! Invariant: the label set is `{alertname, domain, severity, source}` for both states, so
//! a resolved alert ends the firing one; IPs and other high-cardinality values go only in
//! annotations.

use std::fmt;

use ruaflow_schema::alert::{Alert, AlertState};
use ruaflow_schema::time::{format_date, format_datetime};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::origin;
use super::webhook::{observed_line, selectors_list, sources_list};
use super::SinkError;

/// How long a firing alert stays active in Alertmanager without being sent again, in
/// seconds. Alertmanager resolves an alert at its `endsAt`; without one it uses its
/// `resolve_timeout` (5 minutes by default), far shorter than the day between two reports.
const FIRING_TTL_SECS: i64 = 24 * 3600;

/// One Alertmanager (or a cluster's load balancer).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, `http://` or `https://`, e.g. `http://127.0.0.1:9093`; alerts are posted
    /// to `{url}/api/v2/alerts`. `Debug` and logs show only scheme, host and port.
    pub url: String,
}

impl fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerConfig").field("url", &origin(&self.url)).finish()
    }
}

/// The alerts endpoint under a base URL.
pub(crate) fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

/// The body to POST for `alert` at `now` (unix seconds).
pub(crate) fn body(alert: &Alert, now: i64) -> Result<Vec<u8>, SinkError> {
    Ok(serde_json::to_vec(&postable_alerts(alert, now))?)
}

fn postable_alerts(alert: &Alert, now: i64) -> Value {
    let labels = json!({
        "alertname": alert.kind.as_str(),
        "domain": alert.domain,
        "severity": alert.severity.as_str(),
        "source": "ruaflow",
    });
    let mut annotations = Map::new();
    annotations.insert("summary".into(), alert.summary.clone().into());
    annotations.insert("description".into(), description(alert).into());
    if !alert.selectors.is_empty() {
        annotations.insert("selector".into(), selectors_list(&alert.selectors).into());
    }
    // Alertmanager rejects an alert that ends before it starts (400 "start time must be
    // before end time"), and report days can lie ahead of our clock, so start no later
    // than now.
    let first = if alert.first_seen > 0 { alert.first_seen } else { alert.window_start };
    let starts_at = first.min(now);
    let ends_at = match alert.state {
        AlertState::Firing => now + FIRING_TTL_SECS,
        AlertState::Resolved => now,
    };
    json!([{
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_datetime(starts_at),
        "endsAt": format_datetime(ends_at),
    }])
}

/// Observed/baseline, report day, top sources and reporters, one per line.
fn description(alert: &Alert) -> String {
    let mut lines = vec![format!("{} on {}", observed_line(alert), format_date(alert.window_start))];
    if !alert.sources.is_empty() {
        lines.push(format!("top sources: {}", sources_list(alert)));
    }
    if !alert.reporters.is_empty() {
        let reporters: Vec<String> =
            alert.reporters.iter().map(|r| format!("{} ({} messages)", r.org, r.messages)).collect();
        lines.push(format!("reporters: {}", reporters.join(", ")));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruaflow_schema::alert::{AlertKind, AlertReporter, Severity};

    fn alert(state: AlertState) -> Alert {
        Alert {
            kind: AlertKind::SpoofingSpike,
            state,
            domain: "example.org".into(),
            severity: Severity::Warning,
            window_start: 1_000_000,
            window_end: 1_086_400,
            observed: 50.0,
            baseline: 2.0,
            sources: vec![],
            selectors: vec![],
            reporters: vec![AlertReporter { org: "google.com".into(), messages: 50 }],
            first_seen: 0,
            episode: None,
            historical: false,
            summary: "spoofing".into(),
            details: serde_json::Map::new(),
        }
    }

    #[test]
    fn firing_ends_a_day_later_and_resolved_ends_now() {
        let now = 2_000_000;
        let firing = postable_alerts(&alert(AlertState::Firing), now);
        assert_eq!(firing[0]["startsAt"], format_datetime(1_000_000));
        assert_eq!(firing[0]["endsAt"], format_datetime(now + FIRING_TTL_SECS));
        let resolved = postable_alerts(&alert(AlertState::Resolved), now);
        assert_eq!(resolved[0]["endsAt"], format_datetime(now));
        assert_eq!(resolved[0]["labels"], firing[0]["labels"], "same labels, so resolved ends firing");
        assert!(firing[0]["annotations"].get("selector").is_none());
        assert!(firing[0]["annotations"]["description"].as_str().is_some_and(|d| d.contains("google.com")));
    }

    #[test]
    fn start_is_never_after_end() {
        let now = 500_000; // before the report day
        let resolved = postable_alerts(&alert(AlertState::Resolved), now);
        assert_eq!(resolved[0]["startsAt"], resolved[0]["endsAt"]);
    }

    #[test]
    fn alerts_url_joins_without_double_slash() {
        assert_eq!(alerts_url("http://127.0.0.1:9093/"), "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(alerts_url("http://am/prefix"), "http://am/prefix/api/v2/alerts");
    }
}
