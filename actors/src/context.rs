//! What every actor of a shop shares: settings, the stores, the committer, the read
//! models, and the directories of live actors. The directories are private: each is
//! changed through methods that say what happens (a product actor is registered or
//! forgotten by its shard supervisor, an order becomes pending or settles), so a reader
//! finds every writer of a map by its method.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use engine::stock::{Inventory, ProductStock};
use engine::{FlashSale, OrderId, ProductId, SaleId, UserId};
use persistence::{GroupCommitter, MirrorEntry, OrderLedger, RedisMirror, TrackingEntry};
use ractor::rpc::CallResult;
use ractor::{ActorId, ActorRef};

use crate::catalog::Catalog;
use crate::clock::{Clock, OrderIds};
use crate::node_channel::NodeChannel;
use crate::ownership::{Fence, Ownership};
use crate::protocol::{
    ClockMsg, HandleError, OrderMsg, OrderSupervisorMsg, ProductHandle, ShardMsg,
};
use crate::remote_hold::HeldForPeers;
use crate::settings::ShopSettings;
use crate::shard::shard_of;
use crate::stock_feed::StockFeed;
use crate::stores::ShopStores;
use crate::tracking::TrackingBoard;

/// Shards of the pending orders' map (a power of two, as `DashMap` wants).
const PENDING_SHARDS: usize = 256;

pub(crate) struct Context {
    settings: ShopSettings,
    stores: ShopStores,
    committer: GroupCommitter,
    catalog: Catalog,
    /// Where committed stock is mirrored for the rest of the platform, if configured.
    mirror: Option<RedisMirror>,
    /// Latest stock of watched products, for live screens.
    stock_feed: StockFeed,
    /// Latest status and position of orders on their way.
    tracking: TrackingBoard,
    clock: Clock,
    order_ids: OrderIds,
    /// Which shards this node sells from, under which leases.
    ownership: Ownership,
    /// The current (latest) sale of each product that has one, for sale listings.
    sales: DashMap<ProductId, FlashSale>,
    /// Live product actors, read on every Buy Now. Written by shard supervisors only.
    products: DashMap<ProductId, ProductHandle>,
    /// Live order actors. Written by the order supervisor only.
    orders: DashMap<OrderId, ActorRef<OrderMsg>>,
    /// Unpaid orders, by id, with when their reservation ends. Only the deadline: an
    /// order's actor reads the order from the store when something happens to it, so a
    /// pending order costs a few dozen bytes here (6 million of them at the peak). In
    /// many shards, because a shard that outgrows its table moves all its entries in one
    /// insert, with its lock held: with the default 8 shards that was a 57K-entry move
    /// at 459K pending orders; with `PENDING_SHARDS`, about 2K.
    pending: DashMap<OrderId, u64>,
    /// Users with a checkout running (one at a time each, see `checkout.rs`).
    checkouts: DashMap<UserId, ()>,
    /// How orders spanning nodes hold lines elsewhere (a cluster node's channel).
    node_channel: OnceLock<Arc<dyn NodeChannel>>,
    /// Lines held here for orders coordinated on other nodes (`remote_hold.rs`).
    held_for_peers: HeldForPeers,
    actors: OnceLock<Actors>,
    /// Actors that panicked (a bug: an assertion fired). Counted by their supervisors.
    actor_failures: AtomicU64,
    /// Buy Now orders made durable since the start (the operators' orders a second).
    orders_placed: AtomicU64,
    /// Checkout orders made durable since the start.
    checkouts_placed: AtomicU64,
    next_product_id: AtomicU64,
    next_sale_id: AtomicU64,
}

/// The long-lived actors, set once at start.
pub(crate) struct Actors {
    pub shards: Vec<ActorRef<ShardMsg>>,
    pub order_supervisor: ActorRef<OrderSupervisorMsg>,
    pub reservation_clock: ActorRef<ClockMsg>,
}

/// What a context is built from.
pub(crate) struct ContextParts {
    pub settings: ShopSettings,
    pub stores: ShopStores,
    pub committer: GroupCommitter,
    pub catalog: Catalog,
    pub mirror: Option<RedisMirror>,
    pub clock: Clock,
    pub order_ids: OrderIds,
    pub high_water: persistence::IdHighWater,
    pub ownership: Ownership,
}

