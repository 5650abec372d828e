//! An outbox row read back: what the workflow and analytics need from an event body.

use engine::{Money, OrderId, ProductId, UserId};
use persistence::OutboxRow;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::WorkflowError;

/// The body every event carries: `{schemaVersion, type, occurredAtMs, data}`. Parsing reads
/// the envelope and skips `data`; [`EventBody::data`] reads `data` as the type a consumer
/// wants, straight from the text (the relay hands every event to the saga and to analytics,
/// and a `serde_json::Value` tree per event was most of what that cost).
#[derive(Clone, Debug)]
pub struct EventBody {
    pub schema_version: u32,
    pub event_type: String,
    pub occurred_at_ms: u64,
    payload: Box<[u8]>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    schema_version: u32,
    #[serde(rename = "type")]
    event_type: String,
    occurred_at_ms: u64,
    // Required, though read later: a body without data is malformed now, not later.
    #[allow(dead_code)]
    data: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
struct DataOnly<T> {
    data: T,
}

impl EventBody {
    pub fn parse(payload: &[u8]) -> Result<Self, WorkflowError> {
        let envelope: Envelope = serde_json::from_slice(payload)
            .map_err(|error| WorkflowError::Malformed(error.to_string()))?;
        Ok(Self {
            schema_version: envelope.schema_version,
            event_type: envelope.event_type,
            occurred_at_ms: envelope.occurred_at_ms,
            payload: payload.into(),
        })
    }

    pub fn of_row(row: &OutboxRow) -> Result<Self, WorkflowError> {
        Self::parse(row.payload.as_bytes())
    }

    /// The event's `data`, read as `T` (fields `T` does not name are skipped).
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, WorkflowError> {
        serde_json::from_slice::<DataOnly<T>>(&self.payload)
            .map(|body| body.data)
            .map_err(|error| WorkflowError::Malformed(format!("{} body: {error}", self.event_type)))
    }

    /// The order this event is about, when it is an order event.
    pub fn order(&self) -> Result<OrderData, WorkflowError> {
        self.data()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderData {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub total: Money,
    pub items: Vec<ItemData>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemData {
    pub product_id: ProductId,
    pub quantity: u32,
    pub unit_price: Money,
}

/// The event types of the order workflow, routed as `order.<verb>.<userId>` on RabbitMQ.
pub fn order_verb(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "order_placed" => "created",
        "payment_completed" => "paid",
        "payment_failed" => "payment_failed",
        "order_confirmed" => "confirmed",
        "order_cancelled" => "cancelled",
        "order_expired" => "expired",
        "order_shipped" => "shipped",
        "order_delivered" => "delivered",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACED: &str = r#"{"schemaVersion":1,"type":"order_placed","occurredAtMs":7,
        "data":{"orderId":"0190b5a4-7c3e-7000-8000-000000000001","userId":42,"status":"PENDING_PAYMENT",
        "total":1998,"items":[{"productId":3,"saleId":null,"quantity":2,"unitPrice":999}]}}"#;

    #[test]
    fn the_envelope_is_read_and_data_as_the_consumer_asks() {
        let body = EventBody::parse(PLACED.as_bytes()).expect("a valid body");
        assert_eq!(
            (
                body.schema_version,
                body.event_type.as_str(),
                body.occurred_at_ms
            ),
            (1, "order_placed", 7)
        );
        let order = body.order().expect("order data");
        assert_eq!((order.user_id, order.total), (UserId(42), Money(1998)));
        assert_eq!(order.items.len(), 1);
        assert_eq!(
            (order.items[0].product_id, order.items[0].quantity),
            (ProductId(3), 2)
        );
    }

    #[test]
    fn malformed_bodies_are_named() {
        let no_data = br#"{"schemaVersion":1,"type":"order_placed","occurredAtMs":7}"#;
        assert!(matches!(
            EventBody::parse(no_data),
            Err(WorkflowError::Malformed(message)) if message.contains("data")
        ));
        let viewed = br#"{"schemaVersion":1,"type":"product_viewed","occurredAtMs":7,"data":{"productId":3}}"#;
        let body = EventBody::parse(viewed).expect("a valid body");
        assert!(
            matches!(body.order(), Err(WorkflowError::Malformed(message)) if message.starts_with("product_viewed body"))
        );
    }
}
