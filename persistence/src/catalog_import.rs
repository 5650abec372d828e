//! Bulk import of catalog records: thousands of products per transaction, for loading a
//! seller's catalog (or a million products for a benchmark) while the engine is stopped.
//!
//! The engine's own writes go product by product through the group committer
//! (`WriteOp::PutProduct`: two statements each, one hand-off to SQLite's thread per
//! statement). An import instead writes a chunk of products with a few multi-row
//! statements, and the engine finds them when it starts: its catalog and search index
//! are built from the store.
//!
//! Semantics, so that running the same file twice is harmless: a new id is created with
//! its stock on the shelf (and a `stock_set` ledger row, as the engine writes); an id that
//! exists has its record replaced and its stock left alone (stock moves through the
//! inventory API, where reservations are accounted for).

use std::collections::HashSet;

use engine::Product;

use crate::database::{Backend, Database, ms_to_ts};
use crate::error::StoreError;
use crate::ledger::batch_statements::chunks;
use crate::row::int;
use crate::write::LedgerKind;

/// One catalog record to import, with the units to shelve if it is new.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedProduct {
    pub product: Product,
    pub stock: u64,
}

/// What one import call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
}

impl std::ops::AddAssign for ImportSummary {
    fn add_assign(&mut self, other: Self) {
        self.created += other.created;
        self.updated += other.updated;
    }
}

const SQLITE_EXISTING: &str =
    "SELECT id FROM products WHERE id IN (SELECT value FROM json_each($1))";
const POSTGRES_EXISTING: &str = "SELECT id FROM products WHERE id = ANY($1::int8[])";

const SQLITE_PRODUCTS: &str = "INSERT INTO products (id, title, brand, category, description, \
     price_minor, rating, popularity, stock_initial, created_at_ms, updated_at_ms, seller_id) ";
const SQLITE_PRODUCTS_CONFLICT: &str = " ON CONFLICT (id) DO UPDATE SET title = excluded.title, \
     brand = excluded.brand, category = excluded.category, description = excluded.description, \
     price_minor = excluded.price_minor, rating = excluded.rating, \
     popularity = excluded.popularity, updated_at_ms = excluded.updated_at_ms, \
     seller_id = excluded.seller_id";
const SQLITE_LEDGER: &str =
    "INSERT INTO stock_ledger (product_id, order_id, kind, quantity, at_ms) ";

const POSTGRES_PRODUCTS: &str = concat!(
    "INSERT INTO products (id, title, brand, category, description, price_minor, rating, popularity, created_at, updated_at, seller_id) ",
    "SELECT p.id, p.title, p.brand, p.category, p.description, p.price, p.rating, p.popularity, ",
    ms_to_ts!("$9"),
    ", ",
    ms_to_ts!("$9"),
    ", p.seller_id",
    " FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::float4[], $8::int8[], $10::int8[]) ",
    "AS p(id, title, brand, category, description, price, rating, popularity, seller_id) ",
    "ON CONFLICT (id) DO UPDATE SET title = excluded.title, brand = excluded.brand, category = excluded.category, ",
    "description = excluded.description, price_minor = excluded.price_minor, rating = excluded.rating, ",
    "popularity = excluded.popularity, updated_at = excluded.updated_at, seller_id = excluded.seller_id"
);
const POSTGRES_NEW_STOCK: &str = concat!(
    "WITH shelved AS (",
    r#"INSERT INTO inventory (product_id, initial, reserved, sold, "left") "#,
    "SELECT s.id, s.stock, 0, 0, s.stock FROM UNNEST($1::int8[], $2::int8[]) AS s(id, stock)) ",
    "INSERT INTO stock_ledger (product_id, order_id, kind, quantity, at) ",
    "SELECT s.id, NULL, $3, s.stock, ",
    ms_to_ts!("$4"),
    " FROM UNNEST($1::int8[], $2::int8[]) AS s(id, stock) WHERE s.stock > 0"
);

/// Columns of one product row in SQLite's multi-row insert.
const SQLITE_PRODUCT_COLUMNS: usize = 12;

/// The numbers of an import, checked to fit the store's signed columns once, up front.
struct Checked<'a> {
    products: &'a [ImportedProduct],
    ids: Vec<i64>,
    prices: Vec<i64>,
    popularity: Vec<i64>,
    sellers: Vec<Option<i64>>,
    stocks: Vec<i64>,
    /// Indices of the products that do not exist yet.
    new: Vec<usize>,
    at: i64,
}

impl<'a> Checked<'a> {
    fn new(products: &'a [ImportedProduct], at_ms: u64) -> Result<Self, StoreError> {
        let column = |value: fn(&ImportedProduct) -> u64| {
            products
                .iter()
                .map(|imported| int(value(imported)))
                .collect::<Result<Vec<i64>, _>>()
        };
        let ids = column(|imported| imported.product.id.0)?;
        let mut distinct = HashSet::with_capacity(ids.len());
        if let Some(twice) = ids.iter().find(|id| !distinct.insert(**id)) {
            return Err(StoreError::Conflict(format!(
                "product {twice} appears twice in one import"
            )));
        }
        Ok(Self {
            products,
            ids,
            prices: column(|imported| imported.product.price.0)?,
            popularity: column(|imported| imported.product.popularity)?,
            sellers: products
                .iter()
                .map(|imported| {
                    imported
                        .product
                        .seller_id
                        .map(|seller| int(seller.0))
                        .transpose()
                })
                .collect::<Result<Vec<_>, _>>()?,
            stocks: column(|imported| imported.stock)?,
            new: Vec::new(),
            at: int(at_ms)?,
        })
    }

