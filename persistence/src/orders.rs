//! Orders as they are read back: one order by id, the order an idempotency key made, and
//! whether a user received a product (who may review it). Orders are written by the ledger
//! (`ledger/batch.rs`); this module holds how they are read and decoded, for both.

use std::collections::HashMap;

use async_trait::async_trait;
use engine::order::{Order, OrderItem};
use engine::stock::Line;
use engine::{IdempotencyKey, OrderId, ProductId, UserId};
use sqlx::QueryBuilder;

use crate::database::{Database, Sql, Transaction, dialects};
use crate::error::StoreError;
use crate::row::{StoredRow, int, line_state};
use crate::write::CheckoutDetails;

#[async_trait]
pub trait OrderLookup: Send + Sync + 'static {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// Those of `ids` that exist (an expiry storm reads its orders a chunk at a time).
    async fn orders(&self, ids: &[OrderId]) -> Result<Vec<Order>, StoreError>;

    /// The order a user's idempotency key made in `scope`, if any. Meant for checkout's
    /// keys ([`CHECKOUT_SCOPE`]), looked up before a checkout places its order; Buy Now's
    /// are answered by their product's actor (on SQLite this scans for them).
    async fn order_for_key(
        &self,
        user: UserId,
        scope: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OrderId>, StoreError>;

    /// Whether `user` has a delivered order holding `product`.
    async fn delivered_to(&self, user: UserId, product: ProductId) -> Result<bool, StoreError>;
}

// An order's times are milliseconds in SQLite and timestamps in PostgreSQL.
macro_rules! sqlite_order_columns {
    () => {
        "o.id, o.user_id, o.status, o.total_minor, o.idempotency_key, o.created_at_ms, o.expires_at_ms, o.updated_at_ms"
    };
}
macro_rules! postgres_order_columns {
    () => {
        concat!(
            "o.id, o.user_id, o.status::text AS status, o.total_minor, o.idempotency_key, ",
            $crate::database::ts_to_ms!("o.created_at"),
            " AS created_at_ms, ",
            $crate::database::ts_to_ms!("o.expires_at"),
            " AS expires_at_ms, ",
            $crate::database::ts_to_ms!("o.updated_at"),
            " AS updated_at_ms"
        )
    };
}
pub(crate) use {postgres_order_columns, sqlite_order_columns};

const ORDER: Sql = Sql::each(
    concat!(
        "SELECT ",
        sqlite_order_columns!(),
        " FROM orders o WHERE o.id = $1"
    ),
    concat!(
        "SELECT ",
        postgres_order_columns!(),
        " FROM orders o WHERE o.id = $1"
    ),
);

const ORDERS_WHERE_ID_IN: Sql = Sql::each(
    concat!(
        "SELECT ",
        sqlite_order_columns!(),
        " FROM orders o WHERE o.id IN ("
    ),
    concat!(
        "SELECT ",
        postgres_order_columns!(),
        " FROM orders o WHERE o.id IN ("
    ),
);

const ITEMS_WHERE_ORDER_IN: Sql = Sql::both(
    "SELECT i.order_id AS item_order_id, i.product_id, i.sale_id, i.quantity, \
     i.unit_price_minor FROM order_items i WHERE i.order_id IN (",
);

const ITEMS: Sql = Sql::both(
    "SELECT i.product_id, i.sale_id, i.quantity, i.unit_price_minor \
     FROM order_items i WHERE i.order_id = $1 ORDER BY i.line_no",
);

// The idempotency scope of checkout's keys (Buy Now's are scoped per product), in a macro
// so the statement below names it as a literal.
macro_rules! checkout_scope {
    () => {
        "checkout"
    };
}

/// The idempotency scope of checkout's keys (Buy Now's are `product:<id>`).
pub const CHECKOUT_SCOPE: &str = checkout_scope!();

/// Checkout's keys, through SQLite's partial unique index on them (migration 0026): the
/// scope is a literal, since SQLite uses a partial index only for a query whose terms
/// name its condition.
const ORDER_FOR_CHECKOUT_KEY: Sql = Sql::both(concat!(
    "SELECT id AS order_id FROM orders \
     WHERE user_id = $1 AND idempotency_scope = '",
    checkout_scope!(),
    "' AND idempotency_key = $2"
));

/// Any other scope's. Buy Now's keys are answered by their product's actor, from memory;
/// SQLite keeps no index on them (migration 0026: a random leaf per order), so there this
/// scans the orders. PostgreSQL finds them through its unique index.
const ORDER_FOR_KEY: Sql = Sql::both(
    "SELECT id AS order_id FROM orders \
     WHERE user_id = $1 AND idempotency_scope = $2 AND idempotency_key = $3",
);

const DELIVERED_TO: Sql = Sql::both(
    "SELECT 1 AS found FROM orders o JOIN order_items i ON i.order_id = o.id \
     WHERE o.user_id = $1 AND i.product_id = $2 AND o.status = 'DELIVERED' LIMIT 1",
);

