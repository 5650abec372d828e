//! The outbox: events written in the same transaction as the change they describe (by the
//! ledger's batch), read and deleted by the relay once every sink took them. At least
//! once, never lost, in the order they were written. Both writes ride on the ledger's
//! batches (`WriteOp::Emit`, `WriteOp::ForgetEvents`); the reads are here.

use async_trait::async_trait;

use crate::database::{Database, Sql, dialects};
use crate::error::StoreError;
use crate::event::OutboxRow;
use crate::ledger::OrderLedger;
use crate::row::StoredRow;
use crate::write::WriteOp;

#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest events, at most `limit`, in the order they were written.
    async fn oldest_events(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Removes relayed events.
    async fn delete_events(&self, seqs: &[i64]) -> Result<(), StoreError>;
}

const OLDEST: Sql = Sql::both(
    "SELECT seq, topic, event_type, entity_key, payload FROM outbox ORDER BY seq LIMIT $1",
);

#[async_trait]
impl Outbox for Database {
    async fn oldest_events(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&OLDEST))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(OutboxRow {
                        seq: row.int("seq")?,
                        topic: row.text("topic")?,
                        event_type: row.text("event_type")?,
                        key: row.text("entity_key")?,
                        payload: row.text("payload")?,
                    })
                })
                .collect()
        })
    }

    async fn delete_events(&self, seqs: &[i64]) -> Result<(), StoreError> {
        // Through the ledger: the statement is part of its batch (`ledger/batch_statements.rs`).
        self.commit(&[WriteOp::ForgetEvents(seqs.to_vec())]).await
    }
}
