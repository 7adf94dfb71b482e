//! `dkim_replay_suspected`: DKIM-aligned, SPF-unaligned volume from unknown sources.
//!
//! Input: the domain's per-source aggregates for the day and its known senders.
//! Output: a firing alert when that volume is far above its robust, weekday-aware
//! baseline (and a real share of the domain's mail), or dominates the domain's mail
//! even before there is a baseline; a quiet finding otherwise. The alert names the
//! selector to rotate, the top sources and networks, and the reporters.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, AlertSelector, AlertState, Severity};

use super::{baseline, first_seen, known, percent, source_info, thousands, DetectConfig, Finding, SourceDay};
use crate::normalize::DAY;

/// The stored daily signal.
const SIGNAL: &str = "replay_unknown_dkim_only";

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
    let known = known::known_on(conn, config, domain, day)?;
    let total: u64 = rows.iter().map(|r| r.messages).sum();
    let mut by_source: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut by_reporter: BTreeMap<&str, u64> = BTreeMap::new();
    for row in rows {
        if row.dkim_only == 0 || known.contains(&row.ip) {
            continue;
        }
        by_source.entry(&row.ip).or_insert((&row.network, 0)).1 += row.dkim_only;
        *by_reporter.entry(&row.reporter).or_default() += row.dkim_only;
    }
    let observed: u64 = by_source.values().map(|(_, n)| n).sum();
    baseline::record(conn, domain, SIGNAL, "", day, observed as f64)?;
    let base = baseline::of(conn, domain, SIGNAL, "", day, config.baseline_days, config.min_baseline_days)?;
    let share = if total == 0 { 0.0 } else { observed as f64 / total as f64 };
    let surge = base.is_some_and(|b| {
        observed as f64 >= b.threshold(config.replay_ratio, config.replay_deviations)
            && share >= config.replay_min_share
    });
    let dominant = share >= config.replay_dominant_share;
    if observed < config.replay_min_messages || !(surge || dominant) {
        findings.push(Finding::Quiet(AlertKind::DkimReplaySuspected, String::new()));
        return Ok(());
    }

    let mut sources: Vec<(&str, &str, u64)> =
        by_source.iter().map(|(ip, (net, n))| (*ip, *net, *n)).collect();
    sources.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let networks: std::collections::HashSet<&str> = sources.iter().map(|s| s.1).collect();
    let top_sources = sources
        .iter()
        .take(10)
        .map(|(ip, net, n)| source_info(conn, ip, net, *n))
        .collect::<Result<Vec<_>, _>>()?;
    let selectors = selectors(conn, domain, day, &by_source)?;
    let mut reporters: Vec<AlertReporter> = by_reporter
        .into_iter()
        .map(|(org, messages)| AlertReporter { org: org.to_owned(), messages })
        .collect();
    reporters.sort_by_key(|r| std::cmp::Reverse(r.messages));
    let base_median = base.map_or(0.0, |b| b.median);

    let date = ruaflow_schema::time::format_date(day);
    let rotate = match selectors.first() {
        Some(s) if !s.selector.is_empty() => {
            format!("Rotate the DKIM key of selector {}._domainkey.{} now", s.selector, s.domain)
        }
        Some(s) => {
            format!("Rotate the DKIM keys of {} now (receivers did not report the selector)", s.domain)
        }
        None => "Rotate the domain's DKIM keys now".to_owned(),
    };
    let summary = format!(
        "DKIM replay suspected for {domain} on {date}: {} messages ({} of the domain's mail) passed DMARC on DKIM alone \
         from {} sources in {} networks that are not its senders (baseline {}). {rotate}; oversign From, To and CC \
         (list them twice in h=) and use strict DKIM alignment (adkim=s) to blunt replays.{}",
        thousands(observed),
        percent(share),
        thousands(sources.len() as u64),
        thousands(networks.len() as u64),
        thousands(base_median.round() as u64),
        reporters.first().map(|r| format!(" Most of it was reported by {}.", r.org)).unwrap_or_default()
    );
    let mut details = serde_json::Map::new();
    details.insert("share".into(), share.into());
    details.insert("total_messages".into(), total.into());
    details.insert("unknown_sources".into(), sources.len().into());
    details.insert("networks".into(), networks.len().into());
    let alert = Alert {
        kind: AlertKind::DkimReplaySuspected,
        state: AlertState::Firing,
        domain: domain.to_owned(),
        severity: Severity::Critical,
        window_start: day,
        window_end: day + DAY,
        observed: observed as f64,
        baseline: base_median,
        sources: top_sources,
        selectors,
        reporters,
        first_seen: first_seen(conn, domain, day)?,
        summary,
        details,
    };
    findings.push(Finding::Firing(Box::new(alert), String::new()));
    Ok(())
}

/// DKIM signing domains and selectors of the unknown sources' DKIM-only mail, largest first.
fn selectors(
    conn: &Connection,
    domain: &str,
    day: i64,
    unknown: &HashMap<&str, (&str, u64)>,
) -> rusqlite::Result<Vec<AlertSelector>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.source_ip, COALESCE(r.dkim_domain, ''), COALESCE(r.dkim_selector, ''), SUM(r.count)
         FROM dmarc_records r JOIN reports p ON r.report = p.id
         WHERE p.domain = ?1 AND p.day = ?2 AND r.dkim_aligned = 1 AND r.spf_aligned = 0
         GROUP BY r.source_ip, r.dkim_domain, r.dkim_selector",
    )?;
    let mut totals: BTreeMap<(String, String), u64> = BTreeMap::new();
    let rows = stmt.query_map(params![domain, day], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, u64>(3)?))
    })?;
    for row in rows {
        let (ip, d, s, n) = row?;
        if unknown.contains_key(ip.as_str()) {
            *totals.entry((d, s)).or_default() += n;
        }
    }
    let mut out: Vec<AlertSelector> = totals
        .into_iter()
        .map(|((domain, selector), messages)| AlertSelector { domain, selector, messages })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.messages));
    out.truncate(5);
    Ok(out)
}
