//! Hand-built inputs for the detectors' unit tests.

use super::day::{Day, DayFold};
use super::store::{DayCounts, DaySource, StoredSignal};
use super::DetectConfig;
use crate::normalize::{network_of, DAY};
use crate::sender::Sender;

/// The day every source is evaluated on when a test does not say.
fn source(ip: &str, counts: DayCounts, sender: Sender, network_first_day: i64) -> DaySource {
    let network = network_of(ip.parse().expect("test address"));
    DaySource {
        ip: ip.to_owned(),
        network,
        reporters: vec![("google.com".to_owned(), counts)],
        sender: Some(sender),
        network_first_day: Some(network_first_day),
        service: None,
        service_trusted: false,
    }
}

fn sender(ip: &str, first_day: i64, counts: DayCounts, key: &str) -> Sender {
    let mut s = Sender::new("example.com", ip, &network_of(ip.parse().expect("test address")));
    s.first_day = first_day;
    s.last_day = first_day;
    s.messages = counts.messages;
    s.dmarc_pass = counts.dmarc_pass;
    s.dkim_aligned_pass = counts.dkim_aligned_pass;
    s.spf_aligned_pass = counts.spf_aligned_pass;
    s.dkim_only_pass = counts.dkim_only_pass;
    if !key.is_empty() {
        s.dkim_keys.push(key.to_owned());
    }
    s
}

fn passing(messages: u64, spf: u64, dkim_only: u64) -> DayCounts {
    DayCounts {
        messages,
        dmarc_pass: spf + dkim_only,
        dkim_aligned_pass: spf.max(dkim_only),
        spf_aligned_pass: spf,
        dkim_only_pass: dkim_only,
        blocked: 0,
    }
}

/// An authorized sender (SPF-aligned for a month) with today's counts, signing with `key`.
pub fn known(ip: &str, messages: u64, spf: u64, dkim_only: u64, key: &str) -> DaySource {
    let counts = passing(messages, spf, dkim_only);
    let mut row = sender(ip, 0, counts, key);
    row.first_spf_day = Some(0);
    source(ip, counts, row, 0)
}

/// A familiar source (first seen three weeks before `day`, seen on ten days since, never
/// SPF-aligned) whose mail today is DKIM-only under `key`.
pub fn familiar(ip: &str, dkim_only: u64, key: &str, day: i64) -> DaySource {
    let counts = passing(dkim_only, 0, dkim_only);
    let mut row = sender(ip, day - 21 * DAY, counts, key);
    row.days = (0..=10).rev().map(|k| day - 2 * k * DAY).collect();
    row.days_seen = 11;
    row.last_day = day;
    row.first_dkim_day = Some(row.first_day);
    source(ip, counts, row, day - 21 * DAY)
}

/// A source first seen on the evaluated day (set later by [`day_with`]), in a new network.
pub fn unknown(ip: &str, messages: u64, spf: u64, dkim_only: u64, key: &str) -> DaySource {
    let counts = passing(messages, spf, dkim_only);
    source(ip, counts, sender(ip, i64::MAX, counts, key), i64::MAX)
}

/// A source first seen today whose mail all fails DMARC.
pub fn spoofer(ip: &str, messages: u64) -> DaySource {
    let counts = DayCounts { messages, ..DayCounts::default() };
    source(ip, counts, sender(ip, i64::MAX, counts, ""), i64::MAX)
}

/// A long-standing sender: `usual` and `today` are (messages, DKIM-aligned pass,
/// SPF-aligned pass).
pub fn regular(ip: &str, usual: (u64, u64, u64), today: (u64, u64, u64)) -> DaySource {
    let counts = |(m, d, s): (u64, u64, u64)| DayCounts {
        messages: m,
        dmarc_pass: d.max(s),
        dkim_aligned_pass: d,
        spf_aligned_pass: s,
        dkim_only_pass: 0,
        blocked: 0,
    };
    let (usual, today) = (counts(usual), counts(today));
    let mut total = usual;
    total.add(&today);
    let mut row = sender(ip, 0, total, "example.com/s1");
    row.first_spf_day = Some(0);
    source(ip, today, row, 0)
}

/// The folded day of `sources` for example.com; sources marked as first seen "today"
/// (unknown, spoofer) get `day` as their first day.
pub fn day_with(config: &DetectConfig, day: i64, sources: Vec<DaySource>) -> Day {
    let mut fold = DayFold::new(config, "example.com", day);
    let mut sources = sources;
    sources.sort_by(|a, b| a.network.cmp(&b.network).then_with(|| a.ip.cmp(&b.ip)));
    for mut s in sources {
        if let Some(row) = s.sender.as_mut().filter(|r| r.first_day == i64::MAX) {
            row.first_day = day;
            row.last_day = day;
            row.days = vec![day];
            row.days_seen = 1;
            if row.dkim_aligned_pass > 0 {
                row.first_dkim_day = Some(day);
            }
        }
        if s.network_first_day == Some(i64::MAX) {
            s.network_first_day = Some(day);
        }
        fold.add(s);
    }
    fold.finish()
}

/// `days` daily values of `signal` (no subject) on the days before `day`.
pub fn signals(signal: &str, day: i64, days: i64, value: f64) -> Vec<StoredSignal> {
    (1..=days)
        .map(|k| StoredSignal {
            signal: signal.to_owned(),
            subject: String::new(),
            day: day - k * DAY,
            value,
        })
        .collect()
}
