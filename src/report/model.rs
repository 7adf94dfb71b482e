//! What a report holds: the document `ruaflow report --json` prints, and what the
//! terminal and HTML views render.
//!
//! Field names are snake_case and stable (scripts depend on them). Shape:
//!
//! ```text
//! { "window":   { days, since, until, domain, first_day, last_day, first_date, last_date,
//!                 report_days },
//!   "totals":   { domains, dmarc_reports, tlsrpt_reports, messages, dmarc_pass, dmarc_pass_pct,
//!                 tls_successful_sessions, tls_failed_sessions, failure_reports, alerts,
//!                 dead_letters },
//!   "domains":  [ { domain, dmarc_reports, tlsrpt_reports, policy, sources,
//!                   messages, dmarc_pass, dmarc_pass_pct, dkim_aligned, dkim_aligned_pct,
//!                   spf_aligned, spf_aligned_pct, dkim_only_pass, dispositions,
//!                   daily, top_sources, top_failing_sources, selectors, selector_daily,
//!                   tls, failure_reports, reporters, alerts } ],
//!   "alerts":   [ Alert ],       // recent, all domains in the report
//!   "reporters":[ Reporter ],    // all domains in the report
//!   "dead_letters": { count, latest: [ DeadLetter ] } }
//! ```
//!
//! Days (`day`, `first_day`, …) are unix seconds of a UTC midnight, with a `date`
//! (`YYYY-MM-DD`) beside them; other times are unix seconds. Percentages are rounded to
//! 0.1 and `null` when there is nothing to divide; the counts they come from are always
//! present. Message counts are DMARC messages (the `count` of report records).

use serde::Serialize;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The time window and filter the report covers.
    pub window: Window,
    /// Totals over every domain in the report.
    pub totals: Totals,
    /// One entry per policy domain (DMARC or TLS), most messages first.
    pub domains: Vec<DomainReport>,
    /// The most recent alerts over the window (at most [`super::query::RECENT_ALERTS`]),
    /// newest first.
    pub alerts: Vec<Alert>,
    /// Who sent the reports, most reports first.
    pub reporters: Vec<Reporter>,
    /// Inputs that held no readable report (not limited by the window or domain).
    pub dead_letters: DeadLetters,
}

/// The time window: a range of report days (`--since`, `--until`, `--days`), and the
/// report days with data in it. `--days` counts back from the newest report day in the
/// data (never the wall clock), so an old corpus still shows its data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    /// `--days N` as asked: N calendar days ending at the newest report day (or at
    /// `--until`); `null` = not asked.
    pub days: Option<u32>,
    /// First day of the range (`YYYY-MM-DD`); `null` = open.
    pub since: Option<String>,
    /// Last day of the range (`YYYY-MM-DD`); `null` = open.
    pub until: Option<String>,
    /// `--domain D` as asked; `null` = all domains.
    pub domain: Option<String>,
    /// First report day with data in the range (unix seconds), `null` when there is none.
    pub first_day: Option<i64>,
    /// Last report day with data in the range (unix seconds).
    pub last_day: Option<i64>,
    /// `first_day` as `YYYY-MM-DD`.
    pub first_date: Option<String>,
    /// `last_day` as `YYYY-MM-DD`.
    pub last_date: Option<String>,
    /// How many distinct report days with data the range holds.
    pub report_days: u64,
}

impl Window {
    /// The range as asked, in words: `last 7 days (2026-09-29 … 2026-10-05)`,
    /// `2026-09-01 … 2026-09-30`, `from 2026-09-01`, `all report days`.
    pub fn scope(&self) -> String {
        let span = match (&self.since, &self.until) {
            (Some(a), Some(b)) => format!("{a} … {b}"),
            (Some(a), None) => format!("from {a}"),
            (None, Some(b)) => format!("up to {b}"),
            (None, None) => return "all report days".to_owned(),
        };
        match self.days {
            Some(n) => format!("last {n} days ({span})"),
            None => span,
        }
    }
}

/// Totals over the domains in the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Policy domains in the report.
    pub domains: u64,
    /// DMARC aggregate reports.
    pub dmarc_reports: u64,
    /// TLS reports.
    pub tlsrpt_reports: u64,
    /// DMARC messages.
    pub messages: u64,
    /// Messages that passed DMARC.
    pub dmarc_pass: u64,
    /// `dmarc_pass` as a percentage of `messages`.
    pub dmarc_pass_pct: Option<f64>,
    /// Successful TLS sessions.
    pub tls_successful_sessions: u64,
    /// Failed TLS sessions.
    pub tls_failed_sessions: u64,
    /// DMARC failure (forensic) reports.
    pub failure_reports: u64,
    /// Incidents in the window: firing alerts (an episode of several days and its
    /// resolved notice count once).
    pub alerts: u64,
    /// Dead letters in the store.
    pub dead_letters: u64,
}

