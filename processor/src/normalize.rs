//! Normalize: one parsed record → the facts the store and the detectors count.
//!
//! Input: a [`Record`] and its report's range. Output: a [`Verdict`] (aligned DKIM/SPF
//! pass, the signature and SPF check that decided them), the report day and the source
//! network. Invariant: the receiver's own `policy_evaluated` verdict wins; only when a
//! receiver left it out is alignment derived from `auth_results` (relaxed alignment,
//! organizational domains from the public suffix list).

use std::net::IpAddr;

use ruaflow_schema::dmarc::{DkimAuth, DkimResult, DmarcResult, Record, SpfAuth, SpfResult};

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// What one record means for DMARC.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'a> {
    /// DKIM aligned and passed.
    pub dkim_aligned: bool,
    /// SPF aligned and passed.
    pub spf_aligned: bool,
    /// The DKIM signature that counts: the aligned passing one, else the first.
    pub dkim: Option<&'a DkimAuth>,
    /// The SPF check that counts: the `mfrom` one, else the first.
    pub spf: Option<&'a SpfAuth>,
}

impl Verdict<'_> {
    /// DMARC passed (either identifier aligned and passed).
    pub fn dmarc_pass(&self) -> bool {
        self.dkim_aligned || self.spf_aligned
    }

    /// DKIM aligned pass without SPF alignment: how replayed mail looks.
    pub fn dkim_only(&self) -> bool {
        self.dkim_aligned && !self.spf_aligned
    }
}

/// Computes the verdict of one record.
pub fn verdict(record: &Record) -> Verdict<'_> {
    let from = record.header_from.as_str();
    let aligned_dkim =
        record.dkim_auth.iter().find(|d| d.result == DkimResult::Pass && aligned(&d.domain, from));
    let dkim = aligned_dkim.or_else(|| record.dkim_auth.first());
    let spf = record
        .spf_auth
        .iter()
        .find(|s| s.scope.as_ref().is_none_or(|scope| scope.as_str() == "mfrom"))
        .or_else(|| record.spf_auth.first());
    let dkim_aligned = match &record.dkim {
        Some(result) => *result == DmarcResult::Pass,
        None => aligned_dkim.is_some(),
    };
    let spf_aligned = match &record.spf {
        Some(result) => *result == DmarcResult::Pass,
        None => record.spf_auth.iter().any(|s| s.result == SpfResult::Pass && aligned(&s.domain, from)),
    };
    Verdict { dkim_aligned, spf_aligned, dkim, spf }
}

/// Relaxed identifier alignment (RFC 7489 §3.1): same organizational domain.
pub fn aligned(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a.eq_ignore_ascii_case(b) || org_domain(a).eq_ignore_ascii_case(org_domain(b))
}

/// The organizational (registrable) domain of a name, per the public suffix list; the
/// name itself when the list has no answer.
pub fn org_domain(name: &str) -> &str {
    let name = name.trim_end_matches('.');
    psl::domain_str(name).unwrap_or(name)
}

/// Who sent a report, named once: the registrable domain of the reporting address
/// (`email` of a DMARC report, `contact-info` of a TLS report: an address, a `mailto:`
/// or an `https:` URI), so "Google Inc." (TLS) and "google.com" (DMARC), or "WEB.DE" and
/// "web.de", are one reporter. Without a usable address, the registrable domain of the
/// org name when it is a domain name; `None` when neither names a domain.
pub fn reporter_domain(email: &str, org_name: &str) -> Option<String> {
    let contact = email.trim();
    let contact = contact.strip_prefix("mailto:").unwrap_or(contact);
    let host = match contact.rsplit_once('@') {
        Some((_, host)) => host,
        None => contact.split_once("://").map_or("", |(_, rest)| rest),
    };
    // `host>` of `<a@host>`, `host/path`, `host:port`, `host?query`.
    let host = host.split(['/', ':', '?', '>', ',', ';']).next().unwrap_or("");
    domain_name(host).or_else(|| domain_name(org_name))
}

/// The registrable domain of `text` when it is a domain name (letters, digits, `-`,
/// `.`, at least one dot), in lower case.
fn domain_name(text: &str) -> Option<String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let is_name = name.contains('.')
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    is_name.then(|| org_domain(&name).to_owned())
}

