//! `ruaflow run [--once] [--db FILE] [--config FILE] [--offline] [INPUT…]`: the embedded
//! pipeline. Files → Envelopes → bounded queue → parse workers → SQLite → detection.
//!
//! With `--once` every input is processed, committed, and a summary printed. Without it
//! the inputs are then watched for new or changed files until SIGINT/SIGTERM, which
//! finish what is in flight and commit before exiting.
//!
//! With an `[http]` section (and without `--once`) the HTTP endpoint feeds the same queue,
//! and each `[[imap]]` section reads one mailbox folder into it (with `--once`, what the
//! mailbox holds now, beside the inputs; the run ends once both are done). A message
//! leaves its folder only after its commit. On a stop (a signal, or a store that cannot
//! go on) the endpoint stops accepting and lets in-flight requests finish (each waits for
//! its commit), the mailboxes finish the message in flight, and the pipeline drains and
//! commits everything a source was told is stored (see [`super::assemble`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use ruaflow_processor::detect::{self, DetectConfig, DetectHook};
use ruaflow_processor::enrich::Enricher;
use ruaflow_processor::pipeline::{PipelineConfig, Progress, Summary};
use ruaflow_processor::retention::Pruner;
use ruaflow_processor::sink::Sinks;
use ruaflow_processor::sqlite::{Refresh, SqliteStore};
use ruaflow_schema::alert::Alert;
use ruaflow_schema::{Health, Shutdown};

use super::assemble::{self, assemble, Pipeline, Source};
use super::config::Config;
use super::sources::{FileSource, HttpFeed, ImapFeed};

