//! The sender model: who sends mail as each policy domain, and why a source is known.
//!
//! Input: each stored report's aggregates per source address and per network (/24,
//! /48) — its changes to the model ([`Change`]). Output: one [`Sender`] per policy
//! domain × source (address, or network for the roll-up): first and last day seen, the
//! days seen, volumes and aligned-pass counts, the DKIM keys it signed with, and its
//! [`Status`] with the reason. Invariants:
//! - maintained incrementally: [`Sender::apply`] folds one report's change into a row,
//!   work proportional to the report, never a scan of history;
//! - order-independent: first/last day are min/max, days a set, counts sums, so any
//!   arrival order gives the same row (a redelivered report never reaches the fold: the
//!   store drops it by identity first);
//! - the status is a pure function of the row and the day asked about
//!   ([`Sender::status_as_of`]), so detectors ask "as of the report day" and reports show
//!   "as of the last day seen" from the same rule. SQLite keeps the model in the same
//!   transaction as the report; ClickHouse receives the rows from whoever folds them.
//!
//! Statuses, strongest first: `configured` (inside a network the owner declared for the
//! domain), `authorized` (it sent SPF-aligned passing mail: the domain's own SPF covers
//! it), `service` (a named mail service, identified by enrichment, that sent DKIM-aligned
//! passing mail: the domain signs through it), `familiar` (first seen at least
//! `familiar_after_days` before, and on at least `familiar_min_days` of the last
//! `baseline_days`: forwarders, mailing lists), `unknown`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::aggregate::SourceCounts;
use crate::detect::DetectConfig;
use crate::normalize::DAY;

/// Distinct days remembered per sender (about a year of daily mail); older days are
/// only counted.
pub const MAX_DAYS: usize = 400;
/// DKIM keys (`domain/selector`) remembered per sender.
pub const MAX_KEYS: usize = 16;

/// How a source stands with a policy domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Inside a network the owner declared for the domain.
    Configured,
    /// Sent SPF-aligned passing mail for the domain.
    Authorized,
    /// A named mail service that sent DKIM-aligned passing mail for the domain.
    Service,
    /// Seen stably over the learning window.
    Familiar,
    /// None of these.
    Unknown,
}

impl Status {
    /// The status as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Configured => "configured",
            Status::Authorized => "authorized",
            Status::Service => "service",
            Status::Familiar => "familiar",
            Status::Unknown => "unknown",
        }
    }

    /// Reads a stored word (`unknown` for anything else).
    pub fn parse(word: &str) -> Self {
        match word {
            "configured" => Status::Configured,
            "authorized" => Status::Authorized,
            "service" => Status::Service,
            "familiar" => Status::Familiar,
            _ => Status::Unknown,
        }
    }

    /// True for every status but `unknown`.
    pub fn is_known(self) -> bool {
        self != Status::Unknown
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One report's change to one sender: its counts for the report's day.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The report day (unix seconds of midnight).
    pub day: i64,
    /// The report's counts for the source (or network).
    pub counts: &'a SourceCounts,
}

/// What is known about one source of one policy domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The policy domain.
    pub domain: String,
    /// The source: an address, or a network for the roll-up.
    pub source: String,
    /// Its /24 or /48 (the network itself for a network row).
    pub network: String,
    /// First and last report day seen (unix seconds of midnight).
    pub first_day: i64,
    /// See `first_day`.
    pub last_day: i64,
    /// The distinct days seen, ascending, the newest [`MAX_DAYS`] of them.
    pub days: Vec<i64>,
    /// Distinct days seen, all of them.
    pub days_seen: u32,
    /// Messages.
    pub messages: u64,
    /// Messages that passed DMARC.
    pub dmarc_pass: u64,
    /// Messages with aligned, passing DKIM.
    pub dkim_aligned_pass: u64,
    /// Messages with aligned, passing SPF.
    pub spf_aligned_pass: u64,
    /// Messages with aligned DKIM pass and SPF not aligned.
    pub dkim_only_pass: u64,
    /// The first day it had SPF-aligned passing mail.
    pub first_spf_day: Option<i64>,
    /// The first day it had DKIM-aligned passing mail.
    pub first_dkim_day: Option<i64>,
    /// The DKIM keys its aligned signatures used, `domain/selector`.
    pub dkim_keys: Vec<String>,
}

