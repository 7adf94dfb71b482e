//! Aggregate: a report's records summed per source IP and per DKIM selector.
//!
//! Input: the records of one report, one at a time, with their verdicts. Output: counts
//! per source IP (messages, DMARC pass, aligned DKIM/SPF pass, DKIM-only pass,
//! dispositions; its network; the DKIM keys it signed with) and per signing domain +
//! selector. The pipeline's writer computes them; both stores write them as the report's
//! rows of `agg_source_day` and `agg_selector_day`, and they are the report's changes to
//! the sender model. Invariant: the counts of a report written in several parts (see
//! [`Aggregates::is_full`]) add up to the counts of the report written at once.

use std::collections::HashMap;
use std::net::IpAddr;

use ruaflow_schema::dmarc::{Disposition, DkimResult, Record};

use crate::normalize::{network_of, Verdict};

/// Distinct sources one report accumulates in memory before its aggregates are written
/// out; bounds the memory of reports with millions of sources.
pub const FLUSH_SOURCES: usize = 50_000;

/// DKIM keys (signing domain, selector) remembered per source and report; more are
/// counted in the messages but not named.
pub const MAX_SOURCE_KEYS: usize = 8;

/// Counts for one source IP within a report.
#[derive(Debug, Default, Clone)]
pub struct SourceCounts {
    /// Its /24 (IPv4) or /48 (IPv6).
    pub network: String,
    /// The DKIM keys its aligned, passing signatures used: (signing domain, selector),
    /// selector `""` when the receiver did not say; at most [`MAX_SOURCE_KEYS`].
    pub dkim_keys: Vec<(String, String)>,
    /// Messages.
    pub messages: u64,
    /// Messages that passed DMARC.
    pub dmarc_pass: u64,
    /// Messages with aligned, passing DKIM.
    pub dkim_aligned_pass: u64,
    /// Messages with aligned, passing SPF.
    pub spf_aligned_pass: u64,
    /// Messages with aligned DKIM pass and SPF not aligned (the replay signal).
    pub dkim_only_pass: u64,
    /// Disposition none.
    pub disp_none: u64,
    /// Disposition quarantine.
    pub disp_quarantine: u64,
    /// Disposition reject.
    pub disp_reject: u64,
}

/// Counts for one DKIM signing domain + selector within a report.
#[derive(Debug, Default, Clone, Copy)]
pub struct SelectorCounts {
    /// Messages that carried the signature.
    pub messages: u64,
    /// Of those, the signature verified.
    pub dkim_pass: u64,
    /// Of those, DKIM-only DMARC pass.
    pub dkim_only_pass: u64,
}

/// The running aggregates of one report (or of one part of a huge report).
#[derive(Debug, Default)]
pub struct Aggregates {
    /// Per source IP.
    pub sources: HashMap<IpAddr, SourceCounts>,
    /// Per /24 (IPv4) or /48 (IPv6): the sums of its sources (the sender model's roll-up).
    pub networks: HashMap<String, SourceCounts>,
    /// Per (signing domain, selector); selector `""` when the receiver did not say.
    pub selectors: HashMap<(String, String), SelectorCounts>,
}

impl Aggregates {
    /// Adds one record.
    pub fn add(&mut self, record: &Record, v: &Verdict<'_>) {
        let n = record.count;
        let s = self.sources.entry(record.source_ip).or_insert_with(|| SourceCounts {
            network: network_of(record.source_ip),
            ..SourceCounts::default()
        });
        s.messages += n;
        s.dmarc_pass += n * u64::from(v.dmarc_pass());
        s.dkim_aligned_pass += n * u64::from(v.dkim_aligned);
        s.spf_aligned_pass += n * u64::from(v.spf_aligned);
        s.dkim_only_pass += n * u64::from(v.dkim_only());
        match record.disposition {
            Disposition::Quarantine => s.disp_quarantine += n,
            Disposition::Reject => s.disp_reject += n,
            _ => s.disp_none += n,
        }
        if let (Some(dkim), true) = (v.dkim, v.dkim_aligned) {
            let selector = dkim.selector.as_deref().unwrap_or_default();
            let known = s.dkim_keys.iter().any(|(d, sel)| *d == dkim.domain && sel == selector);
            if !known && s.dkim_keys.len() < MAX_SOURCE_KEYS {
                s.dkim_keys.push((dkim.domain.clone(), selector.to_owned()));
            }
        }
        if let Some(dkim) = v.dkim {
            let key = (dkim.domain.clone(), dkim.selector.clone().unwrap_or_default());
            let c = self.selectors.entry(key).or_default();
            c.messages += n;
            c.dkim_pass += n * u64::from(dkim.result == DkimResult::Pass);
            c.dkim_only_pass += n * u64::from(v.dkim_only());
        }
    }

    /// Sums the sources per network into [`Aggregates::networks`] (once the part is
    /// complete, before it is written).
    pub fn roll_up(&mut self) {
        self.networks.clear();
        for c in self.sources.values() {
            let n = self
                .networks
                .entry(c.network.clone())
                .or_insert_with(|| SourceCounts { network: c.network.clone(), ..SourceCounts::default() });
            n.messages += c.messages;
            n.dmarc_pass += c.dmarc_pass;
            n.dkim_aligned_pass += c.dkim_aligned_pass;
            n.spf_aligned_pass += c.spf_aligned_pass;
            n.dkim_only_pass += c.dkim_only_pass;
            n.disp_none += c.disp_none;
            n.disp_quarantine += c.disp_quarantine;
            n.disp_reject += c.disp_reject;
            for key in &c.dkim_keys {
                if n.dkim_keys.len() < MAX_SOURCE_KEYS && !n.dkim_keys.contains(key) {
                    n.dkim_keys.push(key.clone());
                }
            }
        }
    }

    /// True when the part should be written out before more records are added.
    pub fn is_full(&self) -> bool {
        self.sources.len() >= FLUSH_SOURCES
    }

    /// Empties the accumulators (after they were written).
    pub fn clear(&mut self) {
        self.sources.clear();
        self.networks.clear();
        self.selectors.clear();
    }
}