impl Context {
    pub fn new(parts: ContextParts) -> Self {
        let stock_feed = StockFeed::new(parts.settings.stock_feed_rate_per_second);
        Self {
            settings: parts.settings,
            stores: parts.stores,
            committer: parts.committer,
            catalog: parts.catalog,
            mirror: parts.mirror,
            stock_feed,
            tracking: TrackingBoard::default(),
            clock: parts.clock,
            order_ids: parts.order_ids,
            ownership: parts.ownership,
            sales: DashMap::new(),
            products: DashMap::new(),
            orders: DashMap::new(),
            pending: DashMap::with_shard_amount(PENDING_SHARDS),
            checkouts: DashMap::new(),
            node_channel: OnceLock::new(),
            held_for_peers: HeldForPeers::default(),
            actors: OnceLock::new(),
            actor_failures: AtomicU64::new(0),
            orders_placed: AtomicU64::new(0),
            checkouts_placed: AtomicU64::new(0),
            next_product_id: AtomicU64::new(parts.high_water.product_id),
            next_sale_id: AtomicU64::new(parts.high_water.sale_id),
        }
    }

    pub fn settings(&self) -> &ShopSettings {
        &self.settings
    }

    pub fn stores(&self) -> &ShopStores {
        &self.stores
    }

    pub fn ledger(&self) -> &Arc<dyn OrderLedger> {
        &self.stores.ledger
    }

    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn stock_feed(&self) -> &StockFeed {
        &self.stock_feed
    }

