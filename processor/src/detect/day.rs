//! One policy domain's day, as the detectors see it.
//!
//! Input: the day's sources, one at a time, each with its sender-model rows
//! ([`DaySource`]), grouped by network. Output: a [`Day`] of bounded size whatever the
//! day's volume: totals, the DKIM-only mail of unknown sources by signing key, the keys
//! the day's known senders sign with, the DMARC-failing sources, networks new that day
//! and the regular senders' pass rates — each list a top N, each count exact. Every
//! status is the sender model's, as of the day ([`crate::sender::Sender::status_as_of`]).

use std::collections::{BTreeMap, BTreeSet};

use ruaflow_schema::alert::AlertSource;

use super::store::{DayCounts, DaySource};
use super::DetectConfig;
use crate::normalize::DAY;
use crate::sender::{Context, Status};

/// Sources named per list.
pub const TOP: usize = 10;

/// What the detectors know about one (domain, day).
#[derive(Debug, Clone, Default)]
pub struct Day {
    /// The policy domain.
    pub domain: String,
    /// The report day (unix seconds of midnight).
    pub day: i64,
    /// Counts over every source.
    pub totals: DayCounts,
    /// Distinct sources.
    pub sources: u64,
    /// DKIM-aligned, SPF-unaligned passing mail from unknown sources, by the signing key
    /// its sources use (`domain/selector`; empty when receivers did not say).
    pub unknown_dkim_only: BTreeMap<String, Volume>,
    /// The keys that the day's own senders sign with: known senders but the familiar
    /// ones (configured, SPF-authorized, a trusted service). A familiar sender relays or
    /// signs for the domain without its SPF (a list, a DKIM-only ESP): it shows that a
    /// key is in use, not that unknown mail under it is the domain's own.
    pub established_keys: BTreeSet<String>,
    /// DMARC-failing mail.
    pub failing: Volume,
    /// Networks first seen for the domain within `familiar_after_days` of this day, with
    /// enough aligned passing mail to matter (at least `new_source_min_messages`).
    pub new_networks: Vec<NewNetwork>,
    /// Sources with enough mail today and before to judge their pass rates.
    pub regulars: Vec<Regular>,
    /// The start of the earliest report range behind the day.
    pub first_seen: i64,
}

/// Messages of one kind: how many, from how many sources and networks, the largest
/// sources and every reporter.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    /// Messages.
    pub messages: u64,
    /// Distinct sources.
    pub sources: u64,
    /// Distinct networks.
    pub networks: u64,
    /// The largest sources, largest first once [`Volume::finish`]ed.
    pub top: Vec<AlertSource>,
    /// Messages per reporter.
    pub reporters: BTreeMap<String, u64>,
    last_network: String,
}

impl Volume {
    fn add(
        &mut self,
        source: &DaySource,
        status: Status,
        service: Option<&str>,
        pick: impl Fn(&DayCounts) -> u64,
    ) {
        let messages: u64 = source.reporters.iter().map(|(_, c)| pick(c)).sum();
        if messages == 0 {
            return;
        }
        self.messages += messages;
        self.sources += 1;
        if self.last_network != source.network {
            self.networks += 1;
            self.last_network.clone_from(&source.network);
        }
        for (reporter, counts) in &source.reporters {
            let n = pick(counts);
            if n > 0 {
                *self.reporters.entry(reporter.clone()).or_default() += n;
            }
        }
        keep_top(
            &mut self.top,
            || {
                let mut s = AlertSource::new(&source.ip, &source.network, messages);
                s.status = Some(status.as_str().to_owned());
                s.service = service.map(str::to_owned);
                s
            },
            messages,
        );
    }

    fn finish(&mut self) {
        self.top.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.ip.cmp(&b.ip)));
    }

    /// Reporters, most messages first.
    pub fn reporters_by_volume(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = self.reporters.iter().map(|(r, n)| (r.as_str(), *n)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }
}

/// Keeps the [`TOP`] largest entries; `make` builds the entry only when it gets in.
fn keep_top(top: &mut Vec<AlertSource>, make: impl FnOnce() -> AlertSource, messages: u64) {
    if top.len() < TOP {
        top.push(make());
        return;
    }
    if let Some((at, smallest)) = top.iter().enumerate().min_by_key(|(_, s)| s.messages) {
        if messages > smallest.messages {
            top[at] = make();
        }
    }
}

/// A network first seen for the domain on the day.
#[derive(Debug, Clone, Default)]
pub struct NewNetwork {
    /// The /24 or /48.
    pub network: String,
    /// SPF-aligned passing messages.
    pub spf_aligned_pass: u64,
    /// DKIM-aligned, SPF-unaligned passing messages of its unknown sources, by key.
    pub dkim_only_by_key: BTreeMap<String, u64>,
    /// Its sources that sent aligned passing mail.
    pub sources: u64,
    /// The largest of them (messages: aligned passing mail).
    pub top: Vec<AlertSource>,
    /// Aligned passing messages per reporter.
    pub reporters: BTreeMap<String, u64>,
}

/// A source with enough mail to judge its pass rates, today and before.
#[derive(Debug, Clone)]
pub struct Regular {
    /// The source, with its messages today.
    pub source: AlertSource,
    /// Today's counts.
    pub today: DayCounts,
    /// Its counts on every other day seen.
    pub usual: DayCounts,
}

