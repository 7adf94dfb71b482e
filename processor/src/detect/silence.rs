//! `reporter_silence`: a reporter that sent a report for a domain nearly every day stops,
//! while others keep reporting. Often a delivery problem on the reporting address (a
//! full mailbox, a broken forward, a changed rua=), sometimes a receiver that stopped
//! trusting the domain's mail.
//!
//! Input: which days each reporter reported for each domain. Output: a firing finding
//! per silent reporter, or a quiet one once it reports again. Judged against the latest
//! day any reporter covered for the domain, not the clock, so backfills of old reports
//! are judged on their own timeline.

use rusqlite::Connection;

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, AlertState, Severity};

use super::{DetectConfig, Finding};
use crate::normalize::DAY;

/// Days of history that decide whether a reporter is a daily one.
const REGULAR_WINDOW_DAYS: i64 = 14;

pub(super) fn detect(
    conn: &Connection,
    config: &DetectConfig,
) -> rusqlite::Result<Vec<(String, i64, Finding)>> {
    let mut stmt = conn.prepare_cached(
        "WITH latest AS (SELECT domain, MAX(day) AS max_day FROM reports WHERE kind = 'dmarc' GROUP BY domain),
              last AS (SELECT domain, org_name, MAX(day) AS last_day FROM reports WHERE kind = 'dmarc' GROUP BY domain, org_name)
         SELECT last.domain, last.org_name, last.last_day, latest.max_day,
                (SELECT COUNT(DISTINCT r.day) FROM reports r
                 WHERE r.kind = 'dmarc' AND r.domain = last.domain AND r.org_name = last.org_name
                   AND r.day > last.last_day - ?1 AND r.day <= last.last_day)
         FROM last JOIN latest USING (domain)",
    )?;
    let rows: Vec<(String, String, i64, i64, i64)> = stmt
        .query_map([REGULAR_WINDOW_DAYS * DAY], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (domain, reporter, last_day, max_day, recent_days) in rows {
        if recent_days < config.silence_regular_days {
            continue;
        }
        let silent_days = (max_day - last_day) / DAY;
        if silent_days < config.silence_days {
            out.push((domain, last_day, Finding::Quiet(AlertKind::ReporterSilence, reporter)));
            continue;
        }
        let day = last_day + DAY;
        let summary = format!(
            "{reporter} stopped sending DMARC reports for {domain}: its last covered {}, {silent_days} days before the \
             latest report from others, after {recent_days} of the previous {REGULAR_WINDOW_DAYS} days. Check that \
             the rua= mailbox accepts mail and that the domain's DMARC record is unchanged.",
            ruaflow_schema::time::format_date(last_day),
        );
        let alert = Alert {
            kind: AlertKind::ReporterSilence,
            state: AlertState::Firing,
            domain: domain.clone(),
            severity: Severity::Warning,
            window_start: day,
            window_end: max_day + DAY,
            observed: 0.0,
            baseline: recent_days as f64,
            sources: Vec::new(),
            selectors: Vec::new(),
            reporters: vec![AlertReporter { org: reporter.clone(), messages: 0 }],
            first_seen: day,
            summary,
            details: serde_json::Map::new(),
        };
        out.push((domain, day, Finding::Firing(Box::new(alert), reporter)));
    }
    Ok(out)
}
