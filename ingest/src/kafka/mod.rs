//! The Kafka queue of the distributed deployment: Envelopes published by `ruaflow ingest`
//! and consumed by `ruaflow process` workers in one consumer group.
//!
//! On the wire (DESIGN.md "Envelope"): topic `ruaflow.reports`, key = the SHA-256 of the
//! bytes (hex), value = the raw bytes exactly as received, headers = provenance
//! (`source`, `received_at`, `filename`, `content_type`, `origin`). Dead letters go to
//! `ruaflow.reports.dlq` with the same headers plus `reason` and `location`. Report
//! digests (what the detector group learns of each stored report) go to
//! `ruaflow.reports.digests`, key = the policy domain, value = the digest's JSON.
//!
//! Invariants:
//! - [`publish`] fires a delivery's acknowledgement only after Kafka confirmed the
//!   write (`acks=all`, idempotent producer), so a source never lets go of input that
//!   Kafka does not hold;
//! - [`Consumer`] commits a partition's offset only past messages whose acknowledgement
//!   fired — the processor's durability barrier fires them after the store insert — so
//!   a crash anywhere redelivers, never skips. Offsets are tracked per partition as the
//!   lowest offset still in flight, since parse workers finish out of order.
//!
//! Layout: [`admin`] (topic setup), [`publisher`] (the producer: Envelopes and dead
//! letters, acknowledged after Kafka confirmed), [`consumer`] (the group member that
//! feeds the pipeline), [`offsets`] (which offsets may be committed); the wire format
//! (headers ⇄ provenance) is here.

mod admin;
mod consumer;
mod keyed;
mod offsets;
mod publisher;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use ruaflow_schema::{Envelope, Source};

pub use self::admin::{ensure_topics, REACH_TIMEOUT};
pub use self::consumer::Consumer;
pub use self::keyed::{KeyedConsumer, KeyedMessage};
pub use self::publisher::{publish, Publisher};

/// The topic Envelopes go to unless configured otherwise.
pub const TOPIC: &str = "ruaflow.reports";

/// Kafka errors, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum KafkaQueueError {
    /// A client could not be created (bad configuration).
    #[error("kafka client: {0}")]
    Client(KafkaError),
    /// No broker answered: the address is wrong, or Kafka is down or unreachable.
    #[error("no Kafka broker reachable at {brokers} within {} s ({reason}): is Kafka running, and is the address right?", admin::REACH_TIMEOUT.as_secs())]
    Unreachable {
        /// The bootstrap brokers tried.
        brokers: String,
        /// librdkafka's word for it.
        reason: String,
    },
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

    /// The report-digest topic the processors publish to and the detector group reads,
    /// keyed by policy domain.
    pub fn digest_topic(&self) -> String {
        format!("{}.digests", self.topic)
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c
    }
}

pub(crate) fn headers(envelope: &Envelope) -> OwnedHeaders {
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
pub(crate) fn envelope_of(message: &impl Message) -> Envelope {
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
