//! The synthetic world: policy domains, their senders, the reporters, and the address plan.
//!
//! Built once per run from the seed and scale; everything later only reads it. Legitimate
//! senders use the documentation ranges; botnets use many /16s of shared address space:
//!
//! | range | who |
//! |---|---|
//! | 198.51.100.10-33, 2001:db8:10::/48 | example.com's outbound servers (a mail provider) |
//! | 198.51.100.65-70 | receiving MX hosts (TLSRPT `receiving-ip`) |
//! | 192.0.2.25-40 | shop.example.net and example.org outbound |
//! | 192.0.2.50-190, 198.51.100.128-250, 203.0.113.128-250, 2001:db8:20::/48 | other domains' outbound |
//! | 192.0.2.193-222 | reporters' sending MTAs (TLSRPT `sending-mta-ip`) |
//! | 192.0.2.224-231 | the DKIM-only ESP (esp-dkim-only scenario) |
//! | 203.0.113.1-62, 2001:db8:115::/48 | mailing lists and forwarders (shared by all domains) |
//! | 203.0.113.64-111 | ESPs (shared by their customers); .100-.111 the newly onboarded one |
//! | 100.64.0.0/10, 198.18.0.0/15, 2001:db8:f00d::/48 | spoofers and the replay botnet |
//! | 198.18.0.0/15 | small churning forwarders (churning-forwarders scenario), new every day |

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::rng::{hash, Rng};

/// A DMARC policy or disposition value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// `none`
    None,
    /// `quarantine`
    Quarantine,
    /// `reject`
    Reject,
}

impl Disposition {
    /// The report vocabulary for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }
}

/// One sending IP with its share of its group's volume (shares in a group sum to 1).
#[derive(Clone, Debug)]
pub struct Source {
    /// The IP address.
    pub ip: IpAddr,
    /// Share of the group's volume.
    pub weight: f64,
}

/// Shares of a domain's normal volume by traffic class.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// The domain's own outbound servers (SPF and DKIM aligned pass).
    pub own: f64,
    /// Its ESP (SPF aligned via the ESP's bounce subdomain, DKIM aligned).
    pub esp: f64,
    /// Mailing lists and forwarders (DKIM pass, SPF not aligned).
    pub lists: f64,
    /// Own-server mail whose DKIM signature broke in transit (SPF still aligned).
    pub broken_dkim: f64,
}

/// The domain's MTA-STS / TLSRPT setup.
#[derive(Clone, Debug)]
pub struct TlsSetup {
    /// `Some("enforce" | "testing")` for an MTA-STS policy; `None` gives `no-policy-found`.
    pub sts_mode: Option<&'static str>,
    /// MX host names with their addresses.
    pub mx: Vec<(String, Ipv4Addr)>,
    /// Inbound TLS sessions per normal weekday, all reporters together.
    pub sessions: f64,
}

/// A policy domain (the `header_from` domain reports are about).
#[derive(Clone, Debug)]
pub struct Domain {
    /// The domain name.
    pub name: String,
    /// Published `p`.
    pub p: Disposition,
    /// Published `sp`.
    pub sp: Disposition,
    /// The DKIM selector its own servers sign with.
    pub selector: String,
    /// The selector after a rotation (the dkim-rotation scenario).
    pub rotated_selector: String,
    /// Normal weekday volume of legitimate mail, all reporters together.
    pub volume: f64,
    /// Shares of that volume by class.
    pub mix: Mix,
    /// Its own outbound servers.
    pub own: Vec<Source>,
    /// Index into [`World::esps`].
    pub esp: usize,
    /// The envelope (bounce) domain its ESP uses: a subdomain, so SPF aligns (relaxed).
    pub esp_envelope: String,
    /// Mailing lists / forwarders its users' mail goes through: (index into
    /// [`World::lists`], share of the list volume).
    pub lists: Vec<(usize, f64)>,
    /// Share of the domain's mail seen by each DMARC reporter (0: that reporter never
    /// reports on this domain). The baseline reporters' shares sum to 1.
    pub reporter_share: Vec<f64>,
    /// Distinct spoofing IPs per normal weekday, all reporters together.
    pub spoof_ips: f64,
    /// MTA-STS / TLSRPT, if the domain publishes a TLSRPT record.
    pub tls: Option<TlsSetup>,
    /// A per-domain salt for hashes.
    pub salt: u64,
}

