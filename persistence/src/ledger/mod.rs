//! The order ledger: what the group committer writes and what a product actor is rebuilt
//! from. The one concern the hot path depends on.
//!
//! - [`OrderLedger::commit`] applies one group commit atomically: its per-order writes as
//!   one batch (`batch.rs`), the rare single-row writes (a product, a sale, a shipment, a
//!   checkout's address, a delivery's payouts) beside it, in one transaction.
//! - [`OrderLedger::load_product`] rebuilds a product's stock from the orders (the truth),
//!   never from counters or a mirror.
//! - Pending orders and id high-water marks let a restart pick up where it stopped.

mod batch;
mod batch_connection;
pub(crate) mod batch_statements;
mod levels;
mod plan_refresh;

use std::collections::HashMap;

use async_trait::async_trait;
use engine::order::{Order, OrderItem};
use engine::stock::{LineState, SaleSnapshot, StockSnapshot};
use engine::{FlashSale, Product, ProductId};
use uuid::Uuid;

pub(crate) use batch::AlonePool;
pub use batch::Batch;
pub(crate) use batch_connection::BatchConnection;
pub(crate) use plan_refresh::PlanRefresh;

use crate::catalog::{self, postgres_sale_columns, product_columns, sqlite_sale_columns};
use crate::database::{Backend, Database, Sql, dialects, ms_to_ts, ts_to_ms};
use crate::error::StoreError;
use crate::orders::{self, postgres_order_columns, sqlite_order_columns};
use crate::row::{StoredRow, int};
use crate::shard_leases::{ShardLease, ShardLeases};
use crate::write::WriteOp;

/// A product as a restart needs it: the catalog record and the facts its stock is rebuilt
/// from.
#[derive(Clone, Debug)]
pub struct ProductState {
    pub product: Product,
    pub stock: StockSnapshot,
}

/// What a mirror needs to show a product's live counts without asking its actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryLevel {
    pub product_id: ProductId,
    /// Units on the shelf (the sale pool included).
    pub left: u64,
    /// The product's current (latest) sale and the units its buyers hold.
    pub sale: Option<SaleLevel>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleLevel {
    pub sale: FlashSale,
    /// Units of this sale reserved or paid for.
    pub held: u64,
}

/// The largest ids in use, so new ones can be handed out from memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdHighWater {
    pub product_id: u64,
    pub sale_id: u64,
}

/// The durable side of the product actors.
#[async_trait]
pub trait OrderLedger: Send + Sync + 'static {
    /// Applies every write in one transaction: all of them or none.
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError>;

    /// A product with its current sale, every order still holding its stock, the totals of
    /// the rest, and the orders created since `lines_since_ms` (so recent idempotency keys
    /// keep answering).
    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError>;

    /// Orders waiting for payment, whose expiry timers must run again after a restart.
    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError>;

    /// Every product's committed counts, for rebuilding a mirror from scratch.
    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError>;

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError>;

    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Every shard's current lease: what the group committer compares a fenced batch's
    /// leases with, to refuse only the writers whose shard moved (`group_commit.rs`).
    async fn current_leases(&self) -> Result<Vec<ShardLease>, StoreError> {
        Err(crate::shard_leases::leases_need_postgres())
    }

    /// Whether lines held for another node's order are settled by the store alone
    /// ([`ShardLeases::hold_expired`](crate::ShardLeases::hold_expired)).
    async fn hold_expired(&self, _shards: &[u32], _until_ms: u64) -> Result<bool, StoreError> {
        Err(crate::shard_leases::leases_need_postgres())
    }

    /// Called by the group committer after each batch, when none of its writes is in
    /// flight: upkeep that must not race the writer (SQLite: starting the WAL over).
    async fn between_batches(&self) {}
}

