//! `ruaflow detect --kafka BROKERS --clickhouse URL [--group G] [--config FILE]`: the
//! detector group of the distributed deployment.
//!
//! Processors publish a digest of every report they stored to TOPIC.digests, keyed by
//! the policy domain (`ruaflow process`). Any number of `ruaflow detect` instances join
//! one consumer group on it, so each owns whole domains (the partitions their keys fall
//! in) and the group shares them; when one dies, the others take its partitions over. A
//! member folds each digest into the sender model, then runs the detectors on the
//! (domain, day) pairs of what it read, with every piece of state — sender model,
//! signals, notices — read from and written to ClickHouse (`processor::clickhouse::
//! ClickHouseDetect`): no raw report is parsed again and no local file is kept.
//!
//! Invariants: offsets are committed after a batch's state is written and its notices
//! are handed to the sinks; a batch read again after a crash or a rebalance folds
//! nothing twice and raises no notice twice (notices are found by identity), and a
//! notice stored but not handed over by a member that died is handed over by the next
//! owner of its domain. Reporter silence is checked every minute for the domains the
//! member has seen. With `[enrich]`, the digests' source addresses are enriched beside
//! detection (`processor::clickhouse::SourceEnricher`) into ClickHouse's `sources`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use ruaflow_ingest::kafka::{KeyedConsumer, KeyedMessage};
use ruaflow_processor::clickhouse::{ClickHouseDetect, ClickHouseUrl, Positioned, SourceEnricher};
use ruaflow_processor::detect::{self, DetectConfig};
use ruaflow_processor::digest::Digest;
use ruaflow_processor::enrich::Enricher;
use ruaflow_processor::sink::Sinks;
use ruaflow_schema::alert::Alert;
use ruaflow_schema::Shutdown;

use super::assemble;
use super::config::Config;
use super::ingest::KafkaArgs;

/// Arguments of `ruaflow detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The detector group (apart from the processors' group): every instance with the
    /// same group shares the domains.
    #[arg(long, default_value = "ruaflow-detect")]
    pub group: String,
    /// The ClickHouse database the processors write: the detectors read the reports'
    /// aggregates there and keep their state beside them.
    #[arg(long, env = "RUAFLOW_CLICKHOUSE")]
    pub clickhouse: ClickHouseUrl,
    /// Configuration file (TOML): `[detect]`, `[[senders]]`, `[alerts]`, `[enrich]`,
    /// `[limits]`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// No reverse DNS while enriching the sources of the digests read (the IP databases
    /// of `[enrich]` are still read).
    #[arg(long)]
    pub offline: bool,
}

/// Digests handled per batch at most.
const BATCH: usize = 500;
/// How long a poll waits for the first digest of a batch.
const POLL: Duration = Duration::from_millis(200);
/// How long the sinks may take to deliver a batch's notices before its offsets commit.
const DELIVERY: Duration = Duration::from_secs(30);
/// How long a batch is retried before the member leaves the group (below Kafka's
/// max.poll.interval, 300 s, after which the group would take its partitions anyway).
const GIVE_UP: Duration = Duration::from_secs(240);
/// How often reporter silence is checked.
const SWEEP: Duration = Duration::from_secs(60);

pub fn run(args: DetectArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    config.enrich.offline |= args.offline;
    let kafka = args.kafka.config(&config);
    let runtime = assemble::runtime()?;
    let shutdown = Shutdown::new();
    assemble::stop_on_signals(&runtime, &shutdown)?;
    super::ingest::ensure_topics(&runtime, &kafka)?;
    let mut state =
        ClickHouseDetect::connect(&args.clickhouse, runtime.handle().clone(), config.detect.clone())
            .with_context(|| format!("cannot use ClickHouse at {}", args.clickhouse))?;
    let topic = kafka.digest_topic();
    let consumer = KeyedConsumer::join(&kafka, &topic, &args.group)?;
    let sinks = Sinks::start(&config.alerts)?;
    let sources = if config.enrich.has_work() {
        let enricher = Enricher::new(&config.enrich).context("cannot set up enrichment")?;
        let retry = Duration::from_secs(config.enrich.retry_after_secs);
        Some(SourceEnricher::start(
            &args.clickhouse,
            enricher,
            retry,
            config.enrich.offline,
            runtime.handle(),
        ))
    } else {
        None
    };
    tracing::info!(group = %args.group, topic = %topic, clickhouse = %args.clickhouse, "detecting");

    let mut member = Member { state: &mut state, config: &config.detect, sinks: &sinks, sources };
    let (mut digests, mut raised) = (0u64, 0u64);
    let mut last_sweep = Instant::now();
    while !shutdown.is_triggered() {
        let batch = consumer.poll(BATCH, POLL);
        if !batch.is_empty() {
            // A batch that cannot be handled (ClickHouse down) is retried as it is: its
            // offsets stay uncommitted until it is done.
            let started = Instant::now();
            loop {
                if started.elapsed() > GIVE_UP {
                    // Without polling, the group takes this member's partitions away after
                    // max.poll.interval; leaving now lets a restart read the batch again.
                    anyhow::bail!("detection has failed for {} s; leaving the group (the batch is read again after a restart)", GIVE_UP.as_secs());
                }
                match member.handle(&batch) {
                    Ok(n) => {
                        raised += n;
                        tracing::info!(
                            digests = batch.len(),
                            notices = n,
                            ms = started.elapsed().as_millis() as u64,
                            "digests handled"
                        );
                        break;
                    }
                    Err(err) if shutdown.is_triggered() => {
                        member.state.forget();
                        tracing::warn!(error = %err, "stopping with a batch not handled; it is read again");
                        return finish(&sinks, digests, raised);
                    }
                    Err(err) => {
                        member.state.forget();
                        tracing::warn!(error = %err, "detection failed; retrying the batch");
                        shutdown.wait_timeout(Duration::from_secs(1));
                    }
                }
            }
            digests += batch.len() as u64;
            if let Err(err) = consumer.commit(&batch) {
                tracing::warn!(error = %err, "offset commit failed; the batch will be read again (harmless)");
            }
        }
        if member.sources.as_ref().is_some_and(SourceEnricher::named_since) {
            member.refresh_named_services();
        }
        if last_sweep.elapsed() >= SWEEP && member.state.owns_any() {
            if member.sources.is_some() {
                // Services another member's enrichment named for these domains' sources.
                member.refresh_named_services();
            }
            match member.sweep() {
                Ok(n) => raised += n,
                Err(err) => {
                    member.state.forget();
                    tracing::warn!(error = %err, "reporter silence check failed");
                }
            }
            last_sweep = Instant::now();
        }
    }
    finish(&sinks, digests, raised)
}

