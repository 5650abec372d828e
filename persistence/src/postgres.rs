//! PostgreSQL, the source of truth when a database URL is configured.
//!
//! A batch is one transaction with a fixed number of statements, whatever its size: each
//! table gets one `INSERT ... SELECT FROM UNNEST($arrays)` (or one `UPDATE ... FROM
//! UNNEST`), so 1,000 orders cost the same round trips as one. The schema re-checks what
//! the engine promises (non-negative, balanced inventory; per-user sale limits; unique
//! idempotency keys): a bug above can fail a batch, never oversell.
//!
//! Every connection carries a `statement_timeout` and `idle_in_transaction_session_timeout`,
//! so a transaction abandoned by a client that lost the network cannot linger on the server
//! and commit long after the engine has moved on.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use engine::order::{Order, OrderItem};
use engine::stock::{Line, SaleSnapshot, StockSnapshot};
use engine::{FlashSale, IdempotencyKey, Money, OrderId, Product, ProductId, SaleId, UserId};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::convert::{self, int, uint};
use crate::error::StoreError;
use crate::event::OutboxRow;
use crate::notification::{CartItem, Notification, Review, ReviewSummary};
use crate::store::{IdHighWater, InventoryLevel, ProductState, SaleLevel, Store};
use crate::write::{CheckoutDetails, Delivery, LedgerKind, Shipment, StatusChange, WriteOp};

/// How to reach PostgreSQL and how long to wait for it.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    pub url: String,
    /// Connections in the pool: the committer's, plus recovery reads and lookups.
    pub max_connections: u32,
    /// Longest wait for a connection, and the server-side statement timeout. Matches the
    /// commit timeout: past it, Buy Now answers 503 rather than hang.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

// Milliseconds since the epoch <-> timestamptz, done in SQL so the engine stays on integers.
macro_rules! ms_to_ts {
    ($param:literal) => {
        concat!("to_timestamp(", $param, "::float8 / 1000.0)")
    };
}
macro_rules! ts_to_ms {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000)::int8")
    };
}

