//! The embedded default: one SQLite file in the data directory, in WAL mode.
//!
//! Why these settings:
//! - WAL lets readers (recovery, order lookups) run while the group committer writes.
//! - `synchronous = FULL` fsyncs every commit, so an answered order survives a power cut,
//!   not only a `kill -9`. Group commit pays that fsync once per batch, not per order.
//! - Writes are multi-row `INSERT`s: sqlx hands every statement to SQLite's worker thread,
//!   so one statement per row would cost a channel round trip per row.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use engine::order::{Order, OrderItem};
use engine::stock::{Line, SaleSnapshot, StockSnapshot};
use engine::{FlashSale, IdempotencyKey, Money, OrderId, Product, ProductId, SaleId, UserId};
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::convert::{self, int, uint};
use crate::error::StoreError;
use crate::event::{Event, OutboxRow};
use crate::notification::{CartItem, Notification, Review, ReviewSummary};
use crate::store::{IdHighWater, InventoryLevel, ProductState, SaleLevel, Store};
use crate::write::{CheckoutDetails, Delivery, LedgerKind, Shipment, StatusChange, WriteOp};

// Column lists as macros so that queries stay `&'static str` (sqlx refuses formatted SQL).
macro_rules! product_columns {
    () => {
        "id, title, brand, category, description, price_minor, rating, popularity, stock_initial"
    };
}
macro_rules! sale_columns {
    () => {
        "id, product_id, sale_price_minor, original_price_minor, start_ms, end_ms, stock, per_user_limit"
    };
}
macro_rules! order_columns {
    () => {
        "id, user_id, status, total_minor, idempotency_key, created_at_ms, expires_at_ms, updated_at_ms"
    };
}
macro_rules! item_columns {
    () => {
        "product_id, sale_id, quantity, unit_price_minor"
    };
}

