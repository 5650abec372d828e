use async_trait::async_trait;
use engine::order::Order;
use engine::stock::StockSnapshot;
use engine::{FlashSale, IdempotencyKey, OrderId, Product, ProductId, UserId};

use crate::error::StoreError;
use crate::event::OutboxRow;
use crate::notification::{CartItem, Notification, Review, ReviewSummary};
use crate::write::{Shipment, WriteOp};

/// A product as a restart needs it: the catalog record and the facts its stock is rebuilt
/// from.
#[derive(Clone, Debug)]
pub struct ProductState {
    pub product: Product,
    pub stock: StockSnapshot,
}

/// What a mirror needs to show a product's live counts without asking its actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryLevel {
    pub product_id: ProductId,
    /// Units on the shelf (the sale pool included).
    pub left: u64,
    /// The product's current (latest) sale and the units its buyers hold.
    pub sale: Option<SaleLevel>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleLevel {
    pub sale: FlashSale,
    /// Units of this sale reserved or paid for.
    pub held: u64,
}

/// The largest ids in use, so new ones can be handed out from memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdHighWater {
    pub product_id: u64,
    pub sale_id: u64,
}

/// What the engine persists. Every backend applies a slice of writes atomically: all of
/// them or none.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies every write in one transaction.
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError>;

    /// A product with its current sale, every order still holding its stock, the totals of
    /// the rest, and the orders created since `lines_since_ms` (so recent idempotency keys
    /// keep answering).
    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError>;

    /// Every product's catalog record, for the in-memory listing.
    async fn load_catalog(&self) -> Result<Vec<Product>, StoreError>;

    async fn load_order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// The order a user's idempotency key made in `scope`, if any.
    async fn order_for_key(
        &self,
        user: UserId,
        scope: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OrderId>, StoreError>;

    async fn load_shipment(&self, id: OrderId) -> Result<Option<Shipment>, StoreError>;

    /// Orders waiting for payment, whose expiry timers must run again after a restart.
    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError>;

    /// Every product's committed counts, for rebuilding a mirror from scratch.
    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError>;

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError>;

    /// The oldest events of the outbox, at most `limit`, in the order they were written.
    async fn outbox_batch(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Removes relayed events.
    async fn outbox_delete(&self, seqs: &[i64]) -> Result<(), StoreError>;

    /// Records sent messages in one transaction; a `dedup_key` recorded before is skipped.
    /// Returns how many were new.
    async fn record_notifications(&self, notifications: &[Notification])
    -> Result<u64, StoreError>;

    /// A customer's messages, newest first.
    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Assigns `partner` to the order unless one is already assigned; returns the partner
    /// that stands.
    async fn assign_delivery_partner(
        &self,
        order: OrderId,
        partner: &str,
        at_ms: u64,
    ) -> Result<String, StoreError>;

    async fn delivery_partner(&self, order: OrderId) -> Result<Option<String>, StoreError>;

    /// A user's cart lines touched at or after `since_ms`, oldest first; older lines are
    /// purged on the way.
    async fn cart(&self, user: UserId, since_ms: u64) -> Result<Vec<CartItem>, StoreError>;

    /// Sets a cart line (inserting it, or replacing its quantity).
    async fn put_cart_item(&self, user: UserId, item: CartItem) -> Result<(), StoreError>;

    /// Removes lines; returns how many existed.
    async fn remove_cart_items(
        &self,
        user: UserId,
        products: &[ProductId],
    ) -> Result<u64, StoreError>;

    /// Whether `user` has a delivered order holding `product`.
    async fn received(&self, user: UserId, product: ProductId) -> Result<bool, StoreError>;

    /// Adds a review and returns the product's new summary; `None` when this user already
    /// reviewed this product (nothing changes).
    async fn add_review(&self, review: &Review) -> Result<Option<ReviewSummary>, StoreError>;

    /// A page of a product's reviews, newest first, and how many there are in all.
    async fn reviews(
        &self,
        product: ProductId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Review>, ReviewSummary), StoreError>;

    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}