/// Folds a day's sources into a [`Day`].
pub struct DayFold<'a> {
    config: &'a DetectConfig,
    out: Day,
    network: Option<NewNetwork>,
}

impl<'a> DayFold<'a> {
    /// An empty day.
    pub fn new(config: &'a DetectConfig, domain: &str, day: i64) -> Self {
        let out = Day { domain: domain.to_owned(), day, first_seen: day, ..Day::default() };
        DayFold { config, out, network: None }
    }

    /// Adds one source.
    pub fn add(&mut self, source: DaySource) {
        let (config, day) = (self.config, self.out.day);
        let mut today = DayCounts::default();
        source.reporters.iter().for_each(|(_, c)| today.add(c));
        self.out.totals.add(&today);
        self.out.sources += 1;
        let status = self.status(&source);
        let service = source.service.as_deref();
        self.out.failing.add(&source, status, service, DayCounts::dmarc_fail);
        let key = source.sender.as_ref().and_then(|s| s.dkim_keys.first()).cloned().unwrap_or_default();
        if status.is_known() {
            if let Some(sender) = source.sender.as_ref().filter(|_| status != Status::Familiar) {
                self.out.established_keys.extend(sender.dkim_keys.iter().cloned());
            }
        } else {
            self.out
                .unknown_dkim_only
                .entry(key.clone())
                .or_default()
                .add(&source, status, service, |c| c.dkim_only_pass);
        }
        self.new_network(&source, status, &key, &today);
        if let Some(sender) =
            source.sender.as_ref().filter(|_| today.messages >= config.regression_min_messages)
        {
            let usual = DayCounts {
                messages: sender.messages.saturating_sub(today.messages),
                dmarc_pass: sender.dmarc_pass.saturating_sub(today.dmarc_pass),
                dkim_aligned_pass: sender.dkim_aligned_pass.saturating_sub(today.dkim_aligned_pass),
                spf_aligned_pass: sender.spf_aligned_pass.saturating_sub(today.spf_aligned_pass),
                dkim_only_pass: sender.dkim_only_pass.saturating_sub(today.dkim_only_pass),
                blocked: 0,
            };
            if usual.messages >= config.regression_min_messages && sender.first_day < day {
                let mut s = AlertSource::new(&source.ip, &source.network, today.messages);
                s.status = Some(status.as_str().to_owned());
                s.service = source.service.clone();
                self.out.regulars.push(Regular { source: s, today, usual });
            }
        }
    }

    /// The source's status as of the day, from its address row.
    fn status(&self, source: &DaySource) -> Status {
        let service = source.service.as_deref().filter(|_| source.service_trusted);
        let declared = self.config.declared(&self.out.domain, source.ip.parse().ok(), service);
        let context = Context { declared: declared.as_deref(), service };
        match &source.sender {
            Some(sender) => sender.status_as_of(self.config, context, self.out.day).0,
            None if declared.is_some() => Status::Configured,
            None => Status::Unknown,
        }
    }

    /// Adds the source to the network it belongs to, when that network is new today.
    fn new_network(&mut self, source: &DaySource, status: Status, key: &str, today: &DayCounts) {
        if self.network.as_ref().is_some_and(|n| n.network != source.network) {
            self.close_network();
        }
        // New while in its first days: an ESP ramps up, and the day it crosses the
        // threshold is rarely its first.
        let young_since = self.out.day - (self.config.familiar_after_days - 1).max(0) * DAY;
        let is_new = source.network_first_day.is_some_and(|first| first >= young_since);
        let dkim_only = if status.is_known() { 0 } else { today.dkim_only_pass };
        let passing = today.spf_aligned_pass + dkim_only;
        if !is_new || passing == 0 {
            return;
        }
        let network = self
            .network
            .get_or_insert_with(|| NewNetwork { network: source.network.clone(), ..NewNetwork::default() });
        network.spf_aligned_pass += today.spf_aligned_pass;
        if dkim_only > 0 {
            *network.dkim_only_by_key.entry(key.to_owned()).or_default() += dkim_only;
        }
        network.sources += 1;
        for (reporter, c) in &source.reporters {
            let n = c.spf_aligned_pass + if status.is_known() { 0 } else { c.dkim_only_pass };
            if n > 0 {
                *network.reporters.entry(reporter.clone()).or_default() += n;
            }
        }
        keep_top(
            &mut network.top,
            || {
                let mut s = AlertSource::new(&source.ip, &source.network, passing);
                s.status = Some(status.as_str().to_owned());
                s.service = source.service.clone();
                s
            },
            passing,
        );
    }

    fn close_network(&mut self) {
        if let Some(mut network) = self.network.take() {
            let dkim_only: u64 = network.dkim_only_by_key.values().sum();
            if network.spf_aligned_pass.max(dkim_only) >= self.config.new_source_min_messages {
                network.top.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.ip.cmp(&b.ip)));
                self.out.new_networks.push(network);
            }
        }
    }

    /// The folded day.
    pub fn finish(mut self) -> Day {
        self.close_network();
        self.out.failing.finish();
        self.out.unknown_dkim_only.values_mut().for_each(Volume::finish);
        self.out.regulars.sort_by_key(|r| std::cmp::Reverse(r.today.messages));
        self.out
    }
}
