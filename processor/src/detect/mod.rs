//! Detect: reputation anomalies, evaluated as each batch of reports is stored.
//!
//! Input: the (policy domain, report day) pairs a committed batch touched, read through
//! a [`DetectStore`]. Output: notices, stored through it and returned for the sinks.
//! Invariants: evaluation is streaming (after every commit, never a nightly job) and
//! idempotent: the same data evaluated twice raises nothing new (see [`notice`]). It
//! needs no configuration: who the domain's senders are is the sender model's answer
//! ([`crate::sender`]), baselines are learned from the stored signals.
//!
//! ```text
//! touched (domain, day) ─> DayFold (day's sources + sender model, bounded) ─> Day
//!   Day + History ─┬─> replay      dkim_replay_suspected    (unknown DKIM-only mail on the domain's keys)
//!                  ├─> spoofing    spoofing_spike           (DMARC-fail volume)
//!                  ├─> new_source  new_authenticated_source (new networks with aligned mail, new signers)
//!                  └─> regression  auth_regression          (regular senders' pass rates)
//!   TlsDay + History ─> tls        tls_failure_spike        (TLSRPT failure share per result type)
//! sweep (end of a run, periodically) ─> silence reporter_silence
//! ```
//!
//! Layout: [`store`] (the storage trait and its rows), [`day`] (the fold), [`baseline`]
//! (robust statistics over the signal history), one module per detector — pure functions
//! of their inputs, no storage inside — and [`notice`] (episodes, cooldown, resolution,
//! backfills, acknowledgements).

pub mod baseline;
pub mod day;
mod new_source;
pub mod notice;
mod regression;
pub mod replay;
mod silence;
pub mod spoofing;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tls;

use std::collections::BTreeMap;

use serde::Deserialize;

use ruaflow_schema::alert::{Alert, AlertKind, AlertReporter};

pub use crate::cidr::Cidr;
use crate::normalize::DAY;
use baseline::History;
use day::{DayFold, Volume};
pub use store::DetectStore;
use store::Signal;

/// Detector thresholds. Every field has a documented default; `[detect]` in the
/// configuration file overrides any of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Trailing window for baselines and familiarity, in report days (28).
    pub baseline_days: i64,
    /// Days of history a baseline needs before ratio tests apply (7).
    pub min_baseline_days: usize,
    /// A source is familiar once first seen this many days before (7) …
    pub familiar_after_days: i64,
    /// … and seen on at least this many days of the window (3).
    pub familiar_min_days: i64,
    /// The senders the owner declares per domain (`[[senders]]` at the top level of the
    /// configuration file).
    #[serde(skip)]
    pub senders: Vec<DeclaredSender>,
    /// Suppress a repeat of an open alert for this many report days (3).
    pub cooldown_days: i64,
    /// Notices about windows that ended more than this many days before they were
    /// evaluated (backfills) are stored as historical and sent nowhere (3).
    pub notify_max_age_days: i64,
    /// Replay: fewest unknown DKIM-only messages in a day worth an alert (500).
    pub replay_min_messages: u64,
    /// Replay: times the baseline median that counts as a surge (10).
    pub replay_ratio: f64,
    /// Replay: robust deviations above the baseline that count as a surge (8).
    pub replay_deviations: f64,
    /// Replay: least share of the domain's mail the surge must be (0.2).
    pub replay_min_share: f64,
    /// Replay: share of the domain's mail that is alarming even without a baseline (0.5).
    pub replay_dominant_share: f64,
    /// Replay: DKIM-only mail under a key no known sender uses counts as a replay when it
    /// comes from at least this many networks (8); fewer is a new signer (an ESP).
    pub replay_min_networks: u64,
    /// Spoofing: fewest DMARC-fail messages in a day worth an alert (200).
    pub spoofing_min_messages: u64,
    /// Spoofing: times the baseline median that counts as a surge (5).
    pub spoofing_ratio: f64,
    /// Spoofing: robust deviations above the baseline (6).
    pub spoofing_deviations: f64,
    /// New source: fewest SPF-aligned passing messages from a new network (1000) …
    pub new_source_min_messages: u64,
    /// … and least share of the domain's mail that day (0.01).
    pub new_source_min_share: f64,
    /// Regression: fewest messages from a known sender in a day to judge its rates (200).
    pub regression_min_messages: u64,
    /// Regression: its usual pass rate must be at least this (0.9) …
    pub regression_usual_rate: f64,
    /// … and must drop by at least this much (0.4).
    pub regression_drop: f64,
    /// TLS: fewest failed sessions of one result type in a day (10).
    pub tls_min_failures: u64,
    /// TLS: least failure share of one result type (0.05).
    pub tls_min_share: f64,
    /// TLS: times the baseline share that counts as a spike (5).
    pub tls_ratio: f64,
    /// Silence: a reporter counts as daily when it reported on this many of the last 14 days (10).
    pub silence_regular_days: i64,
    /// Silence: days without a report, while others report, before an alert (2), counted
    /// from the reporter's usual lag behind the others.
    pub silence_days: i64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            baseline_days: 28,
            min_baseline_days: 7,
            familiar_after_days: 7,
            familiar_min_days: 3,
            senders: Vec::new(),
            cooldown_days: 3,
            notify_max_age_days: 3,
            replay_min_messages: 500,
            replay_ratio: 10.0,
            replay_deviations: 8.0,
            replay_min_share: 0.2,
            replay_dominant_share: 0.5,
            replay_min_networks: 8,
            spoofing_min_messages: 200,
            spoofing_ratio: 5.0,
            spoofing_deviations: 6.0,
            new_source_min_messages: 1000,
            new_source_min_share: 0.01,
            regression_min_messages: 200,
            regression_usual_rate: 0.9,
            regression_drop: 0.4,
            tls_min_failures: 10,
            tls_min_share: 0.05,
            tls_ratio: 5.0,
            silence_regular_days: 10,
            silence_days: 2,
        }
    }
}

