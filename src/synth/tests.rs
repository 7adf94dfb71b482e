//! Tests of the whole generator: determinism, the scenarios' numbers (from the generator's
//! own tallies, not by parsing), well-formed documents in every dialect, and labels.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::calendar::{day_start, is_weekend, FIRST_DAY};
use super::scenario::{Plan, SHOP, VICTIM};
use super::traffic::{Class, Rec, Tally, Traffic};
use super::world::World;
use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ruaflow-synth-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn opts(scenario: Scenario) -> SynthOptions {
    SynthOptions { seed: 7, scenario, ..SynthOptions::default() }
}

fn tally(o: &SynthOptions) -> (SynthSummary, Tally) {
    run(o, None).expect("generate")
}

/// All files under `dir`, sorted by path.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// FNV-1a over every file's relative path and bytes.
fn tree_hash(dir: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for path in files(dir) {
        let rel = path.strip_prefix(dir).expect("under dir");
        eat(rel.to_string_lossy().as_bytes());
        eat(&fs::read(&path).expect("read file"));
    }
    h
}

fn median(mut v: Vec<u64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Median weekday total of domain `d` (all classes, or one class) before day `until`.
fn weekday_median(t: &Tally, d: usize, until: u32, class: Option<Class>) -> f64 {
    median(
        (0..until)
            .filter(|&day| !is_weekend(day))
            .map(|day| class.map_or_else(|| t.total(d, day), |c| t.class(d, day, c)))
            .collect(),
    )
}

#[test]
fn same_options_give_identical_bytes_and_another_seed_does_not() {
    let o = SynthOptions { days: 12, ..opts(Scenario::ReplayFlood) };
    let (a, b, c) = (TempDir::new("a"), TempDir::new("b"), TempDir::new("c"));
    let sa = generate(&o, &a.0).expect("generate a");
    let sb = generate(&o, &b.0).expect("generate b");
    assert_eq!(sa, sb);
    assert_eq!(files(&a.0).len(), sa.files + 1, "reports plus labels.json");
    let labels: serde_json::Value =
        serde_json::from_slice(&fs::read(a.0.join(LABELS_FILE)).expect("labels")).expect("json");
    assert_eq!(labels["events"][0]["first_day"], day_start(7));
    assert_eq!(tree_hash(&a.0), tree_hash(&b.0));
    generate(&SynthOptions { seed: 8, ..o }, &c.0).expect("generate c");
    assert_ne!(tree_hash(&a.0), tree_hash(&c.0));
}

#[test]
fn demo_size_is_a_few_hundred_files_and_fast() {
    let dir = TempDir::new("demo");
    let started = Instant::now();
    let s = generate(&opts(Scenario::ReplayFlood), &dir.0).expect("generate");
    let took = started.elapsed();
    eprintln!("scale 1, 35 days: {s:?} in {took:?}");
    assert_eq!(s.files, s.dmarc_reports + s.tlsrpt_reports);
    assert!((300..1000).contains(&s.files), "{s:?}");
    assert!(s.records > 10_000 && s.messages > s.records, "{s:?}");
    // Generous even for a debug build; the release build takes a fraction of this.
    assert!(took.as_secs() < 20, "{took:?}");
}

#[test]
fn replay_flood_is_fifty_times_normal_and_98_percent_of_the_domain() {
    let o = opts(Scenario::ReplayFlood);
    let (_, t) = tally(&o);
    let plan = Plan::new(o.scenario, o.days, 3);
    let (first, last) = plan.event_days().expect("event");
    assert_eq!((first, last), (30, 32));
    let normal = weekday_median(&t, VICTIM, first, None);
    for day in first..=first + 1 {
        let total = t.total(VICTIM, day) as f64;
        let replay = t.class(VICTIM, day, Class::Replay) as f64;
        let ratio = total / normal;
        assert!((40.0..60.0).contains(&ratio), "day {day}: {ratio:.1}x normal");
        assert!(replay / total > 0.97, "day {day}: replay share {}", replay / total);
        let google = t.replay_at_reporter(VICTIM, day, 0) as f64;
        assert!((0.85..0.95).contains(&(google / replay)), "Google share {}", google / replay);
        // Google sees more replayed mail that day than the domain's entire normal volume x40.
        assert!(t.at_reporter(VICTIM, day, 0) as f64 > 40.0 * normal * 0.46 * 0.7);
    }
    for day in (0..first).chain(last + 1..o.days) {
        assert_eq!(t.class(VICTIM, day, Class::Replay), 0, "day {day}");
    }
    for d in 1..3 {
        assert!((0..o.days).all(|day| t.class(d, day, Class::Replay) == 0));
    }
}

#[test]
fn replayed_records_have_the_incident_signature() {
    let o = opts(Scenario::ReplayFlood);
    let world = World::build(o.seed, o.scale, false);
    let plan = Plan::new(o.scenario, o.days, world.domains.len());
    let traffic = Traffic::new(&world, &plan, o.seed);
    let mut recs: Vec<Rec<'_>> = Vec::new();
    traffic.dmarc(VICTIM, 0, plan.event_day(), &mut recs);
    let replay: Vec<&Rec<'_>> = recs.iter().filter(|r| r.class == Class::Replay).collect();
    let ips: BTreeSet<IpAddr> = replay.iter().map(|r| r.ip).collect();
    let nets: BTreeSet<[u8; 2]> = ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some([a.octets()[0], a.octets()[1]]),
            IpAddr::V6(_) => None,
        })
        .collect();
    assert!(ips.len() >= 300, "{} IPs", ips.len());
    assert!(nets.len() >= 24, "{} /16s", nets.len());
    let selectors: BTreeSet<(&str, &str, &str)> = replay
        .iter()
        .flat_map(|r| r.dkim.iter().flatten())
        .map(|s| (s.domain, s.selector, s.result))
        .collect();
    assert_eq!(selectors, BTreeSet::from([("example.com", "s2026", "pass")]));
    assert!(replay.iter().all(|r| r.dmarc_dkim && !r.dmarc_spf));
    assert!(replay.iter().all(|r| r.spf != "pass"));
    // None of the botnet is a known sender of the domain.
    let known: BTreeSet<IpAddr> = recs
        .iter()
        .filter(|r| matches!(r.class, Class::Own | Class::Esp | Class::List))
        .map(|r| r.ip)
        .collect();
    assert!(ips.is_disjoint(&known));
}

