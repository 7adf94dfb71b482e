//! A report's identity: what makes two copies of a report the same report.
//!
//! Receivers resend reports and reuse report ids across date ranges, so the identity is
//! the kind, the reporter (organization name as sent), the report id, the policy domain
//! and the range. Both stores key a report by it: SQLite by a UNIQUE constraint over the
//! fields, ClickHouse by [`ReportKey::digest`] in every table's sorting key. A report
//! resent — in another file, another wrapping, another day — changes no total.

use sha2::{Digest, Sha256};

/// The kind of report an identity belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// A DMARC aggregate report.
    Dmarc,
    /// An SMTP TLS report.
    Tlsrpt,
}

impl ReportKind {
    /// The word stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Dmarc => "dmarc",
            ReportKind::Tlsrpt => "tlsrpt",
        }
    }
}

/// The identity of one report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportKey {
    /// Aggregate or TLS report.
    pub kind: ReportKind,
    /// The reporting organization, as sent.
    pub reporter: String,
    /// The reporter's id for the report.
    pub report_id: String,
    /// The policy domain (`""` for a TLS report that names none).
    pub domain: String,
    /// Start of the range, unix seconds.
    pub begin: i64,
    /// End of the range, unix seconds.
    pub end: i64,
}

impl ReportKey {
    /// The first 16 bytes of the SHA-256 of the fields, each text field followed by a
    /// NUL so that field boundaries count (`"ab" + "c"` differs from `"a" + "bc"`).
    pub fn digest(&self) -> [u8; 16] {
        let mut hash = Sha256::new();
        for part in [self.kind.as_str(), &self.reporter, &self.report_id, &self.domain] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.update(self.begin.to_le_bytes());
        hash.update(self.end.to_le_bytes());
        let digest = hash.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: ReportKind, reporter: &str, id: &str, domain: &str, begin: i64, end: i64) -> [u8; 16] {
        ReportKey { kind, reporter: reporter.into(), report_id: id.into(), domain: domain.into(), begin, end }
            .digest()
    }

    #[test]
    fn the_digest_covers_every_part_of_the_identity() {
        use ReportKind::{Dmarc, Tlsrpt};
        let base = key(Dmarc, "google.com", "1", "example.com", 10, 20);
        assert_eq!(base, key(Dmarc, "google.com", "1", "example.com", 10, 20));
        for other in [
            key(Tlsrpt, "google.com", "1", "example.com", 10, 20),
            key(Dmarc, "google.co", "1", "example.com", 10, 20),
            key(Dmarc, "google.com", "2", "example.com", 10, 20),
            key(Dmarc, "google.com", "1", "example.org", 10, 20),
            key(Dmarc, "google.com", "1", "example.com", 11, 20),
            key(Dmarc, "google.com", "1", "example.com", 10, 21),
            key(Dmarc, "google.co", "m1", "example.com", 10, 20),
        ] {
            assert_ne!(other, base);
        }
    }
}
