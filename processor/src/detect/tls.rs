//! `tls_failure_spike`: the TLSRPT failure share of one result type jumps for a policy
//! domain. `starttls-not-supported` where TLS normally works can mean a downgrade
//! attack (critical); expired or mismatched certificates, MTA-STS fetch errors and
//! DNSSEC failures mean lost or delayed mail (warning).
//!
//! Input: the day's TLS reports for the policy domain. Output: one finding per result
//! type seen (today, or before in the window).

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, AlertState, Severity};

use super::{baseline, percent, thousands, DetectConfig, Finding};
use crate::normalize::DAY;

const SIGNAL: &str = "tls_failure_share";

/// Failed sessions of one result type: in all, by MX host, by reporter.
type Failures = (u64, BTreeMap<String, u64>, BTreeMap<String, u64>);

pub(super) fn detect(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    day: i64,
    findings: &mut Vec<Finding>,
) -> rusqlite::Result<()> {
    let (total, first_seen): (u64, Option<i64>) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(p.successful_sessions + p.failed_sessions), 0), MIN(r.begin_ts)
             FROM tlsrpt_policies p JOIN reports r ON p.report = r.id WHERE p.policy_domain = ?1 AND r.day = ?2",
        )?
        .query_row(params![domain, day], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if total == 0 {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT f.result_type, COALESCE(f.receiving_mx_hostname, ''), COALESCE(f.sending_mta_ip, ''), r.org_name,
                SUM(f.failed_sessions)
         FROM tlsrpt_failures f JOIN reports r ON f.report = r.id
         WHERE f.policy_domain = ?1 AND r.day = ?2
         GROUP BY f.result_type, f.receiving_mx_hostname, f.sending_mta_ip, r.org_name",
    )?;
    let mut by_type: BTreeMap<String, Failures> = BTreeMap::new();
    let rows = stmt.query_map(params![domain, day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, u64>(4)?,
        ))
    })?;
    for row in rows {
        let (kind, mx, _ip, reporter, n) = row?;
        let entry = by_type.entry(kind).or_default();
        entry.0 += n;
        if !mx.is_empty() {
            *entry.1.entry(mx).or_default() += n;
        }
        *entry.2.entry(reporter).or_default() += n;
    }
    // Result types seen before in the window but not today are at zero today.
    let mut seen = conn.prepare_cached(
        "SELECT DISTINCT subject FROM detector_signals WHERE domain = ?1 AND signal = ?2 AND day < ?3 AND day >= ?4",
    )?;
    let earlier: Vec<String> = seen
        .query_map(params![domain, SIGNAL, day, day - config.baseline_days * DAY], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for kind in earlier {
        by_type.entry(kind).or_default();
    }
    for (kind, (failed, mxs, reporters)) in by_type {
        let share = failed as f64 / total as f64;
        baseline::record(conn, domain, SIGNAL, &kind, day, share)?;
        let base =
            baseline::of(conn, domain, SIGNAL, &kind, day, config.baseline_days, config.min_baseline_days)?;
        let threshold = base
            .map_or(config.tls_min_share, |b| b.threshold(config.tls_ratio, 6.0).max(config.tls_min_share));
        if failed < config.tls_min_failures || share < threshold {
            findings.push(Finding::Quiet(AlertKind::TlsFailureSpike, kind));
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
        let alert = Alert {
            kind: AlertKind::TlsFailureSpike,
            state: AlertState::Firing,
            domain: domain.to_owned(),
            severity,
            window_start: day,
            window_end: day + DAY,
            observed: share,
            baseline: base.map_or(0.0, |b| b.median),
            sources: Vec::new(),
            selectors: Vec::new(),
            reporters: reporters.into_iter().map(|(org, messages)| AlertReporter { org, messages }).collect(),
            first_seen: first_seen.unwrap_or(day),
            summary,
            details,
        };
        findings.push(Finding::Firing(Box::new(alert), kind));
    }
    Ok(())
}