impl PostgresStore {
    /// Connects and applies the migrations.
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let timeout_ms = settings.timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(&settings.url)?
            .application_name("flashcart")
            .options([
                ("statement_timeout", timeout_ms.as_str()),
                ("idle_in_transaction_session_timeout", timeout_ms.as_str()),
                // The batch statement's shape never changes, only its arrays; planning it
                // again for each batch (a custom plan) cost more than running a small one.
                ("plan_cache_mode", "force_generic_plan"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.timeout)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Rare admin writes (products, sales) go first in an explicit transaction with the
    /// batch; a batch of orders alone is one statement, its own transaction.
    async fn apply(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let batch = Batch::encode(ops)?;
        let admin: Vec<&WriteOp> = ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    WriteOp::PutProduct { .. }
                        | WriteOp::PutSale { .. }
                        | WriteOp::PutShipment(_)
                        | WriteOp::PutCheckout(_)
                )
            })
            .collect();
        if admin.is_empty() {
            return batch.write(&self.pool).await;
        }
        let mut tx = self.pool.begin().await?;
        for op in admin {
            match op {
                WriteOp::PutProduct {
                    product,
                    stock_initial,
                    shelf_change,
                    at_ms,
                } => put_product(&mut tx, product, *stock_initial, *shelf_change, *at_ms).await?,
                WriteOp::PutSale { sale, at_ms } => put_sale(&mut tx, sale, *at_ms).await?,
                WriteOp::PutShipment(shipment) => put_shipment(&mut tx, shipment).await?,
                WriteOp::PlaceOrder { .. }
                | WriteOp::SetOrderStatus(_)
                | WriteOp::Emit(_)
                | WriteOp::PutCheckout(_) => {}
            }
        }
        batch.write(&mut *tx).await?;
        // After the batch: a checkout's details refer to the order the batch creates.
        for op in ops {
            if let WriteOp::PutCheckout(details) = op {
                put_checkout(&mut tx, details).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A batch of orders and status changes, laid out as columns for UNNEST: what the group
/// committer sends PostgreSQL. Public so the benches can measure encoding on its own.
#[derive(Default)]
pub struct Batch {
    order_ids: Vec<Uuid>,
    order_users: Vec<i64>,
    order_statuses: Vec<&'static str>,
    order_totals: Vec<i64>,
    order_keys: Vec<String>,
    order_created: Vec<i64>,
    order_expires: Vec<i64>,
    key_scopes: Vec<String>,
    item_orders: Vec<Uuid>,
    item_lines: Vec<i32>,
    item_products: Vec<i64>,
    item_sales: Vec<Option<i64>>,
    item_quantities: Vec<i32>,
    item_prices: Vec<i64>,
    /// (sale, user) -> net change of units held, so one statement touches each row once.
    sale_purchases: BTreeMap<(i64, i64), i32>,
    change_ids: Vec<Uuid>,
    change_from: Vec<&'static str>,
    change_to: Vec<&'static str>,
    change_at: Vec<i64>,
    payment_orders: Vec<Uuid>,
    payment_transactions: Vec<String>,
    payment_statuses: Vec<&'static str>,
    payment_amounts: Vec<i64>,
    event_topics: Vec<&'static str>,
    event_types: Vec<&'static str>,
    event_keys: Vec<String>,
    event_payloads: Vec<String>,
    /// product -> (reserved, sold, left) deltas.
    inventory: BTreeMap<i64, (i64, i64, i64)>,
    /// (product, kind) -> (units, orders, latest time): one ledger row each per batch.
    ledger: BTreeMap<(i64, &'static str), (i64, i32, i64)>,
}

/// The whole batch in one statement, so one round trip: data-modifying CTEs run in one
/// implicit transaction. The last SELECT is the guard: if a status change met an order in
/// another status, or a product has no inventory row, it fails the statement (a cast error
/// naming the counts), and with it every write above. A cast is used, not `1/0`, because
/// PostgreSQL may fold a constant division at plan time.
const BATCH_SQL: &str = concat!(
    "WITH new_orders AS (",
    "INSERT INTO orders (id, user_id, status, total_minor, idempotency_key, created_at, expires_at, updated_at) ",
    "SELECT o.id, o.user_id, o.status::order_status, o.total, o.key, ",
    ms_to_ts!("o.created"),
    ", ",
    ms_to_ts!("o.expires"),
    ", ",
    ms_to_ts!("o.created"),
    " FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::int8[]) ",
    "AS o(id, user_id, status, total, key, created, expires)), ",
    "new_items AS (",
    "INSERT INTO order_items (order_id, line_no, product_id, sale_id, quantity, unit_price_minor) ",
    "SELECT * FROM UNNEST($8::uuid[], $9::int4[], $10::int8[], $11::int8[], $12::int4[], $13::int8[])), ",
    "new_keys AS (",
    "INSERT INTO idempotency_keys (user_id, scope, key, order_id, created_at) ",
    "SELECT k.user_id, k.scope, k.key, k.order_id, ",
    ms_to_ts!("k.created"),
    " FROM UNNEST($2::int8[], $14::text[], $5::text[], $1::uuid[], $6::int8[]) AS k(user_id, scope, key, order_id, created)), ",
    "holdings AS (",
    "INSERT INTO sale_purchases (sale_id, user_id, quantity, per_user_limit) ",
    "SELECT p.sale_id, p.user_id, p.quantity, s.per_user_limit ",
    "FROM UNNEST($15::int8[], $16::int8[], $17::int4[]) AS p(sale_id, user_id, quantity) ",
    "JOIN flash_sales s ON s.id = p.sale_id ",
    "ON CONFLICT (sale_id, user_id) DO UPDATE SET quantity = sale_purchases.quantity + excluded.quantity), ",
    // Released allowance: an UPDATE, since INSERT checks the proposed row's constraints
    // (a negative quantity) before it finds the conflict.
    "released_holdings AS (",
    "UPDATE sale_purchases SET quantity = sale_purchases.quantity + r.delta ",
    "FROM UNNEST($33::int8[], $34::int8[], $35::int4[]) AS r(sale_id, user_id, delta) ",
    "WHERE sale_purchases.sale_id = r.sale_id AND sale_purchases.user_id = r.user_id), ",
    // A replayed webhook carries a transaction already recorded: nothing to add.
    "new_payments AS (",
    "INSERT INTO payments (order_id, transaction_id, status, amount_minor) ",
    "SELECT * FROM UNNEST($36::uuid[], $37::text[], $38::text[], $39::int8[]) ",
    "ON CONFLICT (transaction_id) DO NOTHING), ",
    "new_events AS (",
    "INSERT INTO outbox (topic, event_type, entity_key, payload) ",
    "SELECT e.topic, e.event_type, e.entity_key, e.payload::jsonb ",
    "FROM UNNEST($40::text[], $41::text[], $42::text[], $43::text[]) AS e(topic, event_type, entity_key, payload)), ",
    "changed AS (",
    "UPDATE orders SET status = c.to_status::order_status, updated_at = ",
    ms_to_ts!("c.at"),
    " FROM UNNEST($18::uuid[], $19::text[], $20::text[], $21::int8[]) AS c(id, from_status, to_status, at)",
    " WHERE orders.id = c.id AND orders.status = c.from_status::order_status RETURNING 1), ",
    "stock AS (",
    r#"UPDATE inventory SET reserved = inventory.reserved + d.reserved, sold = inventory.sold + d.sold, "left" = inventory."left" + d.shelf "#,
    "FROM UNNEST($22::int8[], $23::int8[], $24::int8[], $25::int8[]) AS d(product_id, reserved, sold, shelf) ",
    "WHERE inventory.product_id = d.product_id RETURNING 1), ",
    "ledger AS (",
    "INSERT INTO stock_ledger (product_id, order_count, kind, quantity, at) ",
    "SELECT l.product_id, l.order_count, l.kind, l.quantity, ",
    ms_to_ts!("l.at"),
    " FROM UNNEST($26::int8[], $27::int4[], $28::text[], $29::int8[], $30::int8[]) AS l(product_id, order_count, kind, quantity, at)) ",
    "SELECT CASE WHEN (SELECT count(*) FROM changed) = $31 AND (SELECT count(*) FROM stock) = $32 THEN 0 ",
    "ELSE ('batch guard failed: ' || (SELECT count(*) FROM changed) || ' of ' || $31 || ' status changes, ' ",
    "|| (SELECT count(*) FROM stock) || ' of ' || $32 || ' inventory rows')::int END"
);

impl Batch {
    /// Lays out the order writes of `ops` (admin writes are not part of a batch).
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
                    batch.event_topics.push(event.topic.name());
                    batch.event_types.push(event.event_type);
                    batch.event_keys.push(event.key.clone());
                    batch.event_payloads.push(event.payload.clone());
                }
                WriteOp::PutProduct { .. }
                | WriteOp::PutSale { .. }
                | WriteOp::PutShipment(_)
                | WriteOp::PutCheckout(_) => {}
            }
        }
        Ok(batch)
    }

