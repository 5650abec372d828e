//! Records that live beside the orders: messages sent to customers, the delivery partner
//! logistics picked, shopping carts.

use engine::{OrderId, ProductId, UserId};

/// A message to a customer. The default sender records it instead of sending it, so tests
/// and operators can see what would have gone out.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The job and channel it came from: a job delivered twice is recorded once.
    pub dedup_key: String,
    pub user_id: UserId,
    pub order_id: Option<OrderId>,
    /// `order_confirmation`, `payment_success`, `review_request`, ...
    pub kind: String,
    /// `email`, `sms`, ...
    pub channel: String,
    /// JSON text: what the message says.
    pub body: String,
    pub sent_at_ms: u64,
}

/// A line of a shopping cart. Carts hold no stock: checkout reserves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CartItem {
    pub product_id: ProductId,
    pub quantity: u32,
    pub added_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A customer's review of a product they received.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub product_id: ProductId,
    pub user_id: UserId,
    /// 1 to 5.
    pub rating: u8,
    pub title: String,
    pub body: String,
    pub created_at_ms: u64,
}

/// A product's reviews in numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReviewSummary {
    pub average: f32,
    pub count: u64,
}
