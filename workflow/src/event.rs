//! An outbox row read back: what the workflow and analytics need from an event body.

use engine::{Money, OrderId, ProductId, UserId};
use persistence::OutboxRow;
use serde::Deserialize;

use crate::WorkflowError;

/// The body every event carries: `{schemaVersion, type, occurredAtMs, data}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at_ms: u64,
    pub data: serde_json::Value,
}

impl EventBody {
    pub fn parse(payload: &[u8]) -> Result<Self, WorkflowError> {
        serde_json::from_slice(payload).map_err(|error| WorkflowError::Malformed(error.to_string()))
    }

    pub fn of_row(row: &OutboxRow) -> Result<Self, WorkflowError> {
        Self::parse(row.payload.as_bytes())
    }

    /// The order this event is about, when it is an order event.
    pub fn order(&self) -> Result<OrderData, WorkflowError> {
        serde_json::from_value(self.data.clone())
            .map_err(|error| WorkflowError::Malformed(format!("{} body: {error}", self.event_type)))
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
