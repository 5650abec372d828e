//! Live stock for watching screens: one latest-value channel (`tokio::sync::watch`) per
//! watched product. The product actor overwrites the value after each commit; a watcher
//! reads whatever is newest when it is ready. A slow watcher therefore skips values and
//! can never slow the actor or other watchers: publishing is an overwrite, not a queue.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use engine::flash_sale::SalePhase;
use engine::stock::Inventory;
use engine::{Money, ProductId};
use serde::Serialize;
use tokio::sync::watch;

/// What a watching screen shows of one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
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
///
/// Coalescing happens here, once per product, not in each connection: a product that
/// commits 500 batches a second publishes at most `rate` values a second (plus sold out at
/// once), so a thousand screens wake `rate` times a second, not 500.
pub struct StockFeed {
    channels: DashMap<ProductId, Channel>,
    min_gap: Duration,
}

struct Channel {
    sender: watch::Sender<StockView>,
    last_sent: Instant,
    /// A value that arrived too soon after the last one; the flusher sends it.
    pending: Option<StockView>,
}

impl StockFeed {
    pub fn new(rate_per_second: u32) -> Self {
        assert!(rate_per_second > 0);
        Self {
            channels: DashMap::new(),
            min_gap: Duration::from_secs_f64(1.0 / f64::from(rate_per_second)),
        }
    }

    pub fn min_gap(&self) -> Duration {
        self.min_gap
    }

    /// Records the product's latest value if anyone watches it: sent now if the last one
    /// is old enough (or this one says sold out), else by the next [`Self::flush`].
    pub fn publish(&self, view: StockView) {
        let Some(mut channel) = self.channels.get_mut(&view.product_id) else {
            return;
        };
        if channel.sender.receiver_count() == 0 {
            drop(channel);
            // The last watcher left: drop the channel (unless one subscribed meanwhile).
            self.channels.remove_if(&view.product_id, |_, channel| {
                channel.sender.receiver_count() == 0
            });
            return;
        }
        let now = Instant::now();
        let sold_out_now = view.status == StockStatus::SoldOut
            && channel.sender.borrow().status != StockStatus::SoldOut;
        if sold_out_now || now.duration_since(channel.last_sent) >= self.min_gap {
            channel.sender.send_replace(view);
            channel.last_sent = now;
            channel.pending = None;
        } else {
            channel.pending = Some(view);
        }
    }

    /// Sends the values held back by the rate; run every fraction of the gap.
    pub fn flush(&self) {
        let now = Instant::now();
        for mut channel in self.channels.iter_mut() {
            if channel.pending.is_some() && now.duration_since(channel.last_sent) >= self.min_gap {
                let view = channel.pending.take().expect("checked above");
                channel.sender.send_replace(view);
                channel.last_sent = now;
            }
        }
    }

    /// A receiver for the product, starting at `current`. Called by the product's own
    /// actor, so no publish can slip between the value and the subscription.
    pub fn subscribe(&self, current: StockView) -> watch::Receiver<StockView> {
        let channel = self
            .channels
            .entry(current.product_id)
            .or_insert_with(|| Channel {
                sender: watch::channel(current).0,
                last_sent: Instant::now(),
                pending: None,
            });
        if channel.pending.is_none() {
            channel.sender.send_replace(current);
        }
        channel.sender.subscribe()
    }

    pub fn watched_products(&self) -> usize {
        self.channels.len()
    }
}