    /// The new products that start with units on the shelf: (id, stock) pairs.
    fn shelved(&self) -> (Vec<i64>, Vec<i64>) {
        self.new
            .iter()
            .filter(|i| self.stocks[**i] > 0)
            .map(|i| (self.ids[*i], self.stocks[*i]))
            .unzip()
    }
}

impl Database {
    /// Creates or replaces `products` in one transaction (see the module's semantics) and
    /// says how many were new. An id may appear once per call.
    pub async fn import_products(
        &self,
        products: &[ImportedProduct],
        at_ms: u64,
    ) -> Result<ImportSummary, StoreError> {
        if products.is_empty() {
            return Ok(ImportSummary::default());
        }
        let mut rows = Checked::new(products, at_ms)?;
        let mut tx = self.begin().await?;
        let existing: HashSet<i64> = match &mut tx {
            Backend::Sqlite(tx) => {
                let list = serde_json::to_string(&rows.ids)
                    .map_err(|error| StoreError::Decode(error.to_string()))?;
                sqlx::query_scalar(SQLITE_EXISTING)
                    .bind(list)
                    .fetch_all(&mut **tx)
                    .await?
            }
            Backend::Postgres(tx) => {
                sqlx::query_scalar(POSTGRES_EXISTING)
                    .bind(&rows.ids)
                    .fetch_all(&mut **tx)
                    .await?
            }
        }
        .into_iter()
        .collect();
        rows.new = (0..products.len())
            .filter(|i| !existing.contains(&rows.ids[*i]))
            .collect();
        match &mut tx {
            Backend::Sqlite(tx) => write_sqlite(tx, &rows).await?,
            Backend::Postgres(tx) => write_postgres(tx, &rows).await?,
        }
        tx.commit().await?;
        Ok(ImportSummary {
            created: rows.new.len() as u64,
            updated: existing.len() as u64,
        })
    }
}

async fn write_sqlite(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: &Checked<'_>,
) -> Result<(), StoreError> {
    for chunk in chunks(rows.products.len(), SQLITE_PRODUCT_COLUMNS) {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(SQLITE_PRODUCTS);
        query.push_values(chunk, |mut row, i| {
            let product = &rows.products[i].product;
            row.push_bind(rows.ids[i])
                .push_bind(product.title.as_str())
                .push_bind(product.brand.as_str())
                .push_bind(product.category.as_str())
                .push_bind(product.description.as_str())
                .push_bind(rows.prices[i])
                .push_bind(f64::from(product.rating))
                .push_bind(rows.popularity[i])
                .push_bind(rows.stocks[i])
                .push_bind(rows.at)
                .push_bind(rows.at)
                .push_bind(rows.sellers[i]);
        });
        query.push(SQLITE_PRODUCTS_CONFLICT);
        query.build().execute(&mut **tx).await?;
    }
    let (ids, stocks) = rows.shelved();
    for chunk in chunks(ids.len(), 5) {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(SQLITE_LEDGER);
        query.push_values(chunk, |mut row, i| {
            row.push_bind(ids[i])
                .push_bind(None::<String>)
                .push_bind(LedgerKind::StockSet.as_str())
                .push_bind(stocks[i])
                .push_bind(rows.at);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn write_postgres(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: &Checked<'_>,
) -> Result<(), StoreError> {
    let text = |field: fn(&Product) -> &str| -> Vec<&str> {
        rows.products.iter().map(|p| field(&p.product)).collect()
    };
    let ratings: Vec<f32> = rows.products.iter().map(|p| p.product.rating).collect();
    sqlx::query(POSTGRES_PRODUCTS)
        .bind(&rows.ids)
        .bind(text(|p| &p.title))
        .bind(text(|p| &p.brand))
        .bind(text(|p| &p.category))
        .bind(text(|p| &p.description))
        .bind(&rows.prices)
        .bind(ratings)
        .bind(&rows.popularity)
        .bind(rows.at)
        .bind(&rows.sellers)
        .execute(&mut **tx)
        .await?;
    // Every new product gets its inventory row, even with nothing on the shelf.
    let new_ids: Vec<i64> = rows.new.iter().map(|i| rows.ids[*i]).collect();
    let new_stocks: Vec<i64> = rows.new.iter().map(|i| rows.stocks[*i]).collect();
    sqlx::query(POSTGRES_NEW_STOCK)
        .bind(new_ids)
        .bind(new_stocks)
        .bind(LedgerKind::StockSet.as_str())
        .bind(rows.at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
