//! `ruaflow synth --out DIR --seed N [--scenario NAME] [--days N] [--scale X]`: writes a
//! deterministic, realistic synthetic data set (see `src/synth/`).

use std::path::PathBuf;

use clap::Args;

use crate::synth::{self, Scenario, SynthOptions};

/// Arguments of `ruaflow synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory: reports go to DIR/reports, the ground truth to DIR/labels.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed; the same options always give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What happens on top of normal traffic: baseline, replay-flood, slow-ramp-replay,
    /// spoofing-spike, tls-failure, new-esp, mailing-list-growth, dkim-rotation,
    /// reporter-joining, esp-dkim-only, churning-forwarders, old-selector-replay,
    /// late-reports, replay-size-0.5, replay-size-1, replay-size-2, replay-size-5,
    /// replay-size-50.
    #[arg(long, default_value = "baseline")]
    pub scenario: Scenario,
    /// Report days, starting 2026-09-01 UTC.
    #[arg(long, default_value_t = 35)]
    pub days: u32,
    /// Volume and size multiplier: 1 is a few hundred files, 30 about 10,000 reports with
    /// 1,000,000 records.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let opts = SynthOptions { seed: args.seed, scenario: args.scenario, days: args.days, scale: args.scale };
    let summary = synth::generate(&opts, &args.out)?;
    println!(
        "{} files ({} DMARC and {} TLS reports, {} records, {} messages, {:.1} MB) in {}; ground truth in {}",
        summary.files,
        summary.dmarc_reports,
        summary.tlsrpt_reports,
        summary.records,
        summary.messages,
        summary.bytes as f64 / 1e6,
        synth::reports_dir(&args.out).display(),
        args.out.join(synth::LABELS_FILE).display()
    );
    Ok(())
}