#[async_trait]
impl OrderLookup for Database {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let mut conn = pool.acquire().await?;
            let Some(row) = sqlx::query(D::sql(&ORDER))
                .bind(D::order_id(id))
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(None);
            };
            let items = sqlx::query(D::sql(&ITEMS))
                .bind(D::order_id(id))
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(decode_item)
                .collect::<Result<Vec<_>, _>>()?;
            decode_order(&row, items).map(Some)
        })
    }

    async fn orders(&self, ids: &[OrderId]) -> Result<Vec<Order>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        dialects!(self.pool(), |pool, D| {
            let mut conn = pool.acquire().await?;
            let mut items: HashMap<OrderId, Vec<OrderItem>> = HashMap::new();
            let mut query = QueryBuilder::new(D::sql(&ITEMS_WHERE_ORDER_IN));
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(D::order_id(*id));
            }
            query.push(") ORDER BY i.order_id, i.line_no");
            for row in query.build().fetch_all(&mut *conn).await? {
                items
                    .entry(row.order_id("item_order_id")?)
                    .or_default()
                    .push(decode_item(&row)?);
            }
            let mut query = QueryBuilder::new(D::sql(&ORDERS_WHERE_ID_IN));
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(D::order_id(*id));
            }
            query.push(")");
            query
                .build()
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| {
                    let id = row.order_id("id")?;
                    decode_order(row, items.remove(&id).unwrap_or_default())
                })
                .collect()
        })
    }

    async fn order_for_key(
        &self,
        user: UserId,
        scope: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OrderId>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let query = if scope == CHECKOUT_SCOPE {
                sqlx::query(D::sql(&ORDER_FOR_CHECKOUT_KEY)).bind(int(user.0)?)
            } else {
                sqlx::query(D::sql(&ORDER_FOR_KEY))
                    .bind(int(user.0)?)
                    .bind(scope)
            };
            query
                .bind(key.as_str())
                .fetch_optional(pool)
                .await?
                .map(|row| row.order_id("order_id"))
                .transpose()
        })
    }

    async fn delivered_to(&self, user: UserId, product: ProductId) -> Result<bool, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let found = sqlx::query(D::sql(&DELIVERED_TO))
                .bind(int(user.0)?)
                .bind(int(product.0)?)
                .fetch_optional(pool)
                .await?;
            Ok(found.is_some())
        })
    }
}

const PUT_CHECKOUT: Sql = Sql::both(
    "INSERT INTO order_checkouts (order_id, address_id, payment_method) VALUES ($1, $2, $3)",
);

/// Where a checked-out order goes and how it is paid, in the order's transaction.
pub(crate) async fn put_checkout(
    tx: &mut Transaction<'_>,
    details: &CheckoutDetails,
) -> Result<(), StoreError> {
    dialects!(tx, |tx, D| {
        sqlx::query(D::sql(&PUT_CHECKOUT))
            .bind(D::order_id(details.order_id))
            .bind(&details.address_id)
            .bind(&details.payment_method)
            .execute(&mut **tx)
            .await?;
    });
    Ok(())
}

/// An order selected with the dialect's `*_order_columns!()`.
pub(crate) fn decode_order(
    row: &impl StoredRow,
    items: Vec<OrderItem>,
) -> Result<Order, StoreError> {
    Ok(Order {
        id: row.order_id("id")?,
        user_id: row.user_id("user_id")?,
        status: row.status("status")?,
        items,
        total: row.money("total_minor")?,
        idempotency_key: row.idempotency_key("idempotency_key")?,
        created_at_ms: row.uint("created_at_ms")?,
        expires_at_ms: row.uint("expires_at_ms")?,
        updated_at_ms: row.uint("updated_at_ms")?,
    })
}

pub(crate) fn decode_item(row: &impl StoredRow) -> Result<OrderItem, StoreError> {
    Ok(OrderItem {
        product_id: row.product_id("product_id")?,
        sale_id: row.sale_id("sale_id")?,
        quantity: row.units("quantity")?,
        unit_price: row.money("unit_price_minor")?,
    })
}

/// One order's line of one product, as the stock state machine remembers it.
pub(crate) fn decode_line(row: &impl StoredRow) -> Result<Line, StoreError> {
    Ok(Line {
        order_id: row.order_id("order_id")?,
        user_id: row.user_id("user_id")?,
        idempotency_key: row.idempotency_key("idempotency_key")?,
        quantity: row.units("quantity")?,
        unit_price: row.money("unit_price_minor")?,
        sale_id: row.sale_id("sale_id")?,
        created_at_ms: row.uint("created_at_ms")?,
        expires_at_ms: row.uint("expires_at_ms")?,
        state: line_state(row.status("status")?),
    })
}
