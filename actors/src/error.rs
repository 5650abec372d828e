use engine::order::IllegalTransition;
use engine::product::Invalid;
use engine::stock::SaleRefused;
use engine::{OrderId, ProductId, SaleId};

/// Why a Buy Now got no decision. Decisions themselves (placed, sold out...) are values.
#[derive(Debug, thiserror::Error)]
pub enum BuyNowError {
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    /// The product's in-flight bound is reached; retry shortly.
    #[error("product {0} is overloaded")]
    Overloaded(ProductId),
}

/// Why an admin change (product, stock, sale) was not made.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    #[error("no sale {0} scheduled or live")]
    UnknownSale(SaleId),
    #[error("product {0} already exists")]
    ProductExists(ProductId),
    #[error(transparent)]
    SaleRefused(#[from] SaleRefused),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The product's shard is served by another node now; nothing was done here.
    #[error("shard {0} is served by another node")]
    Moved(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("no order {0}")]
    NotFound(OrderId),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("the order is {0}, not on its way")]
    NotInTransit(engine::order::OrderStatus),
    #[error("the order cannot change right now: {0}")]
    Unavailable(String),
    /// The order's shard (its first line's) is served by another node now; nothing was
    /// done here.
    #[error("shard {0} is served by another node")]
    Moved(u32),
}
