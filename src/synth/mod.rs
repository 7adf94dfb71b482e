//! Synthetic DMARC aggregate and SMTP TLS reports: the engine behind `ruaflow synth` and
//! `ruaflow demo`, the benchmarks, and the evaluation of anomaly detectors.
//!
//! In: [`SynthOptions`] (seed, [`Scenario`], days, scale). Out: report files as real
//! receivers send them, in `DIR/reports/`, plus the ground truth in `DIR/labels.json`.
//! The output is byte-identical for the same options: the calendar is fixed (day 0 is
//! 2026-09-01 UTC), randomness comes from the seed only, and nothing reads the clock.
//!
//! ```text
//! World (domains, senders, reporters) ──┐
//! Plan (the scenario's event, by day) ──┴─> traffic: Rec per source IP ─> dmarc_xml / tlsrpt_json ─> write
//!                                                └─> Tally (ground truth) ─> labels
//! ```
//!
//! Domains are handed to worker threads (one per core, at most 8); a file's bytes depend
//! only on its domain, reporter and day, so the schedule never changes the output.
//!
//! Layout:
//! - [`rng`]: SplitMix64 and per-stream derivation.
//! - `calendar`: report days, weekdays, UTC formatting.
//! - `world`: policy domains, their senders, reporters, the address plan.
//! - `scenario`: [`Scenario`] and the day-by-day `Plan` of its event.
//! - `traffic`: records per (domain, reporter, day), TLS sessions, exact tallies.
//! - `delivery`: report windows (day, hour, several days) and arrival times.
//! - `dmarc_xml`, `tlsrpt_json`: documents in each receiver's dialect.
//! - `write`: file names, compression, files on disk.
//! - `labels`: `labels.json`.

mod calendar;
mod delivery;
mod dmarc_xml;
mod labels;
pub mod rng;
mod scenario;
mod tlsrpt_json;
mod traffic;
mod world;
mod write;

#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use scenario::Scenario;

use calendar::{day_end, day_start};
use delivery::{Delivery, Window};
use scenario::Plan;
use traffic::{Rec, Tally, Traffic};
use world::{Style, World};
use write::Writer;

/// File name of the ground truth in the output directory.
pub const LABELS_FILE: &str = "labels.json";

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Seed of all randomness: the same options give byte-identical output.
    pub seed: u64,
    /// The event on top of the baseline traffic.
    pub scenario: Scenario,
    /// Number of report days, from 2026-09-01 UTC (default 35); at least 1.
    pub days: u32,
    /// Multiplies volumes and the numbers of domains and reporters. 1.0 is demo size
    /// (3 domains, 6 reporters: ~665 files, ~40,000 records over 35 days); 30 gives
    /// ~11,000 reports with ~1,000,000 records. Must be positive.
    pub scale: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self { seed: 1, scenario: Scenario::Baseline, days: 35, scale: 1.0 }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Report files written (`labels.json` not included).
    pub files: usize,
    /// DMARC aggregate reports among them.
    pub dmarc_reports: usize,
    /// SMTP TLS reports among them.
    pub tlsrpt_reports: usize,
    /// DMARC records (rows) in all reports.
    pub records: u64,
    /// Messages counted by those records.
    pub messages: u64,
    /// Bytes of the report files as written (compressed where the reporter compresses).
    pub bytes: u64,
}

/// Where [`generate`] puts the report files for output directory `out`: `out/reports`.
/// Point the pipeline there; `out/labels.json` is not a report. In the `late-reports`
/// scenario the files sit in one subdirectory per arrival day (`reports/2026-09-02/`),
/// so that they can be fed in the order a mailbox received them.
pub fn reports_dir(out: &Path) -> PathBuf {
    out.join(write::REPORTS_SUBDIR)
}

/// Generates the data set described by `opts` into `out` (created if missing): report
/// files in `out/reports/`, ground truth in `out/labels.json`. Existing files with the
/// same names are overwritten; others are left alone.
pub fn generate(opts: &SynthOptions, out: &Path) -> io::Result<SynthSummary> {
    let (summary, _) = run(opts, Some(out))?;
    Ok(summary)
}

/// Upper bound on worker threads; each owns a writer with a few MiB of buffers.
const MAX_THREADS: usize = 8;

