//! The Kafka queue of the distributed deployment: Envelopes published by `ruaflow ingest`
//! and consumed by `ruaflow process` workers in one consumer group.
//!
//! On the wire (DESIGN.md "Envelope"): topic `ruaflow.reports`, key = the SHA-256 of the
//! bytes (hex), value = the raw bytes exactly as received, headers = provenance
//! (`source`, `received_at`, `filename`, `content_type`, `origin`). Dead letters go to
//! `ruaflow.reports.dlq` with the same headers plus `reason` and `location`.
//!
//! Invariants:
//! - [`publish`] fires a delivery's acknowledgement only after Kafka confirmed the
//!   write (`acks=all`, idempotent producer), so a source never lets go of input that
//!   Kafka does not hold;
//! - [`Consumer`] commits a partition's offset only past messages whose acknowledgement
//!   fired — the processor's durability barrier fires them after the store insert — so
//!   a crash anywhere redelivers, never skips. Offsets are tracked per partition as the
//!   lowest offset still in flight, since parse workers finish out of order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use ruaflow_schema::{Delivery, Envelope, Source};

/// The topic Envelopes go to unless configured otherwise.
pub const TOPIC: &str = "ruaflow.reports";

/// Kafka errors, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum KafkaQueueError {
    /// A client could not be created (bad configuration).
    #[error("kafka client: {0}")]
    Client(KafkaError),
    /// Topics could not be created or checked.
    #[error("cannot create topic {topic}: {error}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why.
        error: String,
    },
    /// A message was not delivered.
    #[error("kafka did not take the message: {0}")]
    Delivery(KafkaError),
}

/// Where the queue is and how its topics look.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The Envelope topic; the dead-letter topic is this plus `.dlq`.
    pub topic: String,
    /// Partitions of the topics when ruaflow creates them.
    pub partitions: i32,
    /// Replication factor when ruaflow creates the topics.
    pub replication: i32,
    /// The largest message: the Envelope cap plus room for headers.
    pub max_message_bytes: usize,
}

impl KafkaConfig {
    /// The dead-letter topic.
    pub fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.topic)
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }
}

/// Creates the Envelope and dead-letter topics when missing, with their message size
/// limit raised to the Envelope cap. Existing topics are left as they are.
pub async fn ensure_topics(config: &KafkaConfig) -> Result<(), KafkaQueueError> {
    let admin: AdminClient<DefaultClientContext> =
        config.client_config().create().map_err(KafkaQueueError::Client)?;
    let max = config.max_message_bytes.to_string();
    let names = [config.topic.clone(), config.dlq_topic()];
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(name, config.partitions, TopicReplication::Fixed(config.replication))
                .set("max.message.bytes", &max)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| KafkaQueueError::Topic { topic: names.join(", "), error: e.to_string() })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaQueueError::Topic { topic, error: code.to_string() }),
        }
    }
    Ok(())
}

/// A producer of Envelopes and dead letters: `acks=all`, idempotent.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    dlq_topic: String,
}

impl Publisher {
    /// Creates the producer (it connects lazily).
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaQueueError> {
        let producer: FutureProducer = config
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.max.bytes", config.max_message_bytes.to_string())
            // Retried inside librdkafka up to this long (a broker restart), then reported.
            .set("message.timeout.ms", "120000")
            .set("linger.ms", "5")
            .create()
            .map_err(KafkaQueueError::Client)?;
        Ok(Self { producer, topic: config.topic.clone(), dlq_topic: config.dlq_topic() })
    }