/// Everything about one policy domain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DomainReport {
    /// The policy domain (`""` for a TLS report that named none).
    pub domain: String,
    /// DMARC aggregate reports about it.
    pub dmarc_reports: u64,
    /// TLS reports with a policy for it.
    pub tlsrpt_reports: u64,
    /// The DMARC policy published, as the latest report saw it.
    pub policy: Option<Policy>,
    /// Distinct source IPs.
    pub sources: u64,
    /// Message counts and their shares.
    #[serde(flatten)]
    pub volume: Volume,
    /// Messages per report day, split by how they passed.
    pub daily: Vec<DayVolume>,
    /// Sources by messages, most first (at most [`super::query::TOP_SOURCES`]).
    pub top_sources: Vec<Source>,
    /// Sources by DMARC-failing messages, most first; only sources with failures.
    pub top_failing_sources: Vec<Source>,
    /// DKIM signing domain + selector volume, most messages first.
    pub selectors: Vec<Selector>,
    /// DKIM-only pass per day and selector (only non-zero rows): the volume a DKIM
    /// replay shows up in.
    pub selector_daily: Vec<SelectorDay>,
    /// TLS reporting for the domain; `null` when no TLS report names it.
    pub tls: Option<Tls>,
    /// DMARC failure (forensic) reports about the domain; `null` when there are none.
    pub failure_reports: Option<FailureReports>,
    /// Who reported on the domain, most reports first.
    pub reporters: Vec<Reporter>,
    /// Recent alerts for the domain, newest first.
    pub alerts: Vec<Alert>,
}

/// The published DMARC policy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Policy {
    /// `p=`.
    pub p: Option<String>,
    /// `sp=`.
    pub sp: Option<String>,
    /// `pct=`.
    pub pct: Option<i64>,
}

/// Message counts with their percentages of `messages`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Volume {
    /// DMARC messages.
    pub messages: u64,
    /// Passed DMARC (DKIM or SPF aligned and passing).
    pub dmarc_pass: u64,
    /// `dmarc_pass` / `messages`.
    pub dmarc_pass_pct: Option<f64>,
    /// DKIM aligned and passing.
    pub dkim_aligned: u64,
    /// `dkim_aligned` / `messages`.
    pub dkim_aligned_pct: Option<f64>,
    /// SPF aligned and passing.
    pub spf_aligned: u64,
    /// `spf_aligned` / `messages`.
    pub spf_aligned_pct: Option<f64>,
    /// DKIM aligned pass with SPF not aligned (how replayed mail looks).
    pub dkim_only_pass: u64,
    /// What receivers did with the messages.
    pub dispositions: Dispositions,
}

/// Messages by the receiver's disposition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dispositions {
    /// Delivered.
    pub none: u64,
    /// Quarantined (spam folder).
    pub quarantine: u64,
    /// Rejected.
    pub reject: u64,
}

/// One report day of a domain. `pass_both + dkim_only + spf_only + fail = messages`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DayVolume {
    /// The day (unix seconds of UTC midnight).
    pub day: i64,
    /// The day as `YYYY-MM-DD`.
    pub date: String,
    /// DMARC messages.
    pub messages: u64,
    /// Passed with both DKIM and SPF aligned.
    pub pass_both: u64,
    /// Passed with DKIM aligned only.
    pub dkim_only: u64,
    /// Passed with SPF aligned only.
    pub spf_only: u64,
    /// Failed DMARC.
    pub fail: u64,
}

/// A source IP and what is known about it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Source {
    /// The IP address.
    pub ip: String,
    /// Its /24 (IPv4) or /48 (IPv6).
    pub network: String,
    /// Reverse DNS name, when resolved.
    pub ptr: Option<String>,
    /// Autonomous system number, when known.
    pub asn: Option<i64>,
    /// Autonomous system organization, when known.
    pub as_org: Option<String>,
    /// Country code, when known.
    pub country: Option<String>,
    /// The mail service behind it, when enrichment named one.
    pub service: Option<String>,
    /// How it stands with the domain — `configured`, `authorized`, `service`,
    /// `familiar` or `unknown` (not one of the domain's senders) — as of its latest
    /// report, and why.
    pub sender: String,
    /// Why it has that status.
    pub sender_reason: String,
    /// DMARC messages from it.
    pub messages: u64,
    /// Of which passed DMARC.
    pub dmarc_pass: u64,
    /// Of which failed DMARC.
    pub dmarc_fail: u64,
    /// Of which DKIM aligned and passing.
    pub dkim_aligned: u64,
    /// Of which SPF aligned and passing.
    pub spf_aligned: u64,
    /// `dmarc_pass` / `messages`.
    pub dmarc_pass_pct: Option<f64>,
}

