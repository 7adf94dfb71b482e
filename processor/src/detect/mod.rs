//! Detect: reputation anomalies, evaluated as each batch of reports is stored.
//!
//! Input: the (policy domain, report day) pairs a committed batch touched, and the store.
//! Output: alerts, written to the `alerts` table and handed to the sinks. Invariants:
//! evaluation is streaming (after every commit, never a nightly job) and idempotent: the
//! same data evaluated twice raises nothing new, because each notice is keyed by
//! (kind, domain, subject, day, state) and suppressed within the cooldown of an open one.
//! It needs no configuration: known senders and baselines are learned from the store.
//!
//! ```text
//! touched (domain, day) ─┬─> replay      dkim_replay_suspected   (DKIM-only volume from unknown sources)
//!                        ├─> spoofing    spoofing_spike          (DMARC-fail volume)
//!                        ├─> new_source  new_authenticated_source (new SPF-authorized networks)
//!                        ├─> regression  auth_regression         (known senders' pass rates)
//!                        └─> tls         tls_failure_spike       (TLSRPT failure share per result type)
//! sweep (end of a run, periodically) ──>  reporter_silence
//! ```
//!
//! Layout: [`baseline`] (robust statistics over `detector_signals`), [`known`] (known
//! senders), one module per detector, [`notice`] (dedup, cooldown, resolution).

pub mod baseline;
pub mod known;
mod new_source;
pub mod notice;
mod regression;
mod replay;
mod silence;
mod spoofing;
mod tls;

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Deserialize;

use ruaflow_schema::alert::{Alert, AlertKind};

pub use known::Cidr;

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
    /// Known sender networks per policy domain, e.g. `"example.com" = ["192.0.2.0/24"]`.
    pub known_senders: BTreeMap<String, Vec<Cidr>>,
    /// Suppress a repeat of an open alert for this many report days (3).
    pub cooldown_days: i64,
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
    /// Silence: days without a report, while others report, before an alert (2).
    pub silence_days: i64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            baseline_days: 28,
            min_baseline_days: 7,
            familiar_after_days: 7,
            familiar_min_days: 3,
            known_senders: BTreeMap::new(),
            cooldown_days: 3,
            replay_min_messages: 500,
            replay_ratio: 10.0,
            replay_deviations: 8.0,
            replay_min_share: 0.2,
            replay_dominant_share: 0.5,
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

impl DetectConfig {
    /// Configured known networks of a domain.
    pub fn known_networks(&self, domain: &str) -> &[Cidr] {
        self.known_senders.get(domain).map_or(&[], Vec::as_slice)
    }

    /// The note of the network declared for `domain` that holds `ip`, if one does
    /// (`known_senders`).
    pub fn declared(&self, domain: &str, ip: std::net::IpAddr) -> Option<String> {
        self.known_networks(domain)
            .iter()
            .find(|net| net.contains(ip))
            .map(|net| format!("known_senders {net}"))
    }
}

/// What one detector concluded for one subject.
pub(crate) enum Finding {
    /// The condition holds: raise (or keep) this alert.
    Firing(Box<Alert>, String),
    /// The signal is at baseline for this subject: resolve an open alert, if any.
    Quiet(AlertKind, String),
}

/// One row of a domain's per-source aggregates for a day (one per source and reporter,
/// as stored). Loaded once per evaluated (domain, day) and shared by the volume detectors.
pub(crate) struct SourceDay {
    pub ip: String,
    pub network: String,
    pub reporter: String,
    pub messages: u64,
    pub dmarc_fail: u64,
    pub dkim_only: u64,
    pub blocked: u64,
}

