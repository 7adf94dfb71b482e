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

use crate::aggregate::{Aggregates, SourceCounts};

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
            dkim_keys: c.dkim_keys.clone(),
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
    /// The digest of one part of a DMARC report.
    pub fn dmarc(
        domain: &str,
        day: i64,
        report: &[u8; 16],
        part: u32,
        reporter: &str,
        aggregates: &Aggregates,
    ) -> Self {
        let mut sources: Vec<DigestCounts> =
            aggregates.sources.iter().map(|(ip, c)| DigestCounts::of(ip.to_string(), c)).collect();
        sources.sort_by(|a, b| a.source.cmp(&b.source));
        let mut networks: Vec<DigestCounts> =
            aggregates.networks.iter().map(|(net, c)| DigestCounts::of(net.clone(), c)).collect();
        networks.sort_by(|a, b| a.source.cmp(&b.source));
        Digest {
            domain: domain.to_owned(),
            day,
            report: ruaflow_schema::envelope::hex(report),
            part,
            reporter: reporter.to_owned(),
            kind: DigestKind::Dmarc,
            sources,
            networks,
        }
    }

    /// The digest of a TLS report for one of its policy domains.
    pub fn tls(domain: &str, day: i64, report: &[u8; 16], reporter: &str) -> Self {
        Digest {
            domain: domain.to_owned(),
            day,
            report: ruaflow_schema::envelope::hex(report),
            part: 0,
            reporter: reporter.to_owned(),
            kind: DigestKind::Tls,
            sources: Vec::new(),
            networks: Vec::new(),
        }
    }

    /// Which report and part: what the sender model remembers to stay idempotent.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.report, self.part)
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
        let digest = Digest::dmarc("example.com", 86_400, &[7; 16], 2, "google.com", &aggregates);
        let text = serde_json::to_string(&digest).expect("json");
        let back: Digest = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, digest);
        assert_eq!(back.identity(), format!("{}/2", "07".repeat(16)));
        let c = back.sources[0].counts();
        assert_eq!((c.messages, c.dkim_only_pass, c.dkim_keys.len()), (10, 7, 1));
        assert_eq!(back.networks[0].source, "192.0.2.0/24");
    }
}
