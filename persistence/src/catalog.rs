//! The catalog: product records and their flash sales.
//!
//! Products and sales are written by their product actor through the group committer
//! (`WriteOp::PutProduct`, `WriteOp::PutSale`), so the statements here run inside the
//! ledger's transaction; [`CatalogStore`] is the read side the in-memory catalog is built
//! from at start.
//!
//! The dialects differ in how stock is kept: SQLite derives it from
//! `products.stock_initial` and the orders, PostgreSQL keeps checked counters in
//! `inventory` too. Both record every shelf change in `stock_ledger`.

use async_trait::async_trait;
use engine::{FlashSale, Product, ProductId};
use futures_util::TryStreamExt;

use crate::database::{Backend, Database, Sql, Transaction, dialects, ms_to_ts};
use crate::error::StoreError;
use crate::row::{StoredRow, int};
use crate::write::LedgerKind;

/// What the in-memory catalog is built from.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Every product's catalog record, by id.
    async fn load_catalog(&self) -> Result<Vec<Product>, StoreError>;

    /// Product records written and sales scheduled at or after `since_ms` (by the writer's
    /// clock), oldest first: how a cluster node follows the others' catalog. PostgreSQL
    /// only.
    async fn catalog_changes(&self, since_ms: u64) -> Result<CatalogChanges, StoreError>;
}

/// What changed in the catalog since a time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CatalogChanges {
    /// Records with when they were written.
    pub products: Vec<(Product, u64)>,
    /// Sales with when they were scheduled.
    pub sales: Vec<(FlashSale, u64)>,
}

macro_rules! product_columns {
    () => {
        "p.id, p.title, p.brand, p.category, p.description, p.price_minor, p.rating, p.popularity, p.seller_id"
    };
}
pub(crate) use product_columns;

// A sale's times are milliseconds in SQLite and timestamps in PostgreSQL.
macro_rules! sqlite_sale_columns {
    () => {
        "s.id, s.product_id, s.sale_price_minor, s.original_price_minor, s.start_ms, s.end_ms, s.stock, s.per_user_limit, s.cancelled_at_ms"
    };
}
macro_rules! postgres_sale_columns {
    () => {
        concat!(
            "s.id, s.product_id, s.sale_price_minor, s.original_price_minor, ",
            $crate::database::ts_to_ms!("s.start_at"),
            " AS start_ms, ",
            $crate::database::ts_to_ms!("s.end_at"),
            " AS end_ms, s.stock, s.per_user_limit, ",
            $crate::database::ts_to_ms!("s.cancelled_at"),
            " AS cancelled_at_ms"
        )
    };
}
pub(crate) use {postgres_sale_columns, sqlite_sale_columns};

const CATALOG: Sql = Sql::both(concat!(
    "SELECT ",
    product_columns!(),
    " FROM products p ORDER BY p.id"
));

const CHANGED_PRODUCTS: &str = concat!(
    "SELECT ",
    product_columns!(),
    ", ",
    crate::database::ts_to_ms!("p.updated_at"),
    " AS changed_ms FROM products p WHERE p.updated_at >= ",
    ms_to_ts!("$1"),
    " ORDER BY p.updated_at, p.id"
);

const CHANGED_SALES: &str = concat!(
    "SELECT ",
    postgres_sale_columns!(),
    ", ",
    crate::database::ts_to_ms!("s.changed_at"),
    " AS changed_ms FROM flash_sales s WHERE s.changed_at >= ",
    ms_to_ts!("$1"),
    " ORDER BY s.changed_at, s.id"
);

#[async_trait]
impl CatalogStore for Database {
    async fn load_catalog(&self) -> Result<Vec<Product>, StoreError> {
        // Streamed and decoded row by row: the whole result set as rows at once would cost
        // several times the catalog itself at a million products.
        dialects!(self.pool(), |pool, D| {
            let mut rows = sqlx::query(D::sql(&CATALOG)).fetch(pool);
            let mut products = Vec::new();
            while let Some(row) = rows.try_next().await? {
                products.push(decode_product(&row)?);
            }
            Ok(products)
        })
    }

