//! Report digests: what detection needs of one stored report, without the report.
//!
//! Input: a report's identity and its aggregates per source and per network (one digest
//! per part of a report with very many sources; one per policy domain of a TLS report).
//! Output: a small JSON message the distributed store publishes after the report's rows
//! are in ClickHouse, keyed by the policy domain, so one member of the detector group
//! owns each domain. Invariant: a digest says nothing the stored rows do not; the
//! detector folds it into the sender model idempotently (by report and part), so a
//! digest delivered twice changes nothing.

use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use crate::aggregate::{Aggregates, SourceCounts};
use crate::cidr::Cidr;

/// Sources (and networks) per digest at most.
pub const MAX_SOURCES: usize = 2_000;
/// The longest DKIM key kept ("signing domain/selector"): a DNS name is at most 253
/// bytes, so a longer one is no key anyone can publish.
const MAX_KEY_BYTES: usize = 320;
/// The last day a ClickHouse `Date` holds (2149-06-06), in days.
const MAX_DATE_DAYS: i64 = u16::MAX as i64;

/// What kind of report a digest is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestKind {
    /// A DMARC aggregate report.
    Dmarc,
    /// An SMTP TLS report.
    Tls,
}

/// One report (or one part of it), as the detectors need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The policy domain (the Kafka key).
    pub domain: String,
    /// The report day (unix seconds of a UTC midnight).
    pub day: i64,
    /// The report identity (hex of its key).
    pub report: String,
    /// The part of the report (a report with very many sources is written in parts).
    pub part: u32,
    /// The piece of the part: a part's digest is cut into pieces of at most
    /// [`MAX_SOURCES`] sources, so a message stays far below the queue's size limit.
    #[serde(default)]
    pub piece: u32,
    /// The reporting organization.
    pub reporter: String,
    /// DMARC or TLS.
    pub kind: DigestKind,
    /// Counts per source address (DMARC).
    #[serde(default)]
    pub sources: Vec<DigestCounts>,
    /// Counts per /24 or /48 network (DMARC).
    #[serde(default)]
    pub networks: Vec<DigestCounts>,
}

/// The counts of one source (or network) in one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestCounts {
    /// The address (or network).
    pub source: String,
    /// Its /24 or /48.
    pub network: String,
    /// Messages.
    pub messages: u64,
    /// Passed DMARC.
    pub dmarc_pass: u64,
    /// DKIM aligned and passing.
    pub dkim_aligned_pass: u64,
    /// SPF aligned and passing.
    pub spf_aligned_pass: u64,
    /// DKIM aligned and passing without aligned SPF.
    pub dkim_only_pass: u64,
    /// The DKIM keys of its aligned passing signatures: (signing domain, selector).
    #[serde(default)]
    pub dkim_keys: Vec<(String, String)>,
}

impl DigestCounts {
    fn of(source: String, c: &SourceCounts) -> Self {
        DigestCounts {
            source,
            network: c.network.clone(),
            messages: c.messages,
            dmarc_pass: c.dmarc_pass,
            dkim_aligned_pass: c.dkim_aligned_pass,
            spf_aligned_pass: c.spf_aligned_pass,
            dkim_only_pass: c.dkim_only_pass,
            dkim_keys: c
                .dkim_keys
                .iter()
                .filter(|(d, s)| d.len() + s.len() < MAX_KEY_BYTES)
                .cloned()
                .collect(),
        }
    }

    /// The counts as the sender model folds them.
    pub fn counts(&self) -> SourceCounts {
        SourceCounts {
            network: self.network.clone(),
            dkim_keys: self.dkim_keys.clone(),
            messages: self.messages,
            dmarc_pass: self.dmarc_pass,
            dkim_aligned_pass: self.dkim_aligned_pass,
            spf_aligned_pass: self.spf_aligned_pass,
            dkim_only_pass: self.dkim_only_pass,
            ..SourceCounts::default()
        }
    }
}

impl Digest {
    /// The digests of one part of a DMARC report: pieces of at most [`MAX_SOURCES`]
    /// sources and networks each.
    pub fn dmarc(
        domain: &str,
        day: i64,
        report: &[u8; 16],
        part: u32,
        reporter: &str,
        aggregates: &Aggregates,
    ) -> Vec<Self> {
        let mut sources: Vec<DigestCounts> =
            aggregates.sources.iter().map(|(ip, c)| DigestCounts::of(ip.to_string(), c)).collect();
        sources.sort_by(|a, b| a.source.cmp(&b.source));
        let mut networks: Vec<DigestCounts> =
            aggregates.networks.iter().map(|(net, c)| DigestCounts::of(net.clone(), c)).collect();
        networks.sort_by(|a, b| a.source.cmp(&b.source));
        let pieces = sources.len().max(networks.len()).div_ceil(MAX_SOURCES).max(1);
        let (mut sources, mut networks) = (sources.into_iter(), networks.into_iter());
        (0..pieces)
            .map(|piece| Digest {
                domain: domain.to_owned(),
                day,
                report: ruaflow_schema::envelope::hex(report),
                part,
                piece: piece as u32,
                reporter: reporter.to_owned(),
                kind: DigestKind::Dmarc,
                sources: sources.by_ref().take(MAX_SOURCES).collect(),
                networks: networks.by_ref().take(MAX_SOURCES).collect(),
            })
            .collect()
    }

