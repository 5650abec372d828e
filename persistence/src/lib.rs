//! Durable truth behind the actors, split by concern.
//!
//! One narrow trait per concern, each in one module that holds its SQLite and PostgreSQL
//! statements side by side and decodes rows once for both (`database.rs`, `row.rs` say
//! how):
//! - [`OrderLedger`] (`ledger/`): the group-committed writes, a product's stock rebuilt
//!   from its orders, pending orders, id high-water marks. The hot path needs only this.
//! - [`CatalogStore`] (`catalog.rs`): products and their sales.
//! - [`OrderLookup`] (`orders.rs`): an order by id or by idempotency key, who received what.
//! - [`Deliveries`] (`deliveries.rs`): shipments and delivery partners.
//! - [`Outbox`] (`outbox.rs`): events waiting for the relay.
//! - [`CartStore`] and [`Carts`] (`carts.rs`): carts in the database, or in Redis.
//! - [`ReviewStore`] (`reviews.rs`), [`NotificationStore`] (`notifications.rs`; what went
//!   to providers is packed in `provider_messages.rs`).
//! - [`WishlistStore`] (`wishlists.rs`): wishlists, and the wishers of a product.
//! - [`CampaignStore`] (`campaigns.rs`): sale campaigns' cursors and counters, and the
//!   dedupe record of their messages.
//! - [`SellerStore`] (`payouts.rs`): sellers' orders and the payouts of their deliveries.
//! - [`RecommendationStore`] (`recommendations.rs`): each node's saved recommendation
//!   counts, reloaded at start.
//!
//! [`Database`] implements every one of them; the rest of the engine holds only the
//! traits it needs. Beside the database:
//! - [`GroupCommitter`]: many actors' writes, one transaction per batch. Buy Now is
//!   answered only after its batch commits.
//! - [`RedisMirror`]: live counts for the rest of the platform, written after commits.
//! - [`PageCache`]: cache-aside for rendered listings, in Redis when configured.
//! - [`OutboxOnCommitter`], [`NotificationsOnCommitter`], [`RecommendationsOnCommitter`]:
//!   the workflow's writes on the group commit, so the database has one writer.
//!
//! Where does a new concern's SQL go? A new module here with its trait, its statements
//! (`Sql::both` or `Sql::each`) and its row decoding; a migration of the same number and
//! name in `migrations/sqlite` and `migrations/postgres`.

mod campaigns;
mod carts;
mod catalog;
mod catalog_import;
mod database;
mod deliveries;
mod error;
pub mod event;
mod group_commit;
mod ledger;
mod notifications;
mod on_committer;
mod orders;
mod outbox;
mod page_cache;
mod payouts;
mod provider_messages;
mod recommendations;
mod redis_mirror;
mod reviews;
mod row;
mod shard_leases;
#[cfg(feature = "test-support")]
pub mod test_support;
mod wal;
mod wishlists;
mod write;

pub use campaigns::{
    Campaign, CampaignDelivery, CampaignKind, CampaignMessage, CampaignPlan, CampaignStore,
};
pub use carts::{CartChange, CartItem, CartStore, Carts, UntouchedCart};
pub use catalog::{CatalogChanges, CatalogStore};
pub use catalog_import::{ImportSummary, ImportedProduct};
pub use database::{Database, PostgresSettings};
pub use deliveries::Deliveries;
pub use error::StoreError;
pub use event::{Event, OutboxRow, Topic};
pub use group_commit::{
    BATCH_DURATION as GROUP_COMMIT_DURATION_METRIC, BATCH_SIZE as GROUP_COMMIT_BATCH_SIZE_METRIC,
    CommitOutcome, GroupCommitSettings, GroupCommitter, SubmitError,
};
pub use ledger::{Batch, IdHighWater, InventoryLevel, OrderLedger, ProductState, SaleLevel};
pub use notifications::{Notification, NotificationStore};
pub use on_committer::{NotificationsOnCommitter, OutboxOnCommitter, RecommendationsOnCommitter};
pub use orders::{CHECKOUT_SCOPE, OrderLookup};
pub use outbox::Outbox;
pub use page_cache::PageCache;
pub use payouts::{PayoutStatement, ReleasedPayout, SellerOrder, SellerStore};
pub use recommendations::{Neighbour, NeighbourList, RecommendationStore};
pub use redis_mirror::{MirrorEntry, RedisMirror, RedisSettings, TrackingEntry};
pub use reviews::{Review, ReviewStore, ReviewSummary};
pub use shard_leases::{ClusterNodeEntry, LeaseRecord, ShardLease, ShardLeases, ShardPlacement};
pub use wishlists::{WishlistAdd, WishlistItem, WishlistStore};
pub use write::{
    CheckoutDetails, Delivery, LedgerKind, PaymentRecord, Shipment, StatusChange, StockMove,
    WriteOp,
};