/// The service the status rule trusts, as SQL over a row with `service`, `service_kind`
/// and `service_by` (SQLite's `sources`, ClickHouse's `source_services`; the same text
/// runs on both): an ESP (it signs its customers' mail with their keys) named by the IP
/// databases, else NULL. A PTR name is chosen by whoever runs the address, and a mailbox
/// provider's or a cloud's customers include whoever replays a signed message through
/// them: those names are shown, never trusted.
pub(crate) const TRUSTED_SERVICE: &str =
    "CASE WHEN service_kind = 'esp' AND service_by IN ('as_domain', 'asn', 'as_name') THEN service END";

/// What a status rule needs besides the row: the declared networks of the domain and
/// the mail service enrichment named for the source, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The owner declared this source (its network), with a note.
    pub declared: Option<&'a str>,
    /// The service enrichment named for the source.
    pub service: Option<&'a str>,
}

impl Sender {
    /// A row for a source never seen before.
    pub fn new(domain: &str, source: &str, network: &str) -> Self {
        Sender {
            domain: domain.to_owned(),
            source: source.to_owned(),
            network: network.to_owned(),
            first_day: i64::MAX,
            last_day: i64::MIN,
            days: Vec::new(),
            days_seen: 0,
            messages: 0,
            dmarc_pass: 0,
            dkim_aligned_pass: 0,
            spf_aligned_pass: 0,
            dkim_only_pass: 0,
            first_spf_day: None,
            first_dkim_day: None,
            dkim_keys: Vec::new(),
        }
    }

    /// Folds one report's change into the row.
    pub fn apply(&mut self, change: Change<'_>) {
        let (day, c) = (change.day, change.counts);
        self.first_day = self.first_day.min(day);
        self.last_day = self.last_day.max(day);
        match self.days.binary_search(&day) {
            Ok(_) => {}
            // Older than every remembered day of a full list: it may have been counted
            // already, so it is not counted again.
            Err(0) if self.days.len() >= MAX_DAYS => {}
            Err(at) => {
                self.days.insert(at, day);
                self.days_seen += 1;
                if self.days.len() > MAX_DAYS {
                    self.days.remove(0);
                }
            }
        }
        self.messages += c.messages;
        self.dmarc_pass += c.dmarc_pass;
        self.dkim_aligned_pass += c.dkim_aligned_pass;
        self.spf_aligned_pass += c.spf_aligned_pass;
        self.dkim_only_pass += c.dkim_only_pass;
        let earliest = |current: Option<i64>| Some(current.map_or(day, |d| d.min(day)));
        if c.spf_aligned_pass > 0 {
            self.first_spf_day = earliest(self.first_spf_day);
        }
        if c.dkim_aligned_pass > 0 {
            self.first_dkim_day = earliest(self.first_dkim_day);
        }
        for (domain, selector) in &c.dkim_keys {
            let key = format!("{domain}/{selector}");
            if self.dkim_keys.len() < MAX_KEYS && !self.dkim_keys.contains(&key) {
                self.dkim_keys.push(key);
            }
        }
    }

    /// Distinct days seen in `[from, to)` (from the remembered days).
    pub fn days_between(&self, from: i64, to: i64) -> usize {
        let start = self.days.partition_point(|&d| d < from);
        let end = self.days.partition_point(|&d| d < to);
        end.saturating_sub(start)
    }

    /// The status as of `day`, with the reason, from what the row knew by then.
    pub fn status_as_of(&self, config: &DetectConfig, context: Context<'_>, day: i64) -> (Status, String) {
        if let Some(note) = context.declared {
            return (Status::Configured, format!("declared for {}: {note}", self.domain));
        }
        if let Some(first) = self.first_spf_day.filter(|&d| d <= day) {
            return (Status::Authorized, format!("SPF-aligned pass since {}", date(first)));
        }
        if let (Some(service), Some(first)) = (context.service, self.first_dkim_day.filter(|&d| d <= day)) {
            return (Status::Service, format!("{service}, DKIM-aligned pass since {}", date(first)));
        }
        let window = config.baseline_days * DAY;
        let recent = self.days_between(day - window, day);
        let settled = self.first_day <= day - config.familiar_after_days * DAY;
        if settled && recent as i64 >= config.familiar_min_days {
            return (
                Status::Familiar,
                format!(
                    "seen on {recent} of the {} days before, since {}",
                    config.baseline_days,
                    date(self.first_day)
                ),
            );
        }
        if self.first_day > day {
            return (Status::Unknown, "not seen yet".into());
        }
        let reason = match (settled, recent) {
            (false, _) => format!("first seen {}", date(self.first_day)),
            (true, n) => format!("seen on {n} of the {} days before", config.baseline_days),
        };
        (Status::Unknown, reason)
    }
}