    /// Hands one message (the Envelope's bytes under its hash, with `headers`) to the
    /// producer now, so messages keep their order within a partition, and returns what
    /// resolves once Kafka confirmed it ([`confirmed`]). Waits while the producer's
    /// queue is full.
    async fn enqueue(
        &self,
        topic: &str,
        envelope: &Envelope,
        headers: OwnedHeaders,
    ) -> Result<DeliveryFuture, KafkaQueueError> {
        let key = envelope.sha256_hex();
        loop {
            let record = FutureRecord::to(topic).key(&key).payload(&envelope.bytes).headers(headers.clone());
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((err, _)) => return Err(KafkaQueueError::Delivery(err)),
            }
        }
    }

    /// Publishes an input that produced dead letters — the whole raw input, its
    /// provenance and the reasons its parts were refused — and returns once Kafka
    /// confirmed it. One message per input, however many dead letters it held.
    pub async fn publish_dead(&self, envelope: &Envelope, reason: &str) -> Result<(), KafkaQueueError> {
        let headers = headers(envelope).insert(Header { key: "reason", value: Some(reason) });
        confirmed(self.enqueue(&self.dlq_topic, envelope, headers).await?).await
    }
}

/// Waits for Kafka's confirmation of one message.
async fn confirmed(delivery: DeliveryFuture) -> Result<(), KafkaQueueError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((err, _))) => Err(KafkaQueueError::Delivery(err)),
        Err(_) => Err(KafkaQueueError::Delivery(KafkaError::Canceled)),
    }
}

fn headers(envelope: &Envelope) -> OwnedHeaders {
    let received_at = envelope.received_at.to_string();
    let mut h = OwnedHeaders::new_with_capacity(5)
        .insert(Header { key: "source", value: Some(envelope.source.as_str()) })
        .insert(Header { key: "received_at", value: Some(&received_at) })
        .insert(Header { key: "origin", value: Some(&envelope.origin) });
    if let Some(filename) = &envelope.filename {
        h = h.insert(Header { key: "filename", value: Some(filename) });
    }
    if let Some(content_type) = &envelope.content_type {
        h = h.insert(Header { key: "content_type", value: Some(content_type) });
    }
    if let Some(read_error) = &envelope.read_error {
        h = h.insert(Header { key: "read_error", value: Some(read_error) });
    }
    h
}

