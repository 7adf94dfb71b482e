//! `auth_regression`: a known sender's DKIM or SPF pass rate drops — a broken or
//! rotated-away key, an SPF record that lost an include.
//!
//! Input: per-source aggregates for the day and the trailing window. Output: for each of
//! `dkim` and `spf`, a firing alert listing the sources whose usual (window) aligned pass
//! rate was high and whose rate today fell by at least `regression_drop`; or a quiet
//! finding.

use rusqlite::{params, Connection};

use ruaflow_schema::alert::{Alert, AlertKind, AlertState, Severity};

use super::{first_seen, percent, source_info, thousands, DetectConfig, Finding};
use crate::normalize::DAY;

struct Rates {
    ip: String,
    network: String,
    today: u64,
    today_pass: [u64; 2],
    usual: u64,
    usual_pass: [u64; 2],
}

pub(super) fn detect(
    conn: &Connection,
    config: &DetectConfig,
    domain: &str,
    day: i64,
    findings: &mut Vec<Finding>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "WITH today AS (
             SELECT source_ip, MIN(network) AS network, SUM(messages) AS m, SUM(dkim_aligned_pass) AS d,
                    SUM(spf_aligned_pass) AS s
             FROM agg_source_day WHERE domain = ?1 AND day = ?2 GROUP BY source_ip HAVING SUM(messages) >= ?4),
         usual AS (
             SELECT source_ip, SUM(messages) AS m, SUM(dkim_aligned_pass) AS d, SUM(spf_aligned_pass) AS s
             FROM agg_source_day
             WHERE domain = ?1 AND day < ?2 AND day >= ?3 AND source_ip IN (SELECT source_ip FROM today)
             GROUP BY source_ip)
         SELECT today.source_ip, today.network, today.m, today.d, today.s, usual.m, usual.d, usual.s
         FROM today JOIN usual USING (source_ip) WHERE usual.m >= ?4",
    )?;
    let rows: Vec<Rates> = stmt
        .query_map(
            params![domain, day, day - config.baseline_days * DAY, config.regression_min_messages],
            |r| {
                Ok(Rates {
                    ip: r.get(0)?,
                    network: r.get(1)?,
                    today: r.get(2)?,
                    today_pass: [r.get(3)?, r.get(4)?],
                    usual: r.get(5)?,
                    usual_pass: [r.get(6)?, r.get(7)?],
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    for (index, method) in ["dkim", "spf"].into_iter().enumerate() {
        let mut dropped: Vec<(&Rates, f64, f64)> = rows
            .iter()
            .filter_map(|r| {
                let usual = r.usual_pass[index] as f64 / r.usual as f64;
                let today = r.today_pass[index] as f64 / r.today as f64;
                (usual >= config.regression_usual_rate && usual - today >= config.regression_drop)
                    .then_some((r, usual, today))
            })
            .collect();
        if dropped.is_empty() {
            findings.push(Finding::Quiet(AlertKind::AuthRegression, method.to_owned()));
            continue;
        }
        dropped.sort_by_key(|d| std::cmp::Reverse(d.0.today));
        let affected: u64 = dropped.iter().map(|(r, _, _)| r.today).sum();
        let failing: u64 = dropped.iter().map(|(r, _, _)| r.today - r.today_pass[index]).sum();
        let (usual, today) = (dropped[0].1, dropped[0].2);
        let sources = dropped
            .iter()
            .take(10)
            .map(|(r, _, _)| source_info(conn, &r.ip, &r.network, r.today - r.today_pass[index]))
            .collect::<Result<Vec<_>, _>>()?;
        let advice = if method == "dkim" {
            "Check that the signing key matches the published selector record and that the signer is still running"
        } else {
            "Check that the SPF record still includes these servers (and stays under 10 DNS lookups)"
        };
        let summary = format!(
            "Authentication regression for {domain} on {}: {} known sending {} aligned {} passes dropped (top: {} \
             usually {}, now {}); {} of {} messages failed. {advice}.",
            ruaflow_schema::time::format_date(day),
            dropped.len(),
            if dropped.len() == 1 { "source's" } else { "sources'" },
            method.to_uppercase(),
            dropped[0].0.ip,
            percent(usual),
            percent(today),
            thousands(failing),
            thousands(affected),
        );
        let mut details = serde_json::Map::new();
        details.insert("method".into(), method.into());
        let alert = Alert {
            kind: AlertKind::AuthRegression,
            state: AlertState::Firing,
            domain: domain.to_owned(),
            severity: Severity::Warning,
            window_start: day,
            window_end: day + DAY,
            observed: today,
            baseline: usual,
            sources,
            selectors: Vec::new(),
            reporters: Vec::new(),
            first_seen: first_seen(conn, domain, day)?,
            summary,
            details,
        };
        findings.push(Finding::Firing(Box::new(alert), method.to_owned()));
    }
    Ok(())
}