/// Writes that are one row each and rare: written beside the batch, in its transaction.
fn is_single_row(op: &WriteOp) -> bool {
    matches!(
        op,
        WriteOp::PutProduct { .. }
            | WriteOp::PutSale { .. }
            | WriteOp::ChangeSale { .. }
            | WriteOp::PutShipment(_)
            | WriteOp::ReleasePayouts(_)
            | WriteOp::SaveNeighbours { .. }
            | WriteOp::PutCheckout(_)
    )
}

const PRODUCT: Sql = Sql::each(
    concat!(
        "SELECT ",
        product_columns!(),
        ", p.stock_initial AS initial FROM products p WHERE p.id = $1"
    ),
    concat!(
        "SELECT ",
        product_columns!(),
        r#", v.initial, v.reserved, v.sold, v."left" AS shelf"#,
        " FROM products p JOIN inventory v ON v.product_id = p.id WHERE p.id = $1"
    ),
);

const LATEST_SALE: Sql = Sql::each(
    concat!(
        "SELECT ",
        sqlite_sale_columns!(),
        " FROM flash_sales s WHERE s.product_id = $1 ORDER BY s.id DESC LIMIT 1"
    ),
    concat!(
        "SELECT ",
        postgres_sale_columns!(),
        " FROM flash_sales s WHERE s.product_id = $1 ORDER BY s.id DESC LIMIT 1"
    ),
);

const SOLD: Sql = Sql::both(
    "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) AS sold \
     FROM order_items i JOIN orders o ON o.id = i.order_id \
     WHERE i.product_id = $1 AND o.status IN ('PAID', 'SHIPPED', 'DELIVERED')",
);

const SALE_HOLDINGS: Sql = Sql::both(
    "SELECT o.user_id, CAST(SUM(i.quantity) AS BIGINT) AS held, \
     CAST(SUM(CASE WHEN o.status IN ('PAID', 'SHIPPED', 'DELIVERED') THEN i.quantity ELSE 0 END) AS BIGINT) AS sold \
     FROM order_items i JOIN orders o ON o.id = i.order_id \
     WHERE i.sale_id = $1 AND o.status NOT IN ('CANCELLED', 'EXPIRED') \
     GROUP BY o.user_id",
);

/// The orders a restart must know: those holding stock, and the recent ones.
const LINES: Sql = Sql::each(
    "SELECT o.id AS order_id, o.user_id, o.idempotency_key, o.status, o.created_at_ms, \
     o.expires_at_ms, i.quantity, i.unit_price_minor, i.sale_id \
     FROM order_items i JOIN orders o ON o.id = i.order_id \
     WHERE i.product_id = $1 AND (o.status = 'PENDING_PAYMENT' OR o.created_at_ms >= $2)",
    concat!(
        "SELECT o.id AS order_id, o.user_id, o.idempotency_key, o.status::text AS status, ",
        ts_to_ms!("o.created_at"),
        " AS created_at_ms, ",
        ts_to_ms!("o.expires_at"),
        " AS expires_at_ms, ",
        "i.quantity, i.unit_price_minor, i.sale_id ",
        "FROM order_items i JOIN orders o ON o.id = i.order_id ",
        "WHERE i.product_id = $1 AND (o.status = 'PENDING_PAYMENT' OR o.created_at >= ",
        ms_to_ts!("$2"),
        ")"
    ),
);

const PENDING_ITEMS: Sql = Sql::both(
    "SELECT i.order_id AS item_order_id, i.product_id, i.sale_id, i.quantity, i.unit_price_minor \
     FROM order_items i JOIN orders o ON o.id = i.order_id \
     WHERE o.status = 'PENDING_PAYMENT' ORDER BY i.order_id, i.line_no",
);

const PENDING_ORDERS: Sql = Sql::each(
    concat!(
        "SELECT ",
        sqlite_order_columns!(),
        " FROM orders o WHERE o.status = 'PENDING_PAYMENT'"
    ),
    concat!(
        "SELECT ",
        postgres_order_columns!(),
        " FROM orders o WHERE o.status = 'PENDING_PAYMENT'"
    ),
);