/// A DKIM signing domain + selector.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selector {
    /// The signing domain (`d=`).
    pub dkim_domain: String,
    /// The selector (`s=`); `""` when the receiver did not say.
    pub selector: String,
    /// Messages carrying this signature (as the one that counted).
    pub messages: u64,
    /// Of which the signature verified.
    pub dkim_pass: u64,
    /// Of which DKIM-only pass (SPF not aligned).
    pub dkim_only_pass: u64,
}

/// DKIM-only pass volume of one selector on one day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SelectorDay {
    /// The day (unix seconds).
    pub day: i64,
    /// The day as `YYYY-MM-DD`.
    pub date: String,
    /// The signing domain.
    pub dkim_domain: String,
    /// The selector.
    pub selector: String,
    /// DKIM-only pass messages.
    pub dkim_only_pass: u64,
}

/// TLS reporting (RFC 8460) for a policy domain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tls {
    /// TLS reports with a policy for the domain.
    pub reports: u64,
    /// Successful sessions.
    pub successful_sessions: u64,
    /// Failed sessions.
    pub failed_sessions: u64,
    /// `successful_sessions` / all sessions.
    pub success_pct: Option<f64>,
    /// Failed sessions by result type (`starttls-not-supported`, …), most first.
    pub failures: Vec<TlsFailure>,
    /// Sessions per report day.
    pub daily: Vec<TlsDay>,
    /// Failed sessions per report day and result type.
    pub failures_daily: Vec<TlsFailureDay>,
    /// Failed sessions per receiving MX × result type × sending and receiving IP,
    /// most first (at most [`super::query::TOP_TLS_MX`]).
    pub by_mx: Vec<TlsMx>,
}

/// Failed TLS sessions at one receiving MX, of one result type, between two IPs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsMx {
    /// `receiving-mx-hostname` (`""` when the reporter did not say).
    pub mx: String,
    /// The result type.
    pub result_type: String,
    /// `sending-mta-ip` (`""` when absent).
    pub sending_ip: String,
    /// `receiving-ip` (`""` when absent).
    pub receiving_ip: String,
    /// `failure-reason-code` values seen, comma separated.
    pub failure_reason_code: String,
    /// `additional-information` values seen, comma separated.
    pub additional_information: String,
    /// Failed sessions.
    pub failed_sessions: u64,
    /// Of all the domain's sessions in the window, as a percentage with enough decimals
    /// to be non-zero when there are failures (see `format::share`).
    pub share_pct: Option<f64>,
    /// `share_pct` as text (`0.001%`).
    pub share: String,
}

/// DMARC failure (forensic) reports of one policy domain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureReports {
    /// Failure reports in the window.
    pub count: u64,
    /// Of which about a source that is not a known sender of the domain.
    pub from_unknown_sources: u64,
    /// Reports per source IP, most first (at most [`super::query::TOP_SOURCES`]).
    pub sources: Vec<FailureSource>,
    /// The latest reports, newest first (at most [`super::query::LATEST_FAILURES`]).
    pub latest: Vec<FailureEntry>,
}

/// Failure reports about one source IP.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureSource {
    /// The source IP (`""` when the reports named none).
    pub ip: String,
    /// How the source stands with the domain (`configured`, `authorized`, `familiar`,
    /// `unknown`), as of its latest report.
    pub sender: String,
    /// Failure reports about it.
    pub reports: u64,
    /// When the latest arrived (unix seconds).
    pub last_arrival: i64,
}

