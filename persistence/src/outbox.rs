//! The outbox: events written in the same transaction as the change they describe (by the
//! ledger's batch), read and deleted by the relay once every sink took them. At least
//! once, never lost, in the order they were written.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use crate::database::{Backend, Database, Sql, dialects};
use crate::error::StoreError;
use crate::event::OutboxRow;
use crate::row::StoredRow;

#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest events, at most `limit`, in the order they were written.
    async fn oldest_events(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Removes relayed events.
    async fn delete_events(&self, seqs: &[i64]) -> Result<(), StoreError>;
}

const OLDEST: Sql = Sql::each(
    "SELECT seq, topic, event_type, entity_key, payload FROM outbox ORDER BY seq LIMIT $1",
    "SELECT seq, topic, event_type, entity_key, payload::text AS payload FROM outbox ORDER BY seq LIMIT $1",
);

/// Sequence numbers deleted by one statement at most (SQLite binds each one).
const DELETE_CHUNK: usize = 32_766;

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
        match self.pool() {
            // One array parameter, whatever the count.
            Backend::Postgres(pool) => {
                sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
                    .bind(seqs)
                    .execute(pool)
                    .await?;
            }
            Backend::Sqlite(pool) => {
                for chunk in seqs.chunks(DELETE_CHUNK) {
                    let mut query = QueryBuilder::new("DELETE FROM outbox WHERE seq IN (");
                    let mut list = query.separated(", ");
                    for seq in chunk {
                        list.push_bind(*seq);
                    }
                    query.push(")");
                    query.build().execute(pool).await?;
                }
            }
        }
        Ok(())
    }
}
