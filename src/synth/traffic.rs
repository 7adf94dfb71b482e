//! Traffic model: the records one reporter sees for one policy domain on one day, and the
//! TLS sessions behind one TLSRPT report.
//!
//! Input: the [`World`] and the scenario's [`Plan`]. Output: [`Rec`]s borrowing their
//! strings from the world (no allocation per record), plus exact per-class message totals
//! in a [`Tally`], which tests and `labels.json` use instead of re-parsing the XML.
//! Each (domain, reporter, day, class) draws from its own random stream, so a scenario's
//! extra traffic leaves the baseline's numbers untouched.

use std::net::{IpAddr, Ipv4Addr};

use super::calendar::is_weekend;
use super::rng::{hash, Rng};
use super::scenario::{Plan, FORWARDED_SHARE};
use super::world::{Disposition, Domain, Source, Style, World};

/// What kind of sender a record comes from (ground truth, never written to reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The domain's own servers.
    Own,
    /// Its ESP.
    Esp,
    /// Mailing lists and forwarders.
    List,
    /// Own-server mail whose DKIM signature broke.
    BrokenDkim,
    /// Spoofing (DMARC fail).
    Spoof,
    /// DKIM replay.
    Replay,
    /// The newly onboarded ESP (SPF-aligned, or DKIM-only in the esp-dkim-only scenario).
    NewEsp,
    /// Small forwarders that change every day (DKIM pass, SPF unaligned).
    Forwarded,
}

/// Number of [`Class`] values.
pub const CLASSES: usize = 8;

/// One DKIM auth result.
#[derive(Clone, Copy, Debug)]
pub struct Dkim<'w> {
    /// `d=`.
    pub domain: &'w str,
    /// `s=`.
    pub selector: &'w str,
    /// `pass` or `fail`.
    pub result: &'static str,
}

/// One DMARC aggregate record.
#[derive(Clone, Copy, Debug)]
pub struct Rec<'w> {
    /// `<source_ip>`.
    pub ip: IpAddr,
    /// `<count>`.
    pub count: u64,
    /// `<envelope_from>` and the SPF domain.
    pub envelope_from: &'w str,
    /// SPF result for `envelope_from`.
    pub spf: &'static str,
    /// Up to two DKIM signatures.
    pub dkim: [Option<Dkim<'w>>; 2],
    /// DMARC-aligned DKIM pass (`policy_evaluated/dkim`).
    pub dmarc_dkim: bool,
    /// DMARC-aligned SPF pass (`policy_evaluated/spf`).
    pub dmarc_spf: bool,
    /// Applied disposition.
    pub disposition: Disposition,
    /// `<reason>` type and comment, when the receiver overrode the policy.
    pub reason: Option<(&'static str, &'static str)>,
    /// Ground truth.
    pub class: Class,
}

/// One TLSRPT failure-details entry.
#[derive(Clone, Debug)]
pub struct TlsFailure<'w> {
    /// `result-type`.
    pub result_type: &'static str,
    /// `sending-mta-ip` and `receiving-mx-hostname` / `receiving-ip`, when per-MX.
    pub endpoint: Option<(IpAddr, &'w str, Ipv4Addr)>,
    /// `failure-reason-code`, if any.
    pub reason_code: Option<&'static str>,
    /// `failed-session-count`.
    pub count: u64,
}

/// The sessions behind one TLSRPT report.
#[derive(Clone, Debug, Default)]
pub struct TlsDay<'w> {
    /// `total-successful-session-count`.
    pub successful: u64,
    /// `failure-details`; their counts sum to `total-failure-session-count`.
    pub failures: Vec<TlsFailure<'w>>,
}

impl TlsDay<'_> {
    /// `total-failure-session-count`.
    pub fn failed(&self) -> u64 {
        self.failures.iter().map(|f| f.count).sum()
    }
}

