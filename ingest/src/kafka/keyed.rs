//! A group member that reads keyed messages one poll at a time and commits only what
//! its caller says it handled (the detector group on the digest topic).
//!
//! Invariant: an offset is committed only after [`KeyedConsumer::commit`] was called
//! for the messages before it, so a member killed at any moment leaves its partitions
//! to the next owner from the first message it had not finished; the caller makes
//! handling a message twice harmless. Partitions move on rebalances (a member joining,
//! leaving, or missing its heartbeats); the caller commits after each poll's batch, so
//! nothing handled is left uncommitted when a partition is revoked between polls.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{KafkaConfig, KafkaQueueError};

/// One message as read.
#[derive(Debug, Clone)]
pub struct KeyedMessage {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key (UTF-8; lossy).
    pub key: String,
    /// Its value.
    pub payload: Vec<u8>,
}

struct LogRebalance;

impl ClientContext for LogRebalance {}

impl ConsumerContext for LogRebalance {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "partitions assigned");
            }
            Rebalance::Revoke(list) => tracing::info!(partitions = list.count(), "partitions revoked"),
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance error"),
        }
    }
}

/// A member of a consumer group on one topic.
pub struct KeyedConsumer {
    consumer: BaseConsumer<LogRebalance>,
    topic: String,
}

impl KeyedConsumer {
    /// Joins `group` on `topic` (from the earliest offset when the group has none).
    pub fn join(config: &KafkaConfig, topic: &str, group: &str) -> Result<Self, KafkaQueueError> {
        let consumer: BaseConsumer<LogRebalance> = config
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("max.poll.interval.ms", "300000")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.partition.fetch.bytes", (config.max_message_bytes + (1 << 20)).to_string())
            .set("fetch.max.bytes", (config.max_message_bytes + (1 << 20)).to_string())
            .set("receive.message.max.bytes", (config.max_message_bytes + (2 << 20)).to_string())
            .create_with_context(LogRebalance)
            .map_err(KafkaQueueError::Client)?;
        consumer.subscribe(&[topic]).map_err(KafkaQueueError::Client)?;
        Ok(Self { consumer, topic: topic.to_owned() })
    }

    /// Up to `max` messages: waits up to `wait` for the first, then takes what is
    /// already there.
    pub fn poll(&self, max: usize, wait: Duration) -> Vec<KeyedMessage> {
        let mut out = Vec::new();
        let deadline = Instant::now() + wait;
        while out.len() < max {
            let left = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(left) {
                Some(Ok(m)) => out.push(KeyedMessage {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                }),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "kafka consumer error");
                    break;
                }
                None => {
                    if out.is_empty() && Instant::now() < deadline {
                        continue;
                    }
                    break;
                }
            }
        }
        out
    }

    /// Commits past `handled` (synchronously): the group resumes after them.
    pub fn commit(&self, handled: &[KeyedMessage]) -> Result<(), KafkaQueueError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in handled {
            let entry = next.entry(m.partition).or_insert(m.offset + 1);
            *entry = (*entry).max(m.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            let _ = list.add_partition_offset(&self.topic, partition, Offset::Offset(offset));
        }
        self.consumer.commit(&list, CommitMode::Sync).map_err(KafkaQueueError::Client)
    }
}