impl Domain {
    /// Normal weekday volume of everything claiming to be from the domain, spoofing
    /// included: the reference for "Nx normal volume".
    pub fn normal_volume(&self, spoof_count_mean: f64) -> f64 {
        self.volume + self.spoof_ips * spoof_count_mean
    }
}

/// An email service provider sending on behalf of its customers.
#[derive(Clone, Debug)]
pub struct Esp {
    /// The ESP's own domain (it adds a second DKIM signature with it).
    pub domain: String,
    /// The selector of the ESP's own signature.
    pub own_selector: String,
    /// The selector it signs customers' mail with (d = customer domain).
    pub customer_selector: String,
    /// Its sending IPs.
    pub ips: Vec<Source>,
}

/// A mailing list or forwarding server.
#[derive(Clone, Debug)]
pub struct ListServer {
    /// Its IP.
    pub ip: IpAddr,
    /// Its domain: the envelope_from (SPF domain) and its own DKIM d=.
    pub domain: &'static str,
    /// Whether it modifies messages (subject tag, footer) and so breaks the author's DKIM.
    pub breaks_dkim: bool,
}

/// How a reporter formats and packages its DMARC reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Google: zip, no `<version>`, identifiers without envelope_from, `<np>`.
    Google,
    /// Microsoft (Enterprise Outlook): gzip, xsd/xsi namespaces, envelope_to, `<fo>`.
    Microsoft,
    /// Yahoo: gzip, timestamp-like report_id.
    Yahoo,
    /// Mail.ru: gzip, the whole document on one line.
    MailRu,
    /// Comcast: gzip, envelope_from.
    Comcast,
    /// An RFC 9990 reporter: plain XML in the dmarc-2.0 namespace, `<generator>`, `<np>`,
    /// `<testing>`, `<discovery_method>`, disposition `pass`.
    Rfc9990,
    /// FastMail: gzip, tab indentation, report id in the file name.
    Fastmail,
    /// Smaller receivers added at larger scales.
    Generic,
}

/// How a report file is packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// A zip archive with one `.xml` member.
    Zip,
    /// A gzip stream (`.xml.gz`).
    Gzip,
    /// Uncompressed `.xml`.
    Plain,
}

/// A receiver that sends DMARC aggregate reports.
#[derive(Clone, Debug)]
pub struct Reporter {
    /// Output style.
    pub style: Style,
    /// `<org_name>`.
    pub org_name: String,
    /// `<email>`.
    pub email: String,
    /// `<extra_contact_info>`, if it sends one.
    pub extra_contact_info: Option<&'static str>,
    /// The first part of its file names (`google.com!…`).
    pub file_prefix: String,
    /// Packaging.
    pub container: Container,
    /// Share of the replay flood it receives (botnets aim at the biggest mailbox provider).
    pub flood_share: f64,
}

/// A receiver that sends SMTP TLS reports.
#[derive(Clone, Debug)]
pub struct TlsReporter {
    /// `organization-name`.
    pub organization: &'static str,
    /// `contact-info`.
    pub contact: &'static str,
    /// The first part of its file names.
    pub file_prefix: &'static str,
    /// Whether it is Google (report id and file name conventions differ).
    pub google: bool,
    /// Its sending MTAs.
    pub mtas: Vec<IpAddr>,
    /// Share of a domain's inbound sessions it accounts for.
    pub share: f64,
}

/// Everything the generator draws traffic from.
#[derive(Clone, Debug)]
pub struct World {
    /// Policy domains; 0 is example.com, 1 shop.example.net, 2 example.org.
    pub domains: Vec<Domain>,
    /// DMARC reporters; the joining reporter (if any) is last.
    pub reporters: Vec<Reporter>,
    /// Index of the joining reporter, if the scenario has one.
    pub joining_reporter: Option<usize>,
    /// TLSRPT reporters.
    pub tls_reporters: Vec<TlsReporter>,
    /// ESPs in use from day 0.
    pub esps: Vec<Esp>,
    /// The ESP onboarded in the new-esp scenario.
    pub new_esp: Esp,
    /// The ESP of the esp-dkim-only scenario: signs with its customers' keys, bounces
    /// with its own domain.
    pub signer_esp: Esp,
    /// Mailing lists and forwarders.
    pub lists: Vec<ListServer>,
    /// Throwaway envelope domains of spammers and replayers.
    pub junk: Vec<String>,
    /// The replay botnet (used only by the replay scenarios), heaviest senders not first:
    /// in a random order, so any prefix spans many networks.
    pub botnet: Vec<Source>,
    /// The /16 networks the botnet lives in, as `100.X.0.0/16` second octets.
    pub botnet_networks: Vec<u8>,
    /// The scale factor of the run.
    pub scale: f64,
}

