//! `spoofing_spike`: DMARC-fail volume far above its robust baseline.
//!
//! Input: the domain's per-source aggregates for the day. Output: a firing alert naming
//! the top failing sources, or a quiet finding. Without a baseline it stays quiet:
//! background spoofing is normal, only a surge is news.

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, AlertState, Severity};

use super::{baseline, first_seen, source_info, thousands, DetectConfig, Finding, SourceDay};
use crate::normalize::DAY;

const SIGNAL: &str = "dmarc_fail";

pub(super) fn detect(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    day: i64,
    rows: &[SourceDay],
    findings: &mut Vec<Finding>,
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let observed: u64 = rows.iter().map(|r| r.dmarc_fail).sum();
    baseline::record(conn, domain, SIGNAL, "", day, observed as f64)?;
    let base = baseline::of(conn, domain, SIGNAL, "", day, config.baseline_days, config.min_baseline_days)?;
    let Some(base) = base.filter(|b| {
        observed >= config.spoofing_min_messages
            && observed as f64 >= b.threshold(config.spoofing_ratio, config.spoofing_deviations)
    }) else {
        findings.push(Finding::Quiet(AlertKind::SpoofingSpike, String::new()));
        return Ok(());
    };
    let mut by_source: HashMap<(&str, &str), u64> = HashMap::new();
    let mut by_reporter: BTreeMap<&str, u64> = BTreeMap::new();
    let blocked: u64 = rows.iter().map(|r| r.blocked).sum();
    for row in rows.iter().filter(|r| r.dmarc_fail > 0) {
        *by_source.entry((&row.ip, &row.network)).or_default() += row.dmarc_fail;
        *by_reporter.entry(&row.reporter).or_default() += row.dmarc_fail;
    }
    let mut sources: Vec<_> = by_source.into_iter().collect();
    sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let count = sources.len();
    let top = sources
        .iter()
        .take(10)
        .map(|((ip, net), n)| source_info(conn, ip, net, *n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reporters: Vec<AlertReporter> = by_reporter
        .into_iter()
        .map(|(org, messages)| AlertReporter { org: org.to_owned(), messages })
        .collect();
    reporters.sort_by_key(|r| std::cmp::Reverse(r.messages));
    let summary = format!(
        "Spoofing surge for {domain} on {}: {} messages failed DMARC from {} sources (baseline {}); {} of them were \
         quarantined or rejected by receivers. If the policy is p=none, moving to quarantine or reject protects recipients.",
        ruaflow_schema::time::format_date(day),
        thousands(observed),
        thousands(count as u64),
        thousands(base.median.round() as u64),
        thousands(blocked)
    );
    let alert = Alert {
        kind: AlertKind::SpoofingSpike,
        state: AlertState::Firing,
        domain: domain.to_owned(),
        severity: Severity::Warning,
        window_start: day,
        window_end: day + DAY,
        observed: observed as f64,
        baseline: base.median,
        sources: top,
        selectors: Vec::new(),
        reporters,
        first_seen: first_seen(conn, domain, day)?,
        summary,
        details: serde_json::Map::new(),
    };
    findings.push(Finding::Firing(Box::new(alert), String::new()));
    Ok(())
}
