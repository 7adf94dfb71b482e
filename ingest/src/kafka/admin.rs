//! Topic setup: the Envelope, dead-letter and digest topics, created when missing.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{KafkaConfig, KafkaQueueError};

/// How long [`ensure_topics`] waits for any broker to answer before it calls them
/// unreachable. A broker that is up answers a metadata request in milliseconds; without
/// this check an unreachable one would surface only as the topic creation timing out.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the Envelope and dead-letter topics when missing, with their message size
/// limit raised to the Envelope cap. Existing topics are left as they are. Fails with
/// [`KafkaQueueError::Unreachable`] when no broker answers within [`REACH_TIMEOUT`].
pub async fn ensure_topics(config: &KafkaConfig) -> Result<(), KafkaQueueError> {
    let probe: BaseConsumer = config.client_config().create().map_err(KafkaQueueError::Client)?;
    let reached = tokio::task::spawn_blocking(move || probe.fetch_metadata(None, REACH_TIMEOUT).map(|_| ()))
        .await
        .unwrap_or(Err(KafkaError::Canceled));
    if let Err(err) = reached {
        // `BrokerTransportFailure (Local: Broker transport failure)`: the words in brackets.
        let reason = match err.rdkafka_error_code() {
            Some(code) => {
                let text = code.to_string();
                text.split_once(" (")
                    .map_or(text.clone(), |(_, words)| words.trim_end_matches(')').to_owned())
            }
            None => err.to_string(),
        };
        return Err(KafkaQueueError::Unreachable { brokers: config.brokers.clone(), reason });
    }
    let admin: AdminClient<DefaultClientContext> =
        config.client_config().create().map_err(KafkaQueueError::Client)?;
    let max = config.max_message_bytes.to_string();
    let names = [config.topic.clone(), config.dlq_topic(), config.digest_topic()];
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
