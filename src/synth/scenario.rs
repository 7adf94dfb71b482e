//! Scenarios: the baseline plus one event, and the day-by-day schedule of that event.
//!
//! A [`Scenario`] names what happens; a [`Plan`] says when and how strongly, as multipliers
//! that the traffic model applies per domain and day. Events start on a fixed day near the
//! end of the window ([`Plan::event_day`]: `days - 5`), so a detector has weeks of baseline
//! before them. Positive events target `example.com` (domain 0), except the spoofing spike,
//! which hits `shop.example.net` (domain 1).

use std::fmt;
use std::str::FromStr;

/// What the generated data set contains besides the everyday baseline traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Everyday traffic only: no event.
    #[default]
    Baseline,
    /// A DKIM replay flood against example.com (the December 2021 pattern): one selector,
    /// DKIM pass, SPF not aligned, hundreds of IPs in dozens of /16s, ~50x normal volume,
    /// ~98% of the domain's mail, ~90% of it at Google, for three days.
    ReplayFlood,
    /// The same replay signature, ramping from ~1x to ~20x normal volume over six days.
    SlowRampReplay,
    /// DMARC-failing (spoofed) volume for shop.example.net surges 12-25x for three days.
    SpoofingSpike,
    /// example.com's second MX serves an expired certificate for three days: the TLSRPT
    /// failure share jumps to ~45% (`certificate-expired`).
    TlsFailure,
    /// Hard negative: example.com onboards a new ESP (new IPs, new selector, SPF aligned).
    NewEsp,
    /// Hard negative: example.com's mailing-list traffic (DKIM pass, SPF not aligned, from
    /// the same list servers) grows gradually to 2.5x over the last two thirds of the window.
    MailingListGrowth,
    /// Hard negative: example.com's servers rotate their DKIM selector `s2026` -> `s2026b`.
    DkimRotation,
    /// Hard negative: a large new reporter (FastMail) starts sending reports for every
    /// domain, so totals jump while the sources stay the known ones.
    ReporterJoining,
    /// Hard negative: example.com starts sending through an ESP that signs with the
    /// domain's key under its own selector but bounces with its own domain, so SPF never
    /// aligns (the Mandrill pattern): DKIM-only mail from a few addresses in one network,
    /// ramping to a third of the domain's mail.
    EspDkimOnly,
    /// Hard negative: example.com's users' mail is forwarded every day by hundreds of small
    /// forwarders (new addresses every day; DKIM pass, SPF unaligned; 10-15% of its
    /// volume), and its DKIM key rotates mid-way.
    ChurningForwarders,
    /// After a rotation to a new selector, a replay flood signed with the old one (still
    /// published).
    OldSelectorReplay,
    /// A replay flood while reports arrive late and out of order (Google one day late,
    /// Microsoft two), Yahoo reports hourly and the RFC 9990 reporter every three days.
    LateReports,
    /// A replay flood of a given size: the replayed volume per day as a multiple of the
    /// domain's normal volume, in tenths (`ReplaySize(5)` is 0.5x); the sizes with a name
    /// are 0.5, 1, 2, 5 and 50 (see [`Scenario::ALL`]).
    ReplaySize(u16),
}

impl Scenario {
    /// Every scenario, in a stable order.
    pub const ALL: [Scenario; 18] = [
        Scenario::Baseline,
        Scenario::ReplayFlood,
        Scenario::SlowRampReplay,
        Scenario::SpoofingSpike,
        Scenario::TlsFailure,
        Scenario::NewEsp,
        Scenario::MailingListGrowth,
        Scenario::DkimRotation,
        Scenario::ReporterJoining,
        Scenario::EspDkimOnly,
        Scenario::ChurningForwarders,
        Scenario::OldSelectorReplay,
        Scenario::LateReports,
        Scenario::ReplaySize(5),
        Scenario::ReplaySize(10),
        Scenario::ReplaySize(20),
        Scenario::ReplaySize(50),
        Scenario::ReplaySize(500),
    ];