/// Rebuilds an Envelope from a consumed message. Missing or odd headers are tolerated:
/// the bytes are what matters, the provenance is informational.
fn envelope_of(message: &impl Message) -> Envelope {
    let bytes = message.payload().unwrap_or_default().to_vec();
    let mut source = Source::Dir;
    let mut received_at = message.timestamp().to_millis().map_or(0, |ms| ms / 1000);
    let mut origin = String::new();
    let mut filename = None;
    let mut content_type = None;
    let mut read_error = None;
    if let Some(headers) = message.headers() {
        for h in headers.iter() {
            let Some(value) = h.value.and_then(|v| std::str::from_utf8(v).ok()) else { continue };
            match h.key {
                "source" => {
                    source = match value {
                        "imap" => Source::Imap,
                        "http" => Source::Http,
                        _ => Source::Dir,
                    }
                }
                "received_at" => received_at = value.parse().unwrap_or(received_at),
                "origin" => origin = value.to_owned(),
                "filename" => filename = Some(value.to_owned()),
                "content_type" => content_type = Some(value.to_owned()),
                "read_error" => read_error = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    if origin.is_empty() {
        origin = format!("kafka:{}/{}@{}", message.topic(), message.partition(), message.offset());
    }
    let mut envelope = match read_error {
        Some(reason) => Envelope::unreadable(source, origin, &reason, received_at),
        None => Envelope::new(bytes, source, origin, received_at),
    };
    envelope.filename = filename;
    envelope.content_type = content_type;
    envelope
}

/// Publishes every delivery from `queue`, in order, and fires its acknowledgement once
/// Kafka confirmed it; at most `in_flight` unconfirmed at a time. A delivery Kafka
/// refuses is logged and not acknowledged (its source keeps it). Returns (published,
/// failed) when the queue closes.
pub async fn publish(
    publisher: Publisher,
    mut queue: tokio::sync::mpsc::Receiver<Delivery>,
    in_flight: usize,
) -> (u64, u64) {
    let limit = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(Delivery { envelope, ack }) = queue.recv().await {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { break };
        let (published, failed) = (Arc::clone(&published), Arc::clone(&failed));
        let delivery = publisher.enqueue(&publisher.topic, &envelope, headers(&envelope)).await;
        tasks.spawn(async move {
            let outcome = match delivery {
                Ok(delivery) => confirmed(delivery).await,
                Err(err) => Err(err),
            };
            match outcome {
                Ok(()) => {
                    published.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("ruaflow_envelopes_published_total").increment(1);
                    if let Some(ack) = ack {
                        ack();
                    }
                }
                Err(err) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(origin = %envelope.origin, error = %err, "not published; the source keeps it");
                }
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    (published.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

/// Offsets per partition: what was handed out and is not yet acknowledged.
#[derive(Debug, Default)]
struct Tracker {
    partitions: BTreeMap<i32, PartitionOffsets>,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    in_flight: BTreeSet<i64>,
    /// One past the newest offset handed out.
    next: i64,
    /// The offset last committed (or found committed).
    committed: i64,
}

impl Tracker {
    fn handed_out(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.in_flight.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    fn acked(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.in_flight.remove(&offset);
        }
    }

    /// Offsets that may be committed now: per partition, the lowest offset still in
    /// flight, or one past the newest when none is; only where that moved forward.
    fn committable(&self) -> Vec<(i32, i64)> {
        self.partitions
            .iter()
            .filter_map(|(&partition, p)| {
                let upto = p.in_flight.first().copied().unwrap_or(p.next);
                (upto > p.committed).then_some((partition, upto))
            })
            .collect()
    }

    fn committed(&mut self, offsets: &[(i32, i64)]) {
        for &(partition, offset) in offsets {
            if let Some(p) = self.partitions.get_mut(&partition) {
                p.committed = p.committed.max(offset);
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }
}

/// The consumer's context: forgets revoked partitions, publishes lag to `/metrics`.
struct GroupContext {
    tracker: Arc<Mutex<Tracker>>,
    topic: String,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        let mut total = 0i64;
        for (id, p) in &topic.partitions {
            if *id >= 0 && p.consumer_lag >= 0 {
                total += p.consumer_lag;
                metrics::gauge!("ruaflow_consumer_lag", "partition" => id.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
        metrics::gauge!("ruaflow_consumer_lag_total").set(total as f64);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // Commit what is done before the partitions go; what is still in flight
            // will be redelivered to their next owner (and stored idempotently).
            let Ok(mut tracker) = self.tracker.lock() else { return };
            let revoked: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            let done: Vec<(i32, i64)> =
                tracker.committable().into_iter().filter(|(p, _)| revoked.contains(p)).collect();
            if !done.is_empty() {
                if let Err(err) = consumer.commit(&offsets_list(&self.topic, &done), CommitMode::Sync) {
                    tracing::warn!(error = %err, "offset commit before the rebalance failed; those messages will be redelivered");
                }
            }
            for p in revoked {
                tracker.partitions.remove(&p);
            }
            tracing::info!(partitions = list.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => tracing::info!(partitions = list.count(), "partitions assigned"),
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

fn offsets_list(topic: &str, offsets: &[(i32, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    list
}

/// A member of the processors' consumer group.
pub struct Consumer {
    consumer: BaseConsumer<GroupContext>,
    tracker: Arc<Mutex<Tracker>>,
    topic: String,
}

/// How often acknowledged offsets are committed while messages flow.
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

impl Consumer {
    /// Joins `group` on the Envelope topic. Offsets are never committed automatically.
    pub fn join(config: &KafkaConfig, group: &str) -> Result<Self, KafkaQueueError> {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let context = GroupContext { tracker: Arc::clone(&tracker), topic: config.topic.clone() };
        // The whole largest message must fit one fetch.
        let fetch = (config.max_message_bytes + (1 << 20)).to_string();
        let consumer: BaseConsumer<GroupContext> = config
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("max.partition.fetch.bytes", &fetch)
            .set("fetch.max.bytes", &fetch)
            .set("receive.message.max.bytes", (config.max_message_bytes + (2 << 20)).to_string())
            // A small prefetch: messages wait in the bounded queue, not in librdkafka.
            .set("queued.max.messages.kbytes", "65536")
            // Back-pressure (a ClickHouse outage) may hold the poll loop for a while.
            .set("max.poll.interval.ms", "900000")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)
            .map_err(KafkaQueueError::Client)?;
        consumer.subscribe(&[&config.topic]).map_err(KafkaQueueError::Client)?;
        Ok(Self { consumer, tracker, topic: config.topic.clone() })
    }

    /// Polls until `stop` is set, handing each message to `queue` as a delivery whose
    /// acknowledgement marks its offset done; commits done offsets as it goes. When
    /// `queue` is full this blocks (back-pressure). After `stop`, closes the queue,
    /// waits up to `drain` for the in-flight deliveries (or until `finished`, set when
    /// the processor has nothing left), commits, and leaves the group.
    pub fn run(
        self,
        queue: tokio::sync::mpsc::Sender<Delivery>,
        stop: &AtomicBool,
        finished: &AtomicBool,
        drain: Duration,
    ) {
        let mut last_commit = Instant::now();
        while !stop.load(Ordering::Relaxed) && !finished.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    let envelope = envelope_of(&message);
                    drop(message);
                    if let Ok(mut t) = self.tracker.lock() {
                        t.handed_out(partition, offset);
                    }
                    let tracker = Arc::clone(&self.tracker);
                    let ack = Box::new(move || {
                        if let Ok(mut t) = tracker.lock() {
                            t.acked(partition, offset);
                        }
                    });
                    if queue.blocking_send(Delivery { envelope, ack: Some(ack) }).is_err() {
                        break; // the pipeline stopped
                    }
                }
                Some(Err(err)) => tracing::warn!(error = %err, "kafka consumer error"),
                None => {}
            }
            if last_commit.elapsed() >= COMMIT_INTERVAL {
                self.commit(CommitMode::Async);
                last_commit = Instant::now();
            }
        }
        drop(queue);
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline
            && !finished.load(Ordering::Relaxed)
            && self.tracker.lock().map_or(0, |t| t.in_flight()) > 0
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.commit(CommitMode::Sync);
        self.consumer.unsubscribe();
        tracing::info!("left the consumer group");
    }

    fn commit(&self, mode: CommitMode) {
        let Ok(mut tracker) = self.tracker.lock() else { return };
        let offsets = tracker.committable();
        if offsets.is_empty() {
            return;
        }
        match self.consumer.commit(&offsets_list(&self.topic, &offsets), mode) {
            Ok(()) => tracker.committed(&offsets),
            Err(err) => tracing::debug!(error = %err, "offset commit failed; retried with the next one"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_committed_only_past_acknowledged_messages() {
        let mut t = Tracker::default();
        for offset in 10..15 {
            t.handed_out(0, offset);
        }
        t.handed_out(1, 3);
        assert_eq!(t.committable(), vec![(0, 10), (1, 3)], "nothing acknowledged yet");
        t.committed(&t.committable());
        assert!(t.committable().is_empty());
        // Workers finish out of order: 12 and 11 done, 10 still in flight.
        t.acked(0, 12);
        t.acked(0, 11);
        assert!(t.committable().is_empty(), "10 is in flight, so nothing past it may be committed");
        t.acked(0, 10);
        assert_eq!(t.committable(), vec![(0, 13)]);
        t.acked(0, 13);
        t.acked(0, 14);
        t.acked(1, 3);
        assert_eq!(t.committable(), vec![(0, 15), (1, 4)]);
        assert_eq!(t.in_flight(), 0);
    }
}