/// Mean number of messages per spoofing IP per day at scale 1 (`1 + geometric(0.55)`).
pub const SPOOF_COUNT_MEAN: f64 = 1.0 + 0.55 / 0.45;

// Stream tags, so that each part of the world draws from its own stream.
const T_DOMAIN: u64 = 1;
const T_REPORTER: u64 = 2;
const T_BOTNET: u64 = 3;
const T_MISC: u64 = 4;

/// Mailing-list and forwarder domains; three servers each.
const LIST_DOMAINS: [&str; 8] = [
    "lists.example.edu",
    "groups.community.example",
    "lists.opensource.example",
    "fwd.alumni.example.edu",
    "listserv.uni.example",
    "mail.forwarder.test",
    "lists.hobby.test",
    "discuss.project.example",
];

/// Names for domains beyond the first three (scale > 1).
const STEMS: [&str; 32] = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "vandelay",
    "wonka",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "oscorp",
    "aperture",
    "monarch",
    "nakatomi",
    "piedpiper",
    "virtucon",
    "contoso",
    "fabrikam",
    "northwind",
    "tailspin",
    "woodgrove",
    "adatum",
    "litware",
    "proseware",
    "lucerne",
    "wingtip",
    "fourthcoffee",
    "alpine",
    "coho",
    "trey",
];

const SELECTORS: [&str; 7] = ["s2026", "selector1", "google", "k1", "mail", "dkim2026", "default"];

impl World {
    /// Builds the world for `seed` at `scale`; `joining` adds the late-joining reporter.
    pub fn build(seed: u64, scale: f64, joining: bool) -> Self {
        let mut reporters = core_reporters();
        let extra = if scale > 1.0 { ((scale - 1.0) / 3.0).ceil() as usize } else { 0 };
        for i in 0..extra {
            reporters.push(generic_reporter(i));
        }
        let base_reporters = reporters.len();
        let joining_reporter = joining.then(|| {
            reporters.push(fastmail());
            reporters.len() - 1
        });

        let esps = vec![
            esp("postboost.example", "pb1", "pb", 64, 10, seed),
            esp("sendwave.example", "sw1", "s1", 74, 10, seed),
            esp("mailcannon.example", "mc1", "mc", 84, 10, seed),
        ];
        let new_esp = esp("nimbusmail.example", "nm1", "nm2026", 100, 12, seed);
        let signer_esp = Esp {
            domain: "mandrel.example".to_owned(),
            own_selector: "mte1".to_owned(),
            customer_selector: "mte".to_owned(),
            ips: weighted(
                (224..232).map(|h| v4(192, 0, 2, h)).collect(),
                &mut Rng::derive(seed, &[T_MISC, 224]),
            ),
        };
        let lists = list_servers(seed);
        let domain_count = (3.0 * scale).ceil().max(1.0) as usize;
        let mut pool = OwnPool::default();
        let domains = (0..domain_count)
            .map(|i| build_domain(seed, scale, i, &reporters, base_reporters, &mut pool))
            .collect();
        let (botnet, botnet_networks) = botnet(seed, scale);
        Self {
            domains,
            reporters,
            joining_reporter,
            tls_reporters: tls_reporters(),
            esps,
            new_esp,
            signer_esp,
            lists,
            junk: junk_domains(seed, 160),
            botnet,
            botnet_networks,
            scale,
        }
    }

    /// Mean messages per spoofing IP per day at this scale.
    pub fn spoof_count_mean(&self) -> f64 {
        SPOOF_COUNT_MEAN * self.scale.sqrt()
    }

