//! Every product's committed counts, for the mirror. The dialects count differently:
//! SQLite keeps no counters, so its levels are counted from the orders; PostgreSQL reads
//! the `inventory` rows and sales' `held` counters its batches keep checked.

use std::collections::HashMap;

use engine::ProductId;
use sqlx::{PgPool, SqlitePool};

use super::{InventoryLevel, SaleLevel};
use crate::catalog::{decode_sale, postgres_sale_columns, sqlite_sale_columns};
use crate::error::StoreError;
use crate::row::{StoredRow, int, uint};

pub(super) async fn counted_from_orders(
    pool: &SqlitePool,
) -> Result<Vec<InventoryLevel>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut held = HashMap::new();
    for row in sqlx::query(
        "SELECT i.product_id, SUM(i.quantity) AS held FROM order_items i \
         JOIN orders o ON o.id = i.order_id \
         WHERE o.status NOT IN ('CANCELLED', 'EXPIRED') GROUP BY i.product_id",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        held.insert(row.int("product_id")?, row.uint("held")?);
    }
    let mut sale_held = HashMap::new();
    for row in sqlx::query(
        "SELECT i.sale_id, SUM(i.quantity) AS held FROM order_items i \
         JOIN orders o ON o.id = i.order_id \
         WHERE i.sale_id IS NOT NULL AND o.status NOT IN ('CANCELLED', 'EXPIRED') \
         GROUP BY i.sale_id",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        sale_held.insert(row.int("sale_id")?, row.uint("held")?);
    }
    let mut sales = HashMap::new();
    for row in sqlx::query(concat!(
        "SELECT ",
        sqlite_sale_columns!(),
        " FROM flash_sales s WHERE s.id = (SELECT MAX(id) FROM flash_sales WHERE product_id = s.product_id)"
    ))
    .fetch_all(&mut *conn)
    .await?
    {
        let sale = decode_sale(&row)?;
        sales.insert(int(sale.product_id.0)?, sale);
    }
    let mut levels = Vec::new();
    for row in sqlx::query("SELECT id, stock_initial FROM products ORDER BY id")
        .fetch_all(&mut *conn)
        .await?
    {
        let id = row.int("id")?;
        let initial = row.uint("stock_initial")?;
        let promised = held.get(&id).copied().unwrap_or(0);
        let sale = match sales.remove(&id) {
            None => None,
            Some(sale) => {
                let held = sale_held.get(&int(sale.id.0)?).copied().unwrap_or(0);
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

pub(super) async fn read_from_counters(pool: &PgPool) -> Result<Vec<InventoryLevel>, StoreError> {
    let rows = sqlx::query(concat!(
        r#"SELECT v.product_id AS inventory_product_id, v."left" AS shelf, "#,
        postgres_sale_columns!(),
        ", COALESCE(s.held, 0) AS held ",
        "FROM inventory v ",
        "LEFT JOIN LATERAL (SELECT * FROM flash_sales f WHERE f.product_id = v.product_id ORDER BY f.id DESC LIMIT 1) s ON true ",
        "ORDER BY v.product_id"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let sale = match row.opt_int("id")? {
                None => None,
                Some(_) => Some(SaleLevel {
                    sale: decode_sale(row)?,
                    held: row.uint("held")?,
                }),
            };
            Ok(InventoryLevel {
                product_id: row.product_id("inventory_product_id")?,
                left: row.uint("shelf")?,
                sale,
            })
        })
        .collect()
}
