//! Durable truth behind the actors.
//!
//! - [`Store`]: what the engine persists and reads back, one trait for every backend.
//! - [`SqliteStore`]: the embedded default, a WAL-mode SQLite file in the data directory.
//! - [`GroupCommitter`]: many actors' writes, one transaction per batch. Buy Now is
//!   answered only after its batch commits.
//! - [`WriteOp`]: the writes themselves, as plain data.

mod error;
mod group_commit;
mod sqlite;
mod store;
mod write;

pub use error::StoreError;
pub use group_commit::{CommitOutcome, GroupCommitSettings, GroupCommitter, SubmitError};
pub use sqlite::SqliteStore;
pub use store::{IdHighWater, ProductState, Store};
pub use write::{LedgerKind, StatusChange, WriteOp};
