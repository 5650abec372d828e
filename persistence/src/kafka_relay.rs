//! The outbox relay to Kafka: reads the oldest events, produces them in order with an
//! idempotent producer (keys keep one entity's events on one partition, in order), and
//! deletes only the rows the broker acknowledged. With Kafka down, rows wait in the outbox
//! and go out when it is back: at least once, never lost.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinHandle;

use crate::event::Topic;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// Prepended to every topic name (tests and shared clusters); empty in production.
    pub topic_prefix: String,
    /// Partitions of each topic when the relay creates it.
    pub partitions: i32,
}

/// Events relayed per round: one outbox read, one delete, many in-flight produces.
const BATCH_MAX: u32 = 1_000;
/// Pause when the outbox is empty.
const IDLE: Duration = Duration::from_millis(50);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(5);

pub fn topic_name(settings: &KafkaSettings, topic: Topic) -> String {
    format!("{}{}", settings.topic_prefix, topic.name())
}

/// Creates the topics if missing, then relays until the process ends.
pub async fn start_kafka_relay(
    settings: KafkaSettings,
    store: Arc<dyn Store>,
) -> Result<JoinHandle<()>, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Small batches fill in a few milliseconds under load; idle, nothing waits long.
        .set("linger.ms", "5")
        .set("message.timeout.ms", "10000");
    let producer: FutureProducer = config.create()?;
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let names: Vec<String> = Topic::ALL
        .iter()
        .map(|topic| topic_name(&settings, *topic))
        .collect();
    let new_topics: Vec<NewTopic> = names
        .iter()
        .map(|name| NewTopic::new(name, settings.partitions, TopicReplication::Fixed(1)))
        .collect();
    // Topics may exist already; a broker that is down is the relay loop's business.
    match admin.create_topics(&new_topics, &AdminOptions::new()).await {
        Ok(results) => {
            for result in results {
                if let Err((name, code)) = result
                    && code != RDKafkaErrorCode::TopicAlreadyExists
                {
                    tracing::warn!(topic = %name, ?code, "could not create a topic");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "could not create the topics yet"),
    }
    Ok(tokio::spawn(relay(settings, store, producer)))
}

async fn relay(settings: KafkaSettings, store: Arc<dyn Store>, producer: FutureProducer) {
    let mut retry_delay = IDLE;
    loop {
        let rows = match store.outbox_batch(BATCH_MAX).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox");
                tokio::time::sleep(RETRY_DELAY_MAX).await;
                continue;
            }
        };
        if rows.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        // Enqueue every record first (librdkafka batches and keeps per-partition order),
        // then collect the acknowledgements.
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let topic = Topic::from_name(&row.topic)
                .map_or_else(|| row.topic.clone(), |topic| topic_name(&settings, topic));
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "type",
                    value: Some(row.event_type.as_bytes()),
                })
                .insert(Header {
                    key: "source",
                    value: Some("flashcart".as_bytes()),
                });
            let record = FutureRecord::to(&topic)
                .key(row.key.as_bytes())
                .payload(row.payload.as_bytes())
                .headers(headers);
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push((row.seq, delivery)),
                Err((error, _)) => {
                    tracing::warn!(%error, "kafka queue refused a record");
                    break;
                }
            }
        }
        let mut acknowledged = Vec::with_capacity(deliveries.len());
        for (seq, delivery) in deliveries {
            if let Ok(Ok(_)) = delivery.await {
                acknowledged.push(seq);
            }
        }
        let complete = acknowledged.len() == rows.len();
        if !acknowledged.is_empty()
            && let Err(error) = store.outbox_delete(&acknowledged).await
        {
            // They will be sent again: consumers see duplicates, never gaps.
            tracing::warn!(%error, "cannot delete relayed events");
        }
        if complete {
            retry_delay = IDLE;
        } else {
            tracing::warn!(
                relayed = acknowledged.len(),
                waiting = rows.len(),
                "kafka did not take every event; retrying"
            );
            tokio::time::sleep(retry_delay).await;
            retry_delay = (retry_delay * 2).min(RETRY_DELAY_MAX);
        }
    }
}
