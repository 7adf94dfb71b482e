//! `reporter_silence`: a reporter that sent a report for a domain nearly every day stops,
//! while others keep reporting. Often a delivery problem on the reporting address (a
//! full mailbox, a broken forward, a changed rua=), sometimes a receiver that stopped
//! trusting the domain's mail.
//!
//! Input: which days each reporter reported for each domain, and the history of its lag
//! (days between the last day it covered and the latest day any reporter covered).
//! Output: a firing finding per silent reporter, or a quiet one once it reports again,
//! and today's lags, stored as the signal [`LAG_SIGNAL`]. Judged against the latest day
//! any reporter covered for the domain, not the clock, so backfills of old reports are
//! judged on their own timeline.
//!
//! Receivers deliver at their own pace: Microsoft's reports often come two days after the
//! day they cover, an hourly reporter covers today already. Such a reporter always lags
//! the latest day by the same few days without ever being silent, so silence counts from
//! its usual lag (the median of its recorded lags over [`REGULAR_WINDOW_DAYS`]): it is
//! silent once it lags `silence_days` more than usual.

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, Severity};

use super::baseline::History;
use super::store::{ReporterActivity, Signal};
use super::{DetectConfig, Finding};
use crate::normalize::DAY;

/// Days of history that decide whether a reporter is a daily one, and its usual lag.
pub const REGULAR_WINDOW_DAYS: i64 = 14;

/// The stored daily signal: how many days a reporter's last covered day lies behind the
/// latest day covered for the domain (subject: the reporter).
pub const LAG_SIGNAL: &str = "reporter_lag_days";

/// A signal value and the domain it belongs to.
pub(super) type DomainSignal = (String, Signal);

/// Recorded lags needed before a reporter's usual lag counts (fewer: it is 0).
const USUAL_LAG_MIN_DAYS: usize = 3;

/// One finding per regular reporter — firing while it is silent, quiet once it reports
/// — and its lag today, as a signal to record for its domain. `history` is the domain's
/// signal history before the latest day.
pub(super) fn detect<'h>(
    config: &DetectConfig,
    activity: Vec<ReporterActivity>,
    history: impl Fn(&str) -> Option<&'h History>,
) -> (Vec<(String, i64, Finding)>, Vec<DomainSignal>) {
    let mut out = Vec::new();
    let mut lags = Vec::new();
    for ReporterActivity { domain, reporter, last_day, latest_day: max_day, recent_days } in activity {
        // Every reporter's lag is recorded, so that a reporter has its usual lag by the
        // time it counts as regular.
        let silent_days = (max_day - last_day) / DAY;
        let signal =
            Signal { signal: LAG_SIGNAL, subject: reporter.clone(), day: max_day, value: silent_days as f64 };
        lags.push((domain.clone(), signal));
        if recent_days < config.silence_regular_days {
            continue;
        }
        let usual = history(&domain)
            .and_then(|h| h.baseline(LAG_SIGNAL, &reporter, max_day, REGULAR_WINDOW_DAYS, USUAL_LAG_MIN_DAYS))
            .map_or(0, |b| b.median.floor() as i64);
        if silent_days < config.silence_days + usual {
            out.push((domain, last_day, Finding::Quiet(AlertKind::ReporterSilence, reporter)));
            continue;
        }
        let day = last_day + DAY;
        let usually =
            if usual > 0 { format!(" (it usually runs {usual} days behind)") } else { String::new() };
        let summary = format!(
            "{reporter} stopped sending DMARC reports for {domain}: its last covered {}, {silent_days} days before the \
             latest report from others{usually}, after {recent_days} of the previous {REGULAR_WINDOW_DAYS} days. Check \
             that the rua= mailbox accepts mail and that the domain's DMARC record is unchanged.",
            ruaflow_schema::time::format_date(last_day),
        );
        let mut alert = Alert::firing(AlertKind::ReporterSilence, &domain, Severity::Warning, day);
        alert.window_end = max_day + DAY;
        alert.baseline = recent_days as f64;
        alert.reporters = vec![AlertReporter { org: reporter.clone(), messages: 0 }];
        alert.summary = summary;
        out.push((domain, day, Finding::Firing(Box::new(alert), reporter)));
    }
    (out, lags)
}

#[cfg(test)]
mod tests {
    use super::super::store::StoredSignal;
    use super::*;

    const LATEST: i64 = 200 * DAY;

    fn activity(reporter: &str, behind: i64) -> ReporterActivity {
        ReporterActivity {
            domain: "example.com".into(),
            reporter: reporter.into(),
            last_day: LATEST - behind * DAY,
            latest_day: LATEST,
            recent_days: 14,
        }
    }

    /// Lags of `reporter` recorded on each of the 14 days before the latest.
    fn lags(reporter: &str, lag: f64) -> History {
        History::new(
            (1..=14)
                .map(|k| StoredSignal {
                    signal: LAG_SIGNAL.into(),
                    subject: reporter.into(),
                    day: LATEST - k * DAY,
                    value: lag,
                })
                .collect(),
        )
    }

    fn firing(findings: &[(String, i64, Finding)]) -> Vec<&str> {
        findings
            .iter()
            .filter_map(|(_, _, f)| match f {
                Finding::Firing(alert, _) => Some(alert.reporters[0].org.as_str()),
                Finding::Quiet(..) => None,
            })
            .collect()
    }

    #[test]
    fn a_reporter_always_two_days_late_is_not_silent_until_it_falls_further_behind() {
        let config = DetectConfig::default();
        let late = lags("Enterprise Outlook", 2.0);
        let (findings, signals) = detect(&config, vec![activity("Enterprise Outlook", 2)], |_| Some(&late));
        assert!(firing(&findings).is_empty(), "its usual lag");
        assert_eq!(signals[0].1.value, 2.0);
        assert_eq!(signals[0].1.day, LATEST);
        let (findings, _) = detect(&config, vec![activity("Enterprise Outlook", 4)], |_| Some(&late));
        assert_eq!(firing(&findings), ["Enterprise Outlook"], "two days more than usual");
    }

    #[test]
    fn without_a_recorded_lag_silence_counts_from_the_latest_day() {
        let config = DetectConfig::default();
        let (findings, _) = detect(&config, vec![activity("Yahoo", 2), activity("google.com", 1)], |_| None);
        assert_eq!(firing(&findings), ["Yahoo"]);
    }
}