/// A day as `YYYY-MM-DD`.
fn date(day: i64) -> String {
    ruaflow_schema::time::format_date(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(messages: u64, spf: u64, dkim: u64, keys: &[(&str, &str)]) -> SourceCounts {
        SourceCounts {
            network: "192.0.2.0/24".into(),
            dkim_keys: keys.iter().map(|(d, s)| (d.to_string(), s.to_string())).collect(),
            messages,
            dmarc_pass: spf.max(dkim),
            dkim_aligned_pass: dkim,
            spf_aligned_pass: spf,
            dkim_only_pass: dkim.saturating_sub(spf),
            ..SourceCounts::default()
        }
    }

    fn day(n: i64) -> i64 {
        20_000 * DAY + n * DAY
    }

    #[test]
    fn any_arrival_order_gives_the_same_row() {
        let changes: Vec<(i64, SourceCounts)> = vec![
            (day(3), counts(10, 0, 10, &[("example.com", "s1")])),
            (day(1), counts(5, 5, 5, &[("example.com", "s1")])),
            (day(3), counts(2, 0, 2, &[("example.com", "s2")])),
            (day(9), counts(7, 0, 0, &[])),
        ];
        let fold = |order: &[usize]| {
            let mut row = Sender::new("example.com", "192.0.2.1", "192.0.2.0/24");
            for &i in order {
                row.apply(Change { day: changes[i].0, counts: &changes[i].1 });
            }
            row.dkim_keys.sort();
            row
        };
        let a = fold(&[0, 1, 2, 3]);
        for order in [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            assert_eq!(fold(&order), a, "{order:?}");
        }
        assert_eq!((a.first_day, a.last_day, a.days_seen), (day(1), day(9), 3));
        assert_eq!(
            (a.messages, a.spf_aligned_pass, a.first_spf_day, a.first_dkim_day),
            (24, 5, Some(day(1)), Some(day(1)))
        );
        assert_eq!(a.dkim_keys, ["example.com/s1", "example.com/s2"]);
    }

    #[test]
    fn the_status_is_asked_as_of_a_day() {
        let config = DetectConfig::default(); // 28-day window, familiar after 7 days on 3
        let mut row = Sender::new("example.com", "192.0.2.1", "192.0.2.0/24");
        for d in [0, 2, 4, 6, 8] {
            row.apply(Change { day: day(d), counts: &counts(10, 0, 10, &[("example.com", "s1")]) });
        }
        let none = Context::default();
        assert_eq!(row.status_as_of(&config, none, day(0)).0, Status::Unknown, "new on its first day");
        assert_eq!(
            row.status_as_of(&config, none, day(8)).0,
            Status::Familiar,
            "4 days before, first 8 days ago"
        );
        assert_eq!(row.status_as_of(&config, none, day(-1)).0, Status::Unknown);
        let service = Context { service: Some("Mailchimp (esp)"), ..Context::default() };
        assert_eq!(row.status_as_of(&config, service, day(0)).0, Status::Service);
        row.apply(Change { day: day(5), counts: &counts(1, 1, 0, &[]) });
        assert_eq!(row.status_as_of(&config, none, day(4)).0, Status::Unknown, "SPF pass came later");
        let (status, reason) = row.status_as_of(&config, none, day(5));
        assert_eq!(status, Status::Authorized);
        assert!(reason.contains("SPF-aligned pass since"), "{reason}");
        let declared = Context { declared: Some("our MTAs"), ..Context::default() };
        assert_eq!(row.status_as_of(&config, declared, day(0)).0, Status::Configured);
    }

    #[test]
    fn days_are_bounded_and_counted() {
        let mut row = Sender::new("example.com", "192.0.2.1", "192.0.2.0/24");
        let c = counts(1, 0, 0, &[]);
        for d in 0..(MAX_DAYS as i64 + 50) {
            row.apply(Change { day: day(d), counts: &c });
        }
        assert_eq!(row.days.len(), MAX_DAYS);
        assert_eq!(row.days_seen, MAX_DAYS as u32 + 50);
        row.apply(Change { day: day(0), counts: &c });
        assert_eq!(row.days_seen, MAX_DAYS as u32 + 50, "a forgotten old day is not counted twice");
        assert_eq!(row.days_between(day(400), day(450)), 50);
    }
}
