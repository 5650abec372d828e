//! An order's lifecycle:
//!
//! ```text
//! PENDING_PAYMENT --payment ok--> PAID --ship--> SHIPPED --deliver--> DELIVERED
//!        |--payment failed / cancel--> CANCELLED
//!        `--reservation timer--------> EXPIRED
//! ```
//!
//! Every other move is refused. Leaving `PENDING_PAYMENT` is also a stock event: paying
//! confirms the reserved units, cancelling or expiring gives them back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{IdempotencyKey, OrderId, ProductId, SaleId, UserId};
use crate::money::Money;

/// Units one order line may ask for. Real orders ask for a handful; the bound keeps
/// `unit price * quantity` inside `u64` (see [`crate::Money::UNIT_PRICE_MAX`]).
pub const QUANTITY_MAX: u32 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Expired,
}

/// What happens to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderEvent {
    PaymentSucceeded,
    PaymentFailed,
    Cancel,
    Expire,
    Ship,
    Deliver,
}

/// What a transition does to the reserved units of the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockEffect {
    None,
    /// Reserved units become sold.
    Confirm,
    /// Reserved units go back to the shelf.
    Release,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot take the event {event:?}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub event: OrderEvent,
}

impl OrderStatus {
    /// The status after `event`, or why the event is refused.
    pub fn apply(self, event: OrderEvent) -> Result<OrderStatus, IllegalTransition> {
        use OrderEvent as E;
        use OrderStatus as S;
        let next = match (self, event) {
            (S::PendingPayment, E::PaymentSucceeded) => S::Paid,
            (S::PendingPayment, E::PaymentFailed | E::Cancel) => S::Cancelled,
            (S::PendingPayment, E::Expire) => S::Expired,
            (S::Paid, E::Ship) => S::Shipped,
            (S::Shipped, E::Deliver) => S::Delivered,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }

    pub fn stock_effect(self, next: OrderStatus) -> StockEffect {
        match (self, next) {
            (OrderStatus::PendingPayment, OrderStatus::Paid) => StockEffect::Confirm,
            (OrderStatus::PendingPayment, OrderStatus::Cancelled | OrderStatus::Expired) => {
                StockEffect::Release
            }
            _ => StockEffect::None,
        }
    }

    /// The order still holds reserved units.
    pub fn holds_reservation(self) -> bool {
        self == OrderStatus::PendingPayment
    }

    /// The order's units count as sold.
    pub fn is_sold(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Delivered | OrderStatus::Cancelled | OrderStatus::Expired
        )
    }

    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "PENDING_PAYMENT",
            OrderStatus::Paid => "PAID",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Expired => "EXPIRED",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status")]
pub struct UnknownOrderStatus;

impl FromStr for OrderStatus {
    type Err = UnknownOrderStatus;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or(UnknownOrderStatus)
    }
}

/// One line of an order: units of one product at the price they were reserved at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product_id: ProductId,
    /// The flash sale the units came from, if any (then `unit_price` is the sale price).
    pub sale_id: Option<SaleId>,
    pub quantity: u32,
    pub unit_price: Money,
}

/// An order as it is stored and shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total: Money,
    pub idempotency_key: IdempotencyKey,
    pub created_at_ms: u64,
    /// When an unpaid order expires and its units go back.
    pub expires_at_ms: u64,
    pub updated_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [OrderEvent; 6] = [
        OrderEvent::PaymentSucceeded,
        OrderEvent::PaymentFailed,
        OrderEvent::Cancel,
        OrderEvent::Expire,
        OrderEvent::Ship,
        OrderEvent::Deliver,
    ];

    #[test]
    fn the_happy_path_runs_to_delivered() {
        let status = OrderStatus::PendingPayment
            .apply(OrderEvent::PaymentSucceeded)
            .and_then(|s| s.apply(OrderEvent::Ship))
            .and_then(|s| s.apply(OrderEvent::Deliver));
        assert_eq!(status, Ok(OrderStatus::Delivered));
    }

    #[test]
    fn exactly_six_transitions_are_legal() {
        let mut legal = Vec::new();
        for from in OrderStatus::ALL {
            for event in EVENTS {
                if let Ok(to) = from.apply(event) {
                    legal.push((from, to));
                }
            }
        }
        assert_eq!(legal.len(), 6, "{legal:?}");
        for terminal in [
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
            OrderStatus::Expired,
        ] {
            assert!(terminal.is_terminal());
            for event in EVENTS {
                assert!(terminal.apply(event).is_err(), "{terminal} took {event:?}");
            }
        }
    }

    #[test]
    fn only_leaving_pending_payment_moves_stock() {
        use OrderStatus as S;
        assert_eq!(
            S::PendingPayment.stock_effect(S::Paid),
            StockEffect::Confirm
        );
        assert_eq!(
            S::PendingPayment.stock_effect(S::Expired),
            StockEffect::Release
        );
        assert_eq!(
            S::PendingPayment.stock_effect(S::Cancelled),
            StockEffect::Release
        );
        assert_eq!(S::Paid.stock_effect(S::Shipped), StockEffect::None);
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert_eq!("paid".parse::<OrderStatus>(), Err(UnknownOrderStatus));
    }
}
