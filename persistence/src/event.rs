//! Domain events for the rest of the platform, written to the outbox in the same
//! transaction as the change they describe, and relayed to Kafka from there (at least
//! once: a row leaves the outbox only after the broker acknowledged it).

use serde::Serialize;
use serde_json::Value;

/// The Kafka topics, one per kind of entity an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Topic {
    OrderEvents,
    ProductEvents,
    UserEvents,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::OrderEvents, Topic::ProductEvents, Topic::UserEvents];

    pub fn name(self) -> &'static str {
        match self {
            Topic::OrderEvents => "order-events",
            Topic::ProductEvents => "product-events",
            Topic::UserEvents => "user-events",
        }
    }

    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|topic| topic.name() == name)
    }
}

/// Bumped when an event's payload changes shape; consumers read it from every body.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub topic: Topic,
    /// `order_placed`, `payment_completed`, ...
    pub event_type: &'static str,
    /// The entity the event is about: its Kafka key, so one entity's events stay in order.
    pub key: String,
    /// The body: `{schemaVersion, type, occurredAtMs, data}`.
    pub payload: Value,
}

impl Event {
    pub fn new(
        topic: Topic,
        event_type: &'static str,
        key: impl ToString,
        occurred_at_ms: u64,
        data: Value,
    ) -> Self {
        let payload = serde_json::json!({
            "schemaVersion": SCHEMA_VERSION,
            "type": event_type,
            "occurredAtMs": occurred_at_ms,
            "data": data,
        });
        Self {
            topic,
            event_type,
            key: key.to_string(),
            payload,
        }
    }
}

/// An event waiting in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub seq: i64,
    pub topic: String,
    pub event_type: String,
    pub key: String,
    pub payload: String,
}
