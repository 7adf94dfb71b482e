//! `dkim_replay_suspected`: DKIM-aligned, SPF-unaligned mail from unknown sources, signed
//! with a key the domain's own senders use.
//!
//! Input: the [`Day`] and the signal history. Output: a firing alert when that volume is
//! far above its robust, weekday-aware baseline (and a real share of the domain's mail),
//! or dominates the domain's mail even before there is a baseline; a quiet finding
//! otherwise. The alert names the key to rotate, the top sources and the reporters.
//!
//! Which DKIM-only mail counts: a replay re-sends mail the domain's own senders signed, so
//! its key is one that the day's configured, SPF-authorized or service senders sign with
//! (or an older one they used): an established key. Mail under any other key is a
//! signer's — an ESP signing for the domain with its own selector and bouncing with its
//! own domain — and is the new-source detector's business, unless it arrives from as many
//! networks as a flood does (`replay_min_networks`). That holds once the ESP's first
//! addresses have become familiar too: familiarity shows that a key is in use, not that
//! the signer's next addresses are the domain's, and the ESP's addresses come and go
//! within its own few networks while a replay's span dozens. A key receivers did not
//! report counts, to be safe.

use ruaflow_schema::alert::{Alert, AlertKind, AlertSelector, AlertSource, Severity};

use super::baseline::History;
use super::day::{Day, Volume, TOP};
use super::store::Signal;
use super::{percent, reporters, thousands, DetectConfig, Finding, Outcome};

/// The stored daily signal.
pub const SIGNAL: &str = "replay_unknown_dkim_only";

/// The keys whose unknown DKIM-only mail looks like a replay, largest first.
pub(super) fn suspect_keys<'d>(config: &DetectConfig, day: &'d Day) -> Vec<(&'d str, &'d Volume)> {
    let mut keys: Vec<(&str, &Volume)> = day
        .unknown_dkim_only
        .iter()
        .filter(|(key, volume)| {
            volume.messages > 0
                && (key.is_empty()
                    || day.established_keys.contains(*key)
                    || volume.networks >= config.replay_min_networks)
        })
        .map(|(key, volume)| (key.as_str(), volume))
        .collect();
    keys.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then(a.0.cmp(b.0)));
    keys
}