fn finish(sinks: &Sinks, digests: u64, raised: u64) -> anyhow::Result<()> {
    if !sinks.flush(DELIVERY) {
        tracing::error!("some alerts could not be delivered within 30 s (they are in ClickHouse's notices)");
    }
    println!("{digests} report digests read; {raised} alert notices raised");
    Ok(())
}

/// One member's work.
struct Member<'a> {
    state: &'a mut ClickHouseDetect,
    config: &'a DetectConfig,
    sinks: &'a Sinks,
    /// Where the digests' source addresses go to be enriched, when enrichment is on.
    sources: Option<SourceEnricher>,
}

impl Member<'_> {
    /// Folds the batch's digests, runs the detectors on what they touched, hands the
    /// notices to the sinks and records that it did. Returns the notices raised.
    fn handle(&mut self, batch: &[KeyedMessage]) -> anyhow::Result<u64> {
        let mut digests: Vec<Positioned> = Vec::with_capacity(batch.len());
        for message in batch {
            match serde_json::from_slice::<Digest>(&message.payload) {
                Ok(digest) => match digest.invalid(&message.key) {
                    None => digests.push(Positioned {
                        digest,
                        partition: message.partition,
                        offset: message.offset,
                    }),
                    Some(why) => {
                        tracing::warn!(partition = message.partition, offset = message.offset, reason = %why,
                        "report digest skipped")
                    }
                },
                Err(err) => {
                    tracing::warn!(partition = message.partition, offset = message.offset, error = %err,
                    "not a report digest; skipped")
                }
            }
        }
        self.state.learn(&digests)?;
        if let Some(enricher) = &self.sources {
            for d in &digests {
                d.digest
                    .sources
                    .iter()
                    .filter_map(|c| c.source.parse().ok())
                    .for_each(|ip| enricher.enrich(ip));
            }
        }
        let mut touched: Vec<(String, i64)> = Vec::new();
        for Positioned { digest, .. } in digests {
            let key = (digest.domain, digest.day);
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        let mut notices: Vec<Alert> = Vec::new();
        let domains: HashSet<&String> = touched.iter().map(|(d, _)| d).collect();
        for domain in domains {
            notices.extend(self.state.unnotified(domain)?);
            // The silence sweep and the re-evaluation of named services cover it now.
            self.state.own_domain(domain);
        }
        notices.extend(detect::evaluate(
            &mut *self.state,
            self.config,
            &touched,
            ruaflow_schema::clock::now(),
        )?);
        self.notify(&notices)
    }

    /// The stored statuses of addresses enrichment has since named as a mail service,
    /// evaluated again (over the domains this member has seen).
    fn refresh_named_services(&mut self) {
        match self.state.refresh_named_services() {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "sources named as mail services since they were folded"),
            Err(err) => tracing::warn!(error = %err, "re-evaluating sources named as mail services failed"),
        }
    }

    /// Reporter silence over the domains this member has seen.
    fn sweep(&mut self) -> anyhow::Result<u64> {
        let notices = detect::sweep(&mut *self.state, self.config, ruaflow_schema::clock::now())?;
        self.notify(&notices)
    }

    fn notify(&mut self, notices: &[Alert]) -> anyhow::Result<u64> {
        for alert in notices {
            self.sinks.emit(alert);
        }
        if !notices.is_empty() && !self.sinks.flush(DELIVERY) {
            tracing::error!(
                "some alerts could not be delivered within 30 s (they are in ClickHouse's notices)"
            );
        }
        self.state.mark_notified()?;
        Ok(notices.len() as u64)
    }
}