/// SQLite's default cap on bound parameters in one statement.
const SQLITE_PARAMETERS_MAX: usize = 32_766;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `flashcart.db` in `data_dir` and applies the migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Decode(format!("cannot create {}: {error}", data_dir.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("flashcart.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Only the committer writes, but recovery reads may briefly hold the WAL.
            .busy_timeout(Duration::from_secs(5));
        // Four connections: the committer's writer plus readers for recovery and lookups.
        // SQLite has one writer at a time anyway; more connections would only queue.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn apply(tx: &mut Transaction<'_, Sqlite>, ops: &[WriteOp]) -> Result<(), StoreError> {
        let mut orders = Vec::new();
        let mut changes = Vec::new();
        let mut shipments = Vec::new();
        let mut events = Vec::new();
        let mut checkouts = Vec::new();
        for op in ops {
            match op {
                WriteOp::PutProduct {
                    product,
                    stock_initial,
                    shelf_change,
                    at_ms,
                } => put_product(tx, product, *stock_initial, *shelf_change, *at_ms).await?,
                WriteOp::PutSale { sale, at_ms } => put_sale(tx, sale, *at_ms).await?,
                WriteOp::PlaceOrder {
                    order,
                    idempotency_scope,
                } => orders.push((order, idempotency_scope.as_str())),
                WriteOp::SetOrderStatus(change) => changes.push(change),
                WriteOp::PutShipment(shipment) => shipments.push(shipment),
                WriteOp::Emit(event) => events.push(event),
                WriteOp::PutCheckout(details) => checkouts.push(details),
            }
        }
        insert_orders(tx, &orders).await?;
        for details in checkouts {
            put_checkout(tx, details).await?;
        }
        for change in &changes {
            set_status(tx, change).await?;
        }
        for shipment in shipments {
            put_shipment(tx, shipment).await?;
        }
        insert_events(tx, &events).await?;
        let ledger: Vec<LedgerRow> = orders
            .iter()
            .flat_map(|(order, _)| {
                order.items.iter().map(|item| LedgerRow {
                    product_id: item.product_id,
                    order_id: Some(order.id),
                    kind: LedgerKind::Reserve,
                    quantity: i64::from(item.quantity),
                    at_ms: order.created_at_ms,
                })
            })
            .chain(changes.iter().flat_map(|change| {
                change.ledger.iter().map(|stock_move| LedgerRow {
                    product_id: stock_move.product_id,
                    order_id: Some(change.order_id),
                    kind: stock_move.kind,
                    quantity: i64::from(stock_move.units),
                    at_ms: change.at_ms,
                })
            }))
            .collect();
        insert_ledger(tx, &ledger).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        Self::apply(&mut tx, ops).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products WHERE id = ?"
        ))
        .bind(int(id.0)?)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let product = decode_product(&row)?;
        let stock_initial = uint(row.try_get("stock_initial")?)?;

        let sale = sqlx::query(concat!(
            "SELECT ",
            sale_columns!(),
            " FROM flash_sales WHERE product_id = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(int(id.0)?)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| decode_sale(&row))
        .transpose()?;

        let sold: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id
             WHERE i.product_id = ? AND o.status IN ('PAID', 'SHIPPED', 'DELIVERED')",
        )
        .bind(int(id.0)?)
        .fetch_one(&mut *conn)
        .await?;

        let sale = match sale {
            None => None,
            Some(sale) => {
                let rows = sqlx::query(
                    "SELECT o.user_id AS user_id, SUM(i.quantity) AS held,
                            SUM(CASE WHEN o.status IN ('PAID', 'SHIPPED', 'DELIVERED')
                                THEN i.quantity ELSE 0 END) AS sold
                     FROM order_items i JOIN orders o ON o.id = i.order_id
                     WHERE i.sale_id = ? AND o.status NOT IN ('CANCELLED', 'EXPIRED')
                     GROUP BY o.user_id",
                )
                .bind(int(sale.id.0)?)
                .fetch_all(&mut *conn)
                .await?;
                let mut held_by_user = HashMap::with_capacity(rows.len());
                let mut sale_sold = 0u64;
                for row in rows {
                    let user = UserId(uint(row.try_get("user_id")?)?);
                    let held = convert::small(row.try_get("held")?, "per-user holding")?;
                    held_by_user.insert(user, held);
                    sale_sold += uint(row.try_get("sold")?)?;
                }
                Some(SaleSnapshot {
                    sale,
                    sold: sale_sold,
                    held_by_user,
                })
            }
        };

        let lines = sqlx::query(
            "SELECT o.id AS order_id, o.user_id, o.idempotency_key, o.status, o.created_at_ms,
                    o.expires_at_ms, i.quantity, i.unit_price_minor, i.sale_id
             FROM order_items i JOIN orders o ON o.id = i.order_id
             WHERE i.product_id = ? AND (o.status = 'PENDING_PAYMENT' OR o.created_at_ms >= ?)",
        )
        .bind(int(id.0)?)
        .bind(int(lines_since_ms)?)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(decode_line)
        .collect::<Result<Vec<_>, _>>()?;

        Ok(Some(ProductState {
            product,
            stock: StockSnapshot {
                initial: stock_initial,
                sold: uint(sold)?,
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
            " FROM products ORDER BY id"
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
            " FROM orders WHERE id = ?"
        ))
        .bind(id.0.to_string())
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let items = sqlx::query(concat!(
            "SELECT ",
            item_columns!(),
            " FROM order_items WHERE order_id = ? ORDER BY line_no"
        ))
        .bind(id.0.to_string())
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
        let order: Option<String> = sqlx::query_scalar(
            "SELECT order_id FROM idempotency_keys WHERE user_id = ? AND scope = ? AND key = ?",
        )
        .bind(int(user.0)?)
        .bind(scope)
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        order.map(|text| uuid(&text).map(OrderId)).transpose()
    }

    async fn load_shipment(&self, id: OrderId) -> Result<Option<Shipment>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT tracking_id, estimated_delivery_ms, shipped_at_ms, delivered_at_ms, signature, photo_url
             FROM shipments WHERE order_id = ?",
        )
        .bind(id.0.to_string())
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
        let mut items: HashMap<String, Vec<OrderItem>> = HashMap::new();
        let item_rows = sqlx::query(concat!(
            "SELECT i.order_id AS item_order_id, ",
            item_columns!(),
            " FROM order_items i
             JOIN orders o ON o.id = i.order_id
             WHERE o.status = 'PENDING_PAYMENT' ORDER BY i.order_id, i.line_no"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for row in &item_rows {
            let order_id: String = row.try_get("item_order_id")?;
            items.entry(order_id).or_default().push(decode_item(row)?);
        }
        sqlx::query(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders WHERE status = 'PENDING_PAYMENT'"
        ))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            decode_order(row, items.remove(&id).unwrap_or_default())
        })
        .collect()
    }

    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let held: HashMap<i64, i64> = sqlx::query(
            "SELECT i.product_id, SUM(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
             WHERE o.status NOT IN ('CANCELLED', 'EXPIRED') GROUP BY i.product_id",
        )
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, StoreError>>()?;
        let sale_held: HashMap<i64, i64> = sqlx::query(
            "SELECT i.sale_id, SUM(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
             WHERE i.sale_id IS NOT NULL AND o.status NOT IN ('CANCELLED', 'EXPIRED') GROUP BY i.sale_id",
        )
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, StoreError>>()?;
        let mut sales: HashMap<i64, FlashSale> = HashMap::new();
        let sale_rows = sqlx::query(concat!(
            "SELECT ",
            sale_columns!(),
            " FROM flash_sales s WHERE id = (SELECT MAX(id) FROM flash_sales WHERE product_id = s.product_id)"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for row in &sale_rows {
            let sale = decode_sale(row)?;
            sales.insert(int(sale.product_id.0)?, sale);
        }
        let products = sqlx::query("SELECT id, stock_initial FROM products ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
        let mut levels = Vec::with_capacity(products.len());
        for row in &products {
            let id: i64 = row.try_get(0)?;
            let initial = uint(row.try_get(1)?)?;
            let promised = uint(held.get(&id).copied().unwrap_or(0))?;
            let sale = match sales.remove(&id) {
                None => None,
                Some(sale) => {
                    let held = uint(sale_held.get(&int(sale.id.0)?).copied().unwrap_or(0))?;
                    Some(SaleLevel { sale, held })
                }
            };
            levels.push(InventoryLevel {
                product_id: ProductId(uint(id)?),
                left: initial.checked_sub(promised).ok_or_else(|| {
                    StoreError::Decode(format!(
                        "product {id} promised {promised} of {initial} units"
                    ))
                })?,
                sale,
            });
        }
        Ok(levels)
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
        sqlx::query(
            "SELECT seq, topic, event_type, entity_key, payload FROM outbox ORDER BY seq LIMIT ?",
        )
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
        for chunk in seqs.chunks(SQLITE_PARAMETERS_MAX) {
            let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM outbox WHERE seq IN (");
            let mut list = query.separated(", ");
            for seq in chunk {
                list.push_bind(*seq);
            }
            query.push(")");
            query.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn record_notifications(
        &self,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        // Seven parameters a row.
        const ROWS_MAX: usize = SQLITE_PARAMETERS_MAX / 7;
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for chunk in notifications.chunks(ROWS_MAX) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO notifications (dedup_key, user_id, order_id, kind, channel, body, sent_at_ms) ",
            );
            let mut failed = None;
            query.push_values(chunk, |mut row, notification| {
                let user = int(notification.user_id.0);
                let sent = int(notification.sent_at_ms);
                if let (Err(error), _) | (_, Err(error)) = (&user, &sent) {
                    failed = Some(error.to_string());
                }
                row.push_bind(notification.dedup_key.clone())
                    .push_bind(user.unwrap_or_default())
                    .push_bind(notification.order_id.map(|id| id.0.to_string()))
                    .push_bind(notification.kind.clone())
                    .push_bind(notification.channel.clone())
                    .push_bind(notification.body.clone())
                    .push_bind(sent.unwrap_or_default());
            });
            if let Some(error) = failed {
                return Err(StoreError::Decode(error));
            }
            query.push(" ON CONFLICT (dedup_key) DO NOTHING");
            inserted += query.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        sqlx::query(
            "SELECT dedup_key, user_id, order_id, kind, channel, body, sent_at_ms
             FROM notifications WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(int(user.0)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let order_id: Option<String> = row.try_get("order_id")?;
            Ok(Notification {
                dedup_key: row.try_get("dedup_key")?,
                user_id: UserId(uint(row.try_get("user_id")?)?),
                order_id: order_id.as_deref().map(uuid).transpose()?.map(OrderId),
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
             VALUES (?, ?, ?)
             ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
             RETURNING partner_id",
        )
        .bind(order.0.to_string())
        .bind(partner)
        .bind(int(at_ms)?)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn delivery_partner(&self, order: OrderId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT partner_id FROM delivery_assignments WHERE order_id = ?")
                .bind(order.0.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn cart(&self, user: UserId, since_ms: u64) -> Result<Vec<CartItem>, StoreError> {
        sqlx::query("DELETE FROM cart_items WHERE user_id = ? AND updated_at_ms < ?")
            .bind(int(user.0)?)
            .bind(int(since_ms)?)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "SELECT product_id, quantity, added_at_ms, updated_at_ms FROM cart_items
             WHERE user_id = ? ORDER BY added_at_ms, product_id",
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
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (user_id, product_id)
             DO UPDATE SET quantity = excluded.quantity, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(int(user.0)?)
        .bind(int(item.product_id.0)?)
        .bind(i64::from(item.quantity))
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
        let mut removed = 0;
        for product in products {
            removed += sqlx::query("DELETE FROM cart_items WHERE user_id = ? AND product_id = ?")
                .bind(int(user.0)?)
                .bind(int(product.0)?)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }

    async fn received(&self, user: UserId, product: ProductId) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
             WHERE o.user_id = ? AND i.product_id = ? AND o.status = 'DELIVERED' LIMIT 1",
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
             VALUES (?, ?, ?, ?, ?, ?)
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
            "SELECT product_id, user_id, rating, title, body, created_at_ms FROM reviews
             WHERE product_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
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

async fn put_product(
    tx: &mut Transaction<'_, Sqlite>,
    product: &Product,
    stock_initial: u64,
    shelf_change: i64,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO products (id, title, brand, category, description, price_minor, rating,
                               popularity, stock_initial, created_at_ms, updated_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
            title = excluded.title, brand = excluded.brand, category = excluded.category,
            description = excluded.description, price_minor = excluded.price_minor,
            rating = excluded.rating, popularity = excluded.popularity,
            stock_initial = excluded.stock_initial, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(int(product.id.0)?)
    .bind(&product.title)
    .bind(&product.brand)
    .bind(&product.category)
    .bind(&product.description)
    .bind(int(product.price.0)?)
    .bind(f64::from(product.rating))
    .bind(int(product.popularity)?)
    .bind(int(stock_initial)?)
    .bind(int(at_ms)?)
    .bind(int(at_ms)?)
    .execute(&mut **tx)
    .await?;
    if shelf_change != 0 {
        let row = LedgerRow {
            product_id: product.id,
            order_id: None,
            kind: LedgerKind::StockSet,
            quantity: shelf_change,
            at_ms,
        };
        insert_ledger(tx, &[row]).await?;
    }
    Ok(())
}

async fn put_sale(
    tx: &mut Transaction<'_, Sqlite>,
    sale: &FlashSale,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO flash_sales (id, product_id, sale_price_minor, original_price_minor,
                                  start_ms, end_ms, stock, per_user_limit, created_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(int(sale.id.0)?)
    .bind(int(sale.product_id.0)?)
    .bind(int(sale.sale_price.0)?)
    .bind(int(sale.original_price.0)?)
    .bind(int(sale.start_ms)?)
    .bind(sale.end_ms.map(int).transpose()?)
    .bind(int(sale.stock)?)
    .bind(i64::from(sale.per_user_limit))
    .bind(int(at_ms)?)
    .execute(&mut **tx)
    .await?;
    let row = LedgerRow {
        product_id: sale.product_id,
        order_id: None,
        kind: LedgerKind::SaleCarve,
        quantity: int(sale.stock)?,
        at_ms,
    };
    insert_ledger(tx, &[row]).await
}

async fn insert_orders(
    tx: &mut Transaction<'_, Sqlite>,
    orders: &[(&Order, &str)],
) -> Result<(), StoreError> {
    if orders.is_empty() {
        return Ok(());
    }
    for chunk in orders.chunks(SQLITE_PARAMETERS_MAX / 8) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO orders (id, user_id, status, total_minor, idempotency_key, \
             created_at_ms, expires_at_ms, updated_at_ms) ",
        );
        let rows = chunk
            .iter()
            .map(|(order, _)| {
                Ok((
                    order.id.0.to_string(),
                    int(order.user_id.0)?,
                    order.status.as_str(),
                    int(order.total.0)?,
                    order.idempotency_key.to_string(),
                    int(order.created_at_ms)?,
                    int(order.expires_at_ms)?,
                    int(order.updated_at_ms)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        query.push_values(rows, |mut values, row| {
            values
                .push_bind(row.0)
                .push_bind(row.1)
                .push_bind(row.2)
                .push_bind(row.3)
                .push_bind(row.4)
                .push_bind(row.5)
                .push_bind(row.6)
                .push_bind(row.7);
        });
        query.build().execute(&mut **tx).await?;
    }

    let mut items = Vec::new();
    for (order, _) in orders {
        for (line_no, item) in order.items.iter().enumerate() {
            items.push((
                order.id.0.to_string(),
                i64::try_from(line_no)
                    .map_err(|_| StoreError::Conflict("too many lines".into()))?,
                int(item.product_id.0)?,
                item.sale_id.map(|sale| int(sale.0)).transpose()?,
                i64::from(item.quantity),
                int(item.unit_price.0)?,
            ));
        }
    }
    for chunk in items.chunks(SQLITE_PARAMETERS_MAX / 6) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO order_items (order_id, line_no, product_id, sale_id, quantity, \
             unit_price_minor) ",
        );
        query.push_values(chunk.iter().cloned(), |mut values, row| {
            values
                .push_bind(row.0)
                .push_bind(row.1)
                .push_bind(row.2)
                .push_bind(row.3)
                .push_bind(row.4)
                .push_bind(row.5);
        });
        query.build().execute(&mut **tx).await?;
    }

    for chunk in orders.chunks(SQLITE_PARAMETERS_MAX / 5) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO idempotency_keys (user_id, scope, key, order_id, created_at_ms) ",
        );
        let rows = chunk
            .iter()
            .map(|(order, scope)| {
                Ok((
                    int(order.user_id.0)?,
                    scope.to_string(),
                    order.idempotency_key.to_string(),
                    order.id.0.to_string(),
                    int(order.created_at_ms)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        query.push_values(rows, |mut values, row| {
            values
                .push_bind(row.0)
                .push_bind(row.1)
                .push_bind(row.2)
                .push_bind(row.3)
                .push_bind(row.4);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_events(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[&Event],
) -> Result<(), StoreError> {
    for chunk in events.chunks(SQLITE_PARAMETERS_MAX / 4) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (topic, event_type, entity_key, payload) ",
        );
        query.push_values(chunk, |mut values, event| {
            values
                .push_bind(event.topic.name())
                .push_bind(event.event_type)
                .push_bind(event.key.clone())
                .push_bind(event.payload.as_str());
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn put_shipment(
    tx: &mut Transaction<'_, Sqlite>,
    shipment: &Shipment,
) -> Result<(), StoreError> {
    let delivered = shipment.delivered.as_ref();
    sqlx::query(
        "INSERT INTO shipments (order_id, tracking_id, estimated_delivery_ms, shipped_at_ms,
                                delivered_at_ms, signature, photo_url)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (order_id) DO UPDATE SET tracking_id = excluded.tracking_id,
            estimated_delivery_ms = excluded.estimated_delivery_ms,
            delivered_at_ms = excluded.delivered_at_ms, signature = excluded.signature,
            photo_url = excluded.photo_url",
    )
    .bind(shipment.order_id.0.to_string())
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
    tx: &mut Transaction<'_, Sqlite>,
    details: &CheckoutDetails,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_checkouts (order_id, address_id, payment_method) VALUES (?, ?, ?)",
    )
    .bind(details.order_id.0.to_string())
    .bind(&details.address_id)
    .bind(&details.payment_method)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_status(
    tx: &mut Transaction<'_, Sqlite>,
    change: &StatusChange,
) -> Result<(), StoreError> {
    if let Some(payment) = &change.payment {
        // A replayed webhook carries a transaction already recorded: nothing to add.
        sqlx::query(
            "INSERT INTO payments (order_id, transaction_id, status, amount_minor) VALUES (?, ?, ?, ?)
             ON CONFLICT (transaction_id) DO NOTHING",
        )
        .bind(change.order_id.0.to_string())
        .bind(&payment.transaction_id)
        .bind(if payment.succeeded { "SUCCESS" } else { "FAILED" })
        .bind(int(payment.amount.0)?)
        .execute(&mut **tx)
        .await?;
    }
    let updated =
        sqlx::query("UPDATE orders SET status = ?, updated_at_ms = ? WHERE id = ? AND status = ?")
            .bind(change.to.as_str())
            .bind(int(change.at_ms)?)
            .bind(change.order_id.0.to_string())
            .bind(change.from.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if updated != 1 {
        return Err(StoreError::Conflict(format!(
            "order {} is not {} any more",
            change.order_id, change.from
        )));
    }
    Ok(())
}

struct LedgerRow {
    product_id: ProductId,
    order_id: Option<OrderId>,
    kind: LedgerKind,
    quantity: i64,
    at_ms: u64,
}

async fn insert_ledger(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[LedgerRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(SQLITE_PARAMETERS_MAX / 5) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO stock_ledger (product_id, order_id, kind, quantity, at_ms) ",
        );
        let values = chunk
            .iter()
            .map(|row| {
                Ok((
                    int(row.product_id.0)?,
                    row.order_id.map(|id| id.0.to_string()),
                    row.kind.as_str(),
                    row.quantity,
                    int(row.at_ms)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        query.push_values(values, |mut values, row| {
            values
                .push_bind(row.0)
                .push_bind(row.1)
                .push_bind(row.2)
                .push_bind(row.3)
                .push_bind(row.4);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::from_str(text).map_err(|error| StoreError::Decode(format!("order id {text}: {error}")))
}

fn decode_product(row: &SqliteRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: ProductId(uint(row.try_get("id")?)?),
        title: row.try_get("title")?,
        brand: row.try_get("brand")?,
        category: row.try_get("category")?,
        description: row.try_get("description")?,
        price: Money(uint(row.try_get("price_minor")?)?),
        rating: row.try_get::<f64, _>("rating")? as f32,
        popularity: uint(row.try_get("popularity")?)?,
    })
}

fn decode_sale(row: &SqliteRow) -> Result<FlashSale, StoreError> {
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
        per_user_limit: convert::small(row.try_get("per_user_limit")?, "per-user limit")?,
    })
}

fn decode_quantity(row: &SqliteRow) -> Result<u32, StoreError> {
    convert::small(row.try_get("quantity")?, "quantity")
}

fn decode_line(row: &SqliteRow) -> Result<Line, StoreError> {
    let status = convert::status(row.try_get("status")?)?;
    let state = convert::line_state(status);
    Ok(Line {
        order_id: OrderId(uuid(row.try_get("order_id")?)?),
        user_id: UserId(uint(row.try_get("user_id")?)?),
        idempotency_key: convert::idempotency_key(row.try_get("idempotency_key")?)?,
        quantity: decode_quantity(row)?,
        unit_price: Money(uint(row.try_get("unit_price_minor")?)?),
        sale_id: row
            .try_get::<Option<i64>, _>("sale_id")?
            .map(uint)
            .transpose()?
            .map(SaleId),
        created_at_ms: uint(row.try_get("created_at_ms")?)?,
        expires_at_ms: uint(row.try_get("expires_at_ms")?)?,
        state,
    })
}

fn decode_item(row: &SqliteRow) -> Result<OrderItem, StoreError> {
    Ok(OrderItem {
        product_id: ProductId(uint(row.try_get("product_id")?)?),
        sale_id: row
            .try_get::<Option<i64>, _>("sale_id")?
            .map(uint)
            .transpose()?
            .map(SaleId),
        quantity: decode_quantity(row)?,
        unit_price: Money(uint(row.try_get("unit_price_minor")?)?),
    })
}

fn decode_order(row: &SqliteRow, items: Vec<OrderItem>) -> Result<Order, StoreError> {
    Ok(Order {
        id: OrderId(uuid(row.try_get("id")?)?),
        user_id: UserId(uint(row.try_get("user_id")?)?),
        status: convert::status(row.try_get("status")?)?,
        items,
        total: Money(uint(row.try_get("total_minor")?)?),
        idempotency_key: convert::idempotency_key(row.try_get("idempotency_key")?)?,
        created_at_ms: uint(row.try_get("created_at_ms")?)?,
        expires_at_ms: uint(row.try_get("expires_at_ms")?)?,
        updated_at_ms: uint(row.try_get("updated_at_ms")?)?,
    })
}

fn decode_cart_item(row: &SqliteRow) -> Result<CartItem, StoreError> {
    let quantity: i64 = row.try_get("quantity")?;
    Ok(CartItem {
        product_id: ProductId(uint(row.try_get("product_id")?)?),
        quantity: u32::try_from(quantity)
            .map_err(|_| StoreError::Decode(format!("cart quantity {quantity}")))?,
        added_at_ms: uint(row.try_get("added_at_ms")?)?,
        updated_at_ms: uint(row.try_get("updated_at_ms")?)?,
    })
}

impl SqliteStore {
    async fn review_summary(&self, product: ProductId) -> Result<ReviewSummary, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS count, AVG(rating) AS average FROM reviews WHERE product_id = ?",
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