    /// Why a digest read from the queue cannot be folded, if it cannot: its key must be
    /// its domain, its day a date, its sources addresses and its networks networks,
    /// within the caps a processor keeps. Digests come from processors, but a queue is
    /// a boundary: anything else is skipped, never retried.
    pub fn invalid(&self, key: &str) -> Option<String> {
        if self.domain != key {
            return Some(format!("its domain {:?} is not its key {key:?}", self.domain));
        }
        let day = crate::normalize::DAY;
        if !(0..=MAX_DATE_DAYS * day).contains(&self.day) || self.day % day != 0 {
            return Some(format!("day {} is not a date", self.day));
        }
        if self.report.len() != 32 || !self.report.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some("its report identity is not a key".into());
        }
        if self.sources.len() > MAX_SOURCES || self.networks.len() > MAX_SOURCES {
            return Some("more sources than a digest holds".into());
        }
        let keys_ok = |c: &DigestCounts| {
            c.dkim_keys.len() <= crate::aggregate::MAX_SOURCE_KEYS
                && c.dkim_keys.iter().all(|(d, s)| d.len() + s.len() < MAX_KEY_BYTES)
        };
        if let Some(bad) = self.sources.iter().find(|c| c.source.parse::<IpAddr>().is_err() || !keys_ok(c)) {
            return Some(format!("source {:?} is not an address", bad.source));
        }
        if let Some(bad) = self.networks.iter().find(|c| c.source.parse::<Cidr>().is_err() || !keys_ok(c)) {
            return Some(format!("network {:?} is not a network", bad.source));
        }
        None
    }

    /// The digest of a TLS report for one of its policy domains.
    pub fn tls(domain: &str, day: i64, report: &[u8; 16], reporter: &str) -> Self {
        Digest {
            domain: domain.to_owned(),
            day,
            report: ruaflow_schema::envelope::hex(report),
            part: 0,
            piece: 0,
            reporter: reporter.to_owned(),
            kind: DigestKind::Tls,
            sources: Vec::new(),
            networks: Vec::new(),
        }
    }

    /// Which report and part: what the sender model remembers to stay idempotent.
    pub fn identity(&self) -> String {
        format!("{}/{}/{}", self.report, self.part, self.piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_round_trips_and_carries_the_counts() {
        let mut aggregates = Aggregates::default();
        let counts = SourceCounts {
            network: "192.0.2.0/24".into(),
            dkim_keys: vec![("example.com".into(), "s1".into())],
            messages: 10,
            dmarc_pass: 9,
            dkim_aligned_pass: 8,
            spf_aligned_pass: 1,
            dkim_only_pass: 7,
            ..SourceCounts::default()
        };
        aggregates.sources.insert("192.0.2.7".parse().expect("ip"), counts.clone());
        aggregates.networks.insert("192.0.2.0/24".into(), counts);
        let digests = Digest::dmarc("example.com", 86_400, &[7; 16], 2, "google.com", &aggregates);
        assert_eq!(digests.len(), 1);
        let digest = &digests[0];
        let text = serde_json::to_string(digest).expect("json");
        let back: Digest = serde_json::from_str(&text).expect("parses");
        assert_eq!(&back, digest);
        assert_eq!(back.identity(), format!("{}/2/0", "07".repeat(16)));
        assert_eq!(back.invalid("example.com"), None);
        let c = back.sources[0].counts();
        assert_eq!((c.messages, c.dkim_only_pass, c.dkim_keys.len()), (10, 7, 1));
        assert_eq!(back.networks[0].source, "192.0.2.0/24");
    }

    #[test]
    fn a_big_part_is_cut_into_pieces_and_bad_digests_are_named() {
        let mut aggregates = Aggregates::default();
        for i in 0..(MAX_SOURCES as u32 * 2 + 5) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let counts = SourceCounts {
                network: crate::normalize::network_of(ip),
                dkim_keys: vec![("example.com".into(), "s".repeat(400))],
                messages: 1,
                ..SourceCounts::default()
            };
            aggregates.sources.insert(ip, counts);
        }
        let digests = Digest::dmarc("example.com", 86_400, &[7; 16], 0, "google.com", &aggregates);
        assert_eq!(digests.len(), 3);
        assert_eq!(digests.iter().map(|d| d.sources.len()).sum::<usize>(), MAX_SOURCES * 2 + 5);
        assert!(digests.iter().all(|d| d.invalid("example.com").is_none()));
        assert!(digests[0].sources[0].dkim_keys.is_empty(), "a key longer than any DNS name is dropped");
        let ids: std::collections::BTreeSet<String> = digests.iter().map(Digest::identity).collect();
        assert_eq!(ids.len(), 3);

        let mut bad = digests[0].clone();
        assert!(bad.invalid("other.example").is_some());
        bad.sources[0].source = "10.0.0.1') OR ('".into();
        assert!(bad.invalid("example.com").is_some_and(|why| why.contains("not an address")));
        let mut bad = digests[0].clone();
        bad.day = 86_400 * 70_000;
        assert!(bad.invalid("example.com").is_some());
    }
}