    pub fn order_count(&self) -> usize {
        self.order_ids.len()
    }

    fn place(&mut self, order: &Order, scope: &str) -> Result<(), StoreError> {
        let user = int(order.user_id.0)?;
        self.order_ids.push(order.id.0);
        self.order_users.push(user);
        self.order_statuses.push(order.status.as_str());
        self.order_totals.push(int(order.total.0)?);
        self.order_keys.push(order.idempotency_key.to_string());
        self.order_created.push(int(order.created_at_ms)?);
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
                *self.sale_purchases.entry((int(sale.0)?, user)).or_default() += quantity;
            }
            let delta = self.inventory.entry(product).or_default();
            delta.0 += i64::from(quantity);
            delta.2 -= i64::from(quantity);
            self.ledger(
                product,
                LedgerKind::Reserve,
                i64::from(quantity),
                order.created_at_ms,
            )?;
        }
        Ok(())
    }

    fn change(&mut self, change: &StatusChange) -> Result<(), StoreError> {
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
                    if let Some((sale_id, user_id)) = stock_move.sale_holder {
                        *self
                            .sale_purchases
                            .entry((int(sale_id.0)?, int(user_id.0)?))
                            .or_default() -= units;
                    }
                }
                other => {
                    return Err(StoreError::Conflict(format!(
                        "a status change cannot record {}",
                        other.as_str()
                    )));
                }
            }
            self.ledger(product, stock_move.kind, i64::from(units), change.at_ms)?;
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
        self.change_at.push(int(change.at_ms)?);
        Ok(())
    }

    fn ledger(
        &mut self,
        product: i64,
        kind: LedgerKind,
        quantity: i64,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let row = self.ledger.entry((product, kind.as_str())).or_default();
        row.0 += quantity;
        row.1 += 1;
        row.2 = row.2.max(int(at_ms)?);
        Ok(())
    }

    async fn write<'c, E>(self, executor: E) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'c, Database = Postgres>,
    {
        // Taken and given-back allowances go to different statements of the batch; a key's
        // net change is one or the other, so no row is touched twice.
        let (mut taken_sales, mut taken_users, mut taken) = (Vec::new(), Vec::new(), Vec::new());
        let (mut freed_sales, mut freed_users, mut freed) = (Vec::new(), Vec::new(), Vec::new());
        for ((sale, user), delta) in self.sale_purchases {
            if delta > 0 {
                taken_sales.push(sale);
                taken_users.push(user);
                taken.push(delta);
            } else if delta < 0 {
                freed_sales.push(sale);
                freed_users.push(user);
                freed.push(delta);
            }
        }
        let mut products = Vec::with_capacity(self.inventory.len());
        let (mut reserved, mut sold, mut shelf) = (Vec::new(), Vec::new(), Vec::new());
        for (product, delta) in &self.inventory {
            products.push(*product);
            reserved.push(delta.0);
            sold.push(delta.1);
            shelf.push(delta.2);
        }
        let (mut ledger_products, mut ledger_orders, mut ledger_kinds) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut ledger_quantities, mut ledger_at) = (Vec::new(), Vec::new());
        for ((product, kind), (quantity, orders, at)) in &self.ledger {
            ledger_products.push(*product);
            ledger_kinds.push(*kind);
            ledger_quantities.push(*quantity);
            ledger_orders.push(*orders);
            ledger_at.push(*at);
        }
        let expected_changes = self.change_ids.len() as i64;
        let expected_products = products.len() as i64;
        sqlx::query(BATCH_SQL)
            .bind(&self.order_ids)
            .bind(&self.order_users)
            .bind(&self.order_statuses)
            .bind(&self.order_totals)
            .bind(&self.order_keys)
            .bind(&self.order_created)
            .bind(&self.order_expires)
            .bind(&self.item_orders)
            .bind(&self.item_lines)
            .bind(&self.item_products)
            .bind(&self.item_sales)
            .bind(&self.item_quantities)
            .bind(&self.item_prices)
            .bind(&self.key_scopes)
            .bind(&taken_sales)
            .bind(&taken_users)
            .bind(&taken)
            .bind(&self.change_ids)
            .bind(&self.change_from)
            .bind(&self.change_to)
            .bind(&self.change_at)
            .bind(&products)
            .bind(&reserved)
            .bind(&sold)
            .bind(&shelf)
            .bind(&ledger_products)
            .bind(&ledger_orders)
            .bind(&ledger_kinds)
            .bind(&ledger_quantities)
            .bind(&ledger_at)
            .bind(expected_changes)
            .bind(expected_products)
            .bind(&freed_sales)
            .bind(&freed_users)
            .bind(&freed)
            .bind(&self.payment_orders)
            .bind(&self.payment_transactions)
            .bind(&self.payment_statuses)
            .bind(&self.payment_amounts)
            .bind(&self.event_topics)
            .bind(&self.event_types)
            .bind(&self.event_keys)
            .bind(&self.event_payloads)
            .execute(executor)
            .await
            .map_err(guard_error)?;
        Ok(())
    }
}

