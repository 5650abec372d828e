//! Who owns what, in memory.
//!
//! - One [`product`] actor per product: the single writer of its stock. It decides every
//!   Buy Now with the `engine` state machine, hands the writes to the group committer, and
//!   answers after they are durable.
//! - An [`order`] actor per order being changed (paid, cancelled, expired); unpaid orders
//!   wait on one reservation clock (`expiry.rs`), not as actors with timers.
//! - [`shard`]: product id -> virtual shard, with a stable hash; a [`shard_supervisor`] per
//!   shard spawns product actors on demand, restarts failed ones from the store and
//!   passivates idle ones.
//! - [`admission`]: ractor mailboxes are unbounded, so each product has an in-flight bound;
//!   past it a caller is told `Overloaded` at once.
//! - [`hold`]: an order spanning several products (a cart checkout) holds a line in each
//!   product actor and commits them in one transaction, all or none ([`checkout`]).
//! - [`Shop`]: the one entry point the gateway uses.

pub mod admission;
pub mod catalog;
mod checkout;
pub mod clock;
mod context;
pub mod error;
pub mod events;
mod expiry;
mod hold;
pub mod order;
mod order_supervisor;
pub mod product;
pub mod settings;
pub mod shard;
mod shard_supervisor;
mod shop;
pub mod stock_feed;
pub mod tracking;

pub use catalog::{Catalog, ListQuery, ListSort, Page};
pub use checkout::{
    CHECKOUT_LINES_MAX, CHECKOUT_SCOPE, CheckoutError, CheckoutLine, CheckoutReply,
    CheckoutRequest, LineRefusal,
};
pub use error::{AdminError, BuyNowError, OrderError};
pub use product::{BuyNowReply, Placement, PrepareRefused, Refusal, Unavailable};
pub use settings::ShopSettings;
pub use shop::{BuyNowRequest, Shop};
pub use stock_feed::{StockStatus, StockView};
pub use tracking::{DeliveryStatus, Location, TrackingView};
