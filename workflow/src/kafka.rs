//! Kafka: the sink that publishes the outbox to topics, and the `analytics` consumer group.
//!
//! The producer is idempotent (`enable.idempotence`, `acks=all`): librdkafka's own retries
//! neither duplicate nor reorder within a partition, and the entity id as key keeps one
//! order's (or product's) events on one partition, in the order they were written.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use persistence::{OutboxRow, Topic};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinHandle;

use crate::WorkflowError;
use crate::analytics::Analytics;
use crate::relay::EventSink;

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// Prepended to topic and group names (tests, shared clusters); empty in production.
    pub prefix: String,
    /// Partitions of each topic when the engine creates it.
    pub partitions: i32,
    /// How long one event may wait for the broker before the relay tries the batch again.
    pub delivery_timeout: Duration,
}

pub fn topic_name(settings: &KafkaSettings, topic: Topic) -> String {
    format!("{}{}", settings.prefix, topic.name())
}

/// The consumer group that keeps the analytics figures.
pub fn analytics_group(settings: &KafkaSettings) -> String {
    format!("{}analytics", settings.prefix)
}

fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    config
}

/// Creates the three topics when they are missing.
pub async fn create_topics(settings: &KafkaSettings) -> Result<(), WorkflowError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
    let names: Vec<String> = Topic::ALL
        .iter()
        .map(|topic| topic_name(settings, *topic))
        .collect();
    let new_topics: Vec<NewTopic> = names
        .iter()
        .map(|name| NewTopic::new(name, settings.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    for result in admin.create_topics(&new_topics, &options).await? {
        if let Err((name, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(WorkflowError::Failed(format!(
                "creating topic {name}: {code:?}"
            )));
        }
    }
    Ok(())
}

pub struct KafkaSink {
    settings: KafkaSettings,
    /// Replaced after a failed round (see `renew`); the relay's retry goes out on the new one.
    producer: std::sync::Mutex<Arc<FutureProducer>>,
}

impl KafkaSink {
    pub fn new(settings: KafkaSettings) -> Result<Self, WorkflowError> {
        let producer = Arc::new(producer(&settings)?);
        Ok(Self {
            settings,
            producer: std::sync::Mutex::new(producer),
        })
    }

    fn producer(&self) -> Arc<FutureProducer> {
        Arc::clone(
            &self
                .producer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// After a failed round the producer may be fenced (an idempotent producer whose
    /// messages timed out bumps its epoch, which some brokers refuse) or fatally failed;
    /// a fresh one (new producer id) always works once the broker is back. Nothing is in
    /// flight at this point: every record of the round was settled.
    fn renew(&self) {
        match self::producer(&self.settings) {
            Ok(fresh) => {
                let old = std::mem::replace(
                    &mut *self
                        .producer
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()),
                    Arc::new(fresh),
                );
                // Destroying a librdkafka client blocks until its broker threads end: not
                // on an async worker, and not in the runtime's blocking pool (its shutdown
                // would wait for it).
                let _ = std::thread::Builder::new()
                    .name("kafka-close".into())
                    .spawn(move || drop(old));
            }
            Err(error) => tracing::warn!(%error, "could not start a new Kafka producer"),
        }
    }
}

fn producer(settings: &KafkaSettings) -> Result<FutureProducer, WorkflowError> {
    Ok(client_config(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Batches fill in a few milliseconds under load; idle, nothing waits long.
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            settings.delivery_timeout.as_millis().to_string(),
        )
        .create()?)
}

#[async_trait]
impl EventSink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError> {
        let producer = self.producer();
        let outcome = self.produce(&producer, rows).await;
        if outcome.is_err() {
            self.renew();
        }
        outcome
    }
}

impl KafkaSink {
    async fn produce(
        &self,
        producer: &FutureProducer,
        rows: &[OutboxRow],
    ) -> Result<(), WorkflowError> {
        // Enqueue every record first (librdkafka batches them and keeps per-partition
        // order), then wait for every acknowledgement.
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let topic = Topic::from_name(&row.topic).map_or_else(
                || row.topic.clone(),
                |topic| topic_name(&self.settings, topic),
            );
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
            let delivery = producer
                .send_result(record)
                .map_err(|(error, _)| WorkflowError::Kafka(error))?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(WorkflowError::Kafka(error)),
                Err(_) => {
                    return Err(WorkflowError::Failed(
                        "the producer dropped a record".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The `analytics` consumer group: reads order and product events and keeps the figures.
/// Offsets are committed automatically after the figures took the event, so a restart
/// replays at most the last few seconds (figures count at least once).
pub fn start_analytics_consumer(
    settings: &KafkaSettings,
    analytics: Arc<Analytics>,
) -> Result<JoinHandle<()>, WorkflowError> {
    let consumer: StreamConsumer = client_config(settings)
        .set("group.id", analytics_group(settings))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .create()?;
    let topics = [
        topic_name(settings, Topic::OrderEvents),
        topic_name(settings, Topic::ProductEvents),
    ];
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(tokio::spawn(async move {
        // Declared first, dropped last: when the task is aborted, the stream goes, then
        // the consumer is closed on a thread of its own (see `CloseElsewhere`).
        let owner = CloseElsewhere(Some(consumer));
        let Some(consumer) = owner.0.as_ref() else {
            return;
        };
        let mut stream = consumer.stream();
        while let Some(message) = stream.next().await {
            match message {
                Ok(message) => {
                    if let Some(payload) = message.payload() {
                        analytics.record_payload(payload);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "analytics consumer");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }))
}

/// Closing a group consumer waits for the group coordinator, without bound when the broker
/// is gone; it must never hold an async worker (or a runtime's shutdown). The close runs on
/// a detached thread instead.
struct CloseElsewhere(Option<StreamConsumer>);

impl Drop for CloseElsewhere {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(consumer));
        }
    }
}

/// The value of a header, for consumers that route by type without reading the body.
pub fn header<'m>(message: &'m impl Message, key: &str) -> Option<&'m [u8]> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value)
}