impl SourceDay {
    fn load(conn: &Connection, domain: &str, day: i64) -> rusqlite::Result<Vec<SourceDay>> {
        conn.prepare_cached(
            "SELECT source_ip, network, reporter, messages, messages - dmarc_pass, dkim_only_pass,
                    disp_reject + disp_quarantine
             FROM agg_source_day WHERE domain = ?1 AND day = ?2",
        )?
        .query_map(rusqlite::params![domain, day], |r| {
            Ok(SourceDay {
                ip: r.get(0)?,
                network: r.get(1)?,
                reporter: r.get(2)?,
                messages: r.get(3)?,
                dmarc_fail: r.get(4)?,
                dkim_only: r.get(5)?,
                blocked: r.get(6)?,
            })
        })?
        .collect()
    }
}

/// Evaluates every detector for the touched (domain, day) pairs and returns the notices
/// that are new (firing or resolved), already written to the `alerts` table.
pub fn evaluate(
    conn: &Connection,
    config: &DetectConfig,
    touched: &[(String, i64)],
) -> rusqlite::Result<Vec<Alert>> {
    let mut notices = Vec::new();
    for (domain, day) in touched {
        let mut findings = Vec::new();
        let sources = SourceDay::load(conn, domain, *day)?;
        replay::detect(conn, config, domain, *day, &sources, &mut findings)?;
        spoofing::detect(conn, config, domain, *day, &sources, &mut findings)?;
        new_source::detect(conn, config, domain, *day, &mut findings)?;
        regression::detect(conn, config, domain, *day, &mut findings)?;
        tls::detect(conn, config, domain, *day, &mut findings)?;
        for finding in findings {
            notices.extend(notice::apply(conn, config, domain, *day, finding)?);
        }
    }
    Ok(notices)
}

/// The checks that need the whole picture rather than one new report: reporter silence.
/// Run after a batch run and periodically while watching.
pub fn sweep(conn: &Connection, config: &DetectConfig) -> rusqlite::Result<Vec<Alert>> {
    let mut notices = Vec::new();
    for (domain, day, finding) in silence::detect(conn, config)? {
        notices.extend(notice::apply(conn, config, &domain, day, finding)?);
    }
    Ok(notices)
}

pub(crate) use ruaflow_schema::text::thousands;

/// A percentage with no decimals, for summaries.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// An [`ruaflow_schema::alert::AlertSource`] with what enrichment knows about the IP.
pub(crate) fn source_info(
    conn: &Connection,
    ip: &str,
    network: &str,
    messages: u64,
) -> rusqlite::Result<ruaflow_schema::alert::AlertSource> {
    use rusqlite::OptionalExtension;
    let known = conn
        .prepare_cached("SELECT ptr, asn, as_org, country FROM sources WHERE ip = ?1")?
        .query_row([ip], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let (ptr, asn, as_org, country) = known.unwrap_or((None, None, None, None));
    Ok(ruaflow_schema::alert::AlertSource {
        ip: ip.to_owned(),
        network: network.to_owned(),
        messages,
        ptr,
        asn,
        as_org,
        country,
    })
}

/// The start of the earliest aggregate report range stored for (domain, day).
pub(crate) fn first_seen(conn: &Connection, domain: &str, day: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MIN(begin_ts), ?2) FROM reports WHERE domain = ?1 AND day = ?2")?
        .query_row(rusqlite::params![domain, day], |r| r.get(0))
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
        // Evaluation writes signals and notices; one transaction keeps that cheap and atomic.
        let result = store.begin().map_err(|e| e.to_string()).and_then(|()| {
            let notices = evaluate(store.conn(), &self.config, touched).map_err(|e| e.to_string())?;
            store.commit(crate::barrier::Sealed::empty()).map_err(|e| e.to_string())?;
            Ok(notices)
        });
        match result {
            Ok(notices) => notices.iter().for_each(&mut self.notify),
            Err(err) => {
                // Detection never stops ingestion; the data is stored and the next commit
                // touching these days evaluates them again.
                let _ = store.rollback();
                tracing::error!(error = %err, pairs = touched.len(), "detection failed");
            }
        }
    }
}
