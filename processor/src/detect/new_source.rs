//! `new_authenticated_source` (informational): a network never seen before for the
//! domain sends SPF-aligned passing mail in volume — usually a new ESP or a new
//! outbound server, sometimes an SPF record that authorizes too much.
//!
//! Input: the day's per-source aggregates and each source's first day. Output: one
//! firing alert per new /24 (or /48) network. DKIM-only mail from new sources is the
//! replay detector's concern, not this one's.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, AlertState, Severity};

use super::{first_seen, source_info, thousands, DetectConfig, Finding};
use crate::normalize::DAY;

/// Messages of one new network, by source IP and by reporter.
type NewNetwork<'a> = (BTreeMap<&'a str, u64>, BTreeMap<&'a str, u64>);

pub(super) fn detect(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    day: i64,
    findings: &mut Vec<Finding>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.source_ip, t.network, t.reporter, t.spf_aligned_pass,
                (SELECT MIN(h.day) FROM agg_source_day h WHERE h.domain = t.domain AND h.source_ip = t.source_ip)
         FROM agg_source_day t WHERE t.domain = ?1 AND t.day = ?2",
    )?;
    let rows: Vec<(String, String, String, u64, i64)> = stmt
        .query_map(params![domain, day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    // Everything is new on a domain's first days: wait until it has a history.
    let history_days: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM detector_signals WHERE domain = ?1 AND signal = 'dmarc_fail' AND subject = ''
             AND day < ?2 AND day >= ?3",
        )?
        .query_row(params![domain, day, day - config.baseline_days * DAY], |r| r.get(0))?;
    if history_days < config.min_baseline_days as i64 {
        return Ok(());
    }
    let total: u64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(messages), 0) FROM agg_source_day WHERE domain = ?1 AND day = ?2",
        )?
        .query_row(params![domain, day], |r| r.get(0))?;
    let mut networks: BTreeMap<&str, NewNetwork<'_>> = BTreeMap::new();
    for (ip, network, reporter, spf_pass, first_day) in &rows {
        if *first_day == day && *spf_pass > 0 {
            let entry = networks.entry(network).or_default();
            *entry.0.entry(ip).or_default() += spf_pass;
            *entry.1.entry(reporter).or_default() += spf_pass;
        }
    }
    for (network, (ips, reporters)) in networks {
        let observed: u64 = ips.values().sum();
        if observed < config.new_source_min_messages
            || (observed as f64) < config.new_source_min_share * total as f64
        {
            continue;
        }
        let mut sources =
            ips.iter().map(|(ip, n)| source_info(conn, ip, network, *n)).collect::<Result<Vec<_>, _>>()?;
        sources.sort_by_key(|s| std::cmp::Reverse(s.messages));
        sources.truncate(10);
        let summary = format!(
            "New sender for {domain} on {}: network {network} ({} addresses) sent {} messages that passed SPF \
             aligned with the domain, so its SPF record authorizes them. Expected if a new ESP or server was set up; \
             otherwise check what the SPF record includes.",
            ruaflow_schema::time::format_date(day),
            ips.len(),
            thousands(observed)
        );
        let alert = Alert {
            kind: AlertKind::NewAuthenticatedSource,
            state: AlertState::Firing,
            domain: domain.to_owned(),
            severity: Severity::Info,
            window_start: day,
            window_end: day + DAY,
            observed: observed as f64,
            baseline: 0.0,
            sources,
            selectors: Vec::new(),
            reporters: reporters
                .into_iter()
                .map(|(org, messages)| AlertReporter { org: org.to_owned(), messages })
                .collect(),
            first_seen: first_seen(conn, domain, day)?,
            summary,
            details: serde_json::Map::new(),
        };
        findings.push(Finding::Firing(Box::new(alert), network.to_owned()));
    }
    Ok(())
}
