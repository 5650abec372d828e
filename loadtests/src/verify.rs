//! The end-of-run check: what clients were told equals what the engine counts equals what
//! the store holds, and the sale never sold past its stock.

use anyhow::Context as _;
use serde_json::Value;
use sqlx::Row;

use crate::plan::Plan;

pub struct Verdict {
    pub client_units: u64,
    pub inventory_units: u64,
    pub store_units: Option<u64>,
    pub sale_promised: u64,
    pub sale_stock: u64,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.client_units == self.inventory_units
            && self
                .store_units
                .is_none_or(|units| units == self.client_units)
            && self.sale_promised <= self.sale_stock
    }

    pub fn line(&self) -> String {
        let store = self.store_units.map_or_else(
            || "not checked (no --verify-database-url)".to_owned(),
            |units| units.to_string(),
        );
        format!(
            "VERIFY {}: units answered 201 = {} | engine sold+reserved = {} | store order units = {} | sale {}/{} units",
            if self.holds() { "OK" } else { "FAILED" },
            self.client_units,
            self.inventory_units,
            store,
            self.sale_promised,
            self.sale_stock
        )
    }
}

pub async fn verify(
    host: &str,
    plan: &Plan,
    database_url: Option<&str>,
) -> anyhow::Result<Verdict> {
    let client = reqwest::Client::new();
    let mut inventory_units = 0;
    let mut sale_promised = 0;
    for product in plan.all_products() {
        let inventory: Value = client
            .get(format!("{host}/api/v1/inventory/{product}"))
            .send()
            .await?
            .json()
            .await
            .context("reading inventory")?;
        inventory_units +=
            inventory["sold"].as_u64().unwrap_or(0) + inventory["reserved"].as_u64().unwrap_or(0);
        if product == plan.hot_product {
            sale_promised = inventory["sale"]["sold"].as_u64().unwrap_or(0)
                + inventory["sale"]["reserved"].as_u64().unwrap_or(0);
        }
    }
    let store_units = match database_url {
        None => None,
        Some(url) => Some(store_units(url, plan.all_products().collect()).await?),
    };
    Ok(Verdict {
        client_units: plan
            .stats
            .placed_units
            .load(std::sync::atomic::Ordering::Relaxed)
            + plan
                .stats
                .checkout_units
                .load(std::sync::atomic::Ordering::Relaxed),
        inventory_units,
        store_units,
        sale_promised,
        sale_stock: plan.sale_stock,
    })
}

/// Units of every order line of the run's products, read from PostgreSQL or SQLite.
pub async fn store_units(url: &str, products: Vec<u64>) -> anyhow::Result<u64> {
    let ids: Vec<i64> = products.into_iter().map(|id| id as i64).collect();
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url)
            .await
            .context("connecting to verify")?;
        let row = sqlx::query(
            "SELECT COALESCE(SUM(quantity), 0)::int8 FROM order_items WHERE product_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(&pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    } else {
        let pool = sqlx::SqlitePool::connect(url)
            .await
            .context("opening the store to verify")?;
        let mut total = 0;
        for chunk in ids.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id IN ({placeholders})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            total += query.fetch_one(&pool).await?.try_get::<i64, _>(0)? as u64;
        }
        Ok(total)
    }
}
