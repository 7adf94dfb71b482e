//! `ruaflow run [--once] [--db FILE] [--config FILE] [--offline] [INPUT…]`: the embedded
//! pipeline. Files → Envelopes → bounded queue → parse workers → SQLite → detection.
//!
//! With `--once` every input is processed, committed, and a summary printed. Without it
//! the inputs are then watched for new or changed files until SIGINT/SIGTERM, which
//! finish what is in flight and commit before exiting.
//!
//! With an `[http]` section (and without `--once`) the HTTP endpoint feeds the same queue:
//! it starts before the directory feed, and on a stop signal it stops accepting and lets
//! in-flight requests finish (each waits for its commit) before the queue is closed, so
//! the pipeline drains and commits everything a client was answered 2xx for.
//!
//! Each `[[imap]]` section (without `--once`) reads one mailbox folder into the same
//! queue, on a runtime of its own; a message is moved out of the folder only after its
//! commit, and on a stop signal the sources finish the message in flight before the queue
//! is closed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use std::sync::atomic::{AtomicU64, Ordering};

use ruaflow_processor::detect::{self, DetectHook};
use ruaflow_processor::enrich::{EnrichConfig, Enricher};
use ruaflow_processor::pipeline::{self, Delivery, PipelineConfig, Progress, Summary};
use ruaflow_processor::retention::Pruner;
use ruaflow_processor::sink::Sinks;
use ruaflow_processor::sqlite::SqliteStore;
use ruaflow_schema::alert::Alert;
use ruaflow_schema::Health;

use super::config::Config;
use super::sources::{stop_signal, FileFeed, HttpRunning, ImapRunning};

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

pub fn run(args: RunArgs) -> anyhow::Result<RunSummary> {
    let mut config = Config::load(args.config.as_deref())?;
    config.enrich.offline |= args.offline;
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
        println!("dead letters, each with its reason: ruaflow dead-letters --db {}", args.db.display());
    }
    if summary.alerts > 0 {
        println!("{} alert notices raised: ruaflow alerts --db {}", summary.alerts, args.db.display());
    }
    Ok(summary)
}

/// Runs the embedded pipeline over `inputs` into the database at `db`.
pub fn run_pipeline(
    db: &Path,
    inputs: &[PathBuf],
    once: bool,
    config: &Config,
) -> anyhow::Result<RunSummary> {
    // Watching, each report is news: one info line each. A bulk load is summed up.
    detecting_pipeline(db, config, !once, |tx, progress, health| {
        let http = match &config.http {
            Some(_) if once => {
                tracing::warn!("--once: the [http] section is ignored");
                None
            }
            Some(http) => Some(HttpRunning::start(http, config, tx.clone(), health.clone())?),
            None => None,
        };
        let imap = match config.imap.len() {
            0 => None,
            _ if once => {
                tracing::warn!("--once: the [[imap]] sections are ignored");
                None
            }
            _ => Some(ImapRunning::start(config, tx.clone())?),
        };
        // Installed before the first feed so a stop during a long initial scan is graceful.
        let stop = if once { None } else { Some(stop_signal()?) };

        let mut files = FileFeed::new(inputs, &config.files, config.limits.max_input_bytes)?;
        let first = files.changed();
        let bar = progress_bar((first.files.len() + first.problems.len()) as u64, progress);
        let fed = files.feed(first, &tx).and_then(|()| match &stop {
            Some(stop) => files.watch(&tx, stop, health),
            None => Ok(()),
        });
        // The endpoint holds a queue sender: it must be gone before the queue can close.
        if let Some(http) = http {
            http.stop();
        }
        if let Some(imap) = imap {
            imap.stop();
        }
        fed.map(|()| bar)
    })
}

