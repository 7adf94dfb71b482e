//! The producer: Envelopes onto the topic, inputs with dead letters onto the dead-letter
//! topic; a delivery's acknowledgement fires only once Kafka confirmed it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use ruaflow_schema::{Delivery, Envelope};

use super::{headers, KafkaConfig, KafkaQueueError};

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

    /// Publishes `(key, payload)` messages to `topic` and returns once Kafka confirmed
    /// every one of them.
    pub async fn publish_keyed(
        &self,
        topic: &str,
        messages: &[(String, Vec<u8>)],
    ) -> Result<(), KafkaQueueError> {
        let mut deliveries = Vec::with_capacity(messages.len());
        for (key, payload) in messages {
            loop {
                let record = FutureRecord::to(topic).key(key).payload(payload);
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err((err, _)) => return Err(KafkaQueueError::Delivery(err)),
                }
            }
        }
        for delivery in deliveries {
            confirmed(delivery).await?;
        }
        Ok(())
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
