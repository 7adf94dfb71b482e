//! DMARC aggregate report XML (RFC 7489 Appendix C, RFC 9990) in each reporter's dialect.
//!
//! Input: a reporter, a policy domain, a day and its [`Rec`]s. Output: the XML document,
//! appended to a reusable buffer. The dialects copy what real receivers send (see
//! `../shared/corpus`): Google's missing `<version>` and envelope_from, Microsoft's xsd/xsi
//! namespaces and `<envelope_to>`, Mail.ru's single line, FastMail's tabs, the RFC 9990
//! namespace with `<np>`, `<testing>`, `<discovery_method>` and disposition `pass`.

use std::fmt::Display;
use std::io::Write;
use std::net::IpAddr;

use super::calendar::{day_end, day_start};
use super::rng::{hash, Rng};
use super::traffic::Rec;
use super::world::{Domain, Reporter, Style};

/// Stream tag for report ids.
const T_REPORT_ID: u64 = 20;

/// What differs between receivers' XML.
struct Dialect {
    declaration: &'static str,
    root_attrs: &'static str,
    indent: &'static str,
    newline: &'static str,
    version: Option<&'static str>,
    generator: Option<&'static str>,
    adkim_aspf: bool,
    sp: bool,
    pct: bool,
    np: bool,
    fo: bool,
    testing_discovery: bool,
    envelope_to: bool,
    envelope_from: bool,
    spf_scope: bool,
    /// Google writes `<result>` before `<selector>`.
    dkim_result_before_selector: bool,
    /// RFC 9990 reporters write disposition `pass` for mail that passed DMARC.
    pass_disposition: bool,
}

fn dialect(style: Style) -> Dialect {
    let base = Dialect {
        declaration: r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        root_attrs: "",
        indent: "  ",
        newline: "\n",
        version: Some("1.0"),
        generator: None,
        adkim_aspf: true,
        sp: true,
        pct: true,
        np: false,
        fo: false,
        testing_discovery: false,
        envelope_to: false,
        envelope_from: true,
        spf_scope: true,
        dkim_result_before_selector: false,
        pass_disposition: false,
    };
    match style {
        Style::Google => Dialect {
            declaration: r#"<?xml version="1.0" encoding="UTF-8" ?>"#,
            version: None,
            np: true,
            envelope_from: false,
            spf_scope: false,
            dkim_result_before_selector: true,
            ..base
        },
        Style::Microsoft => Dialect {
            declaration: r#"<?xml version="1.0"?>"#,
            root_attrs: concat!(
                r#" xmlns:xsd="http://www.w3.org/2001/XMLSchema""#,
                r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#,
            ),
            fo: true,
            envelope_to: true,
            ..base
        },
        Style::Yahoo => Dialect {
            declaration: r#"<?xml version="1.0"?>"#,
            version: None,
            sp: false,
            envelope_from: false,
            spf_scope: false,
            ..base
        },
        Style::MailRu => Dialect {
            declaration: "<?xml version='1.0' encoding='utf-8'?>",
            indent: "",
            newline: "",
            version: None,
            envelope_from: false,
            ..base
        },
        Style::Comcast => Dialect { fo: true, ..base },
        Style::Rfc9990 => Dialect {
            root_attrs: r#" xmlns="urn:ietf:params:xml:ns:dmarc-2.0""#,
            generator: Some("ExampleISP dmarc-reporter 2.1.0"),
            pct: false,
            np: true,
            testing_discovery: true,
            pass_disposition: true,
            ..base
        },
        Style::Fastmail => Dialect {
            declaration: r#"<?xml version="1.0"?>"#,
            indent: "\t",
            adkim_aspf: false,
            fo: true,
            ..base
        },
        Style::Generic => base,
    }
}

/// The report id in the reporter's format (unique per reporter, domain, day and `part`,
/// the report's number among those a reporter sends about one day).
pub fn report_id(seed: u64, rep: &Reporter, r: usize, d: usize, day: u32, part: u64) -> String {
    let mut rng = match part {
        0 => Rng::derive(seed, &[T_REPORT_ID, r as u64, d as u64, u64::from(day)]),
        _ => Rng::derive(seed, &[T_REPORT_ID, r as u64, d as u64, u64::from(day), part]),
    };
    // Reports are generated a few hours after the day ends.
    let generated = day_end(day) + 1 + rng.between(3_600, 6 * 3_600);
    match rep.style {
        // Google: a 19-20 digit decimal number.
        Style::Google => (1_000_000_000_000_000_000 + rng.below(17_000_000_000_000_000_000)).to_string(),
        // Microsoft: 32 lowercase hex digits.
        Style::Microsoft => format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
        // Yahoo: generation time with microseconds.
        Style::Yahoo => format!("{generated}.{:06}", rng.below(1_000_000)),
        // Mail.ru: 19 random digits followed by the generation time.
        Style::MailRu => format!("{:019}{generated}", rng.below(10_000_000_000_000_000_000)),
        Style::Comcast => format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            rng.below(1 << 32),
            rng.below(1 << 16),
            rng.below(1 << 12),
            0x8000 | rng.below(1 << 14),
            rng.below(1 << 48)
        ),
        // RFC 9990 reporter: 25 base-36 characters, like the RFC's sample.
        Style::Rfc9990 => {
            const B36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
            (0..25).map(|_| char::from(*rng.pick(B36))).collect()
        }
        // FastMail: a 9-digit sequence number (also part of its file names).
        Style::Fastmail => (102_675_056 + u64::from(day) * 7_919 + d as u64).to_string(),
        Style::Generic => format!("{}.{}.{:x}", rep.file_prefix, day_start(day), rng.below(1 << 40)),
    }
}

