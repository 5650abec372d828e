//! The Redis mirror: live counts for the rest of the platform, written after each commit.
//!
//! Keys (with an optional prefix), readable with plain GET / HGETALL:
//! - `inventory:{productId}`: units on the shelf (the sale pool included);
//! - `flash_sale:stock:{productId}`: units left in the sale pool;
//! - `flash_sale:{productId}`: hash of `saleId, price, originalPrice, start, end, stock,
//!   perUserLimit` (times in ms since the epoch); both sale keys expire when the sale ends.
//!
//! The mirror never decides anything and never slows a sale: actors hand it their latest
//! committed state ([`RedisMirror::publish`], a map insert), and one writer task pushes
//! what changed in pipelines of up to 1,000 products. Only the newest state of a product is
//! kept, so a burst of 10K orders on one product costs a handful of writes. If Redis is
//! down, sales go on; the writer keeps retrying with backoff and, once Redis answers again,
//! rewrites every product from the store (Redis may have restarted empty). It does the same
//! at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::flash_sale::SalePhase;
use engine::stock::Inventory;
use engine::{FlashSale, ProductId};
use redis::aio::ConnectionManager;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::ledger::{InventoryLevel, OrderLedger};

#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: String,
    /// Prepended to every key (tests and shared instances); empty in production.
    pub key_prefix: String,
    /// Longest wait for one pipeline; past it the write is retried later.
    pub timeout: Duration,
}

/// What the mirror shows of one product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorEntry {
    pub left: u64,
    pub sale: Option<(FlashSale, u64)>,
}

impl MirrorEntry {
    pub fn from_inventory(inventory: &Inventory) -> Self {
        Self {
            left: inventory.counters.left,
            sale: inventory
                .sale
                .as_ref()
                .map(|sale| (sale.sale.clone(), sale.counters.left)),
        }
    }

    fn from_level(level: InventoryLevel, now_ms: u64) -> Self {
        Self {
            left: level.left,
            sale: level.sale.map(|level| {
                let open = level.sale.phase(now_ms) != SalePhase::Ended;
                let left = if open {
                    level.sale.stock.saturating_sub(level.held)
                } else {
                    0
                };
                (level.sale, left)
            }),
        }
    }
}

/// Products per pipeline: big enough to amortize the round trip, small enough to keep one
/// write well under the timeout.
const PIPELINE_PRODUCTS_MAX: usize = 1_000;
const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// The last known position of an order on its way, for `tracking:{orderId}`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackingEntry {
    pub lat: f64,
    pub lng: f64,
    pub status: String,
    pub at_ms: u64,
}

/// Tracking keys outlive a delivery by this much, then Redis forgets them.
const TRACKING_TTL_SECONDS: i64 = 7 * 24 * 3_600;

#[derive(Default)]
struct Pending {
    entries: HashMap<ProductId, MirrorEntry>,
    tracking: HashMap<engine::OrderId, TrackingEntry>,
    /// Rewrite every product from the store before anything else.
    full_resync: bool,
}

