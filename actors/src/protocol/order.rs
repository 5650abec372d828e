//! Messages to order actors, their supervisor and the reservation clock.

use engine::OrderId;
use engine::order::{Order, OrderEvent};
use engine::stock::LineError;
use persistence::{PaymentRecord, WriteOp};
use ractor::{ActorRef, RpcReplyPort};

use crate::error::OrderError;

pub enum OrderMsg {
    Get(RpcReplyPort<Order>),
    Apply {
        event: OrderEvent,
        /// For payment events: the provider's record, stored with the change.
        payment: Option<PaymentRecord>,
        /// Written in the same transaction as a status change that moves no stock (the
        /// shipment with SHIPPED; the shipment, the payouts and their events with
        /// DELIVERED).
        attach: Vec<WriteOp>,
        reply: RpcReplyPort<Result<Order, OrderError>>,
    },
    /// The reservation clock says the time is up.
    Expire,
    /// Sent to itself after each message: handled once everything queued before it is,
    /// then the actor stops.
    Stop,
}

pub enum OrderSupervisorMsg {
    /// Their reservation time is up.
    Expire(Vec<OrderId>),
    /// Orders that may exist without being tracked (after an uncertain commit): load them
    /// and track the unpaid ones.
    Ensure(Vec<OrderId>),
    /// An actor for the order, to change it; `None` if the order does not exist or can no
    /// longer change.
    Get {
        order_id: OrderId,
        reply: RpcReplyPort<Option<ActorRef<OrderMsg>>>,
    },
}

pub enum ClockMsg {
    /// Expire these orders at these times (ms since the epoch).
    Track(Vec<(OrderId, u64)>),
    /// The order settled (paid, cancelled): forget its deadline.
    Forget(OrderId, u64),
    Tick,
}

/// Why a product actor could not move an order's stock.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Stock(#[from] LineError),
    #[error("{0}")]
    Unavailable(String),
    #[error("this transition moves no stock")]
    NoStockEffect,
}