/// Exact message and session totals per domain and day (the generator's ground truth).
#[derive(Clone, Debug)]
pub struct Tally {
    days: usize,
    reporters: usize,
    by_class: Vec<[u64; CLASSES]>,
    by_reporter: Vec<u64>,
    replay_by_reporter: Vec<u64>,
    tls: Vec<(u64, u64)>,
}

impl Tally {
    /// An empty tally.
    pub fn new(domains: usize, days: u32, reporters: usize) -> Self {
        let n = domains * days as usize;
        Self {
            days: days as usize,
            reporters,
            by_class: vec![[0; CLASSES]; n],
            by_reporter: vec![0; n * reporters],
            replay_by_reporter: vec![0; n * reporters],
            tls: vec![(0, 0); n],
        }
    }

    fn slot(&self, d: usize, day: u32) -> usize {
        d * self.days + day as usize
    }

    /// Adds another tally (of the same shape) into this one.
    pub fn merge(&mut self, other: &Tally) {
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        for (a, b) in self.by_class.iter_mut().zip(&other.by_class) {
            add(a, b);
        }
        add(&mut self.by_reporter, &other.by_reporter);
        add(&mut self.replay_by_reporter, &other.replay_by_reporter);
        for (a, b) in self.tls.iter_mut().zip(&other.tls) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }

    /// Adds one report's records.
    pub fn add(&mut self, d: usize, r: usize, day: u32, recs: &[Rec<'_>]) {
        let s = self.slot(d, day);
        for rec in recs {
            self.by_class[s][rec.class as usize] += rec.count;
            self.by_reporter[s * self.reporters + r] += rec.count;
            if rec.class == Class::Replay {
                self.replay_by_reporter[s * self.reporters + r] += rec.count;
            }
        }
    }

    /// Adds one TLS report's sessions.
    pub fn add_tls(&mut self, d: usize, day: u32, t: &TlsDay<'_>) {
        let s = self.slot(d, day);
        self.tls[s].0 += t.successful + t.failed();
        self.tls[s].1 += t.failed();
    }

    /// Messages of `class` for domain `d` on `day`, all reporters together.
    pub fn class(&self, d: usize, day: u32, class: Class) -> u64 {
        self.by_class[self.slot(d, day)][class as usize]
    }

    /// All messages for domain `d` on `day`.
    pub fn total(&self, d: usize, day: u32) -> u64 {
        self.by_class[self.slot(d, day)].iter().sum()
    }

    /// Messages for domain `d` on `day` in reports from reporter `r`.
    pub fn at_reporter(&self, d: usize, day: u32, r: usize) -> u64 {
        self.by_reporter[self.slot(d, day) * self.reporters + r]
    }

    /// Replayed messages for domain `d` on `day` in reports from reporter `r`.
    pub fn replay_at_reporter(&self, d: usize, day: u32, r: usize) -> u64 {
        self.replay_by_reporter[self.slot(d, day) * self.reporters + r]
    }

    /// TLS (sessions, failed sessions) for domain `d` on `day`.
    pub fn tls(&self, d: usize, day: u32) -> (u64, u64) {
        self.tls[self.slot(d, day)]
    }
}

// Stream tags.
const T_DAY: u64 = 10;
const T_OWN: u64 = 11;
const T_ESP: u64 = 12;
const T_LIST: u64 = 13;
const T_SPOOF: u64 = 14;
const T_REPLAY: u64 = 15;
const T_NEW_ESP: u64 = 16;
const T_TLS: u64 = 17;
const T_FORWARD: u64 = 18;
const T_SIGNER: u64 = 19;

/// Small forwarders of a domain per normal weekday at scale 1, all reporters together.
const FORWARDERS: f64 = 320.0;
/// Share of the DKIM-only ESP's addresses sending on a given day (it rotates its pool).
const SIGNER_ACTIVE: f64 = 0.75;

/// Weekend volume relative to a weekday (people send less mail on weekends).
const WEEKEND: f64 = 0.4;
/// Spoofing barely follows the week.
const WEEKEND_SPOOF: f64 = 0.85;
/// Spoofer IPs of one domain are drawn from a pool of this many (a power of two, so an
/// odd stride visits distinct addresses), so the same bots recur over the weeks.
const SPOOF_POOL: u64 = 1 << 14;
/// A spike's extra IPs: the IP count grows by `m / SPIKE_COUNT` and messages per IP by
/// `SPIKE_COUNT`, for a volume multiplier `m`.
const SPIKE_COUNT: f64 = 4.0;

/// Share of (own server, reporter, day) triples with some broken-DKIM messages.
const BROKEN_DKIM_ODDS: f64 = 0.2;

/// Generates records and TLS sessions from a world and a plan.
pub struct Traffic<'w> {
    world: &'w World,
    plan: &'w Plan,
    seed: u64,
}

