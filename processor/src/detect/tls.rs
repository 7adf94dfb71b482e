//! `tls_failure_spike`: the TLSRPT failure share of one result type jumps for a policy
//! domain. `starttls-not-supported` where TLS normally works can mean a downgrade
//! attack (critical); expired or mismatched certificates, MTA-STS fetch errors and
//! DNSSEC failures mean lost or delayed mail (warning).
//!
//! Input: the day's TLS reports for the policy domain. Output: one finding per result
//! type seen (today, or before in the window).

use std::collections::BTreeMap;

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, Severity};

use super::baseline::History;
use super::store::{Signal, TlsDay};
use super::{percent, thousands, DetectConfig, Finding, Outcome};

/// The stored daily signal, one subject per result type.
pub const SIGNAL: &str = "tls_failure_share";

/// Failed sessions of one result type: in all, by MX host, by reporter.
type Failures = (u64, BTreeMap<String, u64>, BTreeMap<String, u64>);

pub(super) fn detect(
    config: &DetectConfig,
    domain: &str,
    day: i64,
    tls: &TlsDay,
    history: &History,
    out: &mut Outcome,
) {
    let total = tls.sessions;
    if total == 0 {
        return;
    }
    let mut by_type: BTreeMap<String, Failures> = BTreeMap::new();
    for f in &tls.failures {
        let entry = by_type.entry(f.result_type.clone()).or_default();
        entry.0 += f.sessions;
        if !f.mx.is_empty() {
            *entry.1.entry(f.mx.clone()).or_default() += f.sessions;
        }
        *entry.2.entry(f.reporter.clone()).or_default() += f.sessions;
    }
    // Result types seen before in the window but not today are at zero today.
    for kind in history.subjects_before(SIGNAL, day, config.baseline_days) {
        by_type.entry(kind).or_default();
    }
    for (kind, (failed, mxs, reporters)) in by_type {
        let share = failed as f64 / total as f64;
        out.signals.push(Signal { signal: SIGNAL, subject: kind.clone(), day, value: share });
        let base = history.baseline(SIGNAL, &kind, day, config.baseline_days, config.min_baseline_days);
        let threshold = base
            .map_or(config.tls_min_share, |b| b.threshold(config.tls_ratio, 6.0).max(config.tls_min_share));
        if failed < config.tls_min_failures || share < threshold {
            out.findings.push(Finding::Quiet(AlertKind::TlsFailureSpike, kind));
            continue;
        }
        let severity = if kind == "starttls-not-supported" { Severity::Critical } else { Severity::Warning };
        let mut mx_list: Vec<(String, u64)> = mxs.into_iter().collect();
        mx_list.sort_by_key(|m| std::cmp::Reverse(m.1));
        let advice = match kind.as_str() {
            "starttls-not-supported" => "Senders could not start TLS: if your MX offers STARTTLS, something on the path may be stripping it (a downgrade attack)",
            "certificate-expired" => "Renew the MX certificate",
            "certificate-host-mismatch" => "The MX certificate does not cover the MX host name",
            "certificate-not-trusted" => "The MX certificate chain is not trusted by senders",
            "sts-policy-fetch-error" | "sts-policy-invalid" | "sts-webpki-invalid" => {
                "Check that https://mta-sts.<domain>/.well-known/mta-sts.txt is reachable with a valid certificate and matches the MX hosts"
            }
            "dnssec-invalid" | "tlsa-invalid" | "dane-required" => "Check the DNSSEC chain and the TLSA records of the MX hosts",
            _ => "Check the MX hosts' TLS configuration",
        };
        let summary = format!(
            "TLS failures for {domain} on {}: {} of {} sessions ({}) failed with {kind}{} (baseline {}). {advice}.",
            ruaflow_schema::time::format_date(day),
            thousands(failed),
            thousands(total),
            percent(share),
            mx_list.first().map(|(mx, _)| format!(", mostly at {mx}")).unwrap_or_default(),
            percent(base.map_or(0.0, |b| b.median)),
        );
        let mut details = serde_json::Map::new();
        details.insert("result_type".into(), kind.clone().into());
        details.insert("failed_sessions".into(), failed.into());
        details.insert("total_sessions".into(), total.into());
        details.insert(
            "mx_hosts".into(),
            mx_list.iter().map(|(mx, n)| serde_json::json!({"mx": mx, "failed_sessions": n})).collect(),
        );
        let mut alert = Alert::firing(AlertKind::TlsFailureSpike, domain, severity, day);
        alert.observed = share;
        alert.baseline = base.map_or(0.0, |b| b.median);
        alert.reporters =
            reporters.into_iter().map(|(org, messages)| AlertReporter { org, messages }).collect();
        alert.reporters.sort_by_key(|r| std::cmp::Reverse(r.messages));
        alert.first_seen = tls.first_seen.unwrap_or(day);
        alert.summary = summary;
        alert.details = details;
        out.findings.push(Finding::Firing(Box::new(alert), kind));
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::TlsFailure;
    use super::*;
    use crate::normalize::DAY;

    fn failure(kind: &str, mx: &str, sessions: u64) -> TlsFailure {
        TlsFailure { result_type: kind.into(), mx: mx.into(), reporter: "Google".into(), sessions }
    }

    #[test]
    fn an_expired_certificate_at_one_mx_fires_and_a_type_seen_before_goes_quiet() {
        let config = DetectConfig::default();
        let day = 40 * DAY;
        let tls = TlsDay {
            sessions: 1_000,
            failures: vec![failure("certificate-expired", "mx2.example.com", 450)],
            first_seen: Some(day),
        };
        let history = History::new(
            super::super::testing::signals(SIGNAL, day, 10, 0.0)
                .into_iter()
                .map(|mut s| {
                    s.subject = "validation-failure".into();
                    s
                })
                .collect(),
        );
        let mut out = Outcome::default();
        detect(&config, "example.com", day, &tls, &history, &mut out);
        let firing: Vec<_> = out.findings.iter().filter(|f| matches!(f, Finding::Firing(..))).collect();
        let [Finding::Firing(alert, subject)] = firing[..] else { panic!("{} firing", firing.len()) };
        assert_eq!(subject, "certificate-expired");
        assert!(alert.summary.contains("mostly at mx2.example.com"), "{}", alert.summary);
        assert!(out.findings.iter().any(|f| matches!(f, Finding::Quiet(_, s) if s == "validation-failure")));
        assert_eq!(out.signals.len(), 2);
    }
}