    pub fn tracking(&self) -> &TrackingBoard {
        &self.tracking
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn new_order_id(&self, now_ms: u64) -> OrderId {
        self.order_ids.next(now_ms)
    }

    /// How far back settled orders keep answering their idempotency keys.
    pub fn idempotency_horizon_ms(&self) -> u64 {
        let retention_ms = self.settings.idempotency_retention.as_millis() as u64;
        self.now_ms().saturating_sub(retention_ms)
    }

    // The long-lived actors.

    pub fn set_actors(&self, actors: Actors) {
        assert!(
            self.actors.set(actors).is_ok(),
            "a shop's actors start once"
        );
    }

    pub fn actors(&self) -> Option<&Actors> {
        self.actors.get()
    }

    pub fn shard(&self, product_id: ProductId) -> Option<&ActorRef<ShardMsg>> {
        let shard = shard_of(product_id, self.settings.shard_count);
        self.actors()?.shards.get(shard.0 as usize)
    }

    pub fn order_supervisor(&self) -> Option<&ActorRef<OrderSupervisorMsg>> {
        self.actors().map(|actors| &actors.order_supervisor)
    }

    /// A supervised actor panicked; its supervisor restarts it from the store.
    pub fn note_actor_failure(&self) {
        self.actor_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn actor_failures(&self) -> u64 {
        self.actor_failures.load(Ordering::Relaxed)
    }

    /// A batch made `count` new orders durable.
    pub fn count_placed(&self, count: usize) {
        self.orders_placed
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// A checkout's order is durable.
    pub fn count_checkout_placed(&self) {
        self.checkouts_placed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn checkouts_placed(&self) -> u64 {
        self.checkouts_placed.load(Ordering::Relaxed)
    }

    pub fn orders_placed(&self) -> u64 {
        self.orders_placed.load(Ordering::Relaxed)
    }

    // Shards owned here.

    pub fn shard_of(&self, product_id: ProductId) -> u32 {
        shard_of(product_id, self.settings.shard_count).0
    }

    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// New requests for this product are taken on this node.
    pub fn admits(&self, product_id: ProductId) -> bool {
        self.ownership.admits(self.shard_of(product_id))
    }

    /// What a batch of writes to this product's stock must carry.
    pub fn fence_for(&self, product_id: ProductId) -> Fence {
        self.ownership.fence(self.shard_of(product_id))
    }

    // Orders spanning nodes.

    /// The channel to the other nodes, on a cluster node.
    pub fn node_channel(&self) -> Option<&Arc<dyn NodeChannel>> {
        self.node_channel.get()
    }

    /// Set once, when the node joins its cluster.
    pub fn set_node_channel(&self, peers: Arc<dyn NodeChannel>) {
        if self.node_channel.set(peers).is_err() {
            tracing::warn!("the channel to the other nodes was connected twice; keeping the first");
        }
    }

    pub fn held_for_peers(&self) -> &HeldForPeers {
        &self.held_for_peers
    }

    // Live product actors.

    /// The live actor of a product, spawned (and loaded from the store) if needed.
    pub async fn product_handle(
        &self,
        product_id: ProductId,
    ) -> Result<ProductHandle, HandleError> {
        if !self.admits(product_id) {
            return Err(HandleError::Elsewhere(self.shard_of(product_id)));
        }
        if let Some(handle) = self.products.get(&product_id) {
            return Ok(handle.clone());
        }
        let Some(shard) = self.shard(product_id) else {
            return Err(HandleError::Unavailable("the shop is not started".into()));
        };
        let answer = shard
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

    pub fn live_product(&self, product_id: ProductId) -> Option<ProductHandle> {
        self.products.get(&product_id).map(|handle| handle.clone())
    }

    /// A shard supervisor started this product's actor.
    pub fn register_product(&self, product_id: ProductId, handle: ProductHandle) {
        self.products.insert(product_id, handle);
    }

    /// The actor `actor` of this product is gone (stopped, passivated, failed): forget it,
    /// unless a newer actor replaced it meanwhile.
    pub fn forget_product(&self, product_id: ProductId, actor: ActorId) {
        self.products
            .remove_if(&product_id, |_, live| live.actor.get_id() == actor);
    }

    /// Every live product actor, by product id.
    pub fn live_products(&self) -> Vec<(ProductId, ProductHandle)> {
        let mut live: Vec<_> = self
            .products
            .iter()
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect();
        live.sort_by_key(|(product_id, _)| *product_id);
        live
    }

    pub fn live_product_count(&self) -> usize {
        self.products.len()
    }

    // Live order actors.

    pub fn live_order(&self, order_id: OrderId) -> Option<ActorRef<OrderMsg>> {
        self.orders.get(&order_id).map(|actor| actor.clone())
    }

    /// The order supervisor started this order's actor.
    pub fn register_order(&self, order_id: OrderId, actor: ActorRef<OrderMsg>) {
        self.orders.insert(order_id, actor);
    }

    /// The actor `actor` of this order stopped.
    pub fn forget_order(&self, order_id: OrderId, actor: ActorId) {
        self.orders
            .remove_if(&order_id, |_, live| live.get_id() == actor);
    }

    pub fn live_order_count(&self) -> usize {
        self.orders.len()
    }

    // Unpaid orders and their reservation clock.

    pub fn is_pending(&self, order_id: OrderId) -> bool {
        self.pending.contains_key(&order_id)
    }

    pub fn pending_order_count(&self) -> usize {
        self.pending.len()
    }

    /// Newly committed unpaid orders (id, reservation deadline): remembered, and put on
    /// the reservation clock.
    pub fn track_new_orders(&self, deadlines: Vec<(OrderId, u64)>) {
        if deadlines.is_empty() {
            return;
        }
        for (order_id, expires_at_ms) in &deadlines {
            self.pending.insert(*order_id, *expires_at_ms);
        }
        self.tell_clock(ClockMsg::Track(deadlines));
    }

    /// Look at this order's reservation again at `at_ms`.
    pub fn track_expiry(&self, order_id: OrderId, at_ms: u64) {
        self.tell_clock(ClockMsg::Track(vec![(order_id, at_ms)]));
    }

    /// The order left PENDING_PAYMENT: nothing to expire any more.
    pub fn settle_pending(&self, order_id: OrderId, expires_at_ms: u64) {
        self.pending.remove(&order_id);
        self.tell_clock(ClockMsg::Forget(order_id, expires_at_ms));
    }

    fn tell_clock(&self, message: ClockMsg) {
        if let Some(actors) = self.actors() {
            let _ = actors.reservation_clock.cast(message);
        }
    }

    /// Reservations found in the store that may be missing here (after a commit whose
    /// outcome was unknown): load and track them, in id order.
    pub fn ensure_order_actors(&self, order_ids: Vec<OrderId>) {
        let mut missing: Vec<OrderId> = order_ids
            .into_iter()
            .filter(|order_id| !self.pending.contains_key(order_id))
            .collect();
        if missing.is_empty() {
            return;
        }
        missing.sort();
        if let Some(supervisor) = self.order_supervisor() {
            let _ = supervisor.cast(OrderSupervisorMsg::Ensure(missing));
        }
    }

    // Checkouts running.

    /// Marks a checkout of `user` as running; false if one already is.
    pub fn begin_checkout(&self, user: UserId) -> bool {
        match self.checkouts.entry(user) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(slot) => {
                slot.insert(());
                true
            }
        }
    }

    pub fn end_checkout(&self, user: UserId) {
        self.checkouts.remove(&user);
    }

    // Read models and mirrors.

    /// Remembers a product's current sale for listings.
    pub fn note_sale(&self, stock: &ProductStock) {
        if let Some(sale) = stock.current_sale() {
            self.sales.insert(stock.product_id(), sale.clone());
        }
    }

    /// Remembers a sale of a product another node serves, unless a later one is known.
    pub fn note_followed_sale(&self, sale: FlashSale) {
        let newer = self
            .sales
            .get(&sale.product_id)
            .is_none_or(|known| known.id <= sale.id);
        if newer {
            self.sales.insert(sale.product_id, sale);
        }
    }

    /// The sale `id`, if it is a product's current one (scheduled, live, or over and not
    /// replaced yet).
    pub fn sale(&self, id: SaleId) -> Option<FlashSale> {
        self.sales
            .iter()
            .find(|sale| sale.id == id)
            .map(|sale| sale.clone())
    }

    /// Every product's current sale.
    pub fn sales(&self) -> Vec<FlashSale> {
        self.sales.iter().map(|sale| sale.clone()).collect()
    }

    /// Hands a product's newest committed stock to the mirror (never blocks).
    pub fn mirror_inventory(&self, inventory: &Inventory) {
        if let Some(mirror) = &self.mirror {
            mirror.publish(inventory.product_id, MirrorEntry::from_inventory(inventory));
        }
    }

    /// Hands an order's newest position to the mirror (never blocks).
    pub fn mirror_tracking(&self, order_id: OrderId, entry: TrackingEntry) {
        if let Some(mirror) = &self.mirror {
            mirror.publish_tracking(order_id, entry);
        }
    }

    // Ids handed out from memory.

    pub fn allocate_product_id(&self) -> ProductId {
        ProductId(self.next_product_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Keeps client-chosen ids from colliding with allocated ones later.
    pub fn observe_product_id(&self, product_id: ProductId) {
        self.next_product_id
            .fetch_max(product_id.0, Ordering::Relaxed);
    }

    /// A new sale id for a sale of `product_id`. A node alone counts up. On a cluster each
    /// node allocates for its own shards only, so the id is the next one of the product's
    /// shard's residue class (`id % shard_count == shard`): two owners of different shards
    /// never collide, and the owner of a shard counts past every id in the store when it
    /// takes the shard (`shards.rs`), so it never reuses its predecessor's.
    pub fn allocate_sale_id(&self, product_id: ProductId) -> SaleId {
        if !self.ownership.is_clustered() {
            return SaleId(self.next_sale_id.fetch_add(1, Ordering::Relaxed) + 1);
        }
        let count = u64::from(self.settings.shard_count.max(1));
        let shard = u64::from(self.shard_of(product_id));
        let mut current = self.next_sale_id.load(Ordering::Relaxed);
        loop {
            let above = current + 1;
            let mut next = above + (shard + count - above % count) % count;
            if next == 0 {
                next = count;
            }
            match self.next_sale_id.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return SaleId(next),
                Err(actual) => current = actual,
            }
        }
    }

    /// Ids the store holds now: new ones are allocated past them.
    pub fn observe_high_water(&self, high_water: persistence::IdHighWater) {
        self.next_product_id
            .fetch_max(high_water.product_id, Ordering::Relaxed);
        self.next_sale_id
            .fetch_max(high_water.sale_id, Ordering::Relaxed);
    }
}