impl<'w> Traffic<'w> {
    /// The traffic model for `world` under `plan`.
    pub fn new(world: &'w World, plan: &'w Plan, seed: u64) -> Self {
        Self { world, plan, seed }
    }

    fn rng(&self, tags: &[u64]) -> Rng {
        Rng::derive(self.seed, tags)
    }

    /// The domain's day-level noise, shared by all its reporters and classes.
    fn day_noise(&self, d: usize, day: u32) -> f64 {
        self.rng(&[T_DAY, d as u64, u64::from(day)]).noise(0.07, 0.5)
    }

    /// Whether reporter `r` sends reports on `day` at all.
    pub fn reporter_active(&self, r: usize, day: u32) -> bool {
        self.world.joining_reporter != Some(r) || day >= self.plan.event_day()
    }

    /// The selector domain `d`'s mail from sender `key` is signed with on `day`.
    fn selector(&self, dom: &'w Domain, d: usize, day: u32, key: u64) -> &'w str {
        let rotated = self.plan.rotated_share(d, day);
        let u = (hash(dom.salt, &[key]) >> 11) as f64 / (1u64 << 53) as f64;
        if u < rotated {
            &dom.rotated_selector
        } else {
            &dom.selector
        }
    }

    /// Fills `out` with reporter `r`'s records for domain `d` on `day` (empty when the
    /// reporter saw nothing, in which case no report is sent).
    pub fn dmarc(&self, d: usize, r: usize, day: u32, out: &mut Vec<Rec<'w>>) {
        out.clear();
        let dom = &self.world.domains[d];
        let share = dom.reporter_share[r];
        if share == 0.0 || !self.reporter_active(r, day) {
            return;
        }
        let (dd, rr, dy) = (d as u64, r as u64, u64::from(day));
        let season = if is_weekend(day) { WEEKEND } else { 1.0 };
        let noise = self.day_noise(d, day);
        let legit = dom.volume * season * noise * share;
        let pass =
            |ip: IpAddr, count: u64, envelope_from: &'w str, dkim: [Option<Dkim<'w>>; 2], class: Class| Rec {
                ip,
                count,
                envelope_from,
                spf: "pass",
                dkim,
                dmarc_dkim: true,
                dmarc_spf: true,
                disposition: Disposition::None,
                reason: None,
                class,
            };

        // Own servers: SPF and DKIM aligned. Now and then (one server-day in five) a few
        // messages arrive with a broken signature (a relay rewrote them); SPF still aligns.
        let mut rng = self.rng(&[T_OWN, dd, rr, dy]);
        let broken_share = dom.mix.broken_dkim / dom.mix.own / BROKEN_DKIM_ODDS;
        for (i, src) in dom.own.iter().enumerate() {
            let x = legit * dom.mix.own * src.weight * rng.noise(0.25, 0.1);
            let broken = if rng.chance(BROKEN_DKIM_ODDS) { rng.round(x * broken_share) } else { 0 };
            let count = rng.round(x).saturating_sub(broken);
            let selector = self.selector(dom, d, day, i as u64);
            let sig = |result| Some(Dkim { domain: &dom.name, selector, result });
            if count > 0 {
                out.push(pass(src.ip, count, &dom.name, [sig("pass"), None], Class::Own));
            }
            if broken > 0 {
                out.push(Rec {
                    dmarc_dkim: false,
                    class: Class::BrokenDkim,
                    ..pass(src.ip, broken, &dom.name, [sig("fail"), None], Class::Own)
                });
            }
        }

        // The ESP: aligned SPF through its bounce subdomain, the customer's DKIM plus its own.
        let esp = &self.world.esps[dom.esp];
        let mut rng = self.rng(&[T_ESP, dd, rr, dy]);
        let esp_sigs = [
            Some(Dkim { domain: &dom.name, selector: &esp.customer_selector, result: "pass" }),
            Some(Dkim { domain: &esp.domain, selector: &esp.own_selector, result: "pass" }),
        ];
        for src in &esp.ips {
            let x = legit * dom.mix.esp * src.weight * rng.noise(0.3, 0.1);
            let count = rng.round(x);
            if count > 0 {
                out.push(pass(src.ip, count, &dom.esp_envelope, esp_sigs, Class::Esp));
            }
        }

        // Newly onboarded ESP: new IPs and selector, SPF aligned through the domain's own
        // SPF record (`include:`), so its envelope_from is the domain itself.
        let new_share = self.plan.new_esp_share(d, day);
        if new_share > 0.0 {
            let ne = &self.world.new_esp;
            let mut rng = self.rng(&[T_NEW_ESP, dd, rr, dy]);
            let sigs = [
                Some(Dkim { domain: &dom.name, selector: &ne.customer_selector, result: "pass" }),
                Some(Dkim { domain: &ne.domain, selector: &ne.own_selector, result: "pass" }),
            ];
            let vol = dom.volume * season * noise * share * new_share;
            for src in &ne.ips {
                let x = vol * src.weight * rng.noise(0.3, 0.1);
                let count = rng.round(x);
                if count > 0 {
                    out.push(pass(src.ip, count, &dom.name, sigs, Class::NewEsp));
                }
            }
        }

        // Mailing lists and forwarders: the author's DKIM survives (unless the list
        // rewrites the message), SPF passes for the list's own envelope domain only.
        let mut rng = self.rng(&[T_LIST, dd, rr, dy]);
        let list_vol = legit * dom.mix.lists * self.plan.list_growth(d, day);
        let arc_override = matches!(self.world.reporters[r].style, Style::Google | Style::Microsoft);
        for &(li, w) in &dom.lists {
            let list = &self.world.lists[li];
            let x = list_vol * w * rng.noise(0.2, 0.1);
            let count = rng.round(x);
            if count == 0 {
                continue;
            }
            let selector = self.selector(dom, d, day, 1000 + li as u64);
            let author = if list.breaks_dkim { "fail" } else { "pass" };
            let sigs = [
                Some(Dkim { domain: &dom.name, selector, result: author }),
                Some(Dkim { domain: list.domain, selector: "list", result: "pass" }),
            ];
            let (disposition, reason) = match (list.breaks_dkim, arc_override) {
                (false, _) => (Disposition::None, None),
                // Google and Microsoft honour the list's ARC seal and deliver anyway.
                (true, true) => (Disposition::None, Some(("local_policy", "arc=pass"))),
                (true, false) => (dom.p, None),
            };
            out.push(Rec {
                dmarc_spf: false,
                dmarc_dkim: !list.breaks_dkim,
                disposition,
                reason,
                ..pass(list.ip, count, list.domain, sigs, Class::List)
            });
        }

        self.signer_esp(dom, d, r, day, share, out);
        self.forwarders(dom, d, r, day, share, out);
        self.spoofing(dom, d, r, day, share, out);
        self.replay(dom, d, r, day, out);
    }