/// A sender the owner declares for a domain: networks it sends from, or mail services
/// it uses, with a note shown wherever the source is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredSender {
    /// The policy domain.
    pub domain: String,
    /// Networks in CIDR notation.
    #[serde(default)]
    pub networks: Vec<Cidr>,
    /// Mail services by name, as service identification names them (`Mailchimp`).
    #[serde(default)]
    pub services: Vec<String>,
    /// Why: shown with the source.
    #[serde(default)]
    pub note: String,
}

impl DeclaredSender {
    /// A declaration names a domain and at least one network or service.
    pub fn validate(&self) -> Result<(), String> {
        if self.domain.trim().is_empty() || self.domain.contains(char::is_whitespace) {
            return Err(format!("domain {:?} is not a domain name", self.domain));
        }
        if self.networks.is_empty() && self.services.is_empty() {
            return Err(format!("{}: declares neither networks nor services", self.domain));
        }
        Ok(())
    }
}

/// The longest span in days any `[detect]` setting may name: far beyond any real
/// one (a backfill cut-off of "never" is written as a large number), far below where
/// seconds overflow.
const MAX_DAYS_SETTING: i64 = 1_000_000;

impl DetectConfig {
    /// Checks that every span in days is between 0 and 1,000,000 and every ratio and
    /// share is a finite number ≥ 0, so no arithmetic on them can overflow.
    pub fn validate(&self) -> Result<(), String> {
        let days = [
            ("baseline_days", self.baseline_days),
            ("min_baseline_days", i64::try_from(self.min_baseline_days).unwrap_or(i64::MAX)),
            ("familiar_after_days", self.familiar_after_days),
            ("familiar_min_days", self.familiar_min_days),
            ("cooldown_days", self.cooldown_days),
            ("notify_max_age_days", self.notify_max_age_days),
            ("silence_regular_days", self.silence_regular_days),
            ("silence_days", self.silence_days),
        ];
        for (name, value) in days {
            if !(0..=MAX_DAYS_SETTING).contains(&value) {
                return Err(format!("{name} = {value}: must be between 0 and {MAX_DAYS_SETTING} days"));
            }
        }
        let numbers = [
            ("replay_ratio", self.replay_ratio),
            ("replay_deviations", self.replay_deviations),
            ("replay_min_share", self.replay_min_share),
            ("replay_dominant_share", self.replay_dominant_share),
            ("spoofing_ratio", self.spoofing_ratio),
            ("spoofing_deviations", self.spoofing_deviations),
            ("new_source_min_share", self.new_source_min_share),
            ("regression_usual_rate", self.regression_usual_rate),
            ("regression_drop", self.regression_drop),
            ("tls_min_share", self.tls_min_share),
            ("tls_ratio", self.tls_ratio),
        ];
        for (name, value) in numbers {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{name} = {value}: must be a number ≥ 0"));
            }
        }
        Ok(())
    }

    /// The note of the declaration for `domain` that covers the source — its address
    /// inside a declared network, or its identified service among the declared ones.
    pub fn declared(
        &self,
        domain: &str,
        ip: Option<std::net::IpAddr>,
        service: Option<&str>,
    ) -> Option<String> {
        self.senders.iter().filter(|s| s.domain.eq_ignore_ascii_case(domain)).find_map(|s| {
            let network =
                ip.and_then(|ip| s.networks.iter().find(|n| n.contains(ip)).map(ToString::to_string));
            let service = service
                .and_then(|name| s.services.iter().find(|d| d.eq_ignore_ascii_case(name)))
                .map(|name| format!("service {name}"));
            network
                .or(service)
                .map(|what| if s.note.is_empty() { what } else { format!("{what}: {}", s.note) })
        })
    }
}

/// What one detector concluded for one subject.
pub(crate) enum Finding {
    /// The condition holds: raise (or keep) this alert.
    Firing(Box<Alert>, String),
    /// The signal is at baseline for this subject: resolve an open alert, if any.
    Quiet(AlertKind, String),
}

/// What the detectors produced for one (domain, day): today's signal values and their
/// findings.
#[derive(Default)]
pub(crate) struct Outcome {
    pub signals: Vec<Signal>,
    pub findings: Vec<Finding>,
}

