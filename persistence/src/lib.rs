//! Durable truth behind the actors.
//!
//! - [`Store`]: what the engine persists and reads back, one trait for every backend.
//! - [`SqliteStore`]: the embedded default, a WAL-mode SQLite file in the data directory.
//! - [`PostgresStore`]: the source of truth when a database URL is configured.
//! - [`RedisMirror`]: live counts for the rest of the platform, written after commits.
//! - [`Carts`]: shopping carts, in Redis when configured, in the store otherwise.
//! - [`PageCache`]: cache-aside for rendered listings, in Redis when configured.
//! - [`GroupCommitter`]: many actors' writes, one transaction per batch. Buy Now is
//!   answered only after its batch commits.
//! - [`WriteOp`]: the writes themselves, as plain data.

mod carts;
mod convert;
mod error;
pub mod event;
mod group_commit;
mod notification;
mod page_cache;
mod postgres;
mod redis_mirror;
mod sqlite;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;
mod write;

pub use carts::Carts;
pub use error::StoreError;
pub use event::{Event, OutboxRow, Topic};
pub use group_commit::{CommitOutcome, GroupCommitSettings, GroupCommitter, SubmitError};
pub use notification::{CartItem, Notification, Review, ReviewSummary};
pub use page_cache::PageCache;
pub use postgres::{Batch as PostgresBatch, PostgresSettings, PostgresStore};
pub use redis_mirror::{MirrorEntry, RedisMirror, RedisSettings, TrackingEntry};
pub use sqlite::SqliteStore;
pub use store::{IdHighWater, InventoryLevel, ProductState, SaleLevel, Store};
pub use write::{
    CheckoutDetails, Delivery, LedgerKind, PaymentRecord, Shipment, StatusChange, StockMove,
    WriteOp,
};