#[test]
fn baseline_has_no_replay_and_no_surge() {
    let o = opts(Scenario::Baseline);
    let (_, t) = tally(&o);
    for d in 0..3 {
        assert!((0..o.days).all(|day| t.class(d, day, Class::Replay) == 0));
        let normal = weekday_median(&t, d, o.days, None);
        let peak = (0..o.days).map(|day| t.total(d, day)).max().unwrap_or(0) as f64;
        assert!(peak / normal < 1.4, "domain {d}: peak {peak} vs median {normal}");
        // Weekends carry roughly 40% of a weekday.
        let weekend = median((0..o.days).filter(|&x| is_weekend(x)).map(|x| t.total(d, x)).collect());
        let ratio = weekend / normal;
        assert!((0.3..0.55).contains(&ratio), "domain {d}: weekend ratio {ratio}");
        // Everyday traffic has every class but the scenario-only ones.
        for class in [Class::Own, Class::Esp, Class::List, Class::Spoof] {
            assert!(t.class(d, 1, class) > 0, "domain {d} {class:?}");
        }
        assert!((0..o.days).all(|day| t.class(d, day, Class::NewEsp) == 0));
    }
    let broken: u64 = (0..o.days).map(|day| t.class(VICTIM, day, Class::BrokenDkim)).sum();
    assert!(broken > 0);
}

