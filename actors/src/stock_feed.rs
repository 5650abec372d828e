//! Live stock for watching screens: one latest-value channel (`tokio::sync::watch`) per
//! watched product. The product actor overwrites the value after each commit; a watcher
//! reads whatever is newest when it is ready. A slow watcher therefore skips values and
//! can never slow the actor or other watchers: publishing is an overwrite, not a queue.

use dashmap::DashMap;
use engine::flash_sale::SalePhase;
use engine::stock::Inventory;
use engine::{Money, ProductId};
use serde::Serialize;
use tokio::sync::watch;

/// What a watching screen shows of one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    pub product_id: ProductId,
    /// Units a buyer can still get: the sale pool's while a sale is scheduled or live,
    /// else the shelf's.
    pub left: u64,
    pub reserved: u64,
    pub sold: u64,
    /// The price a buyer pays now: the sale price while a sale is live.
    pub price: Money,
    pub sale_price: Option<Money>,
    pub status: StockStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    Available,
    SaleScheduled,
    SaleLive,
    SoldOut,
}

impl StockView {
    pub fn of(inventory: &Inventory, regular_price: Money, now_ms: u64) -> Self {
        let open_sale = inventory
            .sale
            .as_ref()
            .filter(|sale| sale.sale.phase(now_ms) != SalePhase::Ended);
        let (left, reserved, sold, phase) = match open_sale {
            Some(sale) => (
                sale.counters.left,
                sale.counters.reserved,
                sale.counters.sold,
                Some(sale.sale.phase(now_ms)),
            ),
            None => (
                inventory.regular_available,
                inventory.counters.reserved,
                inventory.counters.sold,
                None,
            ),
        };
        let status = match phase {
            _ if left == 0 => StockStatus::SoldOut,
            Some(SalePhase::Scheduled) => StockStatus::SaleScheduled,
            Some(_) => StockStatus::SaleLive,
            None => StockStatus::Available,
        };
        let sale_price = open_sale.map(|sale| sale.sale.sale_price);
        let price = match (phase, sale_price) {
            (Some(SalePhase::Live), Some(sale_price)) => sale_price,
            _ => regular_price,
        };
        Self {
            product_id: inventory.product_id,
            left,
            reserved,
            sold,
            price,
            sale_price,
            status,
        }
    }
}

/// Watched products' channels. A product nobody watches has no channel and costs nothing.
#[derive(Default)]
pub struct StockFeed {
    channels: DashMap<ProductId, watch::Sender<StockView>>,
}

impl StockFeed {
    /// Overwrites the product's latest value, if anyone watches it.
    pub fn publish(&self, view: StockView) {
        let watched = match self.channels.get(&view.product_id) {
            Some(sender) if sender.receiver_count() > 0 => {
                sender.send_replace(view);
                true
            }
            Some(_) => false,
            None => return,
        };
        if !watched {
            // The last watcher left: drop the channel (unless one subscribed meanwhile).
            self.channels
                .remove_if(&view.product_id, |_, sender| sender.receiver_count() == 0);
        }
    }

    /// A receiver for the product, starting at `current`. Called by the product's own
    /// actor, so no publish can slip between the value and the subscription.
    pub fn subscribe(&self, current: StockView) -> watch::Receiver<StockView> {
        let sender = self
            .channels
            .entry(current.product_id)
            .or_insert_with(|| watch::channel(current).0);
        sender.send_replace(current);
        sender.subscribe()
    }

    pub fn watched_products(&self) -> usize {
        self.channels.len()
    }
}