/// A tiny streaming XML writer with the dialect's indentation.
struct Xml<'a> {
    buf: &'a mut Vec<u8>,
    indent: &'static str,
    newline: &'static str,
    depth: usize,
}

impl Xml<'_> {
    fn pad(&mut self) {
        for _ in 0..self.depth {
            self.buf.extend_from_slice(self.indent.as_bytes());
        }
    }

    fn open(&mut self, tag: &str) {
        self.pad();
        self.buf.push(b'<');
        self.buf.extend_from_slice(tag.as_bytes());
        self.buf.push(b'>');
        self.buf.extend_from_slice(self.newline.as_bytes());
        self.depth += 1;
    }

    fn close(&mut self, tag: &str) {
        self.depth -= 1;
        self.pad();
        self.buf.extend_from_slice(b"</");
        self.buf.extend_from_slice(tag.as_bytes());
        self.buf.push(b'>');
        self.buf.extend_from_slice(self.newline.as_bytes());
    }

    /// `<tag>value</tag>`; values are numbers, IPs, or names built from `[a-z0-9.-]` and
    /// the reporters' own fixed strings, none of which need escaping.
    fn leaf(&mut self, tag: &str, value: impl Display) {
        self.pad();
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "<{tag}>{value}</{tag}>");
        self.buf.extend_from_slice(self.newline.as_bytes());
    }
}

/// Envelope recipients' domains in Microsoft's `<envelope_to>`.
const MS_RECIPIENT_DOMAINS: [&str; 4] = ["outlook.com", "hotmail.com", "live.com", "msn.com"];

/// Appends reporter `rep`'s report on `dom` for the window `(begin, end)` to `buf`.
pub fn render(
    rep: &Reporter,
    dom: &Domain,
    (begin, end): (u64, u64),
    report_id: &str,
    recs: &[Rec<'_>],
    buf: &mut Vec<u8>,
) {
    let dl = dialect(rep.style);
    buf.extend_from_slice(dl.declaration.as_bytes());
    buf.push(b'\n');
    let _ = write!(buf, "<feedback{}>", dl.root_attrs);
    buf.extend_from_slice(dl.newline.as_bytes());
    let mut x = Xml { buf, indent: dl.indent, newline: dl.newline, depth: 1 };
    if let Some(v) = dl.version {
        x.leaf("version", v);
    }
    x.open("report_metadata");
    x.leaf("org_name", &rep.org_name);
    x.leaf("email", &rep.email);
    if let Some(extra) = rep.extra_contact_info {
        x.leaf("extra_contact_info", extra);
    }
    x.leaf("report_id", report_id);
    x.open("date_range");
    x.leaf("begin", begin);
    x.leaf("end", end);
    x.close("date_range");
    if let Some(g) = dl.generator {
        x.leaf("generator", g);
    }
    x.close("report_metadata");

    x.open("policy_published");
    x.leaf("domain", &dom.name);
    if dl.adkim_aspf {
        x.leaf("adkim", "r");
        x.leaf("aspf", "r");
    }
    x.leaf("p", dom.p.as_str());
    if dl.sp {
        x.leaf("sp", dom.sp.as_str());
    }
    if dl.pct {
        x.leaf("pct", 100);
    }
    if dl.np {
        x.leaf("np", dom.p.as_str());
    }
    if dl.testing_discovery {
        x.leaf("testing", "n");
        x.leaf("discovery_method", "treewalk");
    }
    if dl.fo {
        x.leaf("fo", 0);
    }
    x.close("policy_published");

    for rec in recs {
        record(&mut x, &dl, dom, rec);
    }
    buf.extend_from_slice(b"</feedback>\n");
}

fn pass_fail(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "fail"
    }
}

fn record(x: &mut Xml<'_>, dl: &Dialect, dom: &Domain, rec: &Rec<'_>) {
    x.open("record");
    x.open("row");
    x.leaf("source_ip", rec.ip);
    x.leaf("count", rec.count);
    x.open("policy_evaluated");
    let dmarc_pass = rec.dmarc_dkim || rec.dmarc_spf;
    let disposition = if dl.pass_disposition && dmarc_pass { "pass" } else { rec.disposition.as_str() };
    x.leaf("disposition", disposition);
    x.leaf("dkim", pass_fail(rec.dmarc_dkim));
    x.leaf("spf", pass_fail(rec.dmarc_spf));
    if let Some((kind, comment)) = rec.reason {
        x.open("reason");
        x.leaf("type", kind);
        x.leaf("comment", comment);
        x.close("reason");
    }
    x.close("policy_evaluated");
    x.close("row");

    x.open("identifiers");
    if dl.envelope_to {
        let h = match rec.ip {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a) as u64,
        };
        x.leaf("envelope_to", MS_RECIPIENT_DOMAINS[(hash(h, &[]) % 4) as usize]);
    }
    if dl.envelope_from {
        x.leaf("envelope_from", rec.envelope_from);
    }
    x.leaf("header_from", &dom.name);
    x.close("identifiers");

    x.open("auth_results");
    for sig in rec.dkim.iter().flatten() {
        x.open("dkim");
        x.leaf("domain", sig.domain);
        if dl.dkim_result_before_selector {
            x.leaf("result", sig.result);
            x.leaf("selector", sig.selector);
        } else {
            x.leaf("selector", sig.selector);
            x.leaf("result", sig.result);
        }
        x.close("dkim");
    }
    x.open("spf");
    x.leaf("domain", rec.envelope_from);
    if dl.spf_scope {
        x.leaf("scope", "mfrom");
    }
    x.leaf("result", rec.spf);
    x.close("spf");
    x.close("auth_results");
    x.close("record");
}
