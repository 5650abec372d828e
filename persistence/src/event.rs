//! Domain events for the rest of the platform, written to the outbox in the same
//! transaction as the change they describe, and relayed to Kafka from there (at least
//! once: a row leaves the outbox only after the broker acknowledged it).

use serde::Serialize;

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
    /// The body as JSON text: `{schemaVersion, type, occurredAtMs, data}`. Serialized once,
    /// where the event is made (on the actor that made the change), and stored and relayed
    /// as is: every Buy Now emits one, so no `Value` tree is built and walked again.
    pub payload: String,
}

/// The body every event carries, written straight from the event's own data type.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, T: Serialize> {
    schema_version: u32,
    #[serde(rename = "type")]
    event_type: &'a str,
    occurred_at_ms: u64,
    data: &'a T,
}

impl Event {
    pub fn new(
        topic: Topic,
        event_type: &'static str,
        key: impl ToString,
        occurred_at_ms: u64,
        data: &impl Serialize,
    ) -> Self {
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            event_type,
            occurred_at_ms,
            data,
        };
        // Event data are structs and `json!` values with string keys: serde_json cannot
        // fail on those (it fails only on non-string map keys or a failing Serialize impl).
        let payload = serde_json::to_string(&envelope)
            .expect("event data serialize to JSON (string keys only)");
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