#[derive(Clone)]
pub struct RedisMirror {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl RedisMirror {
    /// Starts the writer. Connecting is lazy: a Redis that is down at start only delays
    /// the mirror, never the engine.
    pub fn start(
        settings: RedisSettings,
        ledger: Arc<dyn OrderLedger>,
    ) -> Result<(Self, JoinHandle<()>), redis::RedisError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_DELAY_MAX);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let mirror = Self {
            pending: Arc::new(Mutex::new(Pending {
                entries: HashMap::new(),
                tracking: HashMap::new(),
                full_resync: true,
            })),
            wake: Arc::new(Notify::new()),
        };
        let writer = Writer {
            mirror: mirror.clone(),
            connection,
            ledger,
            prefix: settings.key_prefix,
        };
        let task = tokio::spawn(writer.run());
        Ok((mirror, task))
    }

    /// Records a product's newest committed state; the writer picks it up soon after.
    pub fn publish(&self, product_id: ProductId, entry: MirrorEntry) {
        self.lock().entries.insert(product_id, entry);
        self.wake.notify_one();
    }

    /// Records an order's latest position; written with the next pipeline.
    pub fn publish_tracking(&self, order_id: engine::OrderId, entry: TrackingEntry) {
        self.lock().tracking.insert(order_id, entry);
        self.wake.notify_one();
    }

    /// Products waiting to be written (for tests and metrics).
    pub fn backlog(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Held for a map insert or swap only; a panic cannot leave the map half-written.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Writer {
    mirror: RedisMirror,
    connection: ConnectionManager,
    ledger: Arc<dyn OrderLedger>,
    prefix: String,
}

impl Writer {
    async fn run(mut self) {
        let mut retry_delay = RETRY_DELAY_MIN;
        loop {
            let (full_resync, mut entries, tracking) = {
                let mut pending = self.mirror.lock();
                (
                    std::mem::take(&mut pending.full_resync),
                    std::mem::take(&mut pending.entries),
                    std::mem::take(&mut pending.tracking),
                )
            };
            if !full_resync && entries.is_empty() && tracking.is_empty() {
                self.mirror.wake.notified().await;
                continue;
            }
            if !tracking.is_empty() && self.write_tracking(&tracking).await.is_err() {
                // Couriers report every few minutes; keep the newest for the next try
                // (a newer position published meanwhile wins).
                let mut pending = self.mirror.lock();
                for (order_id, entry) in tracking {
                    pending.tracking.entry(order_id).or_insert(entry);
                }
            }
            let result = if full_resync {
                self.resync_all(&mut entries).await
            } else {
                self.write(&entries).await
            };
            match result {
                Ok(()) => retry_delay = RETRY_DELAY_MIN,
                Err(error) => {
                    tracing::warn!(%error, backlog = entries.len(), "redis mirror write failed; will resync");
                    {
                        let mut pending = self.mirror.lock();
                        for (product_id, entry) in entries {
                            // A newer state published meanwhile wins.
                            pending.entries.entry(product_id).or_insert(entry);
                        }
                        // Redis may have lost everything (it keeps nothing on disk here).
                        pending.full_resync = true;
                    }
                    tokio::time::sleep(retry_delay).await;
                    retry_delay = (retry_delay * 2).min(RETRY_DELAY_MAX);
                }
            }
        }
    }

    /// Every product from the store, then what actors published meanwhile (newer).
    async fn resync_all(
        &mut self,
        published: &mut HashMap<ProductId, MirrorEntry>,
    ) -> Result<(), String> {
        let levels = self
            .ledger
            .inventory_levels()
            .await
            .map_err(|error| error.to_string())?;
        let now_ms = now_ms();
        let mut all: HashMap<ProductId, MirrorEntry> = levels
            .into_iter()
            .map(|level| (level.product_id, MirrorEntry::from_level(level, now_ms)))
            .collect();
        let count = all.len();
        self.write(&all).await?;
        // Published states were committed before they were published; writing them after
        // the store's snapshot can only move a key to an equal or newer state eventually,
        // because every later commit publishes again.
        self.write(published).await?;
        all.clear();
        tracing::info!(products = count, "redis mirror resynced from the store");
        Ok(())
    }

    async fn write_tracking(
        &mut self,
        tracking: &HashMap<engine::OrderId, TrackingEntry>,
    ) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for (order_id, entry) in tracking {
            let key = format!("{}tracking:{order_id}", self.prefix);
            pipe.hset_multiple(
                &key,
                &[
                    ("lat", entry.lat.to_string()),
                    ("lng", entry.lng.to_string()),
                    ("status", entry.status.clone()),
                    ("at", entry.at_ms.to_string()),
                ],
            )
            .ignore();
            pipe.expire(&key, TRACKING_TTL_SECONDS).ignore();
        }
        pipe.query_async::<()>(&mut self.connection)
            .await
            .map_err(|error| error.to_string())
    }

    async fn write(&mut self, entries: &HashMap<ProductId, MirrorEntry>) -> Result<(), String> {
        let now_ms = now_ms();
        let all: Vec<(&ProductId, &MirrorEntry)> = entries.iter().collect();
        for chunk in all.chunks(PIPELINE_PRODUCTS_MAX) {
            let mut pipe = redis::pipe();
            for (product_id, entry) in chunk {
                self.add_commands(&mut pipe, **product_id, entry, now_ms);
            }
            pipe.query_async::<()>(&mut self.connection)
                .await
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    fn add_commands(
        &self,
        pipe: &mut redis::Pipeline,
        product_id: ProductId,
        entry: &MirrorEntry,
        now_ms: u64,
    ) {
        let prefix = &self.prefix;
        let inventory_key = format!("{prefix}inventory:{product_id}");
        let sale_key = format!("{prefix}flash_sale:{product_id}");
        let sale_stock_key = format!("{prefix}flash_sale:stock:{product_id}");
        pipe.set(&inventory_key, entry.left).ignore();
        match &entry.sale {
            Some((sale, left)) if sale.phase(now_ms) != SalePhase::Ended => {
                pipe.set(&sale_stock_key, *left).ignore();
                pipe.del(&sale_key).ignore();
                pipe.hset_multiple(
                    &sale_key,
                    &[
                        ("saleId", sale.id.0.to_string()),
                        ("price", sale.sale_price.0.to_string()),
                        ("originalPrice", sale.original_price.0.to_string()),
                        ("start", sale.start_ms.to_string()),
                        (
                            "end",
                            sale.end_ms.map(|end| end.to_string()).unwrap_or_default(),
                        ),
                        ("stock", sale.stock.to_string()),
                        ("perUserLimit", sale.per_user_limit.to_string()),
                    ],
                )
                .ignore();
                if let Some(end_ms) = sale.ended_at_ms() {
                    let at = i64::try_from(end_ms).unwrap_or(i64::MAX);
                    pipe.pexpire_at(&sale_key, at).ignore();
                    pipe.pexpire_at(&sale_stock_key, at).ignore();
                }
            }
            // No sale, or it is over: nothing to show.
            _ => {
                pipe.del(&sale_key).ignore();
                pipe.del(&sale_stock_key).ignore();
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}
