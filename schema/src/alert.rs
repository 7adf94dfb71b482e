//! Alerts: what the detectors emit and every sink receives.
//!
//! One [`Alert`] serializes to the JSON object printed by `ruaflow alerts --json`, stored
//! in the `alerts` table, and posted to webhooks (see DESIGN.md "Detection").

use serde::{Deserialize, Serialize};

/// Which detector raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// DKIM-aligned, SPF-unaligned volume from unknown sources far above baseline.
    DkimReplaySuspected,
    /// A source never seen before passes DMARC in volume (informational).
    NewAuthenticatedSource,
    /// DMARC-fail volume far above baseline.
    SpoofingSpike,
    /// A known sender's DKIM or SPF pass rate dropped.
    AuthRegression,
    /// TLSRPT failure share of one result type far above baseline.
    TlsFailureSpike,
    /// A reporter that sent daily stopped.
    ReporterSilence,
}

impl AlertKind {
    /// Every kind, in a stable order.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::DkimReplaySuspected,
        AlertKind::NewAuthenticatedSource,
        AlertKind::SpoofingSpike,
        AlertKind::AuthRegression,
        AlertKind::TlsFailureSpike,
        AlertKind::ReporterSilence,
    ];

    /// The snake_case name used in JSON, the store and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DkimReplaySuspected => "dkim_replay_suspected",
            AlertKind::NewAuthenticatedSource => "new_authenticated_source",
            AlertKind::SpoofingSpike => "spoofing_spike",
            AlertKind::AuthRegression => "auth_regression",
            AlertKind::TlsFailureSpike => "tls_failure_spike",
            AlertKind::ReporterSilence => "reporter_silence",
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record (a new sender).
    Info,
    /// Look at it today.
    Warning,
    /// Act now (a replay flood, a downgrade).
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether the condition holds or has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds.
    Firing,
    /// The signal returned to baseline.
    Resolved,
}

/// A source named in an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSource {
    /// The IP.
    pub ip: String,
    /// Its /24 or /48.
    pub network: String,
    /// Messages it contributed to the signal.
    pub messages: u64,
    /// Reverse DNS name, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ptr: Option<String>,
    /// Autonomous system number, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub asn: Option<u32>,
    /// Autonomous system organization, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub as_org: Option<String>,
    /// Country code, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
    /// The mail service behind the address, when identified.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service: Option<String>,
    /// How the source stands with the domain on the alert's day (`unknown`, `familiar`, …).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
}

impl AlertSource {
    /// A source with its figure and nothing else known yet.
    pub fn new(ip: &str, network: &str, messages: u64) -> Self {
        AlertSource {
            ip: ip.to_owned(),
            network: network.to_owned(),
            messages,
            ptr: None,
            asn: None,
            as_org: None,
            country: None,
            service: None,
            status: None,
        }
    }
}

/// A DKIM signing domain and selector named in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSelector {
    /// Signing domain (`d=`).
    pub domain: String,
    /// Selector (`s=`), empty when receivers did not report it.
    pub selector: String,
    /// Messages signed with it in the signal.
    pub messages: u64,
}

/// A reporter named in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertReporter {
    /// Reporting organization.
    pub org: String,
    /// Messages it reported in the signal.
    pub messages: u64,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The detector.
    pub kind: AlertKind,
    /// Firing or resolved.
    pub state: AlertState,
    /// The policy domain.
    pub domain: String,
    /// How urgent.
    pub severity: Severity,
    /// Start of the report day, unix seconds.
    pub window_start: i64,
    /// End of the report day (exclusive), unix seconds.
    pub window_end: i64,
    /// The observed value of the signal (messages, or a share for TLS).
    pub observed: f64,
    /// Its robust baseline.
    pub baseline: f64,
    /// Top sources behind the signal.
    pub sources: Vec<AlertSource>,
    /// DKIM signing domains and selectors behind the signal.
    pub selectors: Vec<AlertSelector>,
    /// Reporters that saw it.
    pub reporters: Vec<AlertReporter>,
    /// When the signal was first seen: the start of the earliest report range behind it.
    pub first_seen: i64,
    /// What happened and what to do, in a sentence or two.
    pub summary: String,
    /// Detector-specific details (result type, pass rates, …).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// The whole episode the notice belongs to: every day it fired on, so far (firing) or
    /// in all (resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<Episode>,
    /// True when the window was already older than the notification age when it was
    /// evaluated (a backfill): stored and shown, never sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub historical: bool,
}

impl Alert {
    /// A firing alert of `kind` for `domain` on the report day starting at `day`, with
    /// no figures yet.
    pub fn firing(kind: AlertKind, domain: &str, severity: Severity, day: i64) -> Self {
        Alert {
            kind,
            state: AlertState::Firing,
            domain: domain.to_owned(),
            severity,
            window_start: day,
            window_end: day + 86_400,
            observed: 0.0,
            baseline: 0.0,
            sources: Vec::new(),
            selectors: Vec::new(),
            reporters: Vec::new(),
            first_seen: day,
            summary: String::new(),
            details: serde_json::Map::new(),
            episode: None,
            historical: false,
        }
    }
}

/// The days one incident fired on, and its figures over all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The first report day it fired on.
    pub first_day: i64,
    /// The last report day it fired on.
    pub last_day: i64,
    /// The largest daily value.
    pub peak: f64,
    /// The daily values added up (messages; meaningless for shares).
    pub total: f64,
    /// Each day's value, by day, ascending (the newest [`Episode::MAX_DAYS`]).
    pub daily: Vec<(i64, f64)>,
}

impl Episode {
    /// Daily values remembered per episode.
    pub const MAX_DAYS: usize = 400;

    /// An episode of one day.
    pub fn starting(day: i64, value: f64) -> Self {
        Episode { first_day: day, last_day: day, peak: value, total: value, daily: vec![(day, value)] }
    }

    /// Records the value of `day` (replacing an earlier evaluation of the same day).
    pub fn record(&mut self, day: i64, value: f64) {
        match self.daily.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(at) => self.daily[at].1 = value,
            Err(at) => {
                self.daily.insert(at, (day, value));
                if self.daily.len() > Self::MAX_DAYS {
                    self.daily.remove(0);
                }
            }
        }
        self.first_day = self.first_day.min(day);
        self.last_day = self.last_day.max(day);
        self.peak = self.daily.iter().map(|(_, v)| *v).fold(f64::MIN, f64::max);
        self.total = self.daily.iter().map(|(_, v)| v).sum();
    }

    /// Days it fired on.
    pub fn days(&self) -> usize {
        self.daily.len()
    }
}