#[test]
fn slow_ramp_grows_from_one_to_twenty_times() {
    let o = opts(Scenario::SlowRampReplay);
    let (_, t) = tally(&o);
    let plan = Plan::new(o.scenario, o.days, 3);
    let (first, last) = plan.event_days().expect("event");
    let normal = weekday_median(&t, VICTIM, first, None);
    let x = |day| t.class(VICTIM, day, Class::Replay) as f64 / normal;
    assert!((0.7..1.4).contains(&x(first)), "{}", x(first));
    assert!((15.0..25.0).contains(&x(first + 5)), "{}", x(first + 5));
    assert!((first..first + 5).all(|day| x(day + 1) > x(day) * 1.3));
    assert!(x(last) > 15.0);
}

#[test]
fn spoofing_spike_multiplies_dmarc_failures() {
    let o = opts(Scenario::SpoofingSpike);
    let (_, t) = tally(&o);
    let plan = Plan::new(o.scenario, o.days, 3);
    assert_eq!(plan.target, SHOP);
    let (first, last) = plan.event_days().expect("event");
    let usual = weekday_median(&t, SHOP, first, Some(Class::Spoof));
    for day in first..=last {
        let m = t.class(SHOP, day, Class::Spoof) as f64 / usual;
        assert!((8.0..35.0).contains(&m), "day {day}: {m:.1}x");
    }
    assert!((0..o.days).all(|day| t.class(SHOP, day, Class::Replay) == 0));
    let after = t.class(SHOP, last + 1, Class::Spoof) as f64 / usual;
    assert!(after < 2.0, "{after}");
}

#[test]
fn tls_failure_share_jumps_during_the_outage() {
    let o = opts(Scenario::TlsFailure);
    let (_, t) = tally(&o);
    let (first, last) = Plan::new(o.scenario, o.days, 3).event_days().expect("event");
    let share = |day| {
        let (all, failed) = t.tls(VICTIM, day);
        failed as f64 / all as f64
    };
    assert!((0..first).all(|day| share(day) < 0.01));
    assert!((first..=last).all(|day| (0.35..0.55).contains(&share(day))));
    assert!(share(last + 1) < 0.01);
    assert_eq!(t.tls(2, 0), (0, 0), "example.org publishes no TLSRPT record");
}

#[test]
fn hard_negatives_never_look_like_a_replay() {
    for scenario in Scenario::ALL.into_iter().filter(|s| s.is_negative()) {
        let o = opts(scenario);
        let (_, t) = tally(&o);
        for d in 0..3 {
            assert!((0..o.days).all(|day| t.class(d, day, Class::Replay) == 0), "{scenario}");
        }
    }
}

#[test]
fn new_esp_is_spf_aligned_with_a_new_selector() {
    let o = opts(Scenario::NewEsp);
    let (_, t) = tally(&o);
    let plan = Plan::new(o.scenario, o.days, 3);
    let e = plan.event_day();
    assert_eq!(t.class(VICTIM, e - 1, Class::NewEsp), 0);
    let normal = weekday_median(&t, VICTIM, e, None);
    let last = t.class(VICTIM, o.days - 1, Class::NewEsp) as f64;
    assert!((0.25..0.6).contains(&(last / normal)), "{}", last / normal);

    let world = World::build(o.seed, o.scale, false);
    let traffic = Traffic::new(&world, &plan, o.seed);
    let mut recs = Vec::new();
    traffic.dmarc(VICTIM, 0, e + 2, &mut recs);
    let new: Vec<_> = recs.iter().filter(|r| r.class == Class::NewEsp).collect();
    assert!(!new.is_empty());
    assert!(new.iter().all(|r| r.dmarc_spf && r.dmarc_dkim && r.envelope_from == "example.com"));
}

