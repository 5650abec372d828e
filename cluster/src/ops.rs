//! What operators ask of a cluster beyond one node's view: the shards group's state as the
//! broker reports it, and a tail of an event topic. Both block on librdkafka; call them off
//! the async workers (`spawn_blocking`).

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::ClusterError;

/// The state reported for a group the broker does not list.
pub const NOT_LISTED: &str = "not listed by the broker";

/// The consumer group as its coordinator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`.
    pub state: String,
    /// The members' client ids (a node's id is its client id).
    pub members: Vec<String>,
}

pub fn group_state(brokers: &str, group: &str) -> Result<GroupState, ClusterError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let list = consumer.fetch_group_list(Some(group), Duration::from_secs(5))?;
    let Some(info) = list.groups().iter().find(|info| info.name() == group) else {
        // tansu 0.6 does not list its consumer groups (ListGroups answers none).
        return Ok(GroupState {
            state: NOT_LISTED.into(),
            members: Vec::new(),
        });
    };
    let mut members: Vec<String> = info
        .members()
        .iter()
        .map(|member| member.client_id().to_owned())
        .collect();
    members.sort();
    Ok(GroupState {
        state: info.state().to_owned(),
        members,
    })
}

/// One event read from a topic.
#[derive(Clone, Debug)]
pub struct TailedEvent {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: String,
}

/// What to read.
#[derive(Clone, Debug)]
pub struct Tail {
    pub brokers: String,
    pub topic: String,
    /// From the first retained event; else only events that arrive from now on.
    pub from_beginning: bool,
    /// Stop after this many events.
    pub max: Option<usize>,
    /// Stop after this long without an event.
    pub idle: Option<Duration>,
}

/// Reads the topic's events in partition order (no consumer group: nothing is committed,
/// no one's offsets move) and hands each to `seen`. Returns how many were read.
pub fn tail(tail: &Tail, mut seen: impl FnMut(TailedEvent)) -> Result<usize, ClusterError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &tail.brokers)
        .set("group.id", "flashcart-tail")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&tail.topic), Duration::from_secs(5))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|topic| topic.name() == tail.topic)
        .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ClusterError::Failed(format!("no topic {}", tail.topic)));
    }
    let start = if tail.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment.add_partition_offset(&tail.topic, partition, start)?;
    }
    consumer.assign(&assignment)?;
    let mut count = 0;
    let mut last_event = Instant::now();
    loop {
        if tail.max.is_some_and(|max| count >= max) {
            return Ok(count);
        }
        if tail.idle.is_some_and(|idle| last_event.elapsed() >= idle) {
            return Ok(count);
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => {
                last_event = Instant::now();
                count += 1;
                let text = |bytes: Option<&[u8]>| {
                    String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned()
                };
                seen(TailedEvent {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: text(message.key()),
                    payload: text(message.payload()),
                });
            }
        }
    }
}