    /// An ESP that signs with the domain's key under its own selector and bounces with
    /// its own domain (SPF passes unaligned): DKIM-only mail from a few addresses in one
    /// network, a rotating subset of them each day.
    fn signer_esp(&self, dom: &'w Domain, d: usize, r: usize, day: u32, share: f64, out: &mut Vec<Rec<'w>>) {
        let m = self.plan.esp_dkim_only(d, day);
        if m == 0.0 {
            return;
        }
        let esp = &self.world.signer_esp;
        let mut rng = self.rng(&[T_SIGNER, d as u64, r as u64, u64::from(day)]);
        let season = if is_weekend(day) { WEEKEND } else { 1.0 };
        let vol = dom.volume * season * self.day_noise(d, day) * share * m;
        let active: Vec<&Source> = esp
            .ips
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let u = (hash(dom.salt, &[T_SIGNER, u64::from(day), *i as u64]) >> 11) as f64;
                u / ((1u64 << 53) as f64) < SIGNER_ACTIVE
            })
            .map(|(_, s)| s)
            .collect();
        let weight: f64 = active.iter().map(|s| s.weight).sum();
        let sigs = [
            Some(Dkim { domain: &dom.name, selector: &esp.customer_selector, result: "pass" }),
            Some(Dkim { domain: &esp.domain, selector: &esp.own_selector, result: "pass" }),
        ];
        for src in active {
            let x = vol * src.weight / weight * rng.noise(0.2, 0.1);
            let count = rng.round(x);
            if count > 0 {
                out.push(Rec {
                    ip: src.ip,
                    count,
                    envelope_from: &esp.domain,
                    spf: "pass",
                    dkim: sigs,
                    dmarc_dkim: true,
                    dmarc_spf: false,
                    disposition: Disposition::None,
                    reason: None,
                    class: Class::NewEsp,
                });
            }
        }
    }

    /// Users' own forwarding (a `.forward` on a small server, a vanity domain's
    /// catch-all): hundreds of small forwarders a day, different ones every day, each
    /// forwarding to one mailbox provider. The author's DKIM survives; SPF is the
    /// forwarder's (rewritten with SRS) or fails for the domain (not rewritten).
    fn forwarders(&self, dom: &'w Domain, d: usize, r: usize, day: u32, share: f64, out: &mut Vec<Rec<'w>>) {
        if !self.plan.churning_forwarders(d) {
            return;
        }
        let (dd, rr, dy) = (d as u64, r as u64, u64::from(day));
        let mut rng = self.rng(&[T_FORWARD, dd, rr, dy]);
        let season = if is_weekend(day) { WEEKEND } else { 1.0 };
        // The share is the domain's, the same for every reporter that day.
        let (lo, hi) = FORWARDED_SHARE;
        let day_share = self.rng(&[T_FORWARD, dd, dy]).uniform(lo, hi);
        let vol = dom.volume * season * self.day_noise(d, day) * share * day_share;
        let x = FORWARDERS * self.world.scale.sqrt() * season * share * rng.noise(0.1, 0.5);
        let n = rng.round(x).max(1);
        let weights: Vec<f64> = (0..n).map(|k| rng.uniform(0.5, 1.5) / (k as f64 + 3.0)).collect();
        let total: f64 = weights.iter().sum();
        let junk = &self.world.junk;
        for (k, w) in weights.into_iter().enumerate() {
            let x = vol * w / total * rng.noise(0.3, 0.1);
            let count = rng.round(x);
            if count == 0 {
                continue;
            }
            // A new address every day: forwarders on dynamic and cheap hosting addresses.
            let h = hash(dom.salt, &[T_FORWARD, dy, rr, k as u64]);
            let ip =
                IpAddr::V4(Ipv4Addr::new(198, 18 + (h & 1) as u8, (h >> 8) as u8, (h >> 16) as u8 % 254 + 1));
            let selector = self.selector(dom, d, day, 2000 + (h >> 24) % 64);
            let (envelope_from, spf) = if h >> 40 & 1 == 0 {
                (junk[(h >> 41) as usize % junk.len()].as_str(), "pass")
            } else {
                (dom.name.as_str(), "fail")
            };
            out.push(Rec {
                ip,
                count,
                envelope_from,
                spf,
                dkim: [Some(Dkim { domain: &dom.name, selector, result: "pass" }), None],
                dmarc_dkim: true,
                dmarc_spf: false,
                disposition: Disposition::None,
                reason: None,
                class: Class::Forwarded,
            });
        }
    }

    /// Background spoofing (and the spoofing spike): many IPs, a few messages each, DMARC
    /// fail, disposition as published.
    fn spoofing(&self, dom: &'w Domain, d: usize, r: usize, day: u32, share: f64, out: &mut Vec<Rec<'w>>) {
        let mut rng = self.rng(&[T_SPOOF, d as u64, r as u64, u64::from(day)]);
        let season = if is_weekend(day) { WEEKEND_SPOOF } else { 1.0 };
        let m = self.plan.spoof_multiplier(d, day);
        let (ip_mult, count_mult) = if m > 1.0 { (m / SPIKE_COUNT, SPIKE_COUNT) } else { (1.0, 1.0) };
        let usual = dom.spoof_ips * share * season * rng.noise(0.15, 0.3);
        let n = rng.round(usual * ip_mult).min(SPOOF_POOL);
        let n_usual = rng.round(usual).min(n);
        let start = rng.below(SPOOF_POOL);
        let stride = rng.next_u64() | 1;
        let per_ip = self.world.scale.sqrt() * count_mult;
        let junk = &self.world.junk;
        for k in 0..n {
            // The spike's extra bots come from networks never seen before that day.
            let base = if k < n_usual { 0 } else { (u64::from(day) + 1) << 20 };
            let idx = base + start.wrapping_add(k.wrapping_mul(stride)) % SPOOF_POOL;
            let ip = self.world.spoofer_ip(d, idx);
            let x = (1 + rng.geometric(0.55, 30)) as f64 * per_ip;
            let count = rng.round(x).max(1);
            let variant = rng.below(100);
            let other = rng.pick(junk).as_str();
            let (envelope_from, spf, dkim) = match variant {
                // The domain itself as envelope sender: SPF fails; sometimes a forged
                // signature claiming d=domain that does not verify.
                0..=39 => {
                    let forged = (variant < 8).then_some(Dkim {
                        domain: dom.name.as_str(),
                        selector: dom.selector.as_str(),
                        result: "fail",
                    });
                    let spf = ["fail", "softfail"][(variant % 2) as usize];
                    (dom.name.as_str(), spf, forged)
                }
                // The spammer's own envelope domain: SPF passes or not, but never aligned.
                40..=74 => (other, ["pass", "none", "softfail"][(variant % 3) as usize], None),
                // The spammer's own domain, DKIM-signed by it: passes, not aligned.
                _ => {
                    let sig = Dkim { domain: other, selector: "default", result: "pass" };
                    (other, "pass", Some(sig))
                }
            };
            out.push(Rec {
                ip,
                count,
                envelope_from,
                spf,
                dkim: [dkim, None],
                dmarc_dkim: false,
                dmarc_spf: false,
                disposition: dom.p,
                reason: None,
                class: Class::Spoof,
            });
        }
    }

    /// The DKIM replay: one captured message signed by the domain, re-sent from a botnet.
    /// DKIM passes (aligned), SPF does not align; the receiver delivers it.
    fn replay(&self, dom: &'w Domain, d: usize, r: usize, day: u32, out: &mut Vec<Rec<'w>>) {
        let m = self.plan.replay_multiplier(d, day);
        let flood_share = self.world.reporters[r].flood_share;
        if m == 0.0 || flood_share == 0.0 {
            return;
        }
        let mut rng = self.rng(&[T_REPLAY, d as u64, r as u64, u64::from(day)]);
        let normal = dom.normal_volume(self.world.spoof_count_mean());
        // A ramping campaign enlists more bots as it grows.
        let active_share = 0.15 + 0.85 * m / self.plan.peak_replay_multiplier();
        let bots = &self.world.botnet;
        let active = &bots[..((bots.len() as f64 * active_share).ceil() as usize).min(bots.len())];
        let weight_sum: f64 = active.iter().map(|s| s.weight).sum();
        let volume = m * normal * flood_share * self.day_noise(d, day) / weight_sum;
        let junk = &self.world.junk;
        let sig = Dkim { domain: &dom.name, selector: &dom.selector, result: "pass" };
        for (i, src) in active.iter().enumerate() {
            let x = volume * src.weight * rng.noise(0.3, 0.1);
            let count = rng.round(x);
            if count == 0 {
                continue;
            }
            // Each bot keeps its own envelope sender for the whole campaign.
            let h = hash(dom.salt, &[T_REPLAY, i as u64]);
            let other = junk[(h >> 8) as usize % junk.len()].as_str();
            let (envelope_from, spf) = match h % 100 {
                0..=49 => (other, "none"),
                50..=74 => (other, "softfail"),
                75..=84 => (other, "fail"),
                _ => (dom.name.as_str(), "fail"),
            };
            out.push(Rec {
                ip: src.ip,
                count,
                envelope_from,
                spf,
                dkim: [Some(sig), None],
                dmarc_dkim: true,
                dmarc_spf: false,
                disposition: Disposition::None,
                reason: None,
                class: Class::Replay,
            });
        }
    }

    /// TLS sessions of domain `d` at TLS reporter `t` on `day`, or `None` when the domain
    /// publishes no TLSRPT record or saw no session.
    pub fn tls(&self, d: usize, t: usize, day: u32) -> Option<TlsDay<'w>> {
        let dom = &self.world.domains[d];
        let setup = dom.tls.as_ref()?;
        let rep = &self.world.tls_reporters[t];
        let mut rng = self.rng(&[T_TLS, d as u64, t as u64, u64::from(day)]);
        let season = if is_weekend(day) { WEEKEND } else { 1.0 };
        let x = setup.sessions * rep.share * season * rng.noise(0.1, 0.3);
        let total = rng.round(x);
        if total == 0 {
            return None;
        }
        let mut out = TlsDay::default();
        if setup.sts_mode.is_some() {
            // Everyday noise: a few sessions fail now and then.
            if rng.chance(0.25) {
                let (mx, mx_ip) = &setup.mx[rng.below(setup.mx.len() as u64) as usize];
                let mta = *rng.pick(&rep.mtas);
                let (result_type, endpoint, reason_code) = match rng.below(3) {
                    0 => ("sts-policy-fetch-error", None, Some("connection timed out")),
                    1 => (
                        "validation-failure",
                        Some((mta, mx.as_str(), *mx_ip)),
                        Some("TLS handshake timed out"),
                    ),
                    _ => ("starttls-not-supported", Some((mta, mx.as_str(), *mx_ip)), None),
                };
                out.failures.push(TlsFailure {
                    result_type,
                    endpoint,
                    reason_code,
                    count: rng.between(1, 5).min(total),
                });
            }
            // The outage: the last MX serves an expired certificate.
            let outage = self.plan.tls_outage_share(d, day);
            if outage > 0.0 {
                let (mx, mx_ip) = setup.mx.last()?;
                let mut left = rng.round(total as f64 * outage);
                for (k, &mta) in rep.mtas.iter().enumerate() {
                    let n = if k + 1 == rep.mtas.len() {
                        left
                    } else {
                        let x = left as f64 * rng.uniform(0.1, 0.3);
                        rng.round(x)
                    };
                    left -= n;
                    if n > 0 {
                        out.failures.push(TlsFailure {
                            result_type: "certificate-expired",
                            endpoint: Some((mta, mx.as_str(), *mx_ip)),
                            reason_code: None,
                            count: n,
                        });
                    }
                }
            }
        }
        out.successful = total.saturating_sub(out.failed());
        Some(out)
    }
}