#[test]
fn mailing_lists_grow_gradually_from_the_same_servers() {
    let o = opts(Scenario::MailingListGrowth);
    let (_, t) = tally(&o);
    let before = weekday_median(&t, VICTIM, o.days / 3, Some(Class::List));
    let last = o.days - 1;
    assert!(!is_weekend(last));
    let growth = t.class(VICTIM, last, Class::List) as f64 / before;
    assert!((2.0..3.1).contains(&growth), "{growth}");
    // Gradual: each week's list volume at most 50% above the week before (the growth adds
    // 6.5% of the original volume a day).
    let weeks: Vec<u64> = (0..o.days / 7)
        .map(|w| (w * 7..w * 7 + 7).map(|day| t.class(VICTIM, day, Class::List)).sum())
        .collect();
    for w in weeks.windows(2) {
        assert!(w[1] as f64 <= w[0] as f64 * 1.5, "weekly list volume {weeks:?}");
    }
    assert!(weeks[weeks.len() - 1] as f64 > weeks[0] as f64 * 1.8, "{weeks:?}");
}

#[test]
fn dkim_rotation_switches_selector_on_the_same_servers() {
    let o = opts(Scenario::DkimRotation);
    let world = World::build(o.seed, o.scale, false);
    let plan = Plan::new(o.scenario, o.days, world.domains.len());
    let traffic = Traffic::new(&world, &plan, o.seed);
    let e = plan.event_day();
    let own = |day: u32| {
        let mut recs = Vec::new();
        traffic.dmarc(VICTIM, 0, day, &mut recs);
        let ips: BTreeSet<IpAddr> = recs.iter().filter(|r| r.class == Class::Own).map(|r| r.ip).collect();
        let sels: BTreeSet<String> = recs
            .iter()
            .filter(|r| matches!(r.class, Class::Own | Class::List))
            .flat_map(|r| r.dkim.iter().flatten())
            .filter(|s| s.domain == "example.com")
            .map(|s| s.selector.to_owned())
            .collect();
        assert!(recs.iter().filter(|r| r.class == Class::Own).all(|r| r.dmarc_spf));
        (ips, sels)
    };
    let (ips_before, sels_before) = own(e - 1);
    let (_, sels_during) = own(e);
    let (ips_after, sels_after) = own(e + 1);
    assert_eq!(sels_before, BTreeSet::from(["s2026".to_owned()]));
    assert_eq!(sels_during, BTreeSet::from(["s2026".to_owned(), "s2026b".to_owned()]));
    assert_eq!(sels_after, BTreeSet::from(["s2026b".to_owned()]));
    assert!(ips_after.is_subset(&world.domains[VICTIM].own.iter().map(|s| s.ip).collect()));
    assert!(ips_before.len() >= 20 && ips_after.len() >= 20);
}

#[test]
fn joining_reporter_reports_known_senders_from_the_event_day() {
    let o = opts(Scenario::ReporterJoining);
    let (_, t) = tally(&o);
    let world = World::build(o.seed, o.scale, true);
    let r = world.joining_reporter.expect("joining reporter");
    let e = Plan::new(o.scenario, o.days, 3).event_day();
    assert!((0..e).all(|day| t.at_reporter(VICTIM, day, r) == 0));
    assert!((e..o.days).all(|day| t.at_reporter(VICTIM, day, r) > 0));
    let before = weekday_median(&t, VICTIM, e, None);
    let jump = t.total(VICTIM, e) as f64 / before;
    assert!((1.15..1.6).contains(&jump), "{jump}");
    // Baseline reporters' numbers are untouched by the newcomer.
    let (_, base) = tally(&opts(Scenario::Baseline));
    assert!((0..o.days)
        .all(|day| (0..r).all(|x| t.at_reporter(VICTIM, day, x) == base.at_reporter(VICTIM, day, x))));
}

#[test]
fn scenarios_leave_the_rest_of_the_baseline_untouched() {
    let (_, base) = tally(&opts(Scenario::Baseline));
    let (_, flood) = tally(&opts(Scenario::ReplayFlood));
    for d in 0..3 {
        for day in 0..35 {
            for c in [Class::Own, Class::Esp, Class::List, Class::Spoof] {
                assert_eq!(base.class(d, day, c), flood.class(d, day, c));
            }
        }
    }
}

