//! Every message the actors exchange, and what travels with them, in one place. The
//! actor modules import from here and from `context`, never from each other's insides,
//! so the layers of this crate point one way:
//!
//! ```text
//! shop, checkout, cart, reviews         (what the gateway calls)
//!   -> shard_supervisor, order_supervisor
//!     -> product, order, expiry, hold   (the actors and their coordination)
//!       -> context                      (shared, private state behind methods)
//!         -> protocol                   (messages: this module)
//! ```

mod order;
mod product;
mod shard;

pub use order::{ClockMsg, OrderMsg, OrderSupervisorMsg, TransitionError};
pub use product::{
    BuyNow, BuyNowReply, Dormant, Placement, Prepare, PrepareRefused, PrepareStep,
    ProductInspection, ProductMsg, ProductUpdate, SaleChange, Transition, Unavailable, Waiter,
};
pub use shard::{HandleError, ProductHandle, ShardMsg};
