//! The writes of one group commit that happen per order (new orders with their items and
//! keys, status changes, payments, events, stock moves, and the workflow's own: relayed
//! events leaving the outbox, recorded notifications, logged provider messages), laid out
//! once as columns, the same for both databases; `batch_statements.rs` writes them.

use std::collections::{BTreeMap, BTreeSet};

use engine::order::Order;
use uuid::Uuid;

use crate::database::{Backend, Transaction};
use crate::error::StoreError;
use crate::notifications::Notification;
use crate::row::int;
use crate::shard_leases::ShardLease;
use crate::write::{LedgerKind, StatusChange, WriteOp};

/// A batch's per-order writes, as columns. Public so the benches can measure encoding.
#[derive(Default)]
pub struct Batch {
    pub(super) order_ids: Vec<Uuid>,
    pub(super) order_users: Vec<i64>,
    pub(super) order_statuses: Vec<&'static str>,
    pub(super) order_totals: Vec<i64>,
    pub(super) order_keys: Vec<String>,
    pub(super) order_created: Vec<i64>,
    pub(super) order_expires: Vec<i64>,
    pub(super) key_scopes: Vec<String>,
    pub(super) item_orders: Vec<Uuid>,
    pub(super) item_lines: Vec<i32>,
    pub(super) item_products: Vec<i64>,
    pub(super) item_sales: Vec<Option<i64>>,
    pub(super) item_quantities: Vec<i32>,
    pub(super) item_prices: Vec<i64>,
    pub(super) change_ids: Vec<Uuid>,
    pub(super) change_from: Vec<&'static str>,
    pub(super) change_to: Vec<&'static str>,
    pub(super) change_at: Vec<i64>,
    pub(super) payment_orders: Vec<Uuid>,
    pub(super) payment_transactions: Vec<String>,
    pub(super) payment_statuses: Vec<&'static str>,
    pub(super) payment_amounts: Vec<i64>,
    /// The batch's events as one outbox pack (see `outbox.rs`), and how many.
    pub(super) events: String,
    pub(super) event_count: i32,
    pub(super) forgotten_events: Vec<i64>,
    pub(super) notification_keys: Vec<String>,
    pub(super) notification_users: Vec<i64>,
    pub(super) notification_orders: Vec<Option<Uuid>>,
    pub(super) notification_kinds: Vec<String>,
    pub(super) notification_channels: Vec<String>,
    pub(super) notification_bodies: Vec<String>,
    pub(super) notification_sent: Vec<i64>,
    /// The batch's messages to providers as one pack (see `provider_messages.rs`), how
    /// many, and when the last was sent.
    pub(super) provider_messages: String,
    pub(super) provider_message_count: i32,
    pub(super) provider_messages_at: i64,
    /// Shard leases the batch commits under, each once (PostgreSQL's `shard_leases`).
    pub(super) fences: BTreeSet<ShardLease>,
    /// The earliest time any of the batch's holds ends (`WriteOp::HoldUntil`).
    pub(super) hold_until: Option<u64>,
    /// sale -> net change of the units its pool holds (PostgreSQL's `flash_sales.held`).
    pub(super) sale_held: BTreeMap<i64, i64>,
    /// product -> (reserved, sold, left) deltas (PostgreSQL's `inventory`).
    pub(super) inventory: BTreeMap<i64, (i64, i64, i64)>,
    /// (product, kind) -> (units, orders, latest time): the ledger keeps one row per
    /// batch, product and kind.
    pub(super) ledger: BTreeMap<(i64, &'static str), (i64, i32, i64)>,
}

impl Batch {
    /// Lays out the per-order writes of `ops` (catalog, shipment and checkout writes are
    /// single rows, written beside the batch).
    pub fn encode(ops: &[WriteOp]) -> Result<Self, StoreError> {
        let mut batch = Batch::default();
        for op in ops {
            match op {
                WriteOp::PlaceOrder {
                    order,
                    idempotency_scope,
                } => batch.place(order, idempotency_scope)?,
                WriteOp::SetOrderStatus(change) => batch.change(change)?,
                WriteOp::Emit(event) => {
                    crate::outbox::pack(&mut batch.events, event)?;
                    batch.event_count += 1;
                }
                WriteOp::ForgetEvents(seqs) => batch.forgotten_events.extend_from_slice(seqs),
                WriteOp::RecordNotifications(notifications) => {
                    for notification in notifications {
                        batch.note(notification)?;
                    }
                }
                WriteOp::LogProviderMessages(messages) => {
                    for message in messages {
                        crate::provider_messages::pack(&mut batch.provider_messages, message)?;
                        batch.provider_message_count += 1;
                        batch.provider_messages_at =
                            batch.provider_messages_at.max(int(message.sent_at_ms)?);
                    }
                }
                WriteOp::Fence(lease) => {
                    batch.fences.insert(lease.clone());
                }
                WriteOp::HoldUntil(until_ms) => {
                    batch.hold_until = Some(
                        batch
                            .hold_until
                            .map_or(*until_ms, |earliest| earliest.min(*until_ms)),
                    );
                }
                WriteOp::PutProduct { .. }
                | WriteOp::PutSale { .. }
                | WriteOp::ChangeSale { .. }
                | WriteOp::PutShipment(_)
                | WriteOp::ReleasePayouts(_)
                | WriteOp::SaveNeighbours { .. }
                | WriteOp::PutCheckout(_) => {}
            }
        }
        // The relay names a pack once per event it held: delete each pack once.
        batch.forgotten_events.sort_unstable();
        batch.forgotten_events.dedup();
        Ok(batch)
    }

    pub fn order_count(&self) -> usize {
        self.order_ids.len()
    }

