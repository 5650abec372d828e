//! The auditor: what the database holds, read with its own SQL on its own connection, so
//! the checks do not trust the code they check (`persistence` reads rows one way; this
//! reads them another).

use std::collections::BTreeMap;
use std::str::FromStr;

use engine::OrderId;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::world::blocking;

/// A product's units as the orders in the database count them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredStock {
    pub initial: u64,
    /// Units of orders waiting for payment.
    pub reserved: u64,
    /// Units of orders paid for (or shipped, or delivered).
    pub sold: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSale {
    pub product_id: u64,
    pub stock: u64,
    pub per_user_limit: u64,
    /// Units held (reserved or sold) in the sale, in all and per user.
    pub held: u64,
    pub held_by_user: BTreeMap<u64, u64>,
    pub reserved: u64,
    pub sold: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOrder {
    pub user_id: u64,
    pub status: String,
    pub expires_at_ms: u64,
    /// (product, units) per line.
    pub lines: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub stock: BTreeMap<u64, StoredStock>,
    pub sales: BTreeMap<u64, StoredSale>,
    pub orders: BTreeMap<OrderId, StoredOrder>,
    /// (user, scope, key) -> order.
    pub keys: BTreeMap<(u64, String, String), OrderId>,
}

const SOLD: [&str; 3] = ["PAID", "SHIPPED", "DELIVERED"];

pub struct Auditor {
    pool: SqlitePool,
}

impl Auditor {
    /// A connection of its own to the simulation's in-memory database.
    pub fn open(database_name: &str) -> Self {
        let url = format!("sqlite:file:{database_name}?mode=memory&cache=shared");
        let pool = blocking(async move {
            let options = SqliteConnectOptions::from_str(&url).expect("a SQLite URL");
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
        })
        .expect("the auditor connects");
        Self { pool }
    }

    /// Everything the checks need, read at once.
    pub fn snapshot(&self) -> Snapshot {
        let pool = self.pool.clone();
        blocking(async move { read(&pool).await }).expect("the auditor reads the database")
    }
}

fn uint(row: &sqlx::sqlite::SqliteRow, column: &str) -> u64 {
    let value: i64 = row.get(column);
    u64::try_from(value).expect("stored counts are not negative")
}

async fn read(pool: &SqlitePool) -> Result<Snapshot, sqlx::Error> {
    let mut snapshot = Snapshot::default();
    for row in sqlx::query("SELECT id, stock_initial FROM products")
        .fetch_all(pool)
        .await?
    {
        snapshot.stock.insert(
            uint(&row, "id"),
            StoredStock {
                initial: uint(&row, "stock_initial"),
                ..StoredStock::default()
            },
        );
    }
    for row in sqlx::query("SELECT id, product_id, stock, per_user_limit FROM flash_sales")
        .fetch_all(pool)
        .await?
    {
        snapshot.sales.insert(
            uint(&row, "id"),
            StoredSale {
                product_id: uint(&row, "product_id"),
                stock: uint(&row, "stock"),
                per_user_limit: uint(&row, "per_user_limit"),
                ..StoredSale::default()
            },
        );
    }
    for row in sqlx::query("SELECT id, user_id, status, expires_at_ms FROM orders")
        .fetch_all(pool)
        .await?
    {
        let id: String = row.get("id");
        let id = OrderId(uuid::Uuid::from_str(&id).expect("a stored order id"));
        snapshot.orders.insert(
            id,
            StoredOrder {
                user_id: uint(&row, "user_id"),
                status: row.get("status"),
                expires_at_ms: uint(&row, "expires_at_ms"),
                lines: Vec::new(),
            },
        );
    }
    for row in sqlx::query("SELECT order_id, product_id, sale_id, quantity FROM order_items ORDER BY order_id, line_no")
        .fetch_all(pool)
        .await?
    {
        let id: String = row.get("order_id");
        let id = OrderId(uuid::Uuid::from_str(&id).expect("a stored order id"));
        let order = snapshot
            .orders
            .get_mut(&id)
            .expect("every order line belongs to an order");
        let (product, units) = (uint(&row, "product_id"), uint(&row, "quantity"));
        order.lines.push((product, units));
        let stock = snapshot.stock.entry(product).or_default();
        let status = order.status.as_str();
        if status == "PENDING_PAYMENT" {
            stock.reserved += units;
        } else if SOLD.contains(&status) {
            stock.sold += units;
        }
        let sale: Option<i64> = row.get("sale_id");
        if let Some(sale) = sale
            && status != "CANCELLED"
            && status != "EXPIRED"
        {
            let sale = snapshot
                .sales
                .get_mut(&(sale as u64))
                .expect("an order line's sale exists");
            sale.held += units;
            *sale.held_by_user.entry(order.user_id).or_default() += units;
            if status == "PENDING_PAYMENT" {
                sale.reserved += units;
            } else {
                sale.sold += units;
            }
        }
    }
    for row in sqlx::query(
        "SELECT user_id, idempotency_scope AS scope, idempotency_key AS key, id AS order_id \
         FROM orders",
    )
    .fetch_all(pool)
    .await?
    {
        let id: String = row.get("order_id");
        snapshot.keys.insert(
            (uint(&row, "user_id"), row.get("scope"), row.get("key")),
            OrderId(uuid::Uuid::from_str(&id).expect("a stored order id")),
        );
    }
    Ok(snapshot)
}
