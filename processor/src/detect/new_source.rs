//! `new_authenticated_source` (informational): a network never seen before for the
//! domain sends aligned passing mail in volume. SPF-aligned: its SPF record authorizes
//! the network — usually a new ESP or outbound server, sometimes an SPF record that
//! authorizes too much. DKIM-aligned only, under a key none of the domain's known senders
//! use: a new signer — an ESP that signs with the domain's key under its own selector and
//! bounces with its own domain (so SPF never aligns).
//!
//! Input: the [`Day`] (networks new that day) and the signal history. Output: one firing
//! alert per new /24 (or /48). Unknown DKIM-only mail under the domain's established keys
//! is the replay detector's concern, not this one's.

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter, Severity};

use super::baseline::History;
use super::day::{Day, NewNetwork};
use super::{replay, spoofing, thousands, DetectConfig, Finding, Outcome};

pub(super) fn detect(config: &DetectConfig, day: &Day, history: &History, out: &mut Outcome) {
    // Everything is new on a domain's first days: wait until it has a history.
    if history.days_before(spoofing::SIGNAL, "", day.day, config.baseline_days) < config.min_baseline_days {
        return;
    }
    let suspect: Vec<&str> = replay::suspect_keys(config, day).into_iter().map(|(key, _)| key).collect();
    let least =
        (config.new_source_min_share * day.totals.messages as f64).max(config.new_source_min_messages as f64);
    for network in &day.new_networks {
        let signer: Vec<(&str, u64)> = network
            .dkim_only_by_key
            .iter()
            .filter(|(key, _)| !suspect.contains(&key.as_str()))
            .map(|(key, n)| (key.as_str(), *n))
            .collect();
        let signed: u64 = signer.iter().map(|(_, n)| n).sum();
        let summary = if network.spf_aligned_pass as f64 >= least {
            spf_summary(day, network)
        } else if signed as f64 >= least {
            signer_summary(day, network, &signer, signed)
        } else {
            continue;
        };
        let mut alert =
            Alert::firing(AlertKind::NewAuthenticatedSource, &day.domain, Severity::Info, day.day);
        alert.observed = network.spf_aligned_pass.max(signed) as f64;
        alert.sources = network.top.clone();
        alert.reporters = network
            .reporters
            .iter()
            .map(|(org, messages)| AlertReporter { org: org.clone(), messages: *messages })
            .collect();
        alert.first_seen = day.first_seen;
        alert.summary = summary;
        out.findings.push(Finding::Firing(Box::new(alert), network.network.clone()));
    }
}

fn spf_summary(day: &Day, network: &NewNetwork) -> String {
    format!(
        "New sender for {} on {}: network {} ({} addresses) sent {} messages that passed SPF aligned with the \
         domain, so its SPF record authorizes them. Expected if a new ESP or server was set up; otherwise check what \
         the SPF record includes.",
        day.domain,
        ruaflow_schema::time::format_date(day.day),
        network.network,
        network.sources,
        thousands(network.spf_aligned_pass)
    )
}

fn signer_summary(day: &Day, network: &NewNetwork, keys: &[(&str, u64)], signed: u64) -> String {
    let key = keys.iter().max_by_key(|(_, n)| *n).map_or("", |(k, _)| k);
    let (domain, selector) = key.split_once('/').unwrap_or((key, ""));
    let named = if selector.is_empty() {
        format!("{domain}'s DKIM key")
    } else {
        format!("selector {selector} of {domain}")
    };
    format!(
        "New DKIM signer for {} on {}: network {} ({} addresses) sent {} messages signed with {named}, a key none of \
         the domain's known senders use, without aligned SPF. Expected when an ESP signs for the domain and bounces \
         with its own domain: declare it in [[senders]]. Otherwise someone holds a key of yours: find who the \
         selector was issued to.",
        day.domain,
        ruaflow_schema::time::format_date(day.day),
        network.network,
        network.sources,
        thousands(signed)
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{day_with, known, signals, unknown};
    use super::*;
    use crate::normalize::DAY;

    #[test]
    fn a_new_esp_network_is_announced_once_the_domain_has_a_history() {
        let config = DetectConfig::default();
        let d = 60 * DAY;
        let history = History::new(signals(spoofing::SIGNAL, d, 10, 5.0));
        let mut sources = vec![known("192.0.2.1", 20_000, 20_000, 0, "example.com/s1")];
        sources
            .extend((0..3).map(|i| unknown(&format!("203.0.113.{i}"), 1_500, 0, 1_500, "example.com/esp")));
        let day = day_with(&config, d, sources);
        let mut out = Outcome::default();
        detect(&config, &day, &history, &mut out);
        let [Finding::Firing(alert, subject)] = &out.findings[..] else {
            panic!("{} findings", out.findings.len())
        };
        assert_eq!(subject, "203.0.113.0/24");
        assert_eq!(alert.severity, Severity::Info);
        assert!(alert.summary.contains("selector esp of example.com"), "{}", alert.summary);
        let mut quiet = Outcome::default();
        detect(&config, &day, &History::default(), &mut quiet);
        assert!(quiet.findings.is_empty(), "no history yet");
    }
}
