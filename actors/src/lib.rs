//! Who owns what, in memory, and the shop's rules that are not stock.
//!
//! - One [`product`] actor per product: the single writer of its stock. It decides every
//!   Buy Now with the `engine` state machine, hands the writes to the group committer, and
//!   answers after they are durable.
//! - An [`order`] actor per order being changed (paid, cancelled, expired); unpaid orders
//!   wait on one reservation clock (`expiry.rs`), not as actors with timers.
//! - [`shard`]: product id -> virtual shard, with a stable hash; a supervisor per shard
//!   (`shard_supervisor.rs`) spawns product actors on demand, restarts failed ones from
//!   the store and passivates idle ones.
//! - [`admission`]: ractor mailboxes are unbounded, so each product has an in-flight bound;
//!   past it a caller is told `Overloaded` at once.
//! - `hold.rs`: an order spanning several products (a cart checkout) holds a line in each
//!   product actor and commits them in one transaction, all or none (`checkout.rs`); on a
//!   cluster, lines of other nodes' shards are held there (`remote_hold.rs`).
//! - `protocol/`: every message between actors; `context.rs`: what they share, private
//!   behind methods. Modules import in one direction (see `protocol/mod.rs`).
//! - [`Shop`]: the one entry point the gateway uses, split by what callers do
//!   (`shop/`), with the side features beside it: [`cart`], [`reviews`], checkout.

mod abandoned_carts;
pub mod admission;
pub mod cart;
pub mod catalog;
mod checkout;
pub mod clock;
mod context;
pub mod error;
pub mod events;
mod expiry;
mod hold;
mod node_channel;
mod order;
mod order_supervisor;
mod ownership;
pub mod payouts;
mod product;
mod protocol;
mod remote_hold;
pub mod reviews;
pub mod settings;
pub mod shard;
mod shard_supervisor;
mod shop;
pub mod stock_feed;
mod stores;
pub mod tracking;
pub mod wishlist;

pub use cart::{CART_LINES_MAX, CartError, CartLineView, CartView, Offer};
pub use catalog::{Catalog, ListQuery, ListSort, Page};
pub use checkout::{
    ADDRESS_ID_LENGTH_MAX, CHECKOUT_LINES_MAX, CHECKOUT_SCOPE, CartCheckout, CheckoutError,
    CheckoutLine, CheckoutReply, LineRefusal, PAYMENT_METHODS,
};
pub use clock::{Clock, OrderIds};
pub use engine::Refusal;
pub use error::{AdminError, BuyNowError, OrderError};
pub use node_channel::{NodeChannel, ShardMoved};
pub use payouts::CommissionRates;
pub use product::idempotency_scope;
pub use protocol::{
    BuyNowReply, Placement, PrepareRefused, PrepareStep, ProductInspection, ProductMsg, SaleChange,
    Unavailable,
};
pub use remote_hold::{HoldAnswer, HoldReply, HoldRequest, HoldSettlement, PeerAnswer, Settlement};
pub use reviews::{ReviewAdded, ReviewError};
pub use settings::ShopSettings;
pub use shop::{BuyNowRequest, Shop, ShopParts};
pub use stock_feed::{StockStatus, StockUpdate, StockView};
pub use stores::ShopStores;
pub use tracking::{DeliveryStatus, Location, TrackingView};
pub use wishlist::{WishlistAdded, WishlistError, WishlistLine, WishlistPage};
