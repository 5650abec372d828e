//! The outbox: events written in the same transaction as the change they describe (by the
//! ledger's batch), read and deleted by the relay once every sink took them. At least
//! once, never lost, in the order they were written. Both writes ride on the ledger's
//! batches (`WriteOp::Emit`, `WriteOp::ForgetEvents`); the reads are here.
//!
//! A row holds the events of one group commit (a *pack*), not one event: every Buy Now
//! emits an event, and a row per event cost the database an insert, an index entry and a
//! delete per order. The pack is text, one event per line, its fields separated by tabs:
//! `topic \t type \t key \t payload`. Topics and types are our own names, keys are ids
//! (checked when packed), and a payload is compact JSON, which escapes every control
//! character, so neither separator can occur inside a field.

use async_trait::async_trait;

use crate::database::{Database, Sql, dialects};
use crate::error::StoreError;
use crate::event::{Event, OutboxRow};
use crate::ledger::OrderLedger;
use crate::row::StoredRow;
use crate::write::WriteOp;

#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest events, in the order they were written: whole packs, as many as fit in
    /// `limit` events, and always the oldest pack even if it alone holds more.
    async fn oldest_events(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Removes relayed events: the packs (`OutboxRow::seq`) that held them.
    async fn delete_events(&self, seqs: &[i64]) -> Result<(), StoreError>;

    /// Events written and not yet relayed (the operators' `flashcart_outbox_pending`).
    async fn pending_events(&self) -> Result<u64, StoreError>;
}

/// Events waiting in the outbox, over every pack.
const PENDING: Sql =
    Sql::both("SELECT CAST(COALESCE(SUM(event_count), 0) AS BIGINT) AS pending FROM outbox");

/// Packs are read at most this many at a time, however small.
const PACKS_PER_READ: i64 = 256;

/// The oldest packs that fit in the limit, and always the first: `upto` counts the events
/// of the packs read so far, this one included.
const OLDEST: Sql = Sql::both(
    "SELECT seq, events FROM (\
     SELECT seq, events, event_count, SUM(event_count) OVER (ORDER BY seq) AS upto \
     FROM (SELECT seq, events, event_count FROM outbox ORDER BY seq LIMIT $2) oldest\
     ) packs WHERE upto <= $1 OR upto = event_count ORDER BY seq",
);

const FIELD: char = '\t';
const LINE: char = '\n';

/// Adds `event` to the pack being written.
pub(crate) fn pack(events: &mut String, event: &Event) -> Result<(), StoreError> {
    if event.key.contains([FIELD, LINE]) {
        return Err(StoreError::Conflict(format!(
            "an event key holds a tab or a line break: {:?}",
            event.key
        )));
    }
    debug_assert!(!event.payload.contains([FIELD, LINE]), "compact JSON");
    if !events.is_empty() {
        events.push(LINE);
    }
    for field in [event.topic.name(), event.event_type, &event.key] {
        events.push_str(field);
        events.push(FIELD);
    }
    events.push_str(&event.payload);
    Ok(())
}

/// The events of one stored pack.
fn unpack(seq: i64, events: &str) -> Result<Vec<OutboxRow>, StoreError> {
    events
        .split(LINE)
        .map(|line| {
            let mut fields = line.splitn(4, FIELD);
            let mut field = || {
                fields.next().map(str::to_owned).ok_or_else(|| {
                    StoreError::Decode(format!("outbox pack {seq} has a short line: {line:?}"))
                })
            };
            Ok(OutboxRow {
                seq,
                topic: field()?,
                event_type: field()?,
                key: field()?,
                payload: field()?,
            })
        })
        .collect()
}

#[async_trait]
impl Outbox for Database {
    async fn oldest_events(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let packs: Vec<(i64, String)> = dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&OLDEST))
                .bind(i64::from(limit))
                .bind(PACKS_PER_READ)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|pack| Ok((pack.int("seq")?, pack.text("events")?)))
                .collect::<Result<_, StoreError>>()?
        });
        let mut rows = Vec::new();
        for (seq, events) in &packs {
            rows.extend(unpack(*seq, events)?);
        }
        Ok(rows)
    }

    async fn delete_events(&self, seqs: &[i64]) -> Result<(), StoreError> {
        // Through the ledger: the statement is part of its batch (`ledger/batch_statements.rs`,
        // which deletes each pack once however many of its events name it).
        self.commit(&[WriteOp::ForgetEvents(seqs.to_vec())]).await
    }

    async fn pending_events(&self) -> Result<u64, StoreError> {
        let pending = dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&PENDING))
                .fetch_one(pool)
                .await?
                .int("pending")?
        });
        Ok(u64::try_from(pending).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Topic;

    #[test]
    fn a_pack_gives_back_its_events_in_order() {
        let events = [
            Event::new(
                Topic::OrderEvents,
                "order_placed",
                "a-1",
                5,
                &"tab\tand\nline",
            ),
            Event::new(
                Topic::ProductEvents,
                "stock_out",
                42,
                6,
                &serde_json::json!({}),
            ),
        ];
        let mut packed = String::new();
        for event in &events {
            pack(&mut packed, event).expect("packs");
        }
        let rows = unpack(9, &packed).expect("unpacks");
        assert_eq!(rows.len(), 2);
        for (row, event) in rows.iter().zip(&events) {
            assert_eq!(row.seq, 9);
            assert_eq!(row.topic, event.topic.name());
            assert_eq!(row.event_type, event.event_type);
            assert_eq!(row.key, event.key);
            assert_eq!(row.payload, event.payload);
        }
    }

    #[test]
    fn a_key_with_a_separator_is_refused() {
        let event = Event::new(Topic::UserEvents, "signed_up", "a\tb", 1, &1);
        assert!(pack(&mut String::new(), &event).is_err());
        assert!(unpack(1, "order-events\tonly-two").is_err());
    }
}