/// The UTC day (unix seconds of midnight) a report range belongs to: the day of its
/// midpoint, so Outlook's midnight-to-midnight ranges and Google's 00:00–23:59:59 ones
/// land on the same day.
pub fn day_of(begin: i64, end: i64) -> i64 {
    let mid = begin + (end.max(begin) - begin) / 2;
    mid.div_euclid(DAY) * DAY
}

/// The network a source belongs to for grouping: its /24 (IPv4) or /48 (IPv6).
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruaflow_schema::dmarc::Disposition;

    #[test]
    fn reporters_are_named_by_the_registrable_domain_of_their_address() {
        let cases = [
            ("noreply-dmarc-support@google.com", "google.com", Some("google.com")),
            ("smtp-tls-reporting@google.com", "Google Inc.", Some("google.com")),
            ("mailto:tlsrpt@mail.microsoft.com", "Microsoft Corporation", Some("microsoft.com")),
            ("https://reports.example.co.uk/tlsrpt", "Example", Some("example.co.uk")),
            ("<dmarc@Reports.WEB.DE>", "WEB.DE", Some("web.de")),
            ("", "web.de", Some("web.de")),
            ("", "WEB.DE", Some("web.de")),
            ("not an address", "Mail.Ru", Some("mail.ru")),
            ("", "  Enterprise Outlook ", None),
            ("x@localhost", "Some Org", None),
        ];
        for (email, org, want) in cases {
            assert_eq!(reporter_domain(email, org).as_deref(), want, "{email:?} / {org:?}");
        }
    }

    fn record(dkim: Option<DmarcResult>, spf: Option<DmarcResult>) -> Record {
        Record {
            source_ip: "192.0.2.1".parse().expect("ip"),
            count: 1,
            disposition: Disposition::None,
            dkim,
            spf,
            reasons: vec![],
            header_from: "mail.example.co.uk".into(),
            envelope_from: None,
            envelope_to: None,
            dkim_auth: vec![
                DkimAuth {
                    domain: "esp.example".into(),
                    selector: Some("e1".into()),
                    result: DkimResult::Pass,
                    human_result: None,
                },
                DkimAuth {
                    domain: "news.example.co.uk".into(),
                    selector: Some("s1".into()),
                    result: DkimResult::Pass,
                    human_result: None,
                },
            ],
            spf_auth: vec![SpfAuth {
                domain: "bounce.esp.example".into(),
                scope: None,
                result: SpfResult::Pass,
                human_result: None,
            }],
        }
    }

    #[test]
    fn receiver_verdict_wins_and_aligned_signature_is_chosen() {
        let r = record(Some(DmarcResult::Pass), Some(DmarcResult::Fail));
        let v = verdict(&r);
        assert!(v.dkim_aligned && !v.spf_aligned && v.dkim_only() && v.dmarc_pass());
        assert_eq!(v.dkim.map(|d| d.selector.as_deref()), Some(Some("s1")));
    }

    #[test]
    fn missing_policy_evaluated_is_derived_from_auth_results() {
        let r = record(None, None);
        let v = verdict(&r);
        assert!(v.dkim_aligned, "news.example.co.uk aligns relaxed with mail.example.co.uk");
        assert!(!v.spf_aligned, "bounce.esp.example does not align");
    }

    #[test]
    fn alignment_uses_the_public_suffix_list() {
        assert!(aligned("a.example.co.uk", "b.example.co.uk"));
        assert!(!aligned("example.co.uk", "other.co.uk"));
        assert!(!aligned("", "example.com"));
    }

    #[test]
    fn days_and_networks() {
        assert_eq!(day_of(1_709_683_200, 1_709_769_600), 1_709_683_200);
        assert_eq!(day_of(1_709_683_200, 1_709_769_599), 1_709_683_200);
        assert_eq!(network_of("198.51.100.77".parse().expect("ip")), "198.51.100.0/24");
        assert_eq!(network_of("2001:db8:1:2::5".parse().expect("ip")), "2001:db8:1::/48");
    }
}