#[test]
fn summary_agrees_with_the_tally() {
    let o = SynthOptions { days: 10, ..opts(Scenario::ReplayFlood) };
    let (s, t) = tally(&o);
    let from_tally: u64 =
        (0..3).flat_map(|d| (0..10).map(move |day| (d, day))).map(|(d, day)| t.total(d, day)).sum();
    assert_eq!(s.messages, from_tally);
    assert!(s.records > 0);
    assert_eq!((s.files, s.bytes), (0, 0), "counting only writes nothing");
}

#[test]
fn invalid_options_are_refused() {
    for o in [
        SynthOptions { days: 0, ..SynthOptions::default() },
        SynthOptions { scale: 0.0, ..SynthOptions::default() },
        SynthOptions { scale: f64::NAN, ..SynthOptions::default() },
    ] {
        let err = run(&o, None).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
    let tiny = SynthOptions { scale: 0.2, days: 3, ..opts(Scenario::SpoofingSpike) };
    let (s, _) = tally(&tiny);
    assert!(s.dmarc_reports > 0);
}

/// Checks that `xml` is one balanced element tree and returns its root's name.
fn balanced_root(xml: &str) -> Result<String, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut root = None;
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').ok_or("unterminated tag")?;
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or_else(|| format!("stray </{name}>"))?;
            if open != name {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let name = tag.split_whitespace().next().ok_or("empty tag")?;
        if stack.is_empty() {
            if root.is_some() {
                return Err("two roots".into());
            }
            root = Some(name.to_owned());
        }
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    if rest.trim() != "" || xml.contains('&') {
        return Err("text outside the root or an unescaped &".into());
    }
    root.ok_or_else(|| "no element".into())
}

/// Reads a report file as its reporter packaged it. The project reads untrusted archives
/// only through `ruaflow_schema::unpack`; this test reads files it just generated itself, and
/// checks the packaging directly (member name, single entry) without depending on that API.
#[allow(clippy::disallowed_types)]
fn unpack(path: &Path) -> (String, String) {
    let name = path.file_name().expect("name").to_string_lossy().into_owned();
    let bytes = fs::read(path).expect("read");
    let mut text = String::new();
    if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
        assert_eq!(zip.len(), 1);
        let mut member = zip.by_index(0).expect("member");
        assert_eq!(member.name(), name.replace(".zip", ".xml"));
        member.read_to_string(&mut text).expect("inflate");
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("gunzip");
    } else {
        text = String::from_utf8(bytes).expect("utf-8");
    }
    (name, text)
}