fn quantity(units: u32) -> Result<i32, StoreError> {
    i32::try_from(units).map_err(|_| StoreError::Conflict("quantity does not fit".into()))
}

/// The guard's cast error is a conflict (a bug upstream), not a database failure.
fn guard_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.message().contains("batch guard failed") => {
            StoreError::Conflict(database.message().to_owned())
        }
        _ => StoreError::Database(error),
    }
}

async fn put_product(
    tx: &mut Transaction<'_, Postgres>,
    product: &Product,
    stock_initial: u64,
    shelf_change: i64,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO products (id, title, brand, category, description, price_minor, rating, popularity, created_at, updated_at) ",
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ", ms_to_ts!("$9"), ", ", ms_to_ts!("$9"), ") ",
        "ON CONFLICT (id) DO UPDATE SET title = excluded.title, brand = excluded.brand, category = excluded.category, ",
        "description = excluded.description, price_minor = excluded.price_minor, rating = excluded.rating, ",
        "popularity = excluded.popularity, updated_at = excluded.updated_at"
    ))
    .bind(int(product.id.0)?)
    .bind(&product.title)
    .bind(&product.brand)
    .bind(&product.category)
    .bind(&product.description)
    .bind(int(product.price.0)?)
    .bind(product.rating)
    .bind(int(product.popularity)?)
    .bind(int(at_ms)?)
    .execute(&mut **tx)
    .await?;
    // A new product starts with its whole stock on the shelf; an existing one moves by the
    // change, and the checks refuse a shelf below what is promised.
    sqlx::query(
        r#"INSERT INTO inventory (product_id, initial, reserved, sold, "left") VALUES ($1, $2, 0, 0, $2)
           ON CONFLICT (product_id) DO UPDATE SET initial = inventory.initial + $3, "left" = inventory."left" + $3"#,
    )
    .bind(int(product.id.0)?)
    .bind(int(stock_initial)?)
    .bind(shelf_change)
    .execute(&mut **tx)
    .await?;
    if shelf_change != 0 {
        insert_ledger_row(tx, product.id, LedgerKind::StockSet, shelf_change, at_ms).await?;
    }
    Ok(())
}

