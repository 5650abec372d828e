//! What a product actor is told, and what it answers.

use std::sync::Arc;

use engine::order::{OrderStatus, StockEffect};
use engine::stock::{Inventory, Line, LineError, ProductStock, SaleCounters, StockCounters};
use engine::{
    FlashSale, IdempotencyKey, Money, OrderId, Product, ProductEdit, Refusal, SaleId, UserId,
};
use persistence::{CommitOutcome, ProductState, StoreError};
use ractor::RpcReplyPort;
use tokio::sync::oneshot;

use super::order::TransitionError;
use crate::admission::Permit;
use crate::error::AdminError;

/// Kept small (large payloads boxed): ractor's mailbox is a tokio channel that allocates
/// slots in blocks of 32 messages, so every live product actor pays 32 x this size.
pub enum ProductMsg {
    /// A buyer pressed Buy Now.
    BuyNow(Box<BuyNow>),
    /// Sent by the actor to itself after the first decision of a batch: by the time it is
    /// handled, every message that was waiting behind it has been decided, so the whole
    /// batch goes to the committer at once.
    Flush,
    /// The committer finished a batch of this actor.
    BatchDone {
        batch_id: u64,
        outcome: CommitOutcome,
    },
    /// An order actor moves an order out of PENDING_PAYMENT (paid, cancelled, expired).
    Transition(Box<Transition>),
    /// One line of an order that spans several products: move the stock now, in memory,
    /// and hold it until the order's one transaction has an outcome (`hold.rs`).
    Prepare(Box<Prepare>),
    /// The outcome of the transaction a prepared line waited for.
    Settle(Box<(OrderId, CommitOutcome)>),
    Inventory(RpcReplyPort<Inventory>),
    /// A live screen subscribes to this product's stock.
    Watch(RpcReplyPort<tokio::sync::watch::Receiver<crate::stock_feed::StockUpdate>>),
    Update(
        Box<ProductUpdate>,
        RpcReplyPort<Result<Product, AdminError>>,
    ),
    /// Schedule an already validated sale.
    ScheduleSale(Box<FlashSale>, RpcReplyPort<Result<FlashSale, AdminError>>),
    /// Cancel the current sale, or move it before it starts; answers the sale as changed.
    ChangeSale(Box<SaleChange>, RpcReplyPort<Result<FlashSale, AdminError>>),
    /// What the actor holds right now, for operators and tests.
    Inspect(RpcReplyPort<ProductInspection>),
    /// The shard asks an idle actor to stop; it answers with its state if it did.
    Passivate(RpcReplyPort<Option<Box<Dormant>>>),
    /// Answered once nothing of this actor is waiting for the committer.
    Drain(RpcReplyPort<()>),
    /// Try to rebuild from the store again.
    Recover,
    Reloaded(Box<Result<Option<ProductState>, StoreError>>),
}

pub struct BuyNow {
    pub user_id: UserId,
    pub quantity: u32,
    pub idempotency_key: IdempotencyKey,
    pub waiter: Waiter,
}

/// The reply channel of one admitted Buy Now, holding its admission permit: the slot is
/// freed exactly when the buyer is answered.
pub struct Waiter {
    reply: oneshot::Sender<BuyNowReply>,
    _permit: Permit,
    /// The buyer's request (its span carries the request id): the actor's turn and the
    /// commit are traced and logged under it.
    pub span: tracing::Span,
}

impl Waiter {
    /// Takes the caller's current span along.
    pub fn new(reply: oneshot::Sender<BuyNowReply>, permit: Permit) -> Self {
        Self {
            reply,
            _permit: permit,
            span: tracing::Span::current(),
        }
    }

    pub fn answer(self, reply: BuyNowReply) {
        // The buyer may have given up (timeout, closed connection); nothing to do then.
        let _ = self.reply.send(reply);
    }
}

/// The answer to a Buy Now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuyNowReply {
    /// The order exists and is durable.
    Placed(Placement),
    Refused(Refusal),
    /// No decision could be made durable; retrying with the same idempotency key is safe.
    Unavailable(Unavailable),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub order_id: OrderId,
    pub quantity: u32,
    pub unit_price: Money,
    pub total: Money,
    pub sale_id: Option<SaleId>,
    pub expires_at_ms: u64,
    pub status: OrderStatus,
    /// This is the answer to an earlier request with the same key.
    pub duplicate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The actor is rebuilding itself from the store after a failed commit.
    Recovering,
    /// Nothing was written; the stock went back.
    NotWritten(Arc<str>),
    /// The commit failed or timed out and may have happened.
    Unknown(Arc<str>),
    /// No answer within the request timeout.
    TimedOut,
}

pub struct Transition {
    pub order_id: OrderId,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub at_ms: u64,
    /// The payment that caused it, recorded in the same transaction.
    pub payment: Option<persistence::PaymentRecord>,
    /// The events of the change, written to the outbox in the same transaction.
    pub events: Vec<persistence::Event>,
    pub reply: RpcReplyPort<Result<(), TransitionError>>,
}

pub struct Prepare {
    pub order_id: OrderId,
    pub step: PrepareStep,
    pub reply: oneshot::Sender<Result<Line, PrepareRefused>>,
}

/// What a prepared line does to the product's stock. Serializable: a line may be held on
/// another node for an order coordinated here (`remote_hold.rs`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum PrepareStep {
    /// Reserve units for a new order (the engine's Buy Now rules, sale and limits included).
    Reserve {
        user_id: UserId,
        quantity: u32,
        #[serde(deserialize_with = "IdempotencyKey::deserialize_stored")]
        idempotency_key: IdempotencyKey,
        now_ms: u64,
        expires_at_ms: u64,
    },
    /// Start confirming or releasing the order's reserved units.
    Move(StockEffect),
}

/// Why a line could not be prepared. Nothing of it is held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PrepareRefused {
    #[error("no such product")]
    UnknownProduct,
    #[error("{0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Stock(#[from] LineError),
    #[error("{0}")]
    Unavailable(String),
}

/// An admin's change of a product's current sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaleChange {
    /// It ends now (a sale not started yet never starts).
    Cancel(SaleId),
    /// A sale not started yet moves to another window.
    Move {
        sale_id: SaleId,
        start_ms: u64,
        end_ms: Option<u64>,
    },
}

impl SaleChange {
    pub fn sale_id(self) -> SaleId {
        match self {
            SaleChange::Cancel(sale_id) | SaleChange::Move { sale_id, .. } => sale_id,
        }
    }
}

/// A change of a product's record, and optionally of its units on the shelf.
pub struct ProductUpdate {
    pub edit: ProductEdit,
    pub stock: Option<u64>,
}

/// A product's state while no actor runs for it: what keeps a product resident in memory
/// for a few hundred bytes instead of a live actor's ~8 KB (ractor's channels and task).
pub struct Dormant {
    pub product: Product,
    pub stock: ProductStock,
}

/// A live product actor's state, as an operator (or a test) sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductInspection {
    pub counters: StockCounters,
    pub sale: Option<(FlashSale, SaleCounters)>,
    /// Rebuilding itself from the store after a commit whose outcome is unknown.
    pub recovering: bool,
    /// Decisions waiting for the committer: not yet submitted, and submitted.
    pub open_writes: usize,
    pub committing_batches: usize,
    /// Lines of multi-product orders held for their transaction.
    pub held_lines: usize,
}