/// Evaluates every detector for the touched (domain, day) pairs at time `now`, stores
/// signals and notices, and returns the notices to send.
pub fn evaluate<S: DetectStore + ?Sized>(
    store: &mut S,
    config: &DetectConfig,
    touched: &[(String, i64)],
    now: i64,
) -> Result<Vec<Alert>, S::Error> {
    let mut notices = Vec::new();
    for (domain, day) in touched {
        let day = *day;
        let mut fold = DayFold::new(config, domain, day);
        store.day_sources(domain, day, &mut |source| fold.add(source))?;
        let mut facts = fold.finish();
        facts.first_seen = store.first_report(domain, day)?.unwrap_or(day);
        let history = History::new(store.signals(domain, day - config.baseline_days * DAY, day)?);
        let tls = store.tls_day(domain, day)?;
        let mut out = Outcome::default();
        replay::detect(config, &facts, &history, &mut out);
        spoofing::detect(config, &facts, &history, &mut out);
        new_source::detect(config, &facts, &history, &mut out);
        regression::detect(config, &facts, &mut out);
        tls::detect(config, domain, day, &tls, &history, &mut out);
        store.record_signals(domain, &out.signals)?;
        for mut finding in out.findings {
            if let Finding::Firing(alert, _) = &mut finding {
                store.enrich_sources(&mut alert.sources)?;
            }
            notices.extend(notice::apply(store, config, now, (domain, day), finding)?);
        }
    }
    Ok(notices)
}

/// The checks that need the whole picture rather than one new report: reporter silence,
/// judged against each reporter's usual lag (recorded here, once per sweep and latest
/// day). Run after a batch run and periodically while watching.
pub fn sweep<S: DetectStore + ?Sized>(
    store: &mut S,
    config: &DetectConfig,
    now: i64,
) -> Result<Vec<Alert>, S::Error> {
    let window = silence::REGULAR_WINDOW_DAYS * DAY;
    let activity = store.reporter_activity(window)?;
    let mut histories: BTreeMap<String, History> = BTreeMap::new();
    for a in &activity {
        if !histories.contains_key(&a.domain) {
            let signals = store.signals(&a.domain, a.latest_day - window, a.latest_day)?;
            histories.insert(a.domain.clone(), History::new(signals));
        }
    }
    let (findings, lags) = silence::detect(config, activity, |domain| histories.get(domain));
    let mut by_domain: BTreeMap<String, Vec<Signal>> = BTreeMap::new();
    for (domain, signal) in lags {
        by_domain.entry(domain).or_default().push(signal);
    }
    for (domain, signals) in &by_domain {
        store.record_signals(domain, signals)?;
    }
    let mut notices = Vec::new();
    for (domain, day, finding) in findings {
        notices.extend(notice::apply(store, config, now, (&domain, day), finding)?);
    }
    Ok(notices)
}

pub(crate) use ruaflow_schema::text::thousands;

/// A percentage with no decimals, for summaries.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// The reporters of some volumes, added up, most messages first.
pub(crate) fn reporters<'a>(volumes: impl IntoIterator<Item = &'a Volume>) -> Vec<AlertReporter> {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for volume in volumes {
        for (org, n) in &volume.reporters {
            *by.entry(org).or_default() += n;
        }
    }
    let mut out: Vec<AlertReporter> =
        by.into_iter().map(|(org, messages)| AlertReporter { org: org.to_owned(), messages }).collect();
    out.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.org.cmp(&b.org)));
    out
}

/// Runs detection after every commit of the pipeline and hands new notices to `notify`.
pub struct DetectHook<F: FnMut(&Alert) + Send> {
    /// Thresholds.
    pub config: DetectConfig,
    /// Receives each new notice (firing or resolved), already stored.
    pub notify: F,
}

impl<F: FnMut(&Alert) + Send> crate::pipeline::CommitHook<crate::sqlite::SqliteStore> for DetectHook<F> {
    fn after_commit(&mut self, store: &mut crate::sqlite::SqliteStore, touched: &[(String, i64)]) {
        use crate::store::Store;
        let started = std::time::Instant::now();
        // Evaluation writes signals and notices; one transaction keeps that cheap and atomic.
        let result = store.begin().map_err(|e| e.to_string()).and_then(|()| {
            let now = ruaflow_schema::clock::now();
            let notices =
                evaluate(&mut store.detect_state(), &self.config, touched, now).map_err(|e| e.to_string())?;
            store.commit(crate::barrier::Sealed::empty()).map_err(|e| e.to_string())?;
            Ok(notices)
        });
        metrics::histogram!("ruaflow_detection_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(notices) => {
                metrics::counter!("ruaflow_alert_notices_total").increment(notices.len() as u64);
                notices.iter().for_each(&mut self.notify);
            }
            Err(err) => {
                // Detection never stops ingestion; the data is stored and the next commit
                // touching these days evaluates them again.
                let _ = store.rollback();
                tracing::error!(error = %err, pairs = touched.len(), "detection failed");
            }
        }
    }
}