async fn put_shipment(
    tx: &mut Transaction<'_, Postgres>,
    shipment: &Shipment,
) -> Result<(), StoreError> {
    let delivered = shipment.delivered.as_ref();
    sqlx::query(concat!(
        "INSERT INTO shipments (order_id, tracking_id, estimated_delivery, shipped_at, delivered_at, signature, photo_url) ",
        "VALUES ($1, $2, ", ms_to_ts!("$3"), ", ", ms_to_ts!("$4"), ", ", ms_to_ts!("$5"), ", $6, $7) ",
        "ON CONFLICT (order_id) DO UPDATE SET tracking_id = excluded.tracking_id, ",
        "estimated_delivery = excluded.estimated_delivery, delivered_at = excluded.delivered_at, ",
        "signature = excluded.signature, photo_url = excluded.photo_url"
    ))
    .bind(shipment.order_id.0)
    .bind(&shipment.tracking_id)
    .bind(int(shipment.estimated_delivery_ms)?)
    .bind(int(shipment.shipped_at_ms)?)
    .bind(delivered.map(|delivery| int(delivery.at_ms)).transpose()?)
    .bind(delivered.map(|delivery| delivery.signature.as_str()))
    .bind(delivered.map(|delivery| delivery.photo_url.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn put_checkout(
    tx: &mut Transaction<'_, Postgres>,
    details: &CheckoutDetails,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_checkouts (order_id, address_id, payment_method) VALUES ($1, $2, $3)",
    )
    .bind(details.order_id.0)
    .bind(&details.address_id)
    .bind(&details.payment_method)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn put_sale(
    tx: &mut Transaction<'_, Postgres>,
    sale: &FlashSale,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO flash_sales (id, product_id, sale_price_minor, original_price_minor, start_at, end_at, stock, per_user_limit, created_at) ",
        "VALUES ($1, $2, $3, $4, ", ms_to_ts!("$5"), ", ", ms_to_ts!("$6"), ", $7, $8, ", ms_to_ts!("$9"), ")"
    ))
    .bind(int(sale.id.0)?)
    .bind(int(sale.product_id.0)?)
    .bind(int(sale.sale_price.0)?)
    .bind(int(sale.original_price.0)?)
    .bind(int(sale.start_ms)?)
    .bind(sale.end_ms.map(int).transpose()?)
    .bind(int(sale.stock)?)
    .bind(i32::try_from(sale.per_user_limit).map_err(|_| StoreError::Conflict("limit does not fit".into()))?)
    .bind(int(at_ms)?)
    .execute(&mut **tx)
    .await?;
    insert_ledger_row(
        tx,
        sale.product_id,
        LedgerKind::SaleCarve,
        int(sale.stock)?,
        at_ms,
    )
    .await
}

async fn insert_ledger_row(
    tx: &mut Transaction<'_, Postgres>,
    product_id: ProductId,
    kind: LedgerKind,
    quantity: i64,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO stock_ledger (product_id, order_id, kind, quantity, at) VALUES ($1, NULL, $2, $3, ",
        ms_to_ts!("$4"),
        ")"
    ))
    .bind(int(product_id.0)?)
    .bind(kind.as_str())
    .bind(quantity)
    .bind(int(at_ms)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

macro_rules! product_columns {
    () => {
        "p.id, p.title, p.brand, p.category, p.description, p.price_minor, p.rating, p.popularity"
    };
}
macro_rules! sale_columns {
    () => {
        concat!(
            "s.id, s.product_id, s.sale_price_minor, s.original_price_minor, ",
            ts_to_ms!("s.start_at"),
            " AS start_ms, ",
            ts_to_ms!("s.end_at"),
            " AS end_ms, s.stock, s.per_user_limit"
        )
    };
}
macro_rules! order_columns {
    () => {
        concat!(
            "o.id, o.user_id, o.status::text AS status, o.total_minor, o.idempotency_key, ",
            ts_to_ms!("o.created_at"),
            " AS created_at_ms, ",
            ts_to_ms!("o.expires_at"),
            " AS expires_at_ms, ",
            ts_to_ms!("o.updated_at"),
            " AS updated_at_ms"
        )
    };
}
macro_rules! item_columns {
    () => {
        "i.order_id AS item_order_id, i.product_id, i.sale_id, i.quantity, i.unit_price_minor"
    };
}

#[async_trait]
impl Store for PostgresStore {
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.apply(ops).await
    }

    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let product_id = int(id.0)?;
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            product_columns!(),
            r#", v.initial, v.reserved, v.sold, v."left" AS shelf"#,
            " FROM products p JOIN inventory v ON v.product_id = p.id WHERE p.id = $1"
        ))
        .bind(product_id)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let product = decode_product(&row)?;
        let initial = uint(row.try_get("initial")?)?;
        let kept: (i64, i64, i64) = (
            row.try_get("reserved")?,
            row.try_get("sold")?,
            row.try_get("shelf")?,
        );

        let sale = sqlx::query(concat!(
            "SELECT ",
            sale_columns!(),
            " FROM flash_sales s WHERE s.product_id = $1 ORDER BY s.id DESC LIMIT 1"
        ))
        .bind(product_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| decode_sale(&row))
        .transpose()?;

        let sold = uint(
            sqlx::query_scalar::<_, i64>(
                "SELECT COALESCE(SUM(i.quantity), 0)::int8 FROM order_items i JOIN orders o ON o.id = i.order_id
                 WHERE i.product_id = $1 AND o.status IN ('PAID', 'SHIPPED', 'DELIVERED')",
            )
            .bind(product_id)
            .fetch_one(&mut *conn)
            .await?,
        )?;

        let sale = match sale {
            None => None,
            Some(sale) => {
                let rows = sqlx::query(
                    "SELECT o.user_id, SUM(i.quantity)::int8 AS held,
                            SUM(CASE WHEN o.status IN ('PAID', 'SHIPPED', 'DELIVERED') THEN i.quantity ELSE 0 END)::int8 AS sold
                     FROM order_items i JOIN orders o ON o.id = i.order_id
                     WHERE i.sale_id = $1 AND o.status NOT IN ('CANCELLED', 'EXPIRED')
                     GROUP BY o.user_id",
                )
                .bind(int(sale.id.0)?)
                .fetch_all(&mut *conn)
                .await?;
                let mut held_by_user = HashMap::with_capacity(rows.len());
                let mut sale_sold = 0;
                for row in rows {
                    held_by_user.insert(
                        UserId(uint(row.try_get("user_id")?)?),
                        convert::small(row.try_get("held")?, "holding")?,
                    );
                    sale_sold += uint(row.try_get("sold")?)?;
                }
                Some(SaleSnapshot {
                    sale,
                    sold: sale_sold,
                    held_by_user,
                })
            }
        };

        let lines = sqlx::query(concat!(
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
        ))
        .bind(product_id)
        .bind(int(lines_since_ms)?)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(decode_line)
        .collect::<Result<Vec<_>, _>>()?;

        let reserved: u64 = lines
            .iter()
            .filter(|line| line.state == engine::stock::LineState::Reserved)
            .map(|line| u64::from(line.quantity))
            .sum();
        let counted = (
            int(reserved)?,
            int(sold)?,
            int(initial.saturating_sub(reserved + sold))?,
        );
        if counted != kept {
            // The orders are the truth; the counters row is a check. Say so loudly and
            // bring it back in line, so later batches are checked against the truth.
            tracing::error!(%id, ?kept, ?counted, "inventory row disagreed with the orders; repaired");
            sqlx::query(r#"UPDATE inventory SET reserved = $2, sold = $3, "left" = $4 WHERE product_id = $1"#)
                .bind(product_id)
                .bind(counted.0)
                .bind(counted.1)
                .bind(counted.2)
                .execute(&mut *conn)
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

    async fn load_catalog(&self) -> Result<Vec<Product>, StoreError> {
        // Streamed and decoded row by row: the whole result set as rows at once would cost
        // several times the catalog itself at a million products.
        let mut rows = sqlx::query(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products p ORDER BY p.id"
        ))
        .fetch(&self.pool);
        let mut products = Vec::new();
        while let Some(row) = rows.try_next().await? {
            products.push(decode_product(&row)?);
        }
        Ok(products)
    }

    async fn load_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders o WHERE o.id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let items = sqlx::query(concat!(
            "SELECT ",
            item_columns!(),
            " FROM order_items i WHERE i.order_id = $1 ORDER BY i.line_no"
        ))
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(decode_item)
        .collect::<Result<Vec<_>, _>>()?;
        decode_order(&row, items).map(Some)
    }

    async fn order_for_key(
        &self,
        user: UserId,
        scope: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OrderId>, StoreError> {
        let order: Option<Uuid> = sqlx::query_scalar(
            "SELECT order_id FROM idempotency_keys WHERE user_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(int(user.0)?)
        .bind(scope)
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(order.map(OrderId))
    }

    async fn load_shipment(&self, id: OrderId) -> Result<Option<Shipment>, StoreError> {
        let Some(row) = sqlx::query(concat!(
            "SELECT tracking_id, ",
            ts_to_ms!("estimated_delivery"),
            " AS estimated_delivery_ms, ",
            ts_to_ms!("shipped_at"),
            " AS shipped_at_ms, ",
            ts_to_ms!("delivered_at"),
            " AS delivered_at_ms, ",
            "signature, photo_url FROM shipments WHERE order_id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let delivered_at: Option<i64> = row.try_get("delivered_at_ms")?;
        let delivered = match delivered_at {
            None => None,
            Some(at_ms) => Some(Delivery {
                at_ms: uint(at_ms)?,
                signature: row
                    .try_get::<Option<String>, _>("signature")?
                    .unwrap_or_default(),
                photo_url: row
                    .try_get::<Option<String>, _>("photo_url")?
                    .unwrap_or_default(),
            }),
        };
        Ok(Some(Shipment {
            order_id: id,
            tracking_id: row.try_get("tracking_id")?,
            estimated_delivery_ms: uint(row.try_get("estimated_delivery_ms")?)?,
            shipped_at_ms: uint(row.try_get("shipped_at_ms")?)?,
            delivered,
        }))
    }

    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut items: HashMap<Uuid, Vec<OrderItem>> = HashMap::new();
        for row in sqlx::query(concat!(
            "SELECT ",
            item_columns!(),
            " FROM order_items i JOIN orders o ON o.id = i.order_id ",
            "WHERE o.status = 'PENDING_PAYMENT' ORDER BY i.order_id, i.line_no"
        ))
        .fetch_all(&mut *conn)
        .await?
        {
            let order_id: Uuid = row.try_get("item_order_id")?;
            items.entry(order_id).or_default().push(decode_item(&row)?);
        }
        sqlx::query(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders o WHERE o.status = 'PENDING_PAYMENT'"
        ))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            let id: Uuid = row.try_get("id")?;
            decode_order(row, items.remove(&id).unwrap_or_default())
        })
        .collect()
    }

    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError> {
        let rows = sqlx::query(concat!(
            r#"SELECT v.product_id AS inventory_product_id, v."left" AS shelf, "#, sale_columns!(), ", COALESCE(sp.held, 0)::int8 AS held ",
            "FROM inventory v ",
            "LEFT JOIN LATERAL (SELECT * FROM flash_sales f WHERE f.product_id = v.product_id ORDER BY f.id DESC LIMIT 1) s ON true ",
            "LEFT JOIN LATERAL (SELECT SUM(quantity) AS held FROM sale_purchases WHERE sale_id = s.id) sp ON true ",
            "ORDER BY v.product_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let sale = match row.try_get::<Option<i64>, _>("id")? {
                    None => None,
                    Some(_) => Some(SaleLevel {
                        sale: decode_sale(row)?,
                        held: uint(row.try_get("held")?)?,
                    }),
                };
                Ok(InventoryLevel {
                    product_id: ProductId(uint(row.try_get("inventory_product_id")?)?),
                    left: uint(row.try_get("shelf")?)?,
                    sale,
                })
            })
            .collect()
    }

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM products) AS product_id,
                    (SELECT COALESCE(MAX(id), 0) FROM flash_sales) AS sale_id",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(IdHighWater {
            product_id: uint(row.try_get("product_id")?)?,
            sale_id: uint(row.try_get("sale_id")?)?,
        })
    }

    async fn outbox_batch(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        sqlx::query("SELECT seq, topic, event_type, entity_key, payload::text AS payload FROM outbox ORDER BY seq LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(OutboxRow {
                    seq: row.try_get("seq")?,
                    topic: row.try_get("topic")?,
                    event_type: row.try_get("event_type")?,
                    key: row.try_get("entity_key")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    async fn outbox_delete(&self, seqs: &[i64]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_notifications(
        &self,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        let mut columns = (
            Vec::with_capacity(notifications.len()),
            Vec::with_capacity(notifications.len()),
            Vec::with_capacity(notifications.len()),
            Vec::with_capacity(notifications.len()),
            Vec::with_capacity(notifications.len()),
            Vec::with_capacity(notifications.len()),
            Vec::with_capacity(notifications.len()),
        );
        for notification in notifications {
            columns.0.push(notification.dedup_key.as_str());
            columns.1.push(int(notification.user_id.0)?);
            columns.2.push(notification.order_id.map(|id| id.0));
            columns.3.push(notification.kind.as_str());
            columns.4.push(notification.channel.as_str());
            columns.5.push(notification.body.as_str());
            columns.6.push(int(notification.sent_at_ms)?);
        }
        // One statement for the whole batch, like the orders.
        Ok(sqlx::query(
            "INSERT INTO notifications (dedup_key, user_id, order_id, kind, channel, body, sent_at_ms)
             SELECT d, u, o, k, c, b::jsonb, s
             FROM UNNEST($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bigint[])
                  AS n(d, u, o, k, c, b, s)
             ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .bind(columns.5)
        .bind(columns.6)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        sqlx::query(
            "SELECT dedup_key, user_id, order_id, kind, channel, body::text AS body, sent_at_ms
             FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(int(user.0)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let order_id: Option<Uuid> = row.try_get("order_id")?;
            Ok(Notification {
                dedup_key: row.try_get("dedup_key")?,
                user_id: UserId(uint(row.try_get("user_id")?)?),
                order_id: order_id.map(OrderId),
                kind: row.try_get("kind")?,
                channel: row.try_get("channel")?,
                body: row.try_get("body")?,
                sent_at_ms: uint(row.try_get("sent_at_ms")?)?,
            })
        })
        .collect()
    }

    async fn assign_delivery_partner(
        &self,
        order: OrderId,
        partner: &str,
        at_ms: u64,
    ) -> Result<String, StoreError> {
        // The no-op update makes RETURNING answer with the standing row on conflict.
        Ok(sqlx::query_scalar(
            "INSERT INTO delivery_assignments (order_id, partner_id, assigned_at_ms)
             VALUES ($1, $2, $3)
             ON CONFLICT (order_id) DO UPDATE SET order_id = EXCLUDED.order_id
             RETURNING partner_id",
        )
        .bind(order.0)
        .bind(partner)
        .bind(int(at_ms)?)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn delivery_partner(&self, order: OrderId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT partner_id FROM delivery_assignments WHERE order_id = $1")
                .bind(order.0)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn cart(&self, user: UserId, since_ms: u64) -> Result<Vec<CartItem>, StoreError> {
        sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND updated_at_ms < $2")
            .bind(int(user.0)?)
            .bind(int(since_ms)?)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "SELECT product_id, quantity::BIGINT AS quantity, added_at_ms, updated_at_ms
             FROM cart_items WHERE user_id = $1 ORDER BY added_at_ms, product_id",
        )
        .bind(int(user.0)?)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode_cart_item)
        .collect()
    }

    async fn put_cart_item(&self, user: UserId, item: CartItem) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cart_items (user_id, product_id, quantity, added_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, product_id)
             DO UPDATE SET quantity = EXCLUDED.quantity, updated_at_ms = EXCLUDED.updated_at_ms",
        )
        .bind(int(user.0)?)
        .bind(int(item.product_id.0)?)
        .bind(
            i32::try_from(item.quantity)
                .map_err(|_| StoreError::Conflict("cart quantity too large".into()))?,
        )
        .bind(int(item.added_at_ms)?)
        .bind(int(item.updated_at_ms)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_cart_items(
        &self,
        user: UserId,
        products: &[ProductId],
    ) -> Result<u64, StoreError> {
        let ids = products
            .iter()
            .map(|product| int(product.0))
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(
            sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND product_id = ANY($2)")
                .bind(int(user.0)?)
                .bind(ids)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn received(&self, user: UserId, product: ProductId) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM orders o JOIN order_items i ON i.order_id = o.id
             WHERE o.user_id = $1 AND i.product_id = $2 AND o.status = 'DELIVERED' LIMIT 1",
        )
        .bind(int(user.0)?)
        .bind(int(product.0)?)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn add_review(&self, review: &Review) -> Result<Option<ReviewSummary>, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO reviews (product_id, user_id, rating, title, body, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (product_id, user_id) DO NOTHING",
        )
        .bind(int(review.product_id.0)?)
        .bind(int(review.user_id.0)?)
        .bind(i16::from(review.rating))
        .bind(&review.title)
        .bind(&review.body)
        .bind(int(review.created_at_ms)?)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        Ok(Some(self.review_summary(review.product_id).await?))
    }

    async fn reviews(
        &self,
        product: ProductId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Review>, ReviewSummary), StoreError> {
        let reviews = sqlx::query(
            "SELECT product_id, user_id, rating::BIGINT AS rating, title, body, created_at_ms FROM reviews
             WHERE product_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(int(product.0)?)
        .bind(i64::from(limit))
        .bind(int(offset)?)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let rating: i64 = row.try_get("rating")?;
            Ok(Review {
                product_id: ProductId(uint(row.try_get("product_id")?)?),
                user_id: UserId(uint(row.try_get("user_id")?)?),
                rating: u8::try_from(rating)
                    .map_err(|_| StoreError::Decode(format!("review rating {rating}")))?,
                title: row.try_get("title")?,
                body: row.try_get("body")?,
                created_at_ms: uint(row.try_get("created_at_ms")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((reviews, self.review_summary(product).await?))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn decode_product(row: &PgRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: ProductId(uint(row.try_get("id")?)?),
        title: row.try_get("title")?,
        brand: row.try_get("brand")?,
        category: row.try_get("category")?,
        description: row.try_get("description")?,
        price: Money(uint(row.try_get("price_minor")?)?),
        rating: row.try_get("rating")?,
        popularity: uint(row.try_get("popularity")?)?,
    })
}

fn decode_sale(row: &PgRow) -> Result<FlashSale, StoreError> {
    Ok(FlashSale {
        id: SaleId(uint(row.try_get("id")?)?),
        product_id: ProductId(uint(row.try_get("product_id")?)?),
        sale_price: Money(uint(row.try_get("sale_price_minor")?)?),
        original_price: Money(uint(row.try_get("original_price_minor")?)?),
        start_ms: uint(row.try_get("start_ms")?)?,
        end_ms: row
            .try_get::<Option<i64>, _>("end_ms")?
            .map(uint)
            .transpose()?,
        stock: uint(row.try_get("stock")?)?,
        per_user_limit: convert::small(
            i64::from(row.try_get::<i32, _>("per_user_limit")?),
            "per-user limit",
        )?,
    })
}

fn decode_line(row: &PgRow) -> Result<Line, StoreError> {
    let status = convert::status(row.try_get("status")?)?;
    Ok(Line {
        order_id: OrderId(row.try_get("order_id")?),
        user_id: UserId(uint(row.try_get("user_id")?)?),
        idempotency_key: convert::idempotency_key(row.try_get("idempotency_key")?)?,
        quantity: convert::small(i64::from(row.try_get::<i32, _>("quantity")?), "quantity")?,
        unit_price: Money(uint(row.try_get("unit_price_minor")?)?),
        sale_id: row
            .try_get::<Option<i64>, _>("sale_id")?
            .map(uint)
            .transpose()?
            .map(SaleId),
        created_at_ms: uint(row.try_get("created_at_ms")?)?,
        expires_at_ms: uint(row.try_get("expires_at_ms")?)?,
        state: convert::line_state(status),
    })
}

fn decode_item(row: &PgRow) -> Result<OrderItem, StoreError> {
    Ok(OrderItem {
        product_id: ProductId(uint(row.try_get("product_id")?)?),
        sale_id: row
            .try_get::<Option<i64>, _>("sale_id")?
            .map(uint)
            .transpose()?
            .map(SaleId),
        quantity: convert::small(i64::from(row.try_get::<i32, _>("quantity")?), "quantity")?,
        unit_price: Money(uint(row.try_get("unit_price_minor")?)?),
    })
}

fn decode_order(row: &PgRow, items: Vec<OrderItem>) -> Result<Order, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Order {
        id: OrderId(row.try_get("id")?),
        user_id: UserId(uint(row.try_get("user_id")?)?),
        status: convert::status(&status)?,
        items,
        total: Money(uint(row.try_get("total_minor")?)?),
        idempotency_key: convert::idempotency_key(row.try_get("idempotency_key")?)?,
        created_at_ms: uint(row.try_get("created_at_ms")?)?,
        expires_at_ms: uint(row.try_get("expires_at_ms")?)?,
        updated_at_ms: uint(row.try_get("updated_at_ms")?)?,
    })
}

fn decode_cart_item(row: &PgRow) -> Result<CartItem, StoreError> {
    let quantity: i64 = row.try_get("quantity")?;
    Ok(CartItem {
        product_id: ProductId(uint(row.try_get("product_id")?)?),
        quantity: u32::try_from(quantity)
            .map_err(|_| StoreError::Decode(format!("cart quantity {quantity}")))?,
        added_at_ms: uint(row.try_get("added_at_ms")?)?,
        updated_at_ms: uint(row.try_get("updated_at_ms")?)?,
    })
}

impl PostgresStore {
    async fn review_summary(&self, product: ProductId) -> Result<ReviewSummary, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS count, AVG(rating)::FLOAT8 AS average FROM reviews WHERE product_id = $1",
        )
        .bind(int(product.0)?)
        .fetch_one(&self.pool)
        .await?;
        let average: Option<f64> = row.try_get("average")?;
        Ok(ReviewSummary {
            average: average.unwrap_or(0.0) as f32,
            count: uint(row.try_get("count")?)?,
        })
    }
}
