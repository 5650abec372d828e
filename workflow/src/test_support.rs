//! Helpers for tests against the real brokers: unique names, a reader of Kafka topics, and
//! a private Kafka-protocol broker (tansu) behind a proxy a test can cut.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use persistence::test_support::TcpProxy;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The shared broker `deploy/kafka.sh` starts.
pub fn kafka_brokers() -> String {
    std::env::var("FLASHCART_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn rabbit_url() -> String {
    std::env::var("FLASHCART_TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A prefix no other test run uses, for topics, groups, exchanges and queues.
pub fn unique_prefix() -> String {
    format!("t{}.", uuid::Uuid::now_v7().simple())
}

/// One event read back from Kafka.
#[derive(Clone, Debug)]
pub struct ReadEvent {
    pub key: String,
    pub event_type: String,
    pub payload: serde_json::Value,
}

/// Reads `topic` from the beginning until `done` holds for what was read, or `timeout`.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[ReadEvent]) -> bool,
) -> Vec<ReadEvent> {
    // librdkafka calls that block (metadata, close) run off the async workers.
    let (brokers, topic_owned) = (brokers.to_owned(), topic.to_owned());
    let consumer = tokio::task::spawn_blocking(move || {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set(
                "group.id",
                format!("reader-{}", uuid::Uuid::now_v7().simple()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("kafka consumer");
        // Assigned, not subscribed: no group to join, reading starts at once.
        let metadata = consumer
            .fetch_metadata(Some(&topic_owned), Duration::from_secs(10))
            .expect("topic metadata");
        let mut partitions = TopicPartitionList::new();
        for partition in metadata
            .topics()
            .iter()
            .flat_map(|found| found.partitions())
        {
            partitions
                .add_partition_offset(&topic_owned, partition.id(), Offset::Beginning)
                .expect("partition");
        }
        assert!(
            partitions.count() > 0,
            "topic {topic_owned} has no partitions"
        );
        consumer.assign(&partitions).expect("assign");
        consumer
    })
    .await
    .expect("consumer setup");
    let mut events = Vec::new();
    let deadline = Instant::now() + timeout;
    let consumer = std::sync::Arc::new(consumer);
    let mut stream = consumer.stream();
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(message))) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                let event_type = crate::kafka::header(&message, "type")
                    .map(|value| String::from_utf8_lossy(value).into_owned())
                    .unwrap_or_default();
                let payload = serde_json::from_slice(message.payload().unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null);
                events.push(ReadEvent {
                    key,
                    event_type,
                    payload,
                });
            }
            Ok(Some(Err(_))) => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(None) | Err(_) => break,
        }
    }
    drop(stream);
    // Closing may wait on a broker that is gone: never in the runtime.
    let _ = std::thread::Builder::new().spawn(move || drop(consumer));
    events
}

/// The event types of `key`, in the order of their first arrival (duplicates of at-least-
/// once delivery dropped).
pub fn first_arrivals(events: &[ReadEvent], key: &str) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for event in events.iter().filter(|event| event.key == key) {
        if !types.contains(&event.event_type) {
            types.push(event.event_type.clone());
        }
    }
    types
}

/// A private tansu broker, reached only through a proxy: cutting the proxy is Kafka going
/// down for this test alone, with the broker's data intact for when it comes back.
pub struct PrivateKafka {
    child: Child,
    proxy: TcpProxy,
}

impl PrivateKafka {
    pub async fn start() -> Self {
        let tansu = tansu_binary();
        let upstream = free_port();
        // The proxy must exist first: the broker advertises its address to clients.
        let proxy = TcpProxy::start(upstream).await;
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://{upstream}"),
                "--advertised-listener-url",
                &format!("tcp://{}", proxy.address()),
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let started = Instant::now();
        while std::net::TcpStream::connect(upstream).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tansu did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, proxy }
    }

    pub fn brokers(&self) -> String {
        self.proxy.address().to_string()
    }

    pub fn cut(&self) {
        self.proxy.cut();
    }

    pub fn restore(&self) {
        self.proxy.restore();
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    let in_cargo = std::env::var_os("HOME")
        .map(|home| std::path::PathBuf::from(home).join(".cargo/bin/tansu"))
        .filter(|candidate| candidate.is_file());
    on_path
        .or(in_cargo)
        .expect("tansu is not installed: run deploy/kafka.sh")
}

fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}
