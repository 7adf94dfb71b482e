//! `ruaflow detect --kafka BROKERS [--db FILE] [--clickhouse URL]`: detection and alerting
//! for the distributed deployment.
//!
//! One instance reads every Envelope from Kafka in a consumer group of its own
//! (`ruaflow-detect`, apart from the processors') and runs the embedded pipeline on it:
//! the same parser, a SQLite detection store (`--db`) holding the learned baselines and
//! known senders, the same detectors after every commit, the same sinks (log, webhooks,
//! Alertmanager). Processors never raise alerts, so however many of them run, each
//! notice is raised once. With `--clickhouse`, notices are also copied into its `alerts`
//! table (keyed by the notice, so a copy made twice is stored once) for Grafana.
//!
//! Run exactly one: a second member of the same group would see only part of each
//! domain's reports. Its offsets are committed after its own SQLite commit, so a restart
//! resumes where it left off; `ruaflow report --db FILE` works on its store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use ruaflow_ingest::kafka::Consumer;
use ruaflow_processor::clickhouse::{copy_alerts, ClickHouseUrl};
use ruaflow_processor::pipeline::Progress;
use ruaflow_schema::{Health, Shutdown};

use super::assemble;
use super::config::Config;
use super::ingest::KafkaArgs;
use super::run::detecting;
use super::sources::KafkaFeed;

/// Arguments of `ruaflow detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The consumer group of the detector (not the processors' group).
    #[arg(long, default_value = "ruaflow-detect")]
    pub group: String,
    /// The detection store (SQLite): baselines, known senders, alerts.
    #[arg(long, default_value = "ruaflow-detect.db")]
    pub db: PathBuf,
    /// Also copy alerts into this ClickHouse database's `alerts` table.
    #[arg(long, env = "RUAFLOW_CLICKHOUSE")]
    pub clickhouse: Option<ClickHouseUrl>,
    /// Configuration file (TOML): `[detect]`, `[alerts]`, `[enrich]`, `[limits]`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// No network lookups (reverse DNS) while enriching.
    #[arg(long)]
    pub offline: bool,
}

/// How long a stop waits for in-flight Envelopes to be stored before leaving the group.
const DRAIN: Duration = Duration::from_secs(60);
/// How often new alerts are copied into ClickHouse.
const COPY_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    config.enrich.offline |= args.offline;
    let kafka = args.kafka.config(&config);
    let runtime = assemble::runtime()?;
    let shutdown = Shutdown::new();
    assemble::stop_on_signals(&runtime, &shutdown)?;
    super::ingest::ensure_topics(&runtime, &kafka)?;
    let consumer = Consumer::join(&kafka, &args.group)?;
    tracing::info!(group = %args.group, db = %args.db.display(), "detecting");

    // A signal of its own: the copier outlives the stop until the pipeline has drained
    // and the last notices are in the store.
    let copied = Shutdown::new();
    let copier = args.clickhouse.clone().map(|url| {
        let (db, copied, runtime) = (args.db.clone(), copied.clone(), runtime.handle().clone());
        std::thread::spawn(move || copy_loop(&url, &db, &copied, &runtime))
    });
    let health = Health::stopping(shutdown.clone());
    let feed = KafkaFeed { consumer, health: health.clone(), drain: DRAIN };
    let summary = detecting(
        &args.db,
        &config,
        vec![Box::new(feed)],
        &runtime,
        &shutdown,
        health,
        Arc::new(Progress::default()),
        false,
    );
    copied.trigger("the pipeline drained");
    if let Some(copier) = copier {
        let _ = copier.join();
    }
    let summary = summary?;
    println!(
        "{} inputs, {} reports, {} records read; {} alert notices raised: ruaflow alerts --db {}",
        summary.envelopes,
        summary.reports,
        summary.records,
        summary.alerts,
        args.db.display()
    );
    Ok(())
}

/// Copies new alerts from the detection store into ClickHouse every second until
/// `done` triggers, and once more after it. Failures are logged and retried on the next
/// round.
fn copy_loop(url: &ClickHouseUrl, db: &std::path::Path, done: &Shutdown, runtime: &tokio::runtime::Handle) {
    let mut copied = 0i64;
    loop {
        let last_round = done.is_triggered();
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        match rusqlite::Connection::open_with_flags(db, flags) {
            Ok(conn) => match copy_alerts(runtime, url, &conn, copied) {
                Ok(last) => copied = last,
                Err(err) => tracing::warn!(error = %err, "alerts not copied to ClickHouse yet; retrying"),
            },
            Err(err) => tracing::debug!(error = %err, "detection store not readable yet"),
        }
        if last_round {
            return;
        }
        done.wait_timeout(COPY_INTERVAL);
    }
}
