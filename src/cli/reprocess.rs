//! `ruaflow reprocess --db FILE [--dead-letters] [--since DATE] [--config FILE]
//! [--offline]`: reads the dead-letter inputs the store kept whole through the embedded
//! pipeline again (after an upgrade, or a fix), so what now parses is stored and the
//! rest is a dead letter again with today's reason. Idempotent and safe to interrupt:
//! see `ruaflow_processor::reprocess`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;

use ruaflow_processor::pipeline::{Delivery, Progress};
use ruaflow_processor::reprocess;
use ruaflow_processor::sqlite::SqliteStore;
use ruaflow_schema::{Health, Shutdown};

use super::assemble::{self, Source};
use super::config::Config;
use super::run::detecting;

/// Arguments of `ruaflow reprocess`.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The SQLite database.
    #[arg(long, default_value = "ruaflow.db")]
    pub db: PathBuf,
    /// Reprocess the dead letters (what the store keeps raw bytes of; the default).
    #[arg(long)]
    pub dead_letters: bool,
    /// Only inputs received from DATE on (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::range::parse_date)]
    pub since: Option<i64>,
    /// Configuration file (limits, detection, alert sinks, retention).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// No network lookups (reverse DNS) while enriching.
    #[arg(long)]
    pub offline: bool,
}

pub fn run(args: ReprocessArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    config.enrich.offline |= args.offline;
    if !args.db.exists() {
        anyhow::bail!("no database at {}", args.db.display());
    }
    let store =
        SqliteStore::open(&args.db).with_context(|| format!("cannot open database {}", args.db.display()))?;
    let released = reprocess::release(store.conn(), args.since.unwrap_or(i64::MIN))?;
    drop(store);
    let runtime = assemble::runtime()?;
    let shutdown = Shutdown::new();
    assemble::stop_on_signals(&runtime, &shutdown)?;
    let health = Health::stopping(shutdown.clone());
    let feed = DeadLetterFeed { db: args.db.clone(), inputs: released.inputs.clone() };
    let progress = Arc::new(Progress::default());
    let summary =
        detecting(&args.db, &config, vec![Box::new(feed)], &runtime, &shutdown, health, progress, false)?;
    let store = SqliteStore::open(&args.db)?;
    let resolved = reprocess::settle(store.conn(), &released.inputs)?;
    let still = released.inputs.len() as u64 - resolved;
    println!(
        "{} inputs reprocessed: {resolved} now read whole ({} reports, {} records stored; {} already stored), {still} still hold dead letters ({} dead letters){}",
        released.inputs.len(),
        summary.reports,
        summary.records,
        summary.duplicate_reports,
        summary.dead_letters,
        match released.partial {
            0 => String::new(),
            n => format!("; {n} inputs not retried (their bytes were not kept whole, or were empty)"),
        }
    );
    Ok(())
}

/// The released inputs, read back one at a time (one input's bytes in memory at once).
struct DeadLetterFeed {
    db: PathBuf,
    inputs: Vec<[u8; 32]>,
}

impl Source for DeadLetterFeed {
    fn name(&self) -> String {
        "dead letters".into()
    }

    fn run(
        self: Box<Self>,
        queue: mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        _: &tokio::runtime::Handle,
    ) -> anyhow::Result<()> {
        let reader = SqliteStore::open(&self.db)?;
        for sha in &self.inputs {
            if shutdown.is_triggered() {
                break;
            }
            let Some(envelope) = reprocess::envelope(reader.conn(), sha)? else { continue };
            if queue.blocking_send(Delivery { envelope, ack: None }).is_err() {
                anyhow::bail!("the pipeline stopped");
            }
        }
        Ok(())
    }
}