/// The embedded pipeline with detection into the database at `db`, fed by `feed` (given
/// the queue, the counters, and the health the pipeline reports a failure on) until it
/// returns; then the queue closes, the pipeline drains and commits, the checks that
/// need the whole picture run, sources are enriched and the alert sinks flushed. With
/// `log_reports`, each stored report gets an info line.
pub fn detecting_pipeline(
    db: &Path,
    config: &Config,
    log_reports: bool,
    feed: impl FnOnce(
        tokio::sync::mpsc::Sender<Delivery>,
        &Arc<Progress>,
        &Health,
    ) -> anyhow::Result<Option<indicatif::ProgressBar>>,
) -> anyhow::Result<RunSummary> {
    let store = SqliteStore::open(db).with_context(|| format!("cannot open database {}", db.display()))?;
    // [retention]: pruned beside the pipeline (at start, hourly) and once more at the end.
    let pruner = Pruner::start(db, &config.retention)?;
    let pipeline_config =
        PipelineConfig { limits: config.limits.clone(), log_reports, ..PipelineConfig::default() };
    let progress = Arc::new(Progress::default());
    let (tx, rx) = ruaflow_ingest::queue::local::<Delivery>();
    let health = Health::default();

    let sinks = Arc::new(Sinks::start(&config.alerts)?);
    let alerts_raised = Arc::new(AtomicU64::new(0));
    let writer = {
        let progress = Arc::clone(&progress);
        let db = db.to_path_buf();
        let sinks = Arc::clone(&sinks);
        let raised = Arc::clone(&alerts_raised);
        let health = health.clone();
        let mut hook = DetectHook {
            config: config.detect.clone(),
            notify: move |alert: &Alert| {
                raised.fetch_add(1, Ordering::Relaxed);
                sinks.emit(alert);
            },
        };
        std::thread::Builder::new().name("pipeline".into()).spawn(move || {
            let result = pipeline::run(store, Some(db), rx, &pipeline_config, progress, &mut hook);
            if let Err(err) = &result {
                // Nothing more can be stored: say so where an operator looks, and make the
                // sources refuse new work at once (503 and /healthz failing).
                tracing::error!(error = %err, "the pipeline cannot store reports; stopping");
                health.fail(format!("storing reports failed: {err}"));
            }
            result
        })?
    };

    let fed = feed(tx, &progress, &health);
    let result = writer.join().map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    if let Ok(Some(bar)) = &fed {
        bar.finish_and_clear();
    }
    fed?;
    let store = result.context("storing reports failed")?;
    // Checks that need the whole picture (reporter silence) run once everything is in.
    for alert in detect::sweep(store.conn(), &config.detect)? {
        alerts_raised.fetch_add(1, Ordering::Relaxed);
        sinks.emit(&alert);
    }
    drop(store);
    if let Some(pruner) = pruner {
        pruner.finish();
    }
    enrich(db, &config.enrich)?;
    if !sinks.flush(Duration::from_secs(30)) {
        tracing::error!(
            "some alerts could not be delivered to their webhooks within 30 s (they are in the store)"
        );
    }
    Ok(RunSummary { pipeline: progress.summary(), alerts: alerts_raised.load(Ordering::Relaxed) })
}

/// Fills in what is known about new sources (reverse DNS unless offline, MaxMind
/// databases when configured), with a bounded number of lookups per run.
fn enrich(db: &Path, config: &EnrichConfig) -> anyhow::Result<()> {
    /// Sources enriched per run; the rest are picked up by the next run.
    const MAX_PER_RUN: usize = 20_000;
    if config.offline && config.asn_db.is_none() && config.country_db.is_none() {
        return Ok(());
    }
    let enricher = Enricher::new(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let enriched = runtime.block_on(enricher.enrich_pending(db, MAX_PER_RUN))?;
    tracing::info!(sources = enriched, "sources enriched");
    Ok(())
}

/// What `run` did.
#[derive(Debug, Clone, Copy)]
pub struct RunSummary {
    /// Pipeline counters.
    pub pipeline: Summary,
    /// Alert notices raised (firing and resolved).
    pub alerts: u64,
}

impl std::ops::Deref for RunSummary {
    type Target = Summary;

    fn deref(&self) -> &Summary {
        &self.pipeline
    }
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