    async fn catalog_changes(&self, since_ms: u64) -> Result<CatalogChanges, StoreError> {
        let Backend::Postgres(pool) = self.pool() else {
            return Err(crate::shard_leases::leases_need_postgres());
        };
        let since = int(since_ms)?;
        let mut changes = CatalogChanges::default();
        for row in sqlx::query(CHANGED_PRODUCTS)
            .bind(since)
            .fetch_all(pool)
            .await?
        {
            changes
                .products
                .push((decode_product(&row)?, row.uint("changed_ms")?));
        }
        for row in sqlx::query(CHANGED_SALES)
            .bind(since)
            .fetch_all(pool)
            .await?
        {
            changes
                .sales
                .push((decode_sale(&row)?, row.uint("changed_ms")?));
        }
        Ok(changes)
    }
}

// A product's record; its stock total moves by the shelf change (a new product starts with
// its whole stock on the shelf). PostgreSQL's inventory checks refuse a shelf below what
// is promised.
const PUT_PRODUCT: Sql = Sql::each(
    "INSERT INTO products (id, title, brand, category, description, price_minor, rating, \
     popularity, stock_initial, created_at_ms, updated_at_ms, seller_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $12) \
     ON CONFLICT (id) DO UPDATE SET title = excluded.title, brand = excluded.brand, \
     category = excluded.category, description = excluded.description, \
     price_minor = excluded.price_minor, rating = excluded.rating, \
     popularity = excluded.popularity, stock_initial = products.stock_initial + $11, \
     updated_at_ms = excluded.updated_at_ms, seller_id = excluded.seller_id",
    concat!(
        "WITH product AS (",
        "INSERT INTO products (id, title, brand, category, description, price_minor, rating, popularity, created_at, updated_at, seller_id) ",
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ",
        ms_to_ts!("$10"),
        ", ",
        ms_to_ts!("$10"),
        ", $12) ",
        "ON CONFLICT (id) DO UPDATE SET title = excluded.title, brand = excluded.brand, category = excluded.category, ",
        "description = excluded.description, price_minor = excluded.price_minor, rating = excluded.rating, ",
        "popularity = excluded.popularity, updated_at = excluded.updated_at, seller_id = excluded.seller_id RETURNING id) ",
        r#"INSERT INTO inventory (product_id, initial, reserved, sold, "left") SELECT id, $9, 0, 0, $9 FROM product "#,
        r#"ON CONFLICT (product_id) DO UPDATE SET initial = inventory.initial + $11, "left" = inventory."left" + $11"#
    ),
);

/// Creates or replaces a product's record, with `stock_initial` units for a new product or
/// `shelf_change` more (or fewer) for an existing one.
pub(crate) async fn put_product(
    tx: &mut Transaction<'_>,
    product: &Product,
    stock_initial: u64,
    shelf_change: i64,
    at_ms: u64,
) -> Result<(), StoreError> {
    dialects!(&mut *tx, |tx, D| {
        sqlx::query(D::sql(&PUT_PRODUCT))
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
            .bind(shelf_change)
            .bind(product.seller_id.map(|seller| int(seller.0)).transpose()?)
            .execute(&mut **tx)
            .await?;
    });
    if shelf_change != 0 {
        insert_shelf_move(tx, product.id, LedgerKind::StockSet, shelf_change, at_ms).await?;
    }
    Ok(())
}

const PUT_SALE: Sql = Sql::each(
    "INSERT INTO flash_sales (id, product_id, sale_price_minor, original_price_minor, \
     start_ms, end_ms, stock, per_user_limit, created_at_ms, changed_at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    concat!(
        "INSERT INTO flash_sales (id, product_id, sale_price_minor, original_price_minor, start_at, end_at, stock, per_user_limit, created_at, changed_at) ",
        "VALUES ($1, $2, $3, $4, ",
        ms_to_ts!("$5"),
        ", ",
        ms_to_ts!("$6"),
        ", $7, $8::int4, ",
        ms_to_ts!("$9"),
        ", ",
        ms_to_ts!("$9"),
        ")"
    ),
);

const CHANGE_SALE: Sql = Sql::each(
    "UPDATE flash_sales SET start_ms = $2, end_ms = $3, cancelled_at_ms = $4, changed_at_ms = $5 \
     WHERE id = $1",
    concat!(
        "UPDATE flash_sales SET start_at = ",
        ms_to_ts!("$2"),
        ", end_at = ",
        ms_to_ts!("$3"),
        ", cancelled_at = ",
        ms_to_ts!("$4"),
        ", changed_at = ",
        ms_to_ts!("$5"),
        " WHERE id = $1"
    ),
);

