//! The writes the actors ask for, as plain data, so that one batch can carry writes from
//! many actors and any backend can apply it in one transaction.
//!
//! The workflow's own writes (relayed events leaving the outbox, recorded notifications)
//! are write ops too and go through the same group commit: on SQLite a second writer would
//! wait for the committer's lock (SQLite's busy handler sleeps up to 100 ms a try: the
//! tail of every Buy Now behind it) and pay an fsync of its own; on PostgreSQL it would
//! pay a transaction of its own.
//!
//! On PostgreSQL a second committer for them, on a connection of its own, was measured
//! and is slower (issue 14, `loadtests/cost.sh postgres 10 64`, alternated with this
//! design): one after another, 2,700-2,800 transactions of ~35 records in a 10 s run,
//! 8.9-9.5K orders/s against 11.0-11.1K, PostgreSQL's CPU per order 66-73 µs against
//! 49-50; resting 20 ms between its batches (340 transactions), 9.4-9.6K against 10.5K,
//! 59-60 µs against 52. The orders' commits were no shorter without them (2.6-2.8 ms for
//! ~27 orders either way): riding in a batch that commits anyway, a record costs its row
//! and nothing else. That row is not cheap, though: on a later machine (issue 14,
//! `cost.sh postgres 8 64`, three alternated pairs against a throwaway build that did not
//! write the payment requests' records) the orders went 18.7-20.2K -> 22.9-26.3K orders/s,
//! PostgreSQL's CPU per order 22-23 -> 15-17 µs and the WAL a commit syncs 38-39 -> 23-24 KB.
//! A leaner row (a 32-character key, no body, no index by user) bought little in three pairs
//! of its own (16.5-17.8K -> 17.5-18.0K, WAL 38 -> 31 KB a commit): it is a row per order
//! that costs, not its bytes. So the payment requests (messages to the provider, not to
//! the shopper) left `notifications` for a log packed per batch, as the outbox packs its
//! events (`LogProviderMessages`, `provider_messages.rs`): three alternated pairs,
//! `cost.sh postgres 8 64`, 20.5-21.0K -> 23.9-25.4K orders/s, PostgreSQL 19-20 -> 15-16 µs
//! an order, WAL 40 -> 26 KB a commit; on SQLite (`cost.sh embedded 8 64`, two pairs)
//! 21.3-22.4K -> 26.1-27.8K, the engine's CPU 37 -> 31-32 µs an order.

use engine::order::{Order, OrderStatus};

use crate::notifications::Notification;
use crate::shard_leases::ShardLease;
use engine::{FlashSale, Money, OrderId, Product, ProductId, SaleId};

#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Creates or replaces a product's catalog record and sets its stock total.
    PutProduct {
        product: Product,
        stock_initial: u64,
        /// Change of units on the shelf, recorded in the ledger when not zero.
        shelf_change: i64,
        at_ms: u64,
    },
    /// Schedules a sale (its pool is carved out of the shelf).
    PutSale { sale: FlashSale, at_ms: u64 },
    /// Cancels a scheduled or live sale, or moves one not started to another window.
    ChangeSale { sale: FlashSale, at_ms: u64 },
    /// A new order with its items and idempotency key; its units are reserved.
    PlaceOrder {
        order: Order,
        idempotency_scope: String,
    },
    /// An order leaves a status; the guard refuses the write if someone else moved it.
    SetOrderStatus(StatusChange),
    /// Creates or completes an order's shipment.
    PutShipment(Shipment),
    /// What a delivered order pays its sellers, written with the delivery.
    ReleasePayouts(Vec<crate::payouts::ReleasedPayout>),
    /// A node's recommendation counts for these products, replacing what it saved before.
    SaveNeighbours {
        node: String,
        lists: Vec<crate::recommendations::NeighbourList>,
    },
    /// An event for the outbox, committed with whatever else is in the batch.
    Emit(crate::event::Event),
    /// Where a checked-out order goes and how it is paid, stored with the order.
    PutCheckout(CheckoutDetails),
    /// Events every sink took: they leave the outbox.
    ForgetEvents(Vec<i64>),
    /// Messages to customers the default sender recorded; a dedup key recorded before is
    /// skipped.
    RecordNotifications(Vec<Notification>),
    /// Messages to providers the default sender logged: one pack a batch, not deduplicated.
    LogProviderMessages(Vec<Notification>),
    /// The batch commits only if this shard lease is still current (a clustered node's
    /// writes for a shard carry its lease: `shard_leases.rs`). PostgreSQL only.
    Fence(ShardLease),
    /// The batch commits only if PostgreSQL's clock is still before this time (ms since
    /// the epoch), checked while the batch holds its leases: an order whose lines another
    /// node holds for it commits before that node gives up waiting, or never
    /// (`ShardLeases::hold_expired`). PostgreSQL only.
    HoldUntil(u64),
}

/// What a cart checkout adds to its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutDetails {
    pub order_id: OrderId,
    pub address_id: String,
    pub payment_method: String,
}

/// An order on its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipment {
    pub order_id: OrderId,
    pub tracking_id: String,
    pub estimated_delivery_ms: u64,
    pub shipped_at_ms: u64,
    pub delivered: Option<Delivery>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub at_ms: u64,
    pub signature: String,
    pub photo_url: String,
}

#[derive(Clone, Debug)]
pub struct StatusChange {
    pub order_id: OrderId,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub at_ms: u64,
    /// The stock this change moves, one entry per product of the order (none for changes
    /// that move no stock, like SHIPPED).
    pub ledger: Vec<StockMove>,
    /// The payment behind this change (paid or payment failed), recorded with it.
    pub payment: Option<PaymentRecord>,
}

/// Units of one product an order's status change confirms or releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockMove {
    pub product_id: ProductId,
    pub kind: LedgerKind,
    pub units: u32,
    /// For units bought in a flash sale: the sale whose pool they came from (a release
    /// gives them back to it).
    pub sale: Option<SaleId>,
}

/// A payment provider's verdict on an order, as its webhook reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub transaction_id: String,
    pub succeeded: bool,
    pub amount: Money,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerKind {
    StockSet,
    SaleCarve,
    Reserve,
    Confirm,
    Release,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::StockSet => "stock_set",
            LedgerKind::SaleCarve => "sale_carve",
            LedgerKind::Reserve => "reserve",
            LedgerKind::Confirm => "confirm",
            LedgerKind::Release => "release",
        }
    }
}
