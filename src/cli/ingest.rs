//! `ruaflow ingest dir|imap|http --kafka BROKERS`: the distributed pipeline's front half.
//! Sources read reports into Envelopes and publish them to Kafka; each source's input is
//! acknowledged (IMAP message moved, HTTP client answered) only after Kafka confirmed it.
//!
//! `dir` publishes the files under INPUT and `imap` the mail in the `[[imap]]` mailboxes
//! of the config (with `--once`, what is there now, then exits; otherwise they keep
//! watching); `http` serves the `[http]` endpoint of the config; until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use ruaflow_ingest::kafka::{self, KafkaConfig, Publisher};
use ruaflow_schema::{Health, Shutdown};

use super::assemble::{self, assemble, Source};
use super::config::Config;
use super::sources::{FileSource, HttpFeed, ImapFeed};

/// Where the Kafka queue is (shared by `ingest` and `process`).
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Bootstrap brokers, host:port[,host:port…].
    #[arg(long, env = "RUAFLOW_KAFKA")]
    pub kafka: String,
    /// The Envelope topic (dead letters go to TOPIC.dlq).
    #[arg(long, default_value = kafka::TOPIC)]
    pub topic: String,
    /// Partitions when ruaflow creates the topics (the most processors that can share the work).
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Replication factor when ruaflow creates the topics.
    #[arg(long, default_value_t = 1)]
    pub replication: i32,
}

impl KafkaArgs {
    /// The queue configuration, its message size limit derived from the Envelope cap.
    pub fn config(&self, config: &Config) -> KafkaConfig {
        let cap = usize::try_from(config.limits.max_input_bytes).unwrap_or(usize::MAX);
        KafkaConfig {
            brokers: self.kafka.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            replication: self.replication,
            // One byte over the cap is read so the processor can dead-letter it; headers
            // and record overhead fit in the extra mebibyte.
            max_message_bytes: cap.saturating_add(1 << 20),
        }
    }
}

/// Creates the topics when missing; brokers that do not answer within
/// [`kafka::REACH_TIMEOUT`] are reported unreachable, a topic setup that does not finish
/// within a minute is an error naming them.
pub fn ensure_topics(runtime: &tokio::runtime::Runtime, kafka: &KafkaConfig) -> anyhow::Result<()> {
    tracing::info!(brokers = %kafka.brokers, topic = %kafka.topic, "connecting to Kafka");
    let setup = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), kafka::ensure_topics(kafka)).await });
    let context = || format!("cannot set up topic {} on {}", kafka.topic, kafka.brokers);
    match setup {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err @ kafka::KafkaQueueError::Unreachable { .. })) => Err(err.into()),
        Ok(Err(err)) => Err(anyhow::Error::from(err).context(context())),
        Err(_) => Err(anyhow::anyhow!("Kafka did not finish within 60 s").context(context())),
    }
}

/// Which source to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// Files and directories given as INPUT.
    Dir,
    /// The `[[imap]]` mailboxes of the config file.
    Imap,
    /// The `[http]` endpoint of the config file.
    Http,
}

/// Arguments of `ruaflow ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The source: dir, imap or http.
    pub source: SourceKind,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Configuration file (TOML); see `ruaflow.example.toml`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// dir, imap: publish what the inputs or mailboxes hold now and exit (no watching).
    #[arg(long)]
    pub once: bool,
    /// dir: files or directories of reports.
    pub inputs: Vec<PathBuf>,
}

/// Envelopes waiting for Kafka's confirmation at once.
const IN_FLIGHT: usize = 64;

pub fn run(args: IngestArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    match args.source {
        SourceKind::Dir if args.inputs.is_empty() => {
            anyhow::bail!("ingest dir: give INPUT files or directories")
        }
        SourceKind::Imap if config.imap.is_empty() => {
            anyhow::bail!("ingest imap: the config has no [[imap]] section (see ruaflow.example.toml)")
        }
        SourceKind::Http if config.http.is_none() => {
            anyhow::bail!("ingest http: the config has no [http] section (see ruaflow.example.toml)")
        }
        _ => {}
    }
    let kafka = args.kafka.config(&config);
    let runtime = assemble::runtime()?;
    let shutdown = Shutdown::new();
    assemble::stop_on_signals(&runtime, &shutdown)?;
    ensure_topics(&runtime, &kafka)?;
    let publisher = Publisher::new(&kafka)?;
    if args.once && args.source == SourceKind::Http {
        anyhow::bail!("ingest http: --once applies to dir and imap only");
    }
    let source: Box<dyn Source> = match args.source {
        SourceKind::Dir => Box::new(FileSource::new(&args.inputs, &config, args.once)?),
        SourceKind::Http => {
            let http = config.http.as_ref().context("no [http] section")?;
            // The endpoint answers 2xx once Kafka holds a body; nothing here fails for good.
            Box::new(HttpFeed::bind(http, &config.limits, Health::default(), &runtime)?)
        }
        SourceKind::Imap => Box::new(ImapFeed::new(&config.imap, &config.limits, args.once)?),
    };
    tracing::info!(source = %source.name(), topic = %kafka.topic, "publishing");
    let handle = runtime.handle().clone();
    let (published, failed) = assemble(
        |queue| {
            Ok(std::thread::Builder::new()
                .name("publisher".into())
                .spawn(move || Ok(handle.block_on(kafka::publish(publisher, queue, IN_FLIGHT))))?)
        },
        vec![source],
        &shutdown,
        runtime.handle(),
    )?;
    println!("{published} inputs published to {} on {}; {failed} failed", kafka.topic, kafka.brokers);
    Ok(if failed > 0 { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
}
