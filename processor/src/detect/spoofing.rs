//! `spoofing_spike`: DMARC-fail volume far above its robust baseline.
//!
//! Input: the [`Day`] and the signal history. Output: a firing alert naming the top
//! failing sources, or a quiet finding. Without a baseline it stays quiet: background
//! spoofing is normal, only a surge is news.

use ruaflow_schema::alert::{Alert, AlertKind, Severity};

use super::baseline::History;
use super::day::Day;
use super::store::Signal;
use super::{reporters, thousands, DetectConfig, Finding, Outcome};

/// The stored daily signal.
pub const SIGNAL: &str = "dmarc_fail";

pub(super) fn detect(config: &DetectConfig, day: &Day, history: &History, out: &mut Outcome) {
    if day.totals.messages == 0 {
        return;
    }
    let observed = day.failing.messages;
    out.signals.push(Signal { signal: SIGNAL, subject: String::new(), day: day.day, value: observed as f64 });
    let base = history.baseline(SIGNAL, "", day.day, config.baseline_days, config.min_baseline_days);
    let Some(base) = base.filter(|b| {
        observed >= config.spoofing_min_messages
            && observed as f64 >= b.threshold(config.spoofing_ratio, config.spoofing_deviations)
    }) else {
        out.findings.push(Finding::Quiet(AlertKind::SpoofingSpike, String::new()));
        return;
    };
    let domain = &day.domain;
    let summary = format!(
        "Spoofing surge for {domain} on {}: {} messages failed DMARC from {} sources (baseline {}); {} of them were \
         quarantined or rejected by receivers. If the policy is p=none, moving to quarantine or reject protects recipients.",
        ruaflow_schema::time::format_date(day.day),
        thousands(observed),
        thousands(day.failing.sources),
        thousands(base.median.round() as u64),
        thousands(day.totals.blocked)
    );
    let mut alert = Alert::firing(AlertKind::SpoofingSpike, domain, Severity::Warning, day.day);
    alert.observed = observed as f64;
    alert.baseline = base.median;
    alert.sources = day.failing.top.clone();
    alert.reporters = reporters([&day.failing]);
    alert.first_seen = day.first_seen;
    alert.summary = summary;
    out.findings.push(Finding::Firing(Box::new(alert), String::new()));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{day_with, known, signals, spoofer};
    use super::*;
    use crate::normalize::DAY;

    #[test]
    fn a_surge_of_failing_mail_fires_and_background_spoofing_does_not() {
        let config = DetectConfig::default();
        let d = 50 * DAY;
        let history = History::new(signals(SIGNAL, d, 14, 100.0));
        let mut sources = vec![known("192.0.2.1", 1_000, 1_000, 0, "example.com/s1")];
        sources.extend((0..30).map(|i| spoofer(&format!("203.0.113.{i}"), 100)));
        let mut out = Outcome::default();
        detect(&config, &day_with(&config, d, sources), &history, &mut out);
        let Some(Finding::Firing(alert, _)) = out.findings.first() else { panic!("no alert") };
        assert_eq!(alert.observed, 3_000.0);
        assert_eq!(alert.sources.len(), 10);
        assert!(alert.summary.contains("30 sources"), "{}", alert.summary);

        let calm = vec![spoofer("203.0.113.1", 120)];
        let mut out = Outcome::default();
        detect(&config, &day_with(&config, d, calm), &history, &mut out);
        assert!(matches!(out.findings[..], [Finding::Quiet(..)]));
        let mut out = Outcome::default();
        detect(
            &config,
            &day_with(&config, d, vec![spoofer("203.0.113.1", 5_000)]),
            &History::default(),
            &mut out,
        );
        assert!(matches!(out.findings[..], [Finding::Quiet(..)]), "no baseline, no news");
    }
}