    /// The i-th address of domain `d`'s spoofer pool (stable across days, so a botnet's
    /// IPs recur): 92% IPv4 in 100.64.0.0/10 and 198.18.0.0/15, 8% IPv6.
    pub fn spoofer_ip(&self, d: usize, i: u64) -> IpAddr {
        let h = hash(self.domains[d].salt, &[T_MISC, i]);
        match h % 100 {
            0..=7 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xf00d,
                (h >> 8) as u16,
                0,
                0,
                0,
                (h >> 24) as u16 | 1,
            )),
            8..=27 => v4(198, 18 + (h >> 8) as u8 % 2, (h >> 16) as u8, host(h >> 24)),
            _ => v4(100, 64 + (h >> 8) as u8 % 64, (h >> 16) as u8, host(h >> 24)),
        }
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// A host octet in 1..=254 (no network or broadcast-looking addresses).
fn host(h: u64) -> u8 {
    (h % 254) as u8 + 1
}

/// Turns raw weights into shares that sum to 1.
fn normalize(sources: &mut [Source]) {
    let total: f64 = sources.iter().map(|s| s.weight).sum();
    if total > 0.0 {
        sources.iter_mut().for_each(|s| s.weight /= total);
    }
}

/// Heavy-tailed weights (1/(k+2), jittered): a few busy servers and a long tail.
fn weighted(ips: Vec<IpAddr>, rng: &mut Rng) -> Vec<Source> {
    let mut sources: Vec<Source> = ips
        .into_iter()
        .enumerate()
        .map(|(k, ip)| Source { ip, weight: rng.uniform(0.7, 1.3) / (k as f64 + 2.0) })
        .collect();
    normalize(&mut sources);
    sources
}

fn core_reporters() -> Vec<Reporter> {
    let r = |style, org: &str, email: &str, extra, prefix: &str, container, flood_share| Reporter {
        style,
        org_name: org.to_owned(),
        email: email.to_owned(),
        extra_contact_info: extra,
        file_prefix: prefix.to_owned(),
        container,
        flood_share,
    };
    vec![
        r(
            Style::Google,
            "google.com",
            "noreply-dmarc-support@google.com",
            Some("https://support.google.com/a/answer/2466580"),
            "google.com",
            Container::Zip,
            0.90,
        ),
        r(
            Style::Microsoft,
            "Enterprise Outlook",
            "dmarcreport@microsoft.com",
            None,
            "enterprise.protection.outlook.com",
            Container::Gzip,
            0.045,
        ),
        r(Style::Yahoo, "Yahoo", "dmarchelp@yahooinc.com", None, "yahoo.com", Container::Gzip, 0.04),
        r(
            Style::MailRu,
            "Mail.Ru",
            "dmarc_support@corp.mail.ru",
            Some("http://help.mail.ru/mail-help"),
            "mail.ru",
            Container::Gzip,
            0.005,
        ),
        r(
            Style::Comcast,
            "comcast.net",
            "dmarc_agg@comcast.net",
            None,
            "comcast.net",
            Container::Gzip,
            0.006,
        ),
        r(
            Style::Rfc9990,
            "isp.example",
            "dmarc-reports@isp.example",
            Some("https://isp.example/postmaster"),
            "isp.example",
            Container::Plain,
            0.004,
        ),
    ]
}

/// Base share of legitimate mail per core reporter, before a per-domain tilt.
const CORE_SHARE: [f64; 6] = [0.46, 0.22, 0.13, 0.04, 0.05, 0.03];
/// Base share of each extra (generic) reporter.
const GENERIC_SHARE: f64 = 0.02;
/// The joining reporter's share, on top of the baseline reporters' 1.0.
const JOINING_SHARE: f64 = 0.30;

fn generic_reporter(i: usize) -> Reporter {
    let name = format!("mx{}.mailhost{}.example", i % 3 + 1, i + 1);
    Reporter {
        style: Style::Generic,
        email: format!("dmarc-noreply@{name}"),
        org_name: name.clone(),
        extra_contact_info: None,
        file_prefix: name,
        container: [Container::Plain, Container::Gzip, Container::Zip][i % 3],
        flood_share: 0.0,
    }
}

fn fastmail() -> Reporter {
    Reporter {
        style: Style::Fastmail,
        org_name: "FastMail Pty Ltd".to_owned(),
        email: "reports@fastmaildmarc.com".to_owned(),
        extra_contact_info: Some("https://fastmail.com/"),
        file_prefix: "fastmail.com".to_owned(),
        container: Container::Gzip,
        flood_share: 0.0,
    }
}