    fn place(&mut self, order: &Order, scope: &str) -> Result<(), StoreError> {
        let user = int(order.user_id.0)?;
        let created = int(order.created_at_ms)?;
        self.order_ids.push(order.id.0);
        self.order_users.push(user);
        self.order_statuses.push(order.status.as_str());
        self.order_totals.push(int(order.total.0)?);
        self.order_keys.push(order.idempotency_key.to_string());
        self.order_created.push(created);
        self.order_expires.push(int(order.expires_at_ms)?);
        self.key_scopes.push(scope.to_owned());
        for (line_no, item) in order.items.iter().enumerate() {
            let product = int(item.product_id.0)?;
            let quantity = quantity(item.quantity)?;
            self.item_orders.push(order.id.0);
            self.item_lines.push(
                i32::try_from(line_no)
                    .map_err(|_| StoreError::Conflict("too many lines".into()))?,
            );
            self.item_products.push(product);
            self.item_sales
                .push(item.sale_id.map(|sale| int(sale.0)).transpose()?);
            self.item_quantities.push(quantity);
            self.item_prices.push(int(item.unit_price.0)?);
            if let Some(sale) = item.sale_id {
                *self.sale_held.entry(int(sale.0)?).or_default() += i64::from(quantity);
            }
            let delta = self.inventory.entry(product).or_default();
            delta.0 += i64::from(quantity);
            delta.2 -= i64::from(quantity);
            self.stock_move(product, LedgerKind::Reserve, quantity, created);
        }
        Ok(())
    }

    fn change(&mut self, change: &StatusChange) -> Result<(), StoreError> {
        let at = int(change.at_ms)?;
        for stock_move in &change.ledger {
            let product = int(stock_move.product_id.0)?;
            let units = quantity(stock_move.units)?;
            let delta = self.inventory.entry(product).or_default();
            match stock_move.kind {
                LedgerKind::Confirm => {
                    delta.0 -= i64::from(units);
                    delta.1 += i64::from(units);
                }
                LedgerKind::Release => {
                    delta.0 -= i64::from(units);
                    delta.2 += i64::from(units);
                    if let Some(sale_id) = stock_move.sale {
                        *self.sale_held.entry(int(sale_id.0)?).or_default() -= i64::from(units);
                    }
                }
                other => {
                    return Err(StoreError::Conflict(format!(
                        "a status change cannot record {}",
                        other.as_str()
                    )));
                }
            }
            self.stock_move(product, stock_move.kind, units, at);
        }
        if let Some(payment) = &change.payment {
            self.payment_orders.push(change.order_id.0);
            self.payment_transactions
                .push(payment.transaction_id.clone());
            self.payment_statuses.push(if payment.succeeded {
                "SUCCESS"
            } else {
                "FAILED"
            });
            self.payment_amounts.push(int(payment.amount.0)?);
        }
        self.change_ids.push(change.order_id.0);
        self.change_from.push(change.from.as_str());
        self.change_to.push(change.to.as_str());
        self.change_at.push(at);
        Ok(())
    }

    fn note(&mut self, notification: &Notification) -> Result<(), StoreError> {
        self.notification_keys.push(notification.dedup_key.clone());
        self.notification_users.push(int(notification.user_id.0)?);
        self.notification_orders
            .push(notification.order_id.map(|id| id.0));
        self.notification_kinds.push(notification.kind.clone());
        self.notification_channels
            .push(notification.channel.clone());
        self.notification_bodies.push(notification.body.clone());
        self.notification_sent.push(int(notification.sent_at_ms)?);
        Ok(())
    }

    fn stock_move(&mut self, product: i64, kind: LedgerKind, units: i32, at: i64) {
        let units = i64::from(units);
        let row = self.ledger.entry((product, kind.as_str())).or_default();
        row.0 += units;
        row.1 += 1;
        row.2 = row.2.max(at);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order_ids.is_empty()
            && self.fences.is_empty()
            && self.change_ids.is_empty()
            && self.event_count == 0
            && self.ledger.is_empty()
            && self.forgotten_events.is_empty()
            && self.notification_keys.is_empty()
            && self.provider_message_count == 0
    }

    /// Writes the batch in `tx`.
    pub(crate) async fn write(self, tx: &mut Transaction<'_>) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        match tx {
            Backend::Postgres(tx) => self.write_postgres(&mut **tx).await,
            Backend::Sqlite(tx) => self.write_sqlite(tx).await,
        }
    }

    /// Writes the batch as its own transaction in one round trip to the database (the hot
    /// path, a batch of orders with nothing else): on PostgreSQL one statement, on SQLite
    /// one query from `BEGIN` to `COMMIT`.
    pub(crate) async fn write_alone(self, pool: AlonePool<'_>) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        match pool {
            Backend::Postgres(pool) => self.write_postgres(pool).await,
            Backend::Sqlite(pool) => self.write_sqlite_alone(pool).await,
        }
    }

    /// Whether [`Batch::write_alone`] can write it: on SQLite, a status change needs a
    /// statement of its own, whose count of changed rows is checked before the rest.
    pub(crate) fn writes_alone_on(&self, pool: AlonePool<'_>) -> bool {
        match pool {
            Backend::Postgres(_) => true,
            Backend::Sqlite(_) => self.change_ids.is_empty(),
        }
    }
}

/// Where a batch is written alone: the PostgreSQL pool, or SQLite's writer.
pub(crate) type AlonePool<'a> = Backend<&'a sqlx::SqlitePool, &'a sqlx::PgPool>;

fn quantity(units: u32) -> Result<i32, StoreError> {
    i32::try_from(units).map_err(|_| StoreError::Conflict("quantity does not fit".into()))
}