#[test]
fn every_document_is_well_formed_in_its_dialect() {
    let dir = TempDir::new("dialects");
    let o = SynthOptions { days: 12, ..opts(Scenario::ReporterJoining) };
    let s = generate(&o, &dir.0).expect("generate");
    let mut seen = BTreeSet::new();
    let mut records = 0u64;
    for path in files(&reports_dir(&dir.0)) {
        let (name, text) = unpack(&path);
        let mut parts = name.split('!');
        let prefix = parts.next().expect("prefix").to_owned();
        let domain = parts.next().expect("domain");
        let begin: u64 = parts.next().expect("begin").parse().expect("begin");
        assert_eq!((begin - FIRST_DAY) % 86_400, 0, "{name}");
        if name.contains(".json") {
            let v: serde_json::Value = serde_json::from_str(&text).expect("json");
            let policy = &v["policies"][0];
            assert_eq!(policy["policy"]["policy-domain"], domain);
            let failed: u64 = policy["failure-details"]
                .as_array()
                .map_or(0, |a| a.iter().map(|f| f["failed-session-count"].as_u64().expect("count")).sum());
            assert_eq!(policy["summary"]["total-failure-session-count"].as_u64(), Some(failed));
            assert!(v["date-range"]["start-datetime"].as_str().expect("start").ends_with("T00:00:00Z"));
            seen.insert(format!("tls:{prefix}"));
            continue;
        }
        assert_eq!(balanced_root(&text).as_deref(), Ok("feedback"), "{name}");
        assert!(text.contains(&format!("<domain>{domain}</domain>")), "{name}");
        assert!(
            text.contains(&format!("<begin>{begin}</begin><"))
                || text.contains(&format!("<begin>{begin}</begin>\n")),
            "{name}"
        );
        records += text.matches("<record>").count() as u64;
        match prefix.as_str() {
            "enterprise.protection.outlook.com" => {
                assert!(text.contains(r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#));
                assert!(text.contains("<envelope_to>"));
            }
            "isp.example" => {
                assert!(name.ends_with(".xml"));
                assert!(text.contains(r#"<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">"#));
                for needle in [
                    "<np>",
                    "<testing>n</testing>",
                    "<discovery_method>treewalk</discovery_method>",
                    "<generator>",
                    "<disposition>pass</disposition>",
                ] {
                    assert!(text.contains(needle), "{needle} in {name}");
                }
            }
            "google.com" => {
                assert!(
                    name.ends_with(".zip")
                        && !text.contains("<version>")
                        && !text.contains("<envelope_from>")
                );
            }
            "mail.ru" => assert_eq!(text.lines().count(), 2, "declaration line + one-line document"),
            "fastmail.com" => assert!(text.contains("\n\t<report_metadata>") && name.split('!').count() == 5),
            _ => {}
        }
        seen.insert(prefix);
    }
    assert_eq!(records, s.records);
    for want in [
        "google.com",
        "enterprise.protection.outlook.com",
        "yahoo.com",
        "mail.ru",
        "comcast.net",
        "isp.example",
        "fastmail.com",
        "tls:google.com",
        "tls:microsoft.com",
    ] {
        assert!(seen.contains(want), "no {want} report among {seen:?}");
    }
}

#[test]
fn labels_describe_the_event() {
    // The same document `generate` writes, built from a counting-only run.
    let read = |scenario: Scenario| {
        let o = opts(scenario);
        let (_, t) = tally(&o);
        let world = World::build(o.seed, o.scale, scenario == Scenario::ReporterJoining);
        let plan = Plan::new(scenario, o.days, world.domains.len());
        labels::labels(&o, &world, &plan, &t)
    };
    let v = read(Scenario::ReplayFlood);
    assert_eq!(v["scenario"], "replay-flood");
    assert_eq!(v["first_day"], FIRST_DAY);
    assert_eq!(v["last_day"], day_start(34));
    let ev = &v["events"][0];
    assert_eq!(ev["kind"], "dkim_replay");
    assert_eq!(ev["domain"], "example.com");
    assert_eq!(ev["selector"], "s2026");
    assert_eq!(ev["reporter"], "google.com");
    assert_eq!(ev["first_day"], day_start(30));
    assert_eq!(ev["last_day"], day_start(32));
    assert_eq!(ev["networks"].as_array().map(Vec::len), Some(40));
    assert!(ev["daily"][0]["messages"].as_u64().expect("messages") > 0);

    assert_eq!(read(Scenario::Baseline)["events"].as_array().map(Vec::len), Some(0));
    let neg = read(Scenario::DkimRotation);
    assert_eq!(neg["events"][0]["kind"], "negative");
    assert_eq!(neg["events"][0]["negative"], "dkim_rotation");
    assert_eq!(neg["events"][0]["new_selector"], "s2026b");
    let join = read(Scenario::ReporterJoining);
    assert_eq!(join["events"].as_array().map(Vec::len), Some(3));
    assert_eq!(join["events"][2]["domain"], "example.org");
}

#[test]
fn replay_flood_numbers_hold_for_other_seeds() {
    for seed in 0..6 {
        let o = SynthOptions { seed, ..opts(Scenario::ReplayFlood) };
        let (_, t) = tally(&o);
        let normal = weekday_median(&t, VICTIM, 30, None);
        for day in [30, 31] {
            let total = t.total(VICTIM, day) as f64;
            let replay = t.class(VICTIM, day, Class::Replay) as f64;
            assert!((40.0..62.0).contains(&(total / normal)), "seed {seed} day {day}: {}", total / normal);
            assert!(replay / total > 0.975, "seed {seed} day {day}: {}", replay / total);
        }
    }
}

/// Records of reporter 0 (Google) for example.com on `day` under `o`.
fn google_records(o: &SynthOptions, day: u32, f: impl FnOnce(&World, &[Rec<'_>])) {
    let world = World::build(o.seed, o.scale, false);
    let plan = Plan::new(o.scenario, o.days, world.domains.len());
    let traffic = Traffic::new(&world, &plan, o.seed);
    let mut recs = Vec::new();
    traffic.dmarc(VICTIM, 0, day, &mut recs);
    f(&world, &recs);
}

#[test]
fn the_dkim_only_esp_signs_with_the_domains_key_from_one_network_up_to_a_third() {
    let o = opts(Scenario::EspDkimOnly);
    let (_, t) = tally(&o);
    let (first, last) = Plan::new(o.scenario, o.days, 3).event_days().expect("event");
    assert_eq!(t.class(VICTIM, first - 1, Class::NewEsp), 0);
    assert!(t.class(VICTIM, first, Class::NewEsp) > 0);
    let share = t.class(VICTIM, last, Class::NewEsp) as f64 / t.total(VICTIM, last) as f64;
    assert!((0.25..0.4).contains(&share), "{share}");
    google_records(&o, last, |_, recs| {
        let esp: Vec<&Rec<'_>> = recs.iter().filter(|r| r.class == Class::NewEsp).collect();
        assert!(!esp.is_empty());
        assert!(esp.iter().all(|r| r.dmarc_dkim && !r.dmarc_spf && r.spf == "pass"));
        assert!(esp.iter().all(|r| r.envelope_from == "mandrel.example"));
        assert!(esp
            .iter()
            .all(|r| r.dkim[0].is_some_and(|k| k.domain == "example.com" && k.selector == "mte")));
        let nets: BTreeSet<[u8; 3]> = esp
            .iter()
            .filter_map(|r| match r.ip {
                IpAddr::V4(a) => Some([a.octets()[0], a.octets()[1], a.octets()[2]]),
                IpAddr::V6(_) => None,
            })
            .collect();
        assert_eq!(nets.len(), 1, "one network");
        assert!(esp.len() <= 8, "a few addresses");
    });
}

#[test]
fn churning_forwarders_are_new_every_day_and_follow_the_rotation() {
    let o = opts(Scenario::ChurningForwarders);
    let (_, t) = tally(&o);
    for day in (0..o.days).filter(|&d| !is_weekend(d)) {
        let own_list = (t.total(VICTIM, day) - t.class(VICTIM, day, Class::Spoof)) as f64;
        let share = t.class(VICTIM, day, Class::Forwarded) as f64 / own_list;
        assert!((0.07..0.17).contains(&share), "day {day}: {share}");
    }
    let rotation = Plan::new(o.scenario, o.days, 3).rotation_day().expect("rotation");
    let forwarded = |day: u32| {
        let mut out = (BTreeSet::new(), BTreeSet::new());
        google_records(&o, day, |_, recs| {
            for r in recs.iter().filter(|r| r.class == Class::Forwarded) {
                assert!(r.dmarc_dkim && !r.dmarc_spf);
                out.0.insert(r.ip);
                out.1.extend(r.dkim[0].map(|k| k.selector.to_owned()));
            }
        });
        out
    };
    let (before, sels_before) = forwarded(rotation - 1);
    let (after, sels_after) = forwarded(rotation + 1);
    assert!(before.len() >= 100, "{} forwarders at Google", before.len());
    assert!(before.intersection(&after).count() * 20 < before.len(), "new addresses every day");
    assert_eq!(sels_before, BTreeSet::from(["s2026".to_owned()]));
    assert_eq!(sels_after, BTreeSet::from(["s2026b".to_owned()]));
}

#[test]
fn the_old_selector_replay_comes_after_the_rotation() {
    let o = opts(Scenario::OldSelectorReplay);
    let plan = Plan::new(o.scenario, o.days, 3);
    let rotation = plan.rotation_day().expect("rotation");
    assert!(rotation + 7 < plan.event_day());
    google_records(&o, plan.event_day(), |_, recs| {
        let own: BTreeSet<&str> = recs
            .iter()
            .filter(|r| r.class == Class::Own)
            .filter_map(|r| r.dkim[0].map(|k| k.selector))
            .collect();
        let replay: BTreeSet<&str> = recs
            .iter()
            .filter(|r| r.class == Class::Replay)
            .filter_map(|r| r.dkim[0].map(|k| k.selector))
            .collect();
        assert_eq!(own, BTreeSet::from(["s2026b"]));
        assert_eq!(replay, BTreeSet::from(["s2026"]));
    });
}

#[test]
fn replay_sizes_are_multiples_of_the_normal_volume() {
    for (tenths, name) in [(5, "replay-size-0.5"), (10, "replay-size-1"), (500, "replay-size-50")] {
        let s = Scenario::ReplaySize(tenths);
        assert_eq!(s.name(), name);
        assert_eq!(name.parse::<Scenario>(), Ok(s));
        let o = opts(s);
        let (_, t) = tally(&o);
        let normal = weekday_median(&t, VICTIM, 30, None);
        let size = t.class(VICTIM, 30, Class::Replay) as f64 / normal;
        let want = f64::from(tenths) / 10.0;
        assert!((size / want - 1.0).abs() < 0.25, "{name}: {size}");
    }
}

#[test]
fn late_reports_arrive_by_day_in_odd_windows_with_every_message() {
    let dir = TempDir::new("late");
    let o = SynthOptions { days: 10, ..opts(Scenario::LateReports) };
    let s = generate(&o, &dir.0).expect("generate");
    let reports = reports_dir(&dir.0);
    let mut days: Vec<String> = fs::read_dir(&reports)
        .expect("reports")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    days.sort();
    assert_eq!(
        days.first().map(String::as_str),
        Some("2026-09-01"),
        "Yahoo's hourly reports arrive the same day"
    );
    assert_eq!(days.last().map(String::as_str), Some("2026-09-13"), "Microsoft's last report two days late");
    let all = files(&reports);
    assert_eq!(all.len(), s.files);
    let in_dir = |day: &str, prefix: &str| {
        all.iter()
            .filter(|p| p.parent().is_some_and(|d| d.ends_with(day)))
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
            .count()
    };
    // Day 0 (2026-09-01): Google's report arrives on 09-03, Microsoft's on 09-04.
    assert_eq!(in_dir("2026-09-02", "google.com!example.com!1788220800!1788307199.zip"), 0);
    assert_eq!(in_dir("2026-09-03", "google.com!example.com!1788220800!1788307199.zip"), 1);
    assert_eq!(in_dir("2026-09-04", "enterprise.protection.outlook.com!example.com!1788220800!"), 1);
    // Yahoo: 23 hourly reports on the day itself, the last hour's just after midnight.
    assert_eq!(in_dir("2026-09-02", "yahoo.com!example.com!1788303600!"), 1);
    assert!(in_dir("2026-09-01", "yahoo.com!example.com!") >= 20);
    // isp.example: one report for days 0-2, arriving on day 3.
    assert_eq!(in_dir("2026-09-04", "isp.example!example.com!1788220800!1788479999.xml"), 1);
    // Every message of the tally is in some report.
    let (counted, _) = tally(&o);
    assert_eq!(s.messages, counted.messages);
    let labels: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.0.join(LABELS_FILE)).expect("labels")).expect("json");
    assert_eq!(labels["reports_by_arrival_day"], true);
    assert_eq!(labels["delivery"]["Enterprise Outlook"]["late_days"], 2);
    let event = &labels["events"][0];
    assert_eq!(event["first_arrival_day"], event["first_day"], "the hourly reporter sees the flood that day");
}