fn tls_reporters() -> Vec<TlsReporter> {
    let mtas = |first: u8, n: u8| (first..first + n).map(|h| v4(192, 0, 2, h)).collect();
    vec![
        TlsReporter {
            organization: "Google Inc.",
            contact: "smtp-tls-reporting@google.com",
            file_prefix: "google.com",
            google: true,
            mtas: mtas(193, 12),
            share: 0.6,
        },
        TlsReporter {
            organization: "Microsoft Corporation",
            contact: "tlsrpt-noreply@microsoft.com",
            file_prefix: "microsoft.com",
            google: false,
            mtas: mtas(211, 8),
            share: 0.4,
        },
    ]
}

fn esp(name: &str, own: &str, customer: &str, first: u8, n: u8, seed: u64) -> Esp {
    let mut rng = Rng::derive(seed, &[T_MISC, u64::from(first)]);
    let ips = (first..first + n).map(|h| v4(203, 0, 113, h)).collect();
    Esp {
        domain: name.to_owned(),
        own_selector: own.to_owned(),
        customer_selector: customer.to_owned(),
        ips: weighted(ips, &mut rng),
    }
}

fn list_servers(seed: u64) -> Vec<ListServer> {
    let mut rng = Rng::derive(seed, &[T_MISC, 0x115]);
    let mut out = Vec::new();
    for (i, domain) in LIST_DOMAINS.iter().enumerate() {
        for j in 0..3u16 {
            let n = (i * 3) as u16 + j;
            let ip = if n % 8 == 7 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x115, 0, 0, 0, 0, n + 1))
            } else {
                v4(203, 0, 113, n as u8 + 1)
            };
            out.push(ListServer {
                ip,
                domain,
                // About one forwarder in ten rewrites messages and breaks DKIM.
                breaks_dkim: rng.chance(0.1),
            });
        }
    }
    out
}

/// Spammers' throwaway envelope domains: pronounceable, with digits, in reserved TLDs.
fn junk_domains(seed: u64, n: usize) -> Vec<String> {
    const C: &[u8] = b"bdfgklmnprstvz";
    const V: &[u8] = b"aeiou";
    const TLD: [&str; 3] = ["test", "example", "invalid"];
    let mut rng = Rng::derive(seed, &[T_MISC, 0x7a7a]);
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut s = String::new();
        for _ in 0..rng.between(2, 4) {
            s.push(char::from(*rng.pick(C)));
            s.push(char::from(*rng.pick(V)));
        }
        if rng.chance(0.5) {
            s.push_str(&rng.between(2, 99).to_string());
        }
        let name = format!("{s}.{}", rng.pick(&TLD));
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

/// The replay botnet: ~600 IPs (x sqrt(scale)) spread over 40 /16s of 100.64.0.0/10.
fn botnet(seed: u64, scale: f64) -> (Vec<Source>, Vec<u8>) {
    let mut rng = Rng::derive(seed, &[T_BOTNET]);
    // Pick 40 of the 64 /16s by a partial Fisher–Yates shuffle.
    let mut nets: Vec<u8> = (64..128).collect();
    for i in 0..40 {
        let j = i + rng.below((nets.len() - i) as u64) as usize;
        nets.swap(i, j);
    }
    nets.truncate(40);
    let n = (600.0 * scale.max(0.1).sqrt()).round() as usize;
    let mut seen = BTreeSet::new();
    let mut ips = Vec::with_capacity(n);
    while ips.len() < n {
        let net = nets[ips.len() % nets.len()];
        let ip = v4(100, net, rng.below(256) as u8, host(rng.next_u64()));
        if seen.insert(ip) {
            ips.push(ip);
        }
    }
    // Heavy-tailed volumes (rented VPSes next to hacked home routers), in shuffled order.
    let mut sources = weighted(ips, &mut rng);
    for i in (1..sources.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        sources.swap(i, j);
    }
    nets.sort_unstable();
    (sources, nets)
}

/// Hands out outbound addresses for domains beyond the first three.
#[derive(Default)]
struct OwnPool {
    next: usize,
}

impl OwnPool {
    const V4: [(u8, u8, u8, u8, u8); 3] =
        [(192, 0, 2, 50, 190), (198, 51, 100, 128, 250), (203, 0, 113, 128, 250)];

    fn take(&mut self) -> IpAddr {
        let mut k = self.next;
        self.next += 1;
        for (a, b, c, lo, hi) in Self::V4 {
            let span = usize::from(hi - lo) + 1;
            if k < span {
                return v4(a, b, c, lo + k as u8);
            }
            k -= span;
        }
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, (k >> 16) as u16 + 1, k as u16))
    }
}