const ID_HIGH_WATER: Sql = Sql::both(
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM products) AS product_id, \
     (SELECT COALESCE(MAX(id), 0) FROM flash_sales) AS sale_id",
);

#[async_trait]
impl OrderLedger for Database {
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let batch = Batch::encode(ops)?;
        let orders = batch.order_count();
        // The hot path: a batch of orders with nothing else is its own transaction, written
        // in one round trip.
        let alone = self.batch_pool();
        if !ops.iter().any(is_single_row) && batch.writes_alone_on(alone) {
            match self.batch_connection() {
                Some(connection) => connection.write(batch).await?,
                None => batch.write_alone(alone).await?,
            }
            self.orders_committed(orders);
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for op in ops {
            match op {
                WriteOp::PutProduct {
                    product,
                    stock_initial,
                    shelf_change,
                    at_ms,
                } => {
                    catalog::put_product(&mut tx, product, *stock_initial, *shelf_change, *at_ms)
                        .await?
                }
                WriteOp::PutSale { sale, at_ms } => {
                    catalog::put_sale(&mut tx, sale, *at_ms).await?
                }
                WriteOp::ChangeSale { sale, at_ms } => {
                    catalog::change_sale(&mut tx, sale, *at_ms).await?
                }
                WriteOp::PutShipment(shipment) => {
                    crate::deliveries::put_shipment(&mut tx, shipment).await?
                }
                WriteOp::ReleasePayouts(payouts) => {
                    crate::payouts::put_payouts(&mut tx, payouts).await?
                }
                WriteOp::SaveNeighbours { node, lists } => {
                    crate::recommendations::put_lists(&mut tx, node, lists).await?
                }
                WriteOp::PlaceOrder { .. }
                | WriteOp::SetOrderStatus(_)
                | WriteOp::Emit(_)
                | WriteOp::PutCheckout(_)
                | WriteOp::ForgetEvents(_)
                | WriteOp::RecordNotifications(_)
                | WriteOp::LogProviderMessages(_)
                | WriteOp::Fence(_)
                | WriteOp::HoldUntil(_) => {}
            }
        }
        batch.write(&mut tx).await?;
        // After the batch: a checkout's details refer to the order the batch creates.
        for op in ops {
            if let WriteOp::PutCheckout(details) = op {
                orders::put_checkout(&mut tx, details).await?;
            }
        }
        tx.commit().await?;
        self.orders_committed(orders);
        Ok(())
    }

    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError> {
        let product_id = int(id.0)?;
        let (product, initial, counters, sale, sold, holdings, lines) =
            dialects!(self.pool(), |pool, D| {
                let mut conn = pool.acquire().await?;
                let Some(row) = sqlx::query(D::sql(&PRODUCT))
                    .bind(product_id)
                    .fetch_optional(&mut *conn)
                    .await?
                else {
                    return Ok(None);
                };
                let product = catalog::decode_product(&row)?;
                let initial = row.uint("initial")?;
                let counters = match catalog::keeps_inventory_counters(self.pool()) {
                    true => Some((row.int("reserved")?, row.int("sold")?, row.int("shelf")?)),
                    false => None,
                };
                let sale = sqlx::query(D::sql(&LATEST_SALE))
                    .bind(product_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| catalog::decode_sale(&row))
                    .transpose()?;
                let sold = sqlx::query(D::sql(&SOLD))
                    .bind(product_id)
                    .fetch_one(&mut *conn)
                    .await?
                    .uint("sold")?;
                let mut holdings = Vec::new();
                if let Some(sale) = &sale {
                    for row in sqlx::query(D::sql(&SALE_HOLDINGS))
                        .bind(int(sale.id.0)?)
                        .fetch_all(&mut *conn)
                        .await?
                    {
                        let held = u32::try_from(row.uint("held")?)
                            .map_err(|_| StoreError::Decode("holding out of range".into()))?;
                        holdings.push((row.user_id("user_id")?, held, row.uint("sold")?));
                    }
                }
                let lines = sqlx::query(D::sql(&LINES))
                    .bind(product_id)
                    .bind(int(lines_since_ms)?)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(orders::decode_line)
                    .collect::<Result<Vec<_>, _>>()?;
                (product, initial, counters, sale, sold, holdings, lines)
            });
        let sale = sale.map(|sale| SaleSnapshot {
            sold: holdings.iter().map(|(_, _, sold)| sold).sum(),
            held_by_user: holdings
                .iter()
                .map(|(user, held, _)| (*user, *held))
                .collect(),
            sale,
        });
        if let Some(kept) = counters {
            self.check_inventory_row(id, kept, initial, sold, &lines)
                .await?;
        }
        Ok(Some(ProductState {
            product,
            stock: StockSnapshot {
                initial,
                sold,
                sale,
                lines,
            },
        }))
    }

    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let mut conn = pool.acquire().await?;
            let mut items: HashMap<Uuid, Vec<OrderItem>> = HashMap::new();
            for row in sqlx::query(D::sql(&PENDING_ITEMS))
                .fetch_all(&mut *conn)
                .await?
            {
                let order_id = row.order_id("item_order_id")?;
                items
                    .entry(order_id.0)
                    .or_default()
                    .push(orders::decode_item(&row)?);
            }
            sqlx::query(D::sql(&PENDING_ORDERS))
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| {
                    let id = row.order_id("id")?;
                    orders::decode_order(row, items.remove(&id.0).unwrap_or_default())
                })
                .collect()
        })
    }

    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError> {
        match self.pool() {
            Backend::Sqlite(pool) => levels::counted_from_orders(pool).await,
            Backend::Postgres(pool) => levels::read_from_counters(pool).await,
        }
    }

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let row = sqlx::query(D::sql(&ID_HIGH_WATER)).fetch_one(pool).await?;
            Ok(IdHighWater {
                product_id: row.uint("product_id")?,
                sale_id: row.uint("sale_id")?,
            })
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Database::ping(self).await
    }

    async fn current_leases(&self) -> Result<Vec<ShardLease>, StoreError> {
        self.shard_leases().await
    }

    async fn hold_expired(&self, shards: &[u32], until_ms: u64) -> Result<bool, StoreError> {
        crate::ShardLeases::hold_expired(self, shards, until_ms).await
    }

    async fn between_batches(&self) {
        self.restart_wal_when_due().await;
    }
}

impl Database {
    /// PostgreSQL's `inventory` row is a check, the orders are the truth: if they disagree,
    /// say so loudly and bring the row back in line, so later batches are checked against
    /// the truth.
    async fn check_inventory_row(
        &self,
        id: ProductId,
        kept: (i64, i64, i64),
        initial: u64,
        sold: u64,
        lines: &[engine::stock::Line],
    ) -> Result<(), StoreError> {
        let Backend::Postgres(pool) = self.pool() else {
            return Ok(());
        };
        let reserved: u64 = lines
            .iter()
            .filter(|line| line.state == LineState::Reserved)
            .map(|line| u64::from(line.quantity))
            .sum();
        let counted = (
            int(reserved)?,
            int(sold)?,
            int(initial.saturating_sub(reserved + sold))?,
        );
        if counted != kept {
            tracing::error!(%id, ?kept, ?counted, "inventory row disagreed with the orders; repaired");
            sqlx::query(
                r#"UPDATE inventory SET reserved = $2, sold = $3, "left" = $4 WHERE product_id = $1"#,
            )
            .bind(int(id.0)?)
            .bind(counted.0)
            .bind(counted.1)
            .bind(counted.2)
            .execute(pool)
            .await?;
        }
        Ok(())
    }
}