/// Arguments of `ruaflow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Process the inputs and what the [[imap]] mailboxes hold now, commit, print a
    /// summary and exit (no watching; for cron or a systemd timer).
    #[arg(long)]
    pub once: bool,
    /// The SQLite database file (created if missing).
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Configuration file (TOML): [[imap]] mailboxes to read, the [http] endpoint, limits,
    /// detection, alerts; see `ruaflow.example.toml`.
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
    if args.inputs.is_empty() && args.once && config.imap.is_empty() {
        anyhow::bail!(
            "nothing to do: give INPUT files or directories, or [[imap]] mailboxes in --config, with --once"
        );
    }
    let summary = run_pipeline(&args.db, &args.inputs, args.once, &config)?;
    let line = format!(
        "{} reports, {} records, {} messages stored; {} duplicate reports and {} duplicate inputs skipped; {} dead letters; {} failure reports stored",
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

/// Runs the embedded pipeline over `inputs` (and, unless `once`, the configured HTTP
/// endpoint and mailboxes) into the database at `db`.
pub fn run_pipeline(
    db: &Path,
    inputs: &[PathBuf],
    once: bool,
    config: &Config,
) -> anyhow::Result<RunSummary> {
    let runtime = assemble::runtime()?;
    let shutdown = Shutdown::new();
    assemble::stop_on_signals(&runtime, &shutdown)?;
    let health = Health::stopping(shutdown.clone());
    let progress = Arc::new(Progress::default());
    let bar = Arc::new(Mutex::new(None));
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if !inputs.is_empty() {
        let files =
            FileSource::new(inputs, config, once)?.with_progress(Arc::clone(&progress), Arc::clone(&bar));
        sources.push(Box::new(files));
    }
    if once && config.http.is_some() {
        tracing::warn!("--once: the [http] section is ignored");
    }
    if let (Some(http), false) = (&config.http, once) {
        sources.push(Box::new(HttpFeed::bind(http, &config.limits, health.clone(), &runtime)?));
    }
    if !config.imap.is_empty() {
        sources.push(Box::new(ImapFeed::new(&config.imap, &config.limits, once)?));
    }
    if let Some(listen) = config.metrics.listen {
        super::metrics::serve(listen, &runtime, Arc::clone(&progress))?;
    }
    // Watching, each report is news: one info line each. A bulk load is summed up.
    let detected = detecting(db, config, sources, &runtime, &shutdown, health, Arc::clone(&progress), !once);
    if let Some(bar) = bar.lock().ok().and_then(|mut b| b.take()) {
        bar.finish_and_clear();
    }
    detected
}

/// The embedded pipeline with detection into the database at `db`, fed by `sources`
/// until they are done or `shutdown` triggers; then the checks that need the whole
/// picture run, sources are enriched and the alert sinks flushed. `run`, `demo` and
/// `reprocess` are this with different sources. `watching` (`run` without `--once`):
/// each stored report gets an info line, and new sources are enriched as they come.
/// `[retention]` is applied beside it (at start, hourly) and once more at the end.
#[allow(clippy::too_many_arguments)]
pub fn detecting(
    db: &Path,
    config: &Config,
    sources: Vec<Box<dyn Source>>,
    runtime: &tokio::runtime::Runtime,
    shutdown: &Shutdown,
    health: Health,
    progress: Arc<Progress>,
    watching: bool,
) -> anyhow::Result<RunSummary> {
    let store = SqliteStore::open(db)
        .with_context(|| format!("cannot open database {}", db.display()))?
        .with_rules(config.detect.clone())
        .context("cannot evaluate the sender model by the configured rules")?;
    let pruner = Pruner::start(db, &config.retention)?;
    let sinks = Arc::new(Sinks::start(&config.alerts)?);
    let alerts_raised = Arc::new(AtomicU64::new(0));
    let hook = {
        let (sinks, raised) = (Arc::clone(&sinks), Arc::clone(&alerts_raised));
        DetectHook {
            config: config.detect.clone(),
            notify: move |alert: &Alert| {
                raised.fetch_add(1, Ordering::Relaxed);
                sinks.emit(alert);
            },
        }
    };
    let pipeline = Pipeline {
        store,
        dedupe_db: Some(db.to_path_buf()),
        config: PipelineConfig {
            limits: config.limits.clone(),
            privacy: config.failure_reports.clone(),
            health,
            log_reports: watching,
            ..PipelineConfig::default()
        },
        hook: Box::new(hook),
        progress: Arc::clone(&progress),
    };
    let enriching = if watching { enrich_while_watching(db, config, runtime, shutdown) } else { None };
    let stored = assemble(|queue| pipeline.start(queue), sources, shutdown, runtime.handle());
    if let Some(task) = enriching {
        task.abort();
    }
    let mut store = stored.context("storing reports failed")?;
    // Checks that need the whole picture (reporter silence) run once everything is in.
    for alert in detect::sweep(&mut store.detect_state(), &config.detect, ruaflow_schema::clock::now())? {
        alerts_raised.fetch_add(1, Ordering::Relaxed);
        sinks.emit(&alert);
    }
    drop(store);
    if let Some(pruner) = pruner {
        pruner.finish();
    }
    enrich(db, config, runtime)?;
    if !sinks.flush(Duration::from_secs(30)) {
        tracing::error!(
            "some alerts could not be delivered to their webhooks, Alertmanagers or mail servers within 30 s (they are in the store)"
        );
    }
    Ok(RunSummary { pipeline: progress.summary(), alerts: alerts_raised.load(Ordering::Relaxed) })
}

/// Fills in what is known about new sources (reverse DNS unless offline, MaxMind
/// databases when configured), with a bounded number of lookups per run.
fn enrich(db: &Path, config: &Config, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    /// Sources enriched per run; the rest are picked up by the next run.
    const MAX_PER_RUN: usize = 20_000;
    if !config.enrich.has_work() {
        return Ok(());
    }
    let enricher = Enricher::new(&config.enrich)?;
    let enriched = runtime.block_on(enricher.enrich_pending(db, MAX_PER_RUN))?;
    tracing::info!(sources = enriched, "sources enriched");
    if enriched > 0 {
        refresh_named_services(db, &config.detect)?;
    }
    Ok(())
}

/// After enrichment: an address enrichment has since named as a mail service stands as
/// one in the sender model (its stored status was evaluated before it had a name).
fn refresh_named_services(db: &Path, rules: &DetectConfig) -> anyhow::Result<()> {
    let changed =
        SqliteStore::open(db)?.with_rules(rules.clone())?.refresh_statuses(Refresh::NamedServices)?;
    if changed > 0 {
        tracing::info!(changed, "sources named as mail services since they were stored");
    }
    Ok(())
}

/// While `run` watches, new sources are enriched every [`ENRICH_EVERY`], a bounded
/// number at a time, until the stop; the task is aborted when the pipeline returns.
fn enrich_while_watching(
    db: &Path,
    config: &Config,
    runtime: &tokio::runtime::Runtime,
    shutdown: &Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    /// Sources enriched per round.
    const PER_ROUND: usize = 2_000;
    if !config.enrich.has_work() {
        return None;
    }
    let enricher = match Enricher::new(&config.enrich) {
        Ok(enricher) => enricher,
        Err(err) => {
            tracing::warn!(error = %err, "sources will not be enriched while watching");
            return None;
        }
    };
    let (db, shutdown, rules) = (db.to_path_buf(), shutdown.clone(), config.detect.clone());
    Some(runtime.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.triggered() => return,
                () = tokio::time::sleep(ENRICH_EVERY) => {}
            }
            match enricher.enrich_pending(&db, PER_ROUND).await {
                Ok(0) => {}
                Ok(_) => {
                    let (db, rules) = (db.clone(), rules.clone());
                    let refreshed = tokio::task::spawn_blocking(move || refresh_named_services(&db, &rules)).await;
                    if let Ok(Err(err)) = refreshed {
                        tracing::warn!(error = %err, "re-evaluating enriched sources failed; trying again later");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "enriching sources failed; trying again later"),
            }
        }
    }))
}

/// How often new sources are enriched while `run` watches.
const ENRICH_EVERY: Duration = Duration::from_secs(20);

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
