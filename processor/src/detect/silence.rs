//! `reporter_silence`: a reporter that sent a report for a domain nearly every day stops,
//! while others keep reporting. Often a delivery problem on the reporting address (a
//! full mailbox, a broken forward, a changed rua=), sometimes a receiver that stopped
//! trusting the domain's mail.
//!
//! Input: which days each reporter reported for each domain. Output: a firing finding
//! per silent reporter, or a quiet one once it reports again. Judged against the latest
//! day any reporter covered for the domain, not the clock, so backfills of old reports
//! are judged on their own timeline.

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, Severity};

use super::store::ReporterActivity;
use super::{DetectConfig, Finding};
use crate::normalize::DAY;

/// Days of history that decide whether a reporter is a daily one.
pub const REGULAR_WINDOW_DAYS: i64 = 14;

/// One finding per regular reporter: firing while it is silent, quiet once it reports.
pub(super) fn detect(config: &DetectConfig, activity: Vec<ReporterActivity>) -> Vec<(String, i64, Finding)> {
    let mut out = Vec::new();
    for ReporterActivity { domain, reporter, last_day, latest_day: max_day, recent_days } in activity {
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
        let mut alert = Alert::firing(AlertKind::ReporterSilence, &domain, Severity::Warning, day);
        alert.window_end = max_day + DAY;
        alert.baseline = recent_days as f64;
        alert.reporters = vec![AlertReporter { org: reporter.clone(), messages: 0 }];
        alert.summary = summary;
        out.push((domain, day, Finding::Firing(Box::new(alert), reporter)));
    }
    out
}
