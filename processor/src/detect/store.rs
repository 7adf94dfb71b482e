//! What detection reads and writes: one small storage trait, implemented by the SQLite
//! store (embedded) and by ClickHouse (the distributed detector group).
//!
//! The detectors never see it: [`super::evaluate`] reads a (domain, day) through it into
//! a [`super::day::Day`] and the signal history, runs the pure detectors, and writes back
//! signals and notices. Row types here are plain data, so a backend only has to fetch.

use ruaflow_schema::alert::{Alert, AlertKind, AlertSource};

use crate::sender::Sender;

/// One source's mail for a policy domain on one day, with what the sender model knows
/// about it. Sources of one network arrive one after another.
#[derive(Debug, Clone, Default)]
pub struct DaySource {
    /// The address.
    pub ip: String,
    /// Its /24 or /48.
    pub network: String,
    /// Its counts per reporter for the day.
    pub reporters: Vec<(String, DayCounts)>,
    /// The model's row for the address, if it has one.
    pub sender: Option<Sender>,
    /// The first day the model saw its network, if it saw it.
    pub network_first_day: Option<i64>,
    /// The mail service enrichment named for the address (shown).
    pub service: Option<String>,
    /// The service counts for the status rule: an ESP named by the IP databases.
    pub service_trusted: bool,
}

/// Message counts of one source (and reporter) for a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// Messages.
    pub messages: u64,
    /// Messages that passed DMARC.
    pub dmarc_pass: u64,
    /// Aligned, passing DKIM.
    pub dkim_aligned_pass: u64,
    /// Aligned, passing SPF.
    pub spf_aligned_pass: u64,
    /// Aligned DKIM pass with SPF not aligned.
    pub dkim_only_pass: u64,
    /// Quarantined or rejected by the receiver.
    pub blocked: u64,
}

impl DayCounts {
    /// Adds another reporter's counts.
    pub fn add(&mut self, other: &DayCounts) {
        self.messages += other.messages;
        self.dmarc_pass += other.dmarc_pass;
        self.dkim_aligned_pass += other.dkim_aligned_pass;
        self.spf_aligned_pass += other.spf_aligned_pass;
        self.dkim_only_pass += other.dkim_only_pass;
        self.blocked += other.blocked;
    }

    /// Messages that failed DMARC.
    pub fn dmarc_fail(&self) -> u64 {
        self.messages.saturating_sub(self.dmarc_pass)
    }
}

/// One stored daily value of a detector signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The signal's name (`replay_unknown_dkim_only`, `dmarc_fail`, `tls_failure_share`).
    pub signal: &'static str,
    /// What it is about within the domain (a TLS result type), or empty.
    pub subject: String,
    /// The report day.
    pub day: i64,
    /// The value.
    pub value: f64,
}

/// A stored signal value as read back (the name owned).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSignal {
    /// The signal's name.
    pub signal: String,
    /// Its subject.
    pub subject: String,
    /// The report day.
    pub day: i64,
    /// The value.
    pub value: f64,
}

/// The TLS reports of a policy domain for a day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsDay {
    /// Sessions, successful and failed.
    pub sessions: u64,
    /// Failed sessions by result type, receiving MX (empty when not said) and reporter.
    pub failures: Vec<TlsFailure>,
    /// Start of the earliest report range.
    pub first_seen: Option<i64>,
}

/// Failed sessions of one result type at one MX, from one reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// `result-type`.
    pub result_type: String,
    /// `receiving-mx-hostname`, or empty.
    pub mx: String,
    /// The reporting organization.
    pub reporter: String,
    /// Failed sessions.
    pub sessions: u64,
}

/// How regularly one reporter reports for one domain (reporter silence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterActivity {
    /// The policy domain.
    pub domain: String,
    /// The reporting organization.
    pub reporter: String,
    /// The last day it covered.
    pub last_day: i64,
    /// The latest day any reporter covered for the domain.
    pub latest_day: i64,
    /// Days it reported on in the [`super::silence::REGULAR_WINDOW_DAYS`] up to its last.
    pub recent_days: i64,
}

/// A stored notice of one (kind, domain, subject).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotice {
    /// Its identity in the store.
    pub id: i64,
    /// The day the window starts.
    pub day: i64,
    /// Firing (true) or resolved.
    pub firing: bool,
    /// The whole notice.
    pub alert: Alert,
    /// When an operator acknowledged it, if one did.
    pub acknowledged: bool,
}

/// Where detection state lives. Implementations only fetch and write: every decision is
/// in the detectors.
pub trait DetectStore {
    /// The backend's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Visits each source of `domain` on `day`, grouped by network.
    fn day_sources(
        &mut self,
        domain: &str,
        day: i64,
        visit: &mut dyn FnMut(DaySource),
    ) -> Result<(), Self::Error>;

    /// The start of the earliest aggregate report range stored for (domain, day).
    fn first_report(&mut self, domain: &str, day: i64) -> Result<Option<i64>, Self::Error>;

    /// The TLS reports of `domain` for `day`.
    fn tls_day(&mut self, domain: &str, day: i64) -> Result<TlsDay, Self::Error>;

    /// Every stored signal of `domain` for days in `[from, to)`.
    fn signals(&mut self, domain: &str, from: i64, to: i64) -> Result<Vec<StoredSignal>, Self::Error>;

    /// Stores signal values for `domain`, replacing earlier values of the same day.
    fn record_signals(&mut self, domain: &str, signals: &[Signal]) -> Result<(), Self::Error>;

    /// Fills in what enrichment knows about each source (reverse DNS, AS, country,
    /// service); sources it knows nothing about stay as they are.
    fn enrich_sources(&mut self, sources: &mut [AlertSource]) -> Result<(), Self::Error>;

    /// How regularly each reporter reports for each domain.
    fn reporter_activity(&mut self, regular_window: i64) -> Result<Vec<ReporterActivity>, Self::Error>;

    /// The stored notices of one (kind, domain, subject).
    fn notices(
        &mut self,
        kind: AlertKind,
        domain: &str,
        subject: &str,
    ) -> Result<Vec<StoredNotice>, Self::Error>;

    /// Stores a new notice; false when one with its identity (kind, domain, subject, day,
    /// state) is already stored.
    fn insert_notice(&mut self, alert: &Alert, subject: &str) -> Result<bool, Self::Error>;

    /// Replaces the figures of a stored firing notice (the same day re-evaluated with more
    /// reports).
    fn update_notice(&mut self, id: i64, alert: &Alert) -> Result<(), Self::Error>;
}