    /// The kebab-case name used on the command line and in `labels.json`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::ReplayFlood => "replay-flood",
            Scenario::SlowRampReplay => "slow-ramp-replay",
            Scenario::SpoofingSpike => "spoofing-spike",
            Scenario::TlsFailure => "tls-failure",
            Scenario::NewEsp => "new-esp",
            Scenario::MailingListGrowth => "mailing-list-growth",
            Scenario::DkimRotation => "dkim-rotation",
            Scenario::ReporterJoining => "reporter-joining",
            Scenario::EspDkimOnly => "esp-dkim-only",
            Scenario::ChurningForwarders => "churning-forwarders",
            Scenario::OldSelectorReplay => "old-selector-replay",
            Scenario::LateReports => "late-reports",
            Scenario::ReplaySize(5) => "replay-size-0.5",
            Scenario::ReplaySize(10) => "replay-size-1",
            Scenario::ReplaySize(20) => "replay-size-2",
            Scenario::ReplaySize(50) => "replay-size-5",
            Scenario::ReplaySize(500) => "replay-size-50",
            Scenario::ReplaySize(_) => "replay-size",
        }
    }

    /// Whether the scenario is a hard negative: a change that must not raise a replay or
    /// spoofing alert.
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            Scenario::NewEsp
                | Scenario::MailingListGrowth
                | Scenario::DkimRotation
                | Scenario::ReporterJoining
                | Scenario::EspDkimOnly
                | Scenario::ChurningForwarders
        )
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a scenario name that is not one of [`Scenario::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScenario(pub String);

impl fmt::Display for UnknownScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scenario {:?}, expected one of: ", self.0)?;
        for (i, s) in Scenario::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownScenario {}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    /// Parses a kebab-case name; case and `_` for `-` are tolerated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL.into_iter().find(|sc| sc.name() == wanted).ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

/// Index of example.com, the victim of the replay scenarios and the subject of the hard
/// negatives.
pub const VICTIM: usize = 0;
/// Index of shop.example.net, the target of the spoofing spike.
pub const SHOP: usize = 1;

/// Replay volume per day of the flood, as a multiple of the domain's normal weekday volume:
/// two full days at 49x (so the domain sees ~50x its normal mail, ~98% of it replayed), then
/// a third day tapering off as the receiver starts blocking.
const FLOOD: [f64; 3] = [49.0, 49.0, 20.0];
/// The slow ramp's multipliers: 1x to 20x over six days (x1.82 a day); it then stays at 20x.
const RAMP: [f64; 6] = [1.0, 1.82, 3.31, 6.03, 10.99, 20.0];
/// Spoofed volume per day of the spike, as a multiple of the domain's usual spoofed volume.
const SPIKE: [f64; 3] = [12.0, 25.0, 18.0];
/// Days that example.com's mx2 serves an expired certificate.
const TLS_OUTAGE_DAYS: u32 = 3;
/// Share of TLS sessions that fail during the outage: mx2 takes about half the sessions,
/// senders retry on mx1, and each failed attempt is counted.
pub const TLS_OUTAGE_FAILURE_SHARE: f64 = 0.45;
/// New ESP volume per day since onboarding, as a share of the domain's normal volume.
const NEW_ESP: [f64; 4] = [0.05, 0.15, 0.30, 0.40];
/// Mailing-list volume on the last day, relative to before the growth started.
pub const LIST_GROWTH_END: f64 = 2.5;
/// A moderate flood (5x normal volume, tapering on the third day): the replay under an
/// old selector and the replay among late reports.
const MODERATE_FLOOD: [f64; 3] = [5.0, 5.0, 2.0];
/// The DKIM-only ESP's volume by day since onboarding, as a multiple of the domain's
/// legitimate volume: 0.5 is a third of the domain's mail.
const ESP_DKIM_ONLY: [f64; 4] = [0.08, 0.2, 0.35, 0.5];
/// Days before the event that the DKIM-only ESP starts: it ramps while unknown and is
/// still sending when it has become familiar.
const ESP_DKIM_ONLY_LEAD_DAYS: u32 = 9;
/// Churning forwarders' share of the domain's legitimate volume, drawn per day in this range.
pub const FORWARDED_SHARE: (f64, f64) = (0.10, 0.15);

/// When and how strongly the scenario's event happens; all lookups are by domain index
/// and report day (0-based).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The scenario.
    pub scenario: Scenario,
    /// Number of report days.
    pub days: u32,
    /// Index of the domain the event targets.
    pub target: usize,
}

impl Plan {
    /// The plan for `scenario` over `days` days with `domains` policy domains.
    pub fn new(scenario: Scenario, days: u32, domains: usize) -> Self {
        let target = match scenario {
            Scenario::SpoofingSpike => SHOP.min(domains.saturating_sub(1)),
            _ => VICTIM,
        };
        Self { scenario, days, target }
    }

    /// The first day of the event: five days before the end (mid-window for short runs).
    pub fn event_day(&self) -> u32 {
        if self.days > 10 {
            self.days - 5
        } else {
            self.days / 2
        }
    }

    /// First and last day of the event, or `None` for the baseline.
    pub fn event_days(&self) -> Option<(u32, u32)> {
        let e = self.event_day();
        let last = self.days.saturating_sub(1);
        let span = |n: u32| (e, (e + n - 1).min(last));
        Some(match self.scenario {
            Scenario::Baseline => return None,
            Scenario::ReplayFlood => span(FLOOD.len() as u32),
            Scenario::SlowRampReplay => (self.ramp_start(), last),
            Scenario::SpoofingSpike => span(SPIKE.len() as u32),
            Scenario::TlsFailure => span(TLS_OUTAGE_DAYS),
            Scenario::MailingListGrowth => (self.list_growth_start(), last),
            Scenario::NewEsp | Scenario::DkimRotation | Scenario::ReporterJoining => (e, last),
            Scenario::EspDkimOnly => (self.esp_dkim_only_start(), last),
            Scenario::ChurningForwarders => (0, last),
            Scenario::OldSelectorReplay | Scenario::LateReports | Scenario::ReplaySize(_) => {
                span(self.replay_schedule().len() as u32)
            }
        })
    }

    /// Day offset into the event for the target domain, if `day` is on or after its start.
    fn since(&self, domain: usize, day: u32, start: u32) -> Option<usize> {
        (domain == self.target && day >= start).then(|| (day - start) as usize)
    }

    fn ramp_start(&self) -> u32 {
        self.days.saturating_sub(RAMP.len() as u32 + 1)
    }

    fn list_growth_start(&self) -> u32 {
        self.days / 3
    }

    fn esp_dkim_only_start(&self) -> u32 {
        self.event_day().saturating_sub(ESP_DKIM_ONLY_LEAD_DAYS)
    }

    /// The day the domain's servers start signing with the new selector: the event day in
    /// the rotation scenario, mid-window where a rotation is the background of the event.
    pub fn rotation_day(&self) -> Option<u32> {
        match self.scenario {
            Scenario::DkimRotation => Some(self.event_day()),
            Scenario::ChurningForwarders | Scenario::OldSelectorReplay => Some(self.days / 2),
            _ => None,
        }
    }

    /// Replayed volume as a multiple of the domain's normal weekday volume (0 if none).
    pub fn replay_multiplier(&self, domain: usize, day: u32) -> f64 {
        match self.scenario {
            Scenario::SlowRampReplay => {
                self.since(domain, day, self.ramp_start()).map_or(0.0, |k| RAMP[k.min(RAMP.len() - 1)])
            }
            _ => self
                .since(domain, day, self.event_day())
                .and_then(|k| self.replay_schedule().get(k).copied())
                .unwrap_or(0.0),
        }
    }

    /// The largest replay multiplier of the scenario (sizes the replaying botnet).
    pub fn peak_replay_multiplier(&self) -> f64 {
        self.replay_schedule().iter().copied().fold(0.0, f64::max)
    }

    /// The replay schedule by day of the event: as the December 2021 flood, a moderate
    /// one, or one of the sized floods (two full days, a third at 40% as receivers start
    /// blocking).
    pub fn replay_schedule(&self) -> Vec<f64> {
        match self.scenario {
            Scenario::ReplayFlood => FLOOD.to_vec(),
            Scenario::SlowRampReplay => RAMP.to_vec(),
            Scenario::OldSelectorReplay | Scenario::LateReports => MODERATE_FLOOD.to_vec(),
            Scenario::ReplaySize(tenths) => {
                let m = f64::from(tenths) / 10.0;
                vec![m, m, 0.4 * m]
            }
            _ => Vec::new(),
        }
    }

    /// Multiplier of the domain's spoofed (DMARC-failing) volume.
    pub fn spoof_multiplier(&self, domain: usize, day: u32) -> f64 {
        match self.scenario {
            Scenario::SpoofingSpike => {
                self.since(domain, day, self.event_day()).and_then(|k| SPIKE.get(k).copied()).unwrap_or(1.0)
            }
            _ => 1.0,
        }
    }

    /// The spike's schedule, for labels.
    pub fn spike_schedule(&self) -> &'static [f64] {
        match self.scenario {
            Scenario::SpoofingSpike => &SPIKE,
            _ => &[],
        }
    }

    /// Share of the domain's TLS sessions that fail at its second MX (0 if none).
    pub fn tls_outage_share(&self, domain: usize, day: u32) -> f64 {
        match self.scenario {
            Scenario::TlsFailure => self
                .since(domain, day, self.event_day())
                .filter(|&k| k < TLS_OUTAGE_DAYS as usize)
                .map_or(0.0, |_| TLS_OUTAGE_FAILURE_SHARE),
            _ => 0.0,
        }
    }

    /// Volume sent through the newly onboarded ESP, as a share of normal volume.
    pub fn new_esp_share(&self, domain: usize, day: u32) -> f64 {
        match self.scenario {
            Scenario::NewEsp => {
                self.since(domain, day, self.event_day()).map_or(0.0, |k| NEW_ESP[k.min(NEW_ESP.len() - 1)])
            }
            _ => 0.0,
        }
    }

    /// Volume sent through the DKIM-only ESP, as a multiple of the domain's legitimate volume.
    pub fn esp_dkim_only(&self, domain: usize, day: u32) -> f64 {
        match self.scenario {
            Scenario::EspDkimOnly => self
                .since(domain, day, self.esp_dkim_only_start())
                .map_or(0.0, |k| ESP_DKIM_ONLY[k.min(ESP_DKIM_ONLY.len() - 1)]),
            _ => 0.0,
        }
    }

    /// Whether the domain's mail is forwarded by churning small forwarders.
    pub fn churning_forwarders(&self, domain: usize) -> bool {
        self.scenario == Scenario::ChurningForwarders && domain == self.target
    }

    /// Multiplier of the domain's mailing-list volume: linear growth to 2.5x on the last day.
    pub fn list_growth(&self, domain: usize, day: u32) -> f64 {
        let start = self.list_growth_start();
        match self.scenario {
            Scenario::MailingListGrowth => self.since(domain, day, start).map_or(1.0, |k| {
                let span = self.days.saturating_sub(1 + start).max(1);
                1.0 + (LIST_GROWTH_END - 1.0) * k as f64 / f64::from(span)
            }),
            _ => 1.0,
        }
    }

    /// Share of the domain's own servers already signing with the new selector: half of
    /// them on the first day of the rotation, all of them after.
    pub fn rotated_share(&self, domain: usize, day: u32) -> f64 {
        self.rotation_day().and_then(|start| self.since(domain, day, start)).map_or(0.0, |k| {
            if k == 0 {
                0.5
            } else {
                1.0
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.to_string().parse::<Scenario>(), Ok(s));
        }
        assert_eq!("Replay_Flood".parse::<Scenario>(), Ok(Scenario::ReplayFlood));
        let err = "flood".parse::<Scenario>().expect_err("unknown name");
        assert!(err.to_string().contains("replay-flood"), "{err}");
        assert_eq!(Scenario::default(), Scenario::Baseline);
    }

    #[test]
    fn schedules_fall_in_the_last_week() {
        let plan = Plan::new(Scenario::ReplayFlood, 35, 3);
        assert_eq!(plan.event_days(), Some((30, 32)));
        assert_eq!(plan.replay_multiplier(VICTIM, 29), 0.0);
        assert_eq!(plan.replay_multiplier(VICTIM, 30), 49.0);
        assert_eq!(plan.replay_multiplier(VICTIM, 33), 0.0);
        assert_eq!(plan.replay_multiplier(SHOP, 30), 0.0);

        let ramp = Plan::new(Scenario::SlowRampReplay, 35, 3);
        assert_eq!(ramp.event_days(), Some((28, 34)));
        assert_eq!(ramp.replay_multiplier(VICTIM, 28), 1.0);
        assert_eq!(ramp.replay_multiplier(VICTIM, 33), 20.0);
        assert_eq!(ramp.replay_multiplier(VICTIM, 34), 20.0);

        let growth = Plan::new(Scenario::MailingListGrowth, 35, 3);
        assert_eq!(growth.list_growth(VICTIM, 10), 1.0);
        assert!((growth.list_growth(VICTIM, 34) - 2.5).abs() < 1e-9);

        let spike = Plan::new(Scenario::SpoofingSpike, 35, 1);
        assert_eq!(spike.target, 0, "falls back to the only domain");
        assert_eq!(Plan::new(Scenario::Baseline, 35, 3).event_days(), None);
        assert_eq!(Plan::new(Scenario::TlsFailure, 4, 3).event_days(), Some((2, 3)));
    }
}