/// What distinguishes one domain before scaling; everything else is drawn.
struct Spec {
    name: String,
    p: Disposition,
    selector: String,
    /// Normal weekday volume at scale 1.
    volume: f64,
    mix: Mix,
    own: Vec<IpAddr>,
    esp: usize,
    list_count: usize,
    tls: Option<TlsSetup>,
}

/// example.com (a mail provider, the victim), shop.example.net, example.org.
fn core_spec(i: usize) -> Spec {
    let mx = |host: &str, ip: u8| (host.to_owned(), Ipv4Addr::new(198, 51, 100, ip));
    match i {
        0 => Spec {
            name: "example.com".to_owned(),
            p: Disposition::Reject,
            selector: "s2026".to_owned(),
            volume: 30_000.0,
            mix: Mix { own: 0.80, esp: 0.06, lists: 0.14, broken_dkim: 0.004 },
            own: (10..34)
                .map(|h| v4(198, 51, 100, h))
                .chain((0x25..0x29).map(|h| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, h))))
                .collect(),
            esp: 0,
            list_count: 16,
            // A provider receives far more than it sends.
            tls: Some(TlsSetup {
                sts_mode: Some("enforce"),
                mx: vec![mx("mx1.example.com", 65), mx("mx2.example.com", 66)],
                sessions: 90_000.0,
            }),
        },
        1 => Spec {
            name: "shop.example.net".to_owned(),
            p: Disposition::Quarantine,
            selector: "k2026".to_owned(),
            volume: 6_000.0,
            mix: Mix { own: 0.47, esp: 0.50, lists: 0.03, broken_dkim: 0.002 },
            own: (25..28).map(|h| v4(192, 0, 2, h)).collect(),
            esp: 1,
            list_count: 4,
            tls: Some(TlsSetup {
                sts_mode: Some("testing"),
                mx: vec![mx("mx.shop.example.net", 70)],
                sessions: 2_500.0,
            }),
        },
        _ => Spec {
            name: "example.org".to_owned(),
            p: Disposition::None,
            selector: "mx2026".to_owned(),
            volume: 1_200.0,
            mix: Mix { own: 0.45, esp: 0.20, lists: 0.35, broken_dkim: 0.002 },
            own: vec![v4(192, 0, 2, 40)],
            esp: 2,
            list_count: 10,
            tls: None,
        },
    }
}

/// The k-th domain beyond the first three: Zipf-like volumes (a few large, many small).
fn extra_spec(k: usize, rng: &mut Rng, pool: &mut OwnPool) -> Spec {
    let stem = STEMS[k % STEMS.len()];
    let name = match k / STEMS.len() {
        0 => format!("{stem}.example"),
        1 => format!("{stem}.test"),
        n => format!("{stem}{n}.example"),
    };
    let own_share = rng.uniform(0.3, 0.8);
    let lists = rng.uniform(0.02, 0.15);
    let volume = 8_000.0 / (1.0 + k as f64 / 4.0) * rng.uniform(0.6, 1.4);
    // One in five publishes TLSRPT, half of those with an MTA-STS policy.
    let tls = (k % 5 == 1).then(|| TlsSetup {
        sts_mode: (k % 10 == 1).then_some("enforce"),
        mx: vec![(format!("mx1.{name}"), Ipv4Addr::new(198, 51, 100, 67))],
        sessions: volume * 0.8,
    });
    Spec {
        p: [Disposition::Reject, Disposition::Quarantine, Disposition::None][k % 3],
        selector: rng.pick(&SELECTORS).to_string(),
        volume,
        mix: Mix { own: own_share, esp: 1.0 - own_share - lists, lists, broken_dkim: 0.003 },
        own: (0..rng.between(1, 4)).map(|_| pool.take()).collect(),
        esp: rng.below(3) as usize,
        list_count: rng.between(2, 6) as usize,
        tls,
        name,
    }
}

