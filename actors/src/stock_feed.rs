//! Live stock for watching screens: one latest-value channel (`tokio::sync::watch`) per
//! watched product. The product actor overwrites the value after each commit; a watcher
//! reads whatever is newest when it is ready. A slow watcher therefore skips values and
//! can never slow the actor or other watchers: publishing is an overwrite, not a queue.
//!
//! Each value is serialised once, when it is sent, and every screen writes the same
//! bytes: a thousand screens of one product cost one `serde_json` call per update.

use std::time::{Duration, Instant};

use bytes::Bytes;
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

/// One sent value: the view and its JSON, shared by every watcher of the product.
#[derive(Clone, Debug)]
pub struct StockUpdate {
    pub view: StockView,
    /// `view` as a JSON object, UTF-8.
    pub json: Bytes,
}

impl StockUpdate {
    pub fn of(view: StockView) -> Self {
        // A struct of numbers, an id and an enum: serialising it cannot fail.
        let json = serde_json::to_vec(&view).unwrap_or_default();
        Self {
            view,
            json: Bytes::from(json),
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
    sender: watch::Sender<StockUpdate>,
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
            && channel.sender.borrow().view.status != StockStatus::SoldOut;
        if sold_out_now || now.duration_since(channel.last_sent) >= self.min_gap {
            channel.sender.send_replace(StockUpdate::of(view));
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
            if now.duration_since(channel.last_sent) < self.min_gap {
                continue;
            }
            if let Some(view) = channel.pending.take() {
                channel.sender.send_replace(StockUpdate::of(view));
                channel.last_sent = now;
            }
        }
    }

    /// A receiver for the product, starting at the last value sent, and at `current`
    /// within one gap. Called by the product's own actor, so no publish can slip between
    /// the value and the subscription.
    pub fn subscribe(&self, current: StockView) -> watch::Receiver<StockUpdate> {
        let mut channel = self
            .channels
            .entry(current.product_id)
            .or_insert_with(|| Channel {
                sender: watch::channel(StockUpdate::of(current)).0,
                last_sent: Instant::now(),
                pending: None,
            });
        // The newcomer starts at the last sent value; a newer one goes out at the rate
        // like any other (sending it now would wake every other screen of the product
        // once per newcomer, and a thousand arriving during a sale would flood them).
        if channel.sender.borrow().view != current {
            channel.pending = Some(current);
        }
        channel.sender.subscribe()
    }

    pub fn watched_products(&self) -> usize {
        self.channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(left: u64) -> StockView {
        StockView {
            product_id: ProductId(7),
            left,
            reserved: 100 - left,
            sold: 0,
            price: Money(1_000),
            sale_price: None,
            status: if left == 0 {
                StockStatus::SoldOut
            } else {
                StockStatus::Available
            },
        }
    }

    #[test]
    fn a_product_nobody_watches_has_no_channel() {
        let feed = StockFeed::new(10);
        feed.publish(view(99));
        assert_eq!(feed.watched_products(), 0);
        let receiver = feed.subscribe(view(99));
        assert_eq!(feed.watched_products(), 1);
        drop(receiver);
        feed.publish(view(98));
        assert_eq!(feed.watched_products(), 0);
    }

    #[test]
    fn values_closer_than_the_gap_are_held_back_except_sold_out() {
        let feed = StockFeed::new(1);
        let mut screen = feed.subscribe(view(99));
        feed.publish(view(98));
        feed.publish(view(97));
        feed.flush();
        assert!(
            !screen.has_changed().expect("open"),
            "held back by the rate"
        );
        feed.publish(view(0));
        assert!(
            screen.has_changed().expect("open"),
            "sold out goes out at once"
        );
        assert_eq!(screen.borrow_and_update().view, view(0));
    }

    #[test]
    fn the_flusher_sends_the_newest_held_value_after_the_gap() {
        let feed = StockFeed::new(50);
        let mut screen = feed.subscribe(view(99));
        feed.publish(view(98));
        feed.publish(view(97));
        std::thread::sleep(feed.min_gap() * 2);
        feed.flush();
        assert_eq!(screen.borrow_and_update().view, view(97));
    }

    #[test]
    fn a_newcomer_does_not_wake_the_screens_already_watching() {
        let feed = StockFeed::new(1);
        let mut first = feed.subscribe(view(99));
        first.borrow_and_update();
        // The product moved on since the last value sent: the newcomer starts at that
        // value, and the newer one waits for the flusher like any other.
        let second = feed.subscribe(view(90));
        assert!(!first.has_changed().expect("open"));
        assert_eq!(second.borrow().view, view(99));
    }

    #[test]
    fn every_screen_shares_one_serialisation() {
        let feed = StockFeed::new(10);
        let first = feed.subscribe(view(99));
        let second = feed.subscribe(view(99));
        let (a, b) = (first.borrow().json.clone(), second.borrow().json.clone());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not copies");
        let parsed: StockView = serde_json::from_slice(&a).expect("JSON of the view");
        assert_eq!(parsed, view(99));
    }
}
