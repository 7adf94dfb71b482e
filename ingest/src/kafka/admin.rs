//! Topic setup: the Envelope and dead-letter topics, created when missing.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaQueueError};

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