/// Generates the data set into `out`; with `None` it only runs the traffic model and counts
/// (reports, records, messages and the tally; `files` and `bytes` stay 0), which is what
/// the scenario tests need.
///
/// Domains are handed out to worker threads one at a time (the victim domain, by far the
/// largest during a flood, goes first). Every file's bytes depend only on its domain,
/// reporter and day, so the thread schedule cannot change the output.
fn run(opts: &SynthOptions, out: Option<&Path>) -> io::Result<(SynthSummary, Tally)> {
    if opts.days == 0 || !opts.scale.is_finite() || opts.scale <= 0.0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "synth needs days >= 1 and a positive scale, got days = {} and scale = {}",
                opts.days, opts.scale
            ),
        ));
    }
    let joining = opts.scenario == Scenario::ReporterJoining;
    let world = World::build(opts.seed, opts.scale, joining);
    let plan = Plan::new(opts.scenario, opts.days, world.domains.len());
    let job = Job {
        opts,
        world: &world,
        traffic: Traffic::new(&world, &plan, opts.seed),
        next_domain: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
    };
    if let Some(out) = out {
        std::fs::create_dir_all(reports_dir(out))?;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_THREADS)
        .min(world.domains.len());
    let results: Vec<io::Result<Part>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads).map(|_| s.spawn(|| job.work(out))).collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });

    let mut summary = SynthSummary::default();
    let mut tally = Tally::new(world.domains.len(), opts.days, world.reporters.len());
    for part in results {
        let part = part?;
        summary.add(&part.summary);
        tally.merge(&part.tally);
    }
    if let Some(out) = out {
        let doc = labels::labels(opts, &world, &plan, &tally);
        let mut text = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
        text.push(b'\n');
        fs::write(out.join(LABELS_FILE), text)?;
    }
    Ok((summary, tally))
}

impl SynthSummary {
    fn add(&mut self, other: &SynthSummary) {
        self.files += other.files;
        self.dmarc_reports += other.dmarc_reports;
        self.tlsrpt_reports += other.tlsrpt_reports;
        self.records += other.records;
        self.messages += other.messages;
        self.bytes += other.bytes;
    }
}

/// What the worker threads share.
struct Job<'w> {
    opts: &'w SynthOptions,
    world: &'w World,
    traffic: Traffic<'w>,
    /// The next domain index to hand out.
    next_domain: AtomicUsize,
    /// Set by a worker that hit an error, so the others stop early.
    failed: AtomicBool,
}

/// One worker's share of the output.
struct Part {
    summary: SynthSummary,
    tally: Tally,
}