pub(super) fn detect(config: &DetectConfig, day: &Day, history: &History, out: &mut Outcome) {
    let total = day.totals.messages;
    if total == 0 {
        return;
    }
    let keys = suspect_keys(config, day);
    let observed: u64 = keys.iter().map(|(_, v)| v.messages).sum();
    out.signals.push(Signal { signal: SIGNAL, subject: String::new(), day: day.day, value: observed as f64 });
    let base = history.baseline(SIGNAL, "", day.day, config.baseline_days, config.min_baseline_days);
    let share = observed as f64 / total as f64;
    let surge = base.is_some_and(|b| {
        observed as f64 >= b.threshold(config.replay_ratio, config.replay_deviations)
            && share >= config.replay_min_share
    });
    let dominant = share >= config.replay_dominant_share;
    if observed < config.replay_min_messages || !(surge || dominant) {
        out.findings.push(Finding::Quiet(AlertKind::DkimReplaySuspected, String::new()));
        return;
    }

    let mut sources: Vec<AlertSource> = keys.iter().flat_map(|(_, v)| v.top.iter().cloned()).collect();
    sources.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.ip.cmp(&b.ip)));
    sources.truncate(TOP);
    let source_count: u64 = keys.iter().map(|(_, v)| v.sources).sum();
    let network_count: u64 = keys.iter().map(|(_, v)| v.networks).sum();
    let selectors: Vec<AlertSelector> = keys
        .iter()
        .take(5)
        .map(|(key, v)| {
            let (domain, selector) = key.split_once('/').unwrap_or((key, ""));
            AlertSelector { domain: domain.to_owned(), selector: selector.to_owned(), messages: v.messages }
        })
        .collect();
    let reporters = reporters(keys.iter().map(|(_, v)| *v));
    let base_median = base.map_or(0.0, |b| b.median);
    let rotate = match selectors.first() {
        Some(s) if !s.selector.is_empty() && !s.domain.is_empty() => {
            format!("Rotate the DKIM key of selector {}._domainkey.{} now", s.selector, s.domain)
        }
        Some(s) if !s.domain.is_empty() => {
            format!("Rotate the DKIM keys of {} now (receivers did not report the selector)", s.domain)
        }
        _ => "Rotate the domain's DKIM keys now".to_owned(),
    };
    let domain = &day.domain;
    let summary = format!(
        "DKIM replay suspected for {domain} on {}: {} messages ({} of the domain's mail) passed DMARC on DKIM alone \
         from {} sources in {} networks that are not its senders (baseline {}). {rotate}; oversign From, To and CC \
         (list them twice in h=) and use strict DKIM alignment (adkim=s) to blunt replays.{}",
        ruaflow_schema::time::format_date(day.day),
        thousands(observed),
        percent(share),
        thousands(source_count),
        thousands(network_count),
        thousands(base_median.round() as u64),
        reporters.first().map(|r| format!(" Most of it was reported by {}.", r.org)).unwrap_or_default()
    );
    let mut alert = Alert::firing(AlertKind::DkimReplaySuspected, domain, Severity::Critical, day.day);
    alert.observed = observed as f64;
    alert.baseline = base_median;
    alert.sources = sources;
    alert.selectors = selectors;
    alert.reporters = reporters;
    alert.first_seen = day.first_seen;
    alert.summary = summary;
    alert.details.insert("share".into(), share.into());
    alert.details.insert("total_messages".into(), total.into());
    alert.details.insert("unknown_sources".into(), source_count.into());
    alert.details.insert("networks".into(), network_count.into());
    out.findings.push(Finding::Firing(Box::new(alert), String::new()));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{day_with, familiar, known, unknown};
    use super::*;
    use crate::normalize::DAY;

    const D: i64 = 100 * DAY;

    fn outcome(config: &DetectConfig, day: &Day, history: &History) -> Outcome {
        let mut out = Outcome::default();
        detect(config, day, history, &mut out);
        out
    }

    fn flat_history(value: f64) -> History {
        History::new(super::super::testing::signals(SIGNAL, D, 28, value))
    }

    #[test]
    fn a_flood_on_the_domains_own_key_fires_naming_key_and_sources() {
        let config = DetectConfig::default();
        let mut sources = vec![known("192.0.2.1", 5_000, 5_000, 0, "example.com/s1")];
        for i in 0..200 {
            sources.push(unknown(
                &format!("198.{}.{}.7", 18 + i / 100, i % 100),
                40,
                0,
                40,
                "example.com/s1",
            ));
        }
        let day = day_with(&config, D, sources);
        let out = outcome(&config, &day, &flat_history(20.0));
        let Some(Finding::Firing(alert, _)) = out.findings.first() else {
            panic!("no alert: {:?}", out.findings.len())
        };
        assert_eq!(alert.observed, 8_000.0);
        assert_eq!(alert.selectors[0].selector, "s1");
        assert_eq!(alert.selectors[0].domain, "example.com");
        assert_eq!(alert.sources.len(), TOP);
        assert!(alert.sources.iter().all(|s| s.status.as_deref() == Some("unknown")), "{:?}", alert.sources);
        assert!(alert.summary.contains("s1._domainkey.example.com"), "{}", alert.summary);
        assert_eq!(out.signals[0].value, 8_000.0);
    }

    #[test]
    fn an_esp_signing_with_its_own_selector_from_one_network_is_not_a_replay() {
        let config = DetectConfig::default();
        let mut sources = vec![known("192.0.2.1", 6_000, 6_000, 0, "example.com/s1")];
        for i in 0..4 {
            sources.push(unknown(&format!("203.0.113.{}", 10 + i), 1_000, 0, 1_000, "example.com/esp1"));
        }
        let day = day_with(&config, D, sources);
        let out = outcome(&config, &day, &flat_history(0.0));
        assert!(matches!(out.findings[..], [Finding::Quiet(..)]), "a new signer is not a replay");
        assert_eq!(out.signals[0].value, 0.0, "its mail is not in the replay signal");
    }

    #[test]
    fn a_flood_from_many_networks_counts_even_on_a_key_no_known_sender_used_today() {
        let config = DetectConfig::default();
        let mut sources = vec![known("192.0.2.1", 1_000, 1_000, 0, "example.com/s1")];
        for i in 0..50 {
            sources.push(unknown(&format!("198.51.{i}.9"), 100, 0, 100, "example.com/old"));
        }
        let day = day_with(&config, D, sources);
        let out = outcome(&config, &day, &flat_history(0.0));
        assert!(matches!(&out.findings[..], [Finding::Firing(..)]));
    }

    #[test]
    fn a_familiar_esps_key_is_not_established_for_its_other_addresses() {
        // The ESP's first addresses have become familiar; it sends a third of the domain's
        // mail, most of it from addresses of its pool that are not familiar yet.
        let config = DetectConfig::default();
        let mut sources = vec![known("192.0.2.1", 20_000, 20_000, 0, "example.com/s1")];
        sources.extend((0..2).map(|i| familiar(&format!("203.0.113.{i}"), 1_000, "example.com/esp", D)));
        sources
            .extend((2..6).map(|i| unknown(&format!("203.0.113.{i}"), 2_500, 0, 2_500, "example.com/esp")));
        let day = day_with(&config, D, sources.clone());
        assert!(!day.established_keys.contains("example.com/esp"));
        let out = outcome(&config, &day, &flat_history(0.0));
        assert!(matches!(out.findings[..], [Finding::Quiet(..)]), "the ESP's pool is not a replay");

        // A replay of the ESP-signed mail from a botnet still is one.
        sources
            .extend((0..40).map(|i| unknown(&format!("100.{}.7.9", 64 + i), 300, 0, 300, "example.com/esp")));
        let day = day_with(&config, D, sources);
        let out = outcome(&config, &day, &flat_history(0.0));
        let Some(Finding::Firing(alert, _)) = out.findings.first() else { panic!("no alert") };
        assert_eq!(alert.selectors[0].selector, "esp");
    }

    #[test]
    fn steady_forwarding_at_its_baseline_is_quiet_and_a_small_day_never_fires() {
        let config = DetectConfig::default();
        let mut sources = vec![known("192.0.2.1", 9_000, 9_000, 0, "example.com/s1")];
        for i in 0..300 {
            sources.push(unknown(&format!("198.18.{}.{}", i / 250, i % 250), 4, 0, 4, "example.com/s1"));
        }
        let day = day_with(&config, D, sources);
        assert!(matches!(outcome(&config, &day, &flat_history(1_100.0)).findings[..], [Finding::Quiet(..)]));
        let tiny = day_with(&config, D, vec![unknown("198.18.0.1", 50, 0, 50, "example.com/s1")]);
        assert!(matches!(outcome(&config, &tiny, &History::default()).findings[..], [Finding::Quiet(..)]));
    }
}