fn build_domain(
    seed: u64,
    scale: f64,
    i: usize,
    reporters: &[Reporter],
    base_reporters: usize,
    pool: &mut OwnPool,
) -> Domain {
    let mut rng = Rng::derive(seed, &[T_DOMAIN, i as u64]);
    let salt = rng.next_u64();
    let spec = if i < 3 { core_spec(i) } else { extra_spec(i - 3, &mut rng, pool) };
    let volume = spec.volume * scale;
    let own = weighted(spec.own, &mut rng);

    // Which list servers the domain's users post through, and how much each carries.
    let mut list_idx: Vec<usize> = (0..LIST_DOMAINS.len() * 3).collect();
    for a in 0..spec.list_count {
        let b = a + rng.below((list_idx.len() - a) as u64) as usize;
        list_idx.swap(a, b);
    }
    let mut list_w: Vec<f64> = (0..spec.list_count).map(|_| rng.uniform(0.2, 1.0)).collect();
    let total: f64 = list_w.iter().sum();
    list_w.iter_mut().for_each(|w| *w /= total);
    let lists = list_idx.into_iter().zip(list_w).collect();

    // Reporter shares: the core mix tilted per domain; small receivers see the small
    // domains only now and then (and send no report on a day without mail).
    let mut share: Vec<f64> = reporters
        .iter()
        .enumerate()
        .map(|(r, rep)| {
            let mut rr = Rng::derive(seed, &[T_REPORTER, i as u64, r as u64]);
            let tilt = rr.uniform(0.7, 1.3);
            let (base, coverage) = match (rep.style, i) {
                (Style::Fastmail, _) => (JOINING_SHARE, 1.0),
                (Style::Generic, _) => (GENERIC_SHARE, 0.03),
                (_, 0..=1) => (CORE_SHARE[r], 1.0),
                // example.org: only the big three report on it.
                (_, 2) => (CORE_SHARE[r], if r < 3 { 1.0 } else { 0.0 }),
                _ => (CORE_SHARE[r], [1.0, 1.0, 0.4, 0.05, 0.1, 0.05][r]),
            };
            if rr.chance(coverage) {
                base * tilt
            } else {
                0.0
            }
        })
        .collect();
    // The baseline reporters' shares sum to 1; the joining reporter's comes on top.
    let base_total: f64 = share[..base_reporters].iter().sum();
    share[..base_reporters].iter_mut().for_each(|s| *s /= base_total);

    let tls = spec.tls.map(|t| TlsSetup { sessions: t.sessions * scale, ..t });
    let esp_envelope = format!("em{}.{}", rng.between(1000, 9999), spec.name);
    Domain {
        rotated_selector: format!("{}b", spec.selector),
        selector: spec.selector,
        p: spec.p,
        sp: spec.p,
        // Spoofing grows with the square root of a domain's size: big brands attract more
        // campaigns, but not proportionally.
        spoof_ips: 1.4 * volume.sqrt(),
        volume,
        mix: spec.mix,
        own,
        esp: spec.esp,
        esp_envelope,
        lists,
        reporter_share: share,
        tls,
        salt,
        name: spec.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_world_has_the_documented_shape() {
        let w = World::build(1, 1.0, false);
        let names: Vec<&str> = w.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["example.com", "shop.example.net", "example.org"]);
        assert_eq!(w.reporters.len(), 6);
        assert_eq!(w.domains[0].selector, "s2026");
        for d in &w.domains {
            let total: f64 = d.reporter_share.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{}: {total}", d.name);
            let own: f64 = d.own.iter().map(|s| s.weight).sum();
            assert!((own - 1.0).abs() < 1e-9);
        }
        assert_eq!(w.botnet.len(), 600);
        assert_eq!(w.botnet_networks.len(), 40);
        // Any 100-IP prefix of the botnet already spans many networks.
        let nets: BTreeSet<IpAddr> = w.botnet[..100]
            .iter()
            .map(|s| match s.ip {
                IpAddr::V4(a) => v4(a.octets()[0], a.octets()[1], 0, 0),
                IpAddr::V6(_) => s.ip,
            })
            .collect();
        assert!(nets.len() >= 30, "{}", nets.len());
    }

    #[test]
    fn scale_grows_domains_and_reporters_and_joining_adds_one() {
        let w = World::build(1, 30.0, true);
        assert_eq!(w.domains.len(), 90);
        assert_eq!(w.reporters.len(), 6 + 10 + 1);
        assert_eq!(w.joining_reporter, Some(16));
        let unique: BTreeSet<&str> = w.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(unique.len(), 90);
        let own: BTreeSet<IpAddr> = w.domains.iter().flat_map(|d| d.own.iter().map(|s| s.ip)).collect();
        let total: usize = w.domains.iter().map(|d| d.own.len()).sum();
        assert_eq!(own.len(), total, "outbound addresses are not shared");
    }
}