impl Job<'_> {
    /// Takes domains until none is left, generating all their days.
    fn work(&self, out: Option<&Path>) -> io::Result<Part> {
        let w = self.world;
        let mut part = Part {
            summary: SynthSummary::default(),
            tally: Tally::new(w.domains.len(), self.opts.days, w.reporters.len()),
        };
        let by_arrival = self.opts.scenario == Scenario::LateReports;
        let mut writer = out.map(|o| Writer::new(o, by_arrival)).transpose()?;
        // Records received but not reported yet, per reporter (multi-day windows).
        let mut held: Vec<Vec<Rec<'_>>> = vec![Vec::new(); w.reporters.len()];
        let mut recs: Vec<Rec<'_>> = Vec::new();
        loop {
            let d = self.next_domain.fetch_add(1, Ordering::Relaxed);
            if d >= w.domains.len() || self.failed.load(Ordering::Relaxed) {
                break;
            }
            held.iter_mut().for_each(Vec::clear);
            for day in 0..self.opts.days {
                let done = self.domain_day(d, day, &mut part, writer.as_mut(), &mut recs, &mut held);
                if let Err(e) = done {
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        if let Some(writer) = writer {
            part.summary.files = writer.files;
            part.summary.bytes = writer.bytes;
        }
        Ok(part)
    }

    /// All reports about domain `d` whose window ends with `day`: per DMARC reporter that
    /// saw mail, one per window ending that day (see [`Delivery`]); one per TLS reporter if
    /// the domain publishes TLSRPT.
    fn domain_day<'w>(
        &'w self,
        d: usize,
        day: u32,
        part: &mut Part,
        mut writer: Option<&mut Writer>,
        recs: &mut Vec<Rec<'w>>,
        held: &mut [Vec<Rec<'w>>],
    ) -> io::Result<()> {
        let (world, seed) = (self.world, self.opts.seed);
        let dom = &world.domains[d];
        let (begin, end) = (day_start(day), day_end(day));
        for (r, rep) in world.reporters.iter().enumerate() {
            self.traffic.dmarc(d, r, day, recs);
            part.tally.add(d, r, day, recs);
            let delivery = Delivery::of(self.opts.scenario, rep.style);
            held[r].extend_from_slice(recs);
            let windows = delivery.windows_ending(day, self.opts.days);
            if windows.is_empty() {
                continue;
            }
            let hours = (delivery.window == Window::Hour).then(|| hourly(seed, &held[r], (d, r, day)));
            for (k, &(w_begin, w_end)) in windows.iter().enumerate() {
                let rows = hours.as_ref().map_or(held[r].as_slice(), |h| h[k].as_slice());
                if rows.is_empty() {
                    // Receivers send no report for a window without mail.
                    continue;
                }
                part.summary.dmarc_reports += 1;
                part.summary.records += rows.len() as u64;
                part.summary.messages += rows.iter().map(|rec| rec.count).sum::<u64>();
                let Some(writer) = writer.as_deref_mut() else {
                    continue;
                };
                let id = dmarc_xml::report_id(seed, rep, r, d, day, k as u64);
                dmarc_xml::render(rep, dom, (w_begin, w_end), &id, rows, &mut writer.doc);
                let name = match rep.style {
                    // FastMail appends the report id to its file names.
                    Style::Fastmail => {
                        format!("{}!{}!{w_begin}!{w_end}!{id}.xml", rep.file_prefix, dom.name)
                    }
                    _ => format!("{}!{}!{w_begin}!{w_end}.xml", rep.file_prefix, dom.name),
                };
                writer.emit(&name, rep.container, delivery.arrival(r, w_end))?;
            }
            held[r].clear();
        }
        let Some(setup) = &dom.tls else {
            return Ok(());
        };
        for (t, rep) in world.tls_reporters.iter().enumerate() {
            let Some(sessions) = self.traffic.tls(d, t, day) else {
                continue;
            };
            part.tally.add_tls(d, day, &sessions);
            part.summary.tlsrpt_reports += 1;
            let Some(writer) = writer.as_deref_mut() else {
                continue;
            };
            let id = tlsrpt_json::report_id(seed, rep, d, dom, day);
            tlsrpt_json::render(rep, dom, setup, day, &id, &sessions, &mut writer.doc);
            // Google numbers its TLS report files (`…!001.json.gz`); Microsoft does not.
            let suffix = if rep.google { "!001" } else { "" };
            let name = format!("{}!{}!{begin}!{end}{suffix}.json", rep.file_prefix, dom.name);
            writer.emit(&name, world::Container::Gzip, end + 1 + 7_200)?;
        }
        Ok(())
    }
}

/// Diurnal profile of hourly report volumes (UTC), relative weights.
const DIURNAL: [f64; 24] = [
    1.0, 1.0, 1.0, 1.0, 1.2, 2.0, 3.0, 5.0, 7.0, 8.0, 8.0, 8.0, 7.0, 7.0, 8.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0,
    2.5, 2.0, 1.5,
];

/// Stream tag of the hourly split.
const T_HOURS: u64 = 30;

/// Splits a day's records into 24 hourly reports: a record of fewer than 24 messages goes
/// whole into one hour drawn from the diurnal profile, a larger one is spread over the
/// hours by the profile (the remainder in its busiest hour). Counts add up exactly.
fn hourly<'w>(seed: u64, recs: &[Rec<'w>], (d, r, day): (usize, usize, u32)) -> Vec<Vec<Rec<'w>>> {
    let mut rng = rng::Rng::derive(seed, &[T_HOURS, d as u64, r as u64, u64::from(day)]);
    let total: f64 = DIURNAL.iter().sum();
    let mut hours: Vec<Vec<Rec<'w>>> = vec![Vec::new(); 24];
    for rec in recs {
        if rec.count < 24 {
            let mut u = rng.unit() * total;
            let h = DIURNAL.iter().position(|w| {
                u -= w;
                u < 0.0
            });
            hours[h.unwrap_or(23)].push(*rec);
            continue;
        }
        let mut left = rec.count;
        for (h, w) in DIURNAL.iter().enumerate() {
            let n = ((rec.count as f64 * w / total) as u64).min(left);
            left -= n;
            if n > 0 {
                hours[h].push(Rec { count: n, ..*rec });
            }
        }
        if left > 0 {
            match hours[9].iter_mut().rev().find(|x| x.ip == rec.ip && x.class == rec.class) {
                Some(x) => x.count += left,
                None => hours[9].push(Rec { count: left, ..*rec }),
            }
        }
    }
    hours
}