/// Schedules a sale; its pool is carved out of the shelf.
pub(crate) async fn put_sale(
    tx: &mut Transaction<'_>,
    sale: &FlashSale,
    at_ms: u64,
) -> Result<(), StoreError> {
    dialects!(&mut *tx, |tx, D| {
        sqlx::query(D::sql(&PUT_SALE))
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
    });
    let carved = int(sale.stock)?;
    insert_shelf_move(tx, sale.product_id, LedgerKind::SaleCarve, carved, at_ms).await
}

/// Cancels a sale or moves its window (`WriteOp::ChangeSale`): its pool keeps its units
/// and counters; a sale that ended gives its leftover back by itself (the stock state
/// machine's `settle`), so the ledger has nothing to record.
pub(crate) async fn change_sale(
    tx: &mut Transaction<'_>,
    sale: &FlashSale,
    at_ms: u64,
) -> Result<(), StoreError> {
    let changed = dialects!(&mut *tx, |tx, D| {
        sqlx::query(D::sql(&CHANGE_SALE))
            .bind(int(sale.id.0)?)
            .bind(int(sale.start_ms)?)
            .bind(sale.end_ms.map(int).transpose()?)
            .bind(sale.cancelled_at_ms.map(int).transpose()?)
            .bind(int(at_ms)?)
            .execute(&mut **tx)
            .await?
            .rows_affected()
    });
    if changed != 1 {
        return Err(StoreError::Conflict(format!(
            "no sale {} to change",
            sale.id
        )));
    }
    Ok(())
}

const SHELF_MOVE: Sql = Sql::each(
    "INSERT INTO stock_ledger (product_id, order_id, kind, quantity, at_ms) \
     VALUES ($1, NULL, $2, $3, $4)",
    concat!(
        "INSERT INTO stock_ledger (product_id, order_id, kind, quantity, at) VALUES ($1, NULL, $2, $3, ",
        ms_to_ts!("$4"),
        ")"
    ),
);

/// A ledger row for a change of the shelf itself (a restock, a sale's carve), which no
/// order caused.
async fn insert_shelf_move(
    tx: &mut Transaction<'_>,
    product_id: ProductId,
    kind: LedgerKind,
    quantity: i64,
    at_ms: u64,
) -> Result<(), StoreError> {
    dialects!(tx, |tx, D| {
        sqlx::query(D::sql(&SHELF_MOVE))
            .bind(int(product_id.0)?)
            .bind(kind.as_str())
            .bind(quantity)
            .bind(int(at_ms)?)
            .execute(&mut **tx)
            .await?;
    });
    Ok(())
}

pub(crate) fn decode_product(row: &impl StoredRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: row.product_id("id")?,
        title: row.text("title")?,
        brand: row.text("brand")?,
        category: row.text("category")?,
        description: row.text("description")?,
        price: row.money("price_minor")?,
        rating: row.real("rating")?.unwrap_or_default() as f32,
        popularity: row.uint("popularity")?,
        seller_id: row.opt_uint("seller_id")?.map(engine::UserId),
    })
}

/// A sale selected with the dialect's `*_sale_columns!()`.
pub(crate) fn decode_sale(row: &impl StoredRow) -> Result<FlashSale, StoreError> {
    Ok(FlashSale {
        id: engine::SaleId(row.uint("id")?),
        product_id: row.product_id("product_id")?,
        sale_price: row.money("sale_price_minor")?,
        original_price: row.money("original_price_minor")?,
        start_ms: row.uint("start_ms")?,
        end_ms: row.opt_uint("end_ms")?,
        stock: row.uint("stock")?,
        per_user_limit: row.units("per_user_limit")?,
        cancelled_at_ms: row.opt_uint("cancelled_at_ms")?,
    })
}

/// Whether `backend` keeps `inventory` counters (PostgreSQL) beside the orders.
pub(crate) fn keeps_inventory_counters<S, P>(backend: &Backend<S, P>) -> bool {
    matches!(backend, Backend::Postgres(_))
}