/// One stored failure report, as stored (redacted unless the configuration allowed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureEntry {
    /// When the failing message arrived (unix seconds).
    pub arrival: i64,
    /// `arrival` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub arrival_time: String,
    /// Who sent the report.
    pub reporter: String,
    /// The reported (policy) domain.
    pub domain: String,
    /// The sending IP (`null` when the report named none).
    pub source_ip: Option<String>,
    /// How the source stands with the domain (`unknown` for a source the domain's
    /// senders do not include).
    pub sender: String,
    /// `Feedback-Type`.
    pub feedback_type: String,
    /// `Auth-Failure` values, comma separated.
    pub auth_failures: String,
    /// `Delivery-Result`.
    pub delivery_result: Option<String>,
    /// `DKIM-Domain`.
    pub dkim_domain: Option<String>,
    /// `DKIM-Selector`.
    pub dkim_selector: Option<String>,
    /// The domain SPF was checked for.
    pub spf_domain: Option<String>,
    /// `Identity-Alignment`.
    pub identity_alignment: Option<String>,
    /// `Original-Mail-From`.
    pub mail_from: Option<String>,
    /// `Original-Rcpt-To`.
    pub rcpt_to: Option<String>,
    /// The report's `Authentication-Results`.
    pub authentication_results: Option<String>,
    /// The original `From`.
    pub header_from: Option<String>,
    /// The original `To`.
    pub header_to: Option<String>,
    /// The original `Subject` (`null` when redacted or absent).
    pub subject: Option<String>,
    /// The original `Date` (unix seconds).
    pub date: Option<i64>,
    /// The original `Message-ID`.
    pub message_id: Option<String>,
    /// The original's `Authentication-Results`, one per line.
    pub original_authentication_results: Option<String>,
    /// What was left out when storing: `local_parts`, `subject`, `body`, comma separated.
    pub redacted: String,
}

/// Failed TLS sessions of one result type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsFailure {
    /// The result type.
    pub result_type: String,
    /// Failed sessions.
    pub failed_sessions: u64,
}

/// TLS sessions on one report day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsDay {
    /// The day (unix seconds).
    pub day: i64,
    /// The day as `YYYY-MM-DD`.
    pub date: String,
    /// Successful sessions.
    pub successful_sessions: u64,
    /// Failed sessions.
    pub failed_sessions: u64,
}

/// Failed TLS sessions of one result type on one day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsFailureDay {
    /// The day (unix seconds).
    pub day: i64,
    /// The day as `YYYY-MM-DD`.
    pub date: String,
    /// The result type.
    pub result_type: String,
    /// Failed sessions.
    pub failed_sessions: u64,
}

/// A reporting organization, named once: reports are grouped by the registrable domain
/// of the reporting address, whatever org names they carry.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reporter {
    /// The registrable domain of the reporting address (`google.com`); the org name
    /// (grouped without regard to case) when neither address nor name is a domain.
    pub reporter: String,
    /// The org name most of its reports carry (`org_name`, or `organization-name` of a
    /// TLS report).
    pub org_name: String,
    /// Every org name its reports carry, as reported, most reports first.
    pub org_names: Vec<String>,
    /// Reports of both kinds.
    pub reports: u64,
    /// DMARC aggregate reports.
    pub dmarc_reports: u64,
    /// TLS reports.
    pub tlsrpt_reports: u64,
    /// DMARC messages reported.
    pub messages: u64,
}

/// A stored alert (the columns of table `alerts`; the full JSON body is what
/// `ruaflow alerts --json` prints).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Alert {
    /// Row id.
    pub id: i64,
    /// `dkim_replay_suspected`, `spoofing_spike`, …
    pub kind: String,
    /// The policy domain.
    pub domain: String,
    /// `critical`, `warning`, `info`, …
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// Start of the window the alert is about (unix seconds).
    pub window_start: i64,
    /// End of that window (unix seconds).
    pub window_end: i64,
    /// The observed figure.
    pub observed: f64,
    /// The baseline it was compared with.
    pub baseline: f64,
    /// When the anomaly was first seen (unix seconds).
    pub first_seen: i64,
    /// When the alert was raised (unix seconds, wall clock).
    pub raised_at: i64,
    /// One-line summary.
    pub summary: String,
    /// About a window already old when it was evaluated (a backfill): stored, never sent.
    pub historical: bool,
    /// When an operator acknowledged it (`ruaflow alerts ack`), unix seconds.
    pub acknowledged_at: Option<i64>,
    /// The operator's note.
    pub ack_note: Option<String>,
}

/// Dead letters: inputs that held no readable report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadLetters {
    /// How many are stored.
    pub count: u64,
    /// The latest ones (at most [`super::query::LATEST_DEAD_LETTERS`]), newest first.
    pub latest: Vec<DeadLetter>,
}

/// One dead letter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// When the input was received (unix seconds).
    pub received_at: i64,
    /// `dir`, `imap`, `http`.
    pub source: String,
    /// Path, mailbox + UID or remote address.
    pub origin: String,
    /// Where inside the input (empty for the input itself).
    pub location: String,
    /// Why it held no report.
    pub reason: String,
    /// Size of the raw input in bytes.
    pub raw_size: u64,
}
