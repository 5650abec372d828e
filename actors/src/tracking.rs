//! Live order tracking: the latest status and position of each order on its way, for the
//! customer's page. Like the stock feed, one latest-value channel per watched order: the
//! delivery partner's updates overwrite, screens read the newest, in order, never blocking.

use dashmap::DashMap;
use engine::OrderId;
use engine::order::OrderStatus;
use serde::Serialize;
use tokio::sync::watch;

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingView {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub tracking_id: Option<String>,
    pub estimated_delivery_ms: Option<u64>,
    pub location: Option<Location>,
    /// Increases with every update, so a screen can tell order (and missed updates).
    pub sequence: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub lat: f64,
    pub lng: f64,
    pub status: DeliveryStatus,
    pub at_ms: u64,
}

/// What the delivery partner says about the parcel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    PickedUp,
    InTransit,
    OutForDelivery,
    Nearby,
}

#[derive(Default)]
pub struct TrackingBoard {
    channels: DashMap<OrderId, watch::Sender<TrackingView>>,
}

impl TrackingBoard {
    /// A receiver for the order, starting from `initial` if nobody watched it yet.
    pub fn subscribe(
        &self,
        initial: impl FnOnce() -> TrackingView,
    ) -> watch::Receiver<TrackingView> {
        let view = initial();
        let order_id = view.order_id;
        self.channels
            .entry(order_id)
            .or_insert_with(|| watch::channel(view).0)
            .subscribe()
    }

    /// Applies `change` to the order's view and publishes it (creating it from `initial`).
    pub fn update(
        &self,
        order_id: OrderId,
        initial: impl FnOnce() -> TrackingView,
        change: impl FnOnce(&mut TrackingView),
    ) -> TrackingView {
        let sender = self
            .channels
            .entry(order_id)
            .or_insert_with(|| watch::channel(initial()).0);
        sender.send_modify(|view| {
            change(view);
            view.sequence += 1;
        });
        sender.borrow().clone()
    }

    /// A delivered order is done: screens keep their last value, the board forgets it.
    pub fn close(&self, order_id: OrderId) {
        self.channels.remove(&order_id);
    }

    pub fn current(&self, order_id: OrderId) -> Option<TrackingView> {
        self.channels
            .get(&order_id)
            .map(|sender| sender.borrow().clone())
    }
}
