//! `ruaflow process --kafka BROKERS --clickhouse URL`: the distributed pipeline's back
//! half. A member of a Kafka consumer group; each Envelope is parsed, aggregated and
//! inserted into ClickHouse by the same pipeline the embedded mode runs, and its offset
//! is committed only after the insert holding its rows succeeded (the pipeline's
//! durability barrier fires the acknowledgement that marks the offset done).
//!
//! Dead letters go to the `dead_letters` table and, whole, to TOPIC.dlq. A digest of
//! each stored report goes to TOPIC.digests, keyed by its policy domain, for the
//! detector group (`ruaflow detect`), before the report's `reports` row. While
//! ClickHouse is down the batch is held and retried, and polling pauses (back-pressure).
//! SIGINT/SIGTERM: stop polling, finish and insert what is in flight, commit the
//! offsets, leave the group. `/metrics` and `/healthz` are served on `--listen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use ruaflow_ingest::kafka::{Consumer, Publisher};
use ruaflow_processor::clickhouse::{
    ClickHouseStore, ClickHouseUrl, DeadLetter, DeadLetterQueue, DigestQueue, InsertStats,
};
use ruaflow_processor::digest::Digest;
use ruaflow_processor::pipeline::{PipelineConfig, Progress};
use ruaflow_schema::{Envelope, Health, Shutdown};

use super::assemble::{self, assemble, Pipeline};
use super::config::Config;
use super::ingest::KafkaArgs;
use super::sources::KafkaFeed;

/// Arguments of `ruaflow process`.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// ClickHouse HTTP URL: http://[user[:password]@]host:port[/database].
    #[arg(long, env = "RUAFLOW_CLICKHOUSE")]
    pub clickhouse: ClickHouseUrl,
    /// The consumer group all processors share.
    #[arg(long, default_value = "ruaflow-processors")]
    pub group: String,
    /// Where /metrics and /healthz are served.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Insert after this many records in the batch.
    #[arg(long, default_value_t = 50_000)]
    pub batch_records: u64,
    /// Insert at least this often (milliseconds) while data flows.
    #[arg(long, default_value_t = 1000)]
    pub batch_ms: u64,
    /// Configuration file (TOML); `[limits]` applies.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// How long a stop waits for in-flight Envelopes to be inserted before leaving the group.
const DRAIN: Duration = Duration::from_secs(60);

pub fn run(args: ProcessArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let kafka = args.kafka.config(&config);
    let metrics = ruaflow_ingest::metrics::prometheus();
    let runtime = assemble::runtime()?;
    let shutdown = Shutdown::new();
    assemble::stop_on_signals(&runtime, &shutdown)?;

    super::ingest::ensure_topics(&runtime, &kafka)?;
    let store = ClickHouseStore::connect(&args.clickhouse, shutdown.clone(), runtime.handle().clone())
        .with_context(|| format!("cannot use ClickHouse at {}", args.clickhouse))?;
    let stats = store.stats();
    let dead_letters =
        KafkaDeadLetters { publisher: Publisher::new(&kafka)?, runtime: runtime.handle().clone() };
    let digests = KafkaDigests {
        publisher: Publisher::new(&kafka)?,
        topic: kafka.digest_topic(),
        runtime: runtime.handle().clone(),
    };
    let store = store.with_dead_letter_queue(Box::new(dead_letters)).with_digest_queue(Box::new(digests));

    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    runtime.spawn(serve_ops(listener, metrics, Arc::clone(&stats)));
    tracing::info!(listen = %args.listen, clickhouse = %args.clickhouse, group = %args.group, "processing");

    let health = Health::stopping(shutdown.clone());
    let feed =
        KafkaFeed { consumer: Consumer::join(&kafka, &args.group)?, health: health.clone(), drain: DRAIN };
    let progress = Arc::new(Progress::default());
    let pipeline = Pipeline {
        store,
        dedupe_db: None,
        config: PipelineConfig {
            limits: config.limits.clone(),
            privacy: config.failure_reports.clone(),
            batch_records: args.batch_records,
            batch_interval: Duration::from_millis(args.batch_ms),
            health,
            ..PipelineConfig::default()
        },
        hook: Box::new(()),
        progress: Arc::clone(&progress),
    };
    let stored = assemble(|queue| pipeline.start(queue), vec![Box::new(feed)], &shutdown, runtime.handle());
    let s = progress.summary();
    println!(
        "{} inputs, {} reports, {} failure reports, {} records, {} messages inserted ({} rows in {} batches); {} dead letters",
        s.envelopes,
        s.reports,
        s.failure_reports,
        s.records,
        s.messages,
        stats.rows.load(Ordering::Relaxed),
        stats.batches.load(Ordering::Relaxed),
        s.dead_letters
    );
    stored
        .context("inserting into ClickHouse failed; the offsets of what was not inserted stay uncommitted")?;
    Ok(())
}

/// Dead letters to the Kafka dead-letter topic, confirmed before the batch is inserted.
struct KafkaDeadLetters {
    publisher: Publisher,
    runtime: tokio::runtime::Handle,
}

impl DeadLetterQueue for KafkaDeadLetters {
    fn publish(&mut self, letters: &[DeadLetter]) -> Result<(), String> {
        let publisher = &self.publisher;
        self.runtime.block_on(async {
            for letter in letters {
                let o = &letter.origin;
                let mut envelope =
                    Envelope::new(letter.raw.to_vec(), o.source, o.origin.clone(), o.received_at);
                envelope.filename = o.filename.clone();
                publisher.publish_dead(&envelope, &letter.reason).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}

/// Report digests to the detector group's topic, keyed by policy domain, confirmed
/// before the batch's `reports` rows are inserted.
struct KafkaDigests {
    publisher: Publisher,
    topic: String,
    runtime: tokio::runtime::Handle,
}

impl DigestQueue for KafkaDigests {
    fn publish(&mut self, digests: &[Digest]) -> Result<(), String> {
        let messages: Vec<(String, Vec<u8>)> = digests
            .iter()
            .map(|d| serde_json::to_vec(d).map(|json| (d.domain.clone(), json)))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        self.runtime.block_on(self.publisher.publish_keyed(&self.topic, &messages)).map_err(|e| e.to_string())
    }
}

/// `/metrics` (Prometheus text) and `/healthz` (503 while inserts are failing).
async fn serve_ops(
    listener: tokio::net::TcpListener,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    stats: Arc<InsertStats>,
) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new().route("/metrics", get(move || std::future::ready(metrics.render()))).route(
        "/healthz",
        get(move || {
            let failing = stats.failing.load(Ordering::Relaxed);
            std::future::ready(if failing {
                (StatusCode::SERVICE_UNAVAILABLE, "clickhouse inserts failing\n")
            } else {
                (StatusCode::OK, "ok\n")
            })
        }),
    );
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(error = %err, "metrics endpoint failed");
    }
}
