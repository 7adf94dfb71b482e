//! The consumer group member that feeds the pipeline: each message becomes a delivery
//! whose acknowledgement marks its offset done; offsets are committed past acknowledged
//! messages only, and before a rebalance takes a partition away.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use ruaflow_schema::{Delivery, Health, Shutdown};

use super::offsets::Tracker;
use super::{envelope_of, KafkaConfig, KafkaQueueError};

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
                tracker.forget(p);
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
    /// Notified with each acknowledgement (the drain at a stop waits on it).
    acked: Arc<Condvar>,
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
        Ok(Self { consumer, tracker, acked: Arc::new(Condvar::new()), topic: config.topic.clone() })
    }

    /// Polls until `shutdown` triggers, handing each message to `queue` as a delivery
    /// whose acknowledgement marks its offset done; commits done offsets as it goes.
    /// When `queue` is full this blocks (back-pressure). After the shutdown, drops the
    /// queue, waits up to `drain` for the in-flight deliveries to be stored (woken by
    /// each acknowledgement; cut short when `health` says nothing more will be), commits,
    /// and leaves the group.
    pub fn run(
        self,
        queue: tokio::sync::mpsc::Sender<Delivery>,
        shutdown: &Shutdown,
        health: &Health,
        drain: Duration,
    ) {
        let mut last_commit = Instant::now();
        // Kafka's poll waits for messages; between polls a stop is noticed.
        while !shutdown.is_triggered() {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    let envelope = envelope_of(&message);
                    drop(message);
                    if let Ok(mut t) = self.tracker.lock() {
                        t.handed_out(partition, offset);
                    }
                    let (tracker, acked) = (Arc::clone(&self.tracker), Arc::clone(&self.acked));
                    let ack = Box::new(move || {
                        if let Ok(mut t) = tracker.lock() {
                            t.acked(partition, offset);
                        }
                        acked.notify_all();
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
        if let Ok(mut tracker) = self.tracker.lock() {
            while tracker.in_flight() > 0 && !health.is_failing() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::warn!(
                        in_flight = tracker.in_flight(),
                        "stopping with deliveries not stored; they are redelivered"
                    );
                    break;
                }
                // Woken by every acknowledgement; a failing store is checked each second.
                match self.acked.wait_timeout(tracker, left.min(Duration::from_secs(1))) {
                    Ok((guard, _)) => tracker = guard,
                    Err(_) => return,
                }
            }
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
