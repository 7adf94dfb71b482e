//! `ruaflow run [--once] [--db FILE] [--config FILE] [--offline] [INPUT…]`: the embedded
//! pipeline. Files → Envelopes → bounded queue → parse workers → SQLite → detection.
//!
//! With `--once` every input is processed, committed, and a summary printed. Without it
//! the inputs are then watched for new or changed files until SIGINT/SIGTERM, which
//! finish what is in flight and commit before exiting.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use ruaflow_ingest::dir;
use ruaflow_processor::pipeline::{self, Delivery, PipelineConfig, Progress, Summary};
use ruaflow_processor::sqlite::SqliteStore;

use super::config::Config;

/// Arguments of `ruaflow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process the inputs, commit, print a summary and exit (no watching).
    #[arg(long)]
    pub once: bool,
    /// The SQLite database file (created if missing).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Configuration file (TOML); see `ruaflow.example.toml`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// No network lookups (reverse DNS) while enriching.
    #[arg(long)]
    pub offline: bool,
    /// Files or directories of reports (xml, gz, zip, json, eml, mbox).
    pub inputs: Vec<PathBuf>,
}

/// How often watched inputs are scanned for new files.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

pub fn run(args: RunArgs) -> anyhow::Result<Summary> {
    let config = Config::load(args.config.as_deref())?;
    if args.inputs.is_empty() && args.once {
        anyhow::bail!("nothing to do: give INPUT files or directories with --once");
    }
    let summary = run_pipeline(&args.db, &args.inputs, args.once, &config)?;
    let line = format!(
        "{} reports, {} records, {} messages stored; {} duplicate reports and {} duplicate inputs skipped; {} dead letters; {} failure reports seen",
        summary.reports,
        summary.records,
        summary.messages,
        summary.duplicate_reports,
        summary.duplicate_envelopes,
        summary.dead_letters,
        summary.failure_reports
    );
    println!("{line}");
    if summary.dead_letters > 0 {
        println!("dead letters are in {} (table dead_letters), with the reason for each", args.db.display());
    }
    Ok(summary)
}

/// Runs the embedded pipeline over `inputs` into the database at `db`.
pub fn run_pipeline(db: &Path, inputs: &[PathBuf], once: bool, config: &Config) -> anyhow::Result<Summary> {
    let store = SqliteStore::open(db).with_context(|| format!("cannot open database {}", db.display()))?;
    let pipeline_config = PipelineConfig { limits: config.limits.clone(), ..PipelineConfig::default() };
    let progress = Arc::new(Progress::default());
    let (tx, rx) = ruaflow_ingest::queue::local::<Delivery>();

    let writer = {
        let progress = Arc::clone(&progress);
        let db = db.to_path_buf();
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || pipeline::run(store, Some(db), rx, &pipeline_config, progress, &mut ()))?
    };

    let files = dir::scan(inputs)?;
    let bar = progress_bar(files.len() as u64, &progress);
    let max_input = config.limits.max_input_bytes;
    let feed = |paths: Vec<PathBuf>| -> anyhow::Result<()> {
        for path in paths {
            match dir::read_envelope(&path, max_input) {
                Ok(envelope) => {
                    if tx.blocking_send(Delivery { envelope, ack: None }).is_err() {
                        anyhow::bail!("the pipeline stopped");
                    }
                }
                Err(err) => tracing::warn!(path = %path.display(), error = %err, "cannot read input"),
            }
        }
        Ok(())
    };
    let mut seen = dir::Seen::default();
    let first = seen.changed(inputs)?;
    let fed = feed(first);
    if fed.is_ok() && !once {
        tracing::info!(inputs = inputs.len(), "watching inputs for new reports; Ctrl-C to stop");
        let stop = stop_signal()?;
        let mut last_scan = std::time::Instant::now();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // Short sleeps keep a stop prompt; scans happen every WATCH_INTERVAL.
            std::thread::sleep(Duration::from_millis(200));
            if last_scan.elapsed() >= WATCH_INTERVAL {
                feed(seen.changed(inputs)?)?;
                last_scan = std::time::Instant::now();
            }
        }
        tracing::info!("stopping: finishing what is in flight");
    }
    drop(tx);
    let result = writer.join().map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    fed?;
    result.context("storing reports failed")?;
    Ok(progress.summary())
}

/// A flag set by SIGINT or SIGTERM.
fn stop_signal() -> anyhow::Result<Arc<std::sync::atomic::AtomicBool>> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) =
                    (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
                else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    })?;
    Ok(stop)
}

/// A progress bar on stderr while files are processed, only when stderr is a terminal.
fn progress_bar(total: u64, progress: &Arc<Progress>) -> Option<indicatif::ProgressBar> {
    if total < 2 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} inputs {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ticker = bar.clone();
    let progress = Arc::clone(progress);
    std::thread::spawn(move || {
        while !ticker.is_finished() {
            let s = progress.summary();
            ticker.set_position(s.envelopes + s.duplicate_envelopes);
            ticker.set_message(format!("{} records", s.records));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Some(bar)
}
