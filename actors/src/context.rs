//! What every actor of a shop shares: settings, the store, the committer, the catalog and
//! the directories of live actors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use engine::order::Order;
use engine::{OrderId, ProductId, UserId};
use persistence::{GroupCommitter, MirrorEntry, RedisMirror, Store};
use ractor::ActorRef;
use ractor::rpc::CallResult;

use crate::catalog::Catalog;
use crate::expiry::ClockMsg;
use crate::order::OrderMsg;
use crate::order_supervisor::OrderSupervisorMsg;
use crate::product::ProductHandle;
use crate::settings::ShopSettings;
use crate::shard::shard_of;
use crate::shard_supervisor::ShardMsg;
use crate::stock_feed::StockFeed;

#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleError {
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    #[error("{0}")]
    Unavailable(String),
}

pub struct Context {
    pub settings: ShopSettings,
    pub store: Arc<dyn Store>,
    pub committer: GroupCommitter,
    pub catalog: Arc<Catalog>,
    /// Where committed stock is mirrored for the rest of the platform, if configured.
    pub mirror: Option<RedisMirror>,
    /// Latest stock of watched products, for live screens.
    pub stock_feed: StockFeed,
    /// Latest status and position of orders on their way.
    pub tracking: crate::tracking::TrackingBoard,
    /// The current (latest) sale of each product that has one, for sale listings.
    pub sales: DashMap<ProductId, engine::FlashSale>,
    /// Live product actors. Read on every Buy Now; written only by shard supervisors.
    pub products: DashMap<ProductId, ProductHandle>,
    /// Live order actors. Written only by the order supervisor.
    pub orders: DashMap<OrderId, ActorRef<OrderMsg>>,
    /// Unpaid orders, the way order actors are spawned for them.
    pub pending_orders: DashMap<OrderId, Order>,
    /// Users with a checkout running (one at a time each, see `checkout.rs`).
    pub checkouts: DashMap<UserId, ()>,
    pub clock: OnceLock<ActorRef<ClockMsg>>,
    pub shards: OnceLock<Vec<ActorRef<ShardMsg>>>,
    pub order_supervisor: OnceLock<ActorRef<OrderSupervisorMsg>>,
    pub next_product_id: AtomicU64,
    pub next_sale_id: AtomicU64,
}

impl Context {
    pub fn shard(&self, product_id: ProductId) -> &ActorRef<ShardMsg> {
        let shards = self.shards.get().expect("shards start before any request");
        &shards[shard_of(product_id, self.settings.shard_count).0 as usize]
    }

    /// The live actor of a product, spawned (and loaded from the store) if needed.
    pub async fn product_handle(
        &self,
        product_id: ProductId,
    ) -> Result<ProductHandle, HandleError> {
        if let Some(handle) = self.products.get(&product_id) {
            return Ok(handle.clone());
        }
        let answer = self
            .shard(product_id)
            .call(
                |reply| ShardMsg::Spawn { product_id, reply },
                Some(self.settings.request_timeout),
            )
            .await;
        match answer {
            Ok(CallResult::Success(result)) => result,
            Ok(_) | Err(_) => Err(HandleError::Unavailable("the shard did not answer".into())),
        }
    }

    /// Drops a handle whose actor is gone, unless it was replaced meanwhile.
    pub fn forget_handle(&self, product_id: ProductId, stale: &ProductHandle) {
        self.products.remove_if(&product_id, |_, live| {
            live.actor.get_id() == stale.actor.get_id()
        });
    }

    /// Remembers a product's current sale for listings.
    pub fn note_sale(&self, stock: &engine::stock::ProductStock) {
        if let Some(sale) = stock.current_sale() {
            self.sales.insert(stock.product_id(), sale.clone());
        }
    }

    /// Hands a product's newest committed stock to the mirror (never blocks).
    pub fn mirror_inventory(&self, inventory: &engine::stock::Inventory) {
        if let Some(mirror) = &self.mirror {
            mirror.publish(inventory.product_id, MirrorEntry::from_inventory(inventory));
        }
    }

    /// Newly committed unpaid orders: remembered, and put on the reservation clock.
    pub fn track_new_orders(&self, orders: Vec<Order>) {
        if orders.is_empty() {
            return;
        }
        let deadlines = orders
            .iter()
            .map(|order| (order.id, order.expires_at_ms))
            .collect();
        for order in orders {
            self.pending_orders.insert(order.id, order);
        }
        if let Some(clock) = self.clock.get() {
            let _ = clock.cast(ClockMsg::Track(deadlines));
        }
    }

    pub fn track_expiry(&self, order_id: OrderId, at_ms: u64) {
        if let Some(clock) = self.clock.get() {
            let _ = clock.cast(ClockMsg::Track(vec![(order_id, at_ms)]));
        }
    }

    /// The order left PENDING_PAYMENT: nothing to expire any more.
    pub fn settle_pending(&self, order_id: OrderId, expires_at_ms: u64) {
        self.pending_orders.remove(&order_id);
        if let Some(clock) = self.clock.get() {
            let _ = clock.cast(ClockMsg::Forget(order_id, expires_at_ms));
        }
    }

    /// Reservations found in the store that may be missing here (after a commit whose
    /// outcome was unknown): load and track them.
    pub fn ensure_order_actors(&self, order_ids: Vec<OrderId>) {
        let missing: Vec<OrderId> = order_ids
            .into_iter()
            .filter(|order_id| !self.pending_orders.contains_key(order_id))
            .collect();
        if missing.is_empty() {
            return;
        }
        if let Some(supervisor) = self.order_supervisor.get() {
            let _ = supervisor.cast(OrderSupervisorMsg::Ensure(missing));
        }
    }

    pub fn allocate_product_id(&self) -> ProductId {
        ProductId(self.next_product_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Keeps client-chosen ids from colliding with allocated ones later.
    pub fn observe_product_id(&self, product_id: ProductId) {
        self.next_product_id
            .fetch_max(product_id.0, Ordering::Relaxed);
    }

    pub fn allocate_sale_id(&self) -> engine::SaleId {
        engine::SaleId(self.next_sale_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
}
