//! PostgreSQL plans the batch statement once per connection (`force_generic_plan`, see
//! `database.rs`) with the table sizes of that moment. A plan made while `orders` was
//! (nearly) empty joins a batch's status changes to it by a hash over a full scan: on a
//! fresh database, every batch carrying a payment or an expiry then reads every order, and
//! the table grows by thousands a second at a sale's start. PostgreSQL makes its plans
//! again after an ANALYZE of the table, which autovacuum runs late or never (it is off on
//! this project's CI machine); until now only replacing the connection after
//! `connection_lifetime` (30 s) ended that. Measured in psql (issue 14): a plan made at an
//! empty table, then 300K orders, took 77 ms for one status change; a plan made with the
//! table's size, 0.14 ms.
//!
//! So when `orders` was nearly empty at start, the committer has both tables analyzed
//! once it has written [`REFRESH_AFTER_ORDERS`] orders: from then on every connection's
//! plan knows the table is large, whatever it grows to.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::PgPool;

use crate::error::StoreError;

/// Orders written since start after which the tables are analyzed. At this size a status
/// change's index lookup is already cheaper than a scan, so the plans made from then on
/// keep it as the table grows; and a scan of this many rows (what a stale plan costs
/// until then) takes a few milliseconds.
pub(crate) const REFRESH_AFTER_ORDERS: u64 = 20_000;

/// The one ANALYZE a store owes its tables, if any.
pub(crate) struct PlanRefresh {
    pool: PgPool,
    /// Still to do.
    due: AtomicBool,
    /// Orders this store wrote so far.
    written: AtomicU64,
}

impl PlanRefresh {
    /// `Some` if `orders` holds fewer than [`REFRESH_AFTER_ORDERS`] rows by PostgreSQL's
    /// estimate (none at all, for a table never analyzed).
    pub(crate) async fn if_needed(pool: &PgPool) -> Result<Option<Self>, StoreError> {
        let estimate: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'orders'::regclass")
                .fetch_one(pool)
                .await?;
        Ok((estimate < REFRESH_AFTER_ORDERS as f32).then(|| Self {
            pool: pool.clone(),
            due: AtomicBool::new(true),
            written: AtomicU64::new(0),
        }))
    }

    /// Counts `orders` committed; the commit that passes the mark starts the ANALYZE beside
    /// the committer (it takes no lock that writes wait for).
    pub(crate) fn committed(&self, orders: usize) {
        if orders == 0 || !self.due.load(Ordering::Relaxed) {
            return;
        }
        let written = self.written.fetch_add(orders as u64, Ordering::Relaxed) + orders as u64;
        if written < REFRESH_AFTER_ORDERS || !self.due.swap(false, Ordering::AcqRel) {
            return;
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            match sqlx::query("ANALYZE orders, order_items")
                .execute(&pool)
                .await
            {
                Ok(_) => tracing::info!(
                    orders = written,
                    "orders analyzed: the batch statement is planned again with their size"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "could not analyze orders; connections replaced after their lifetime plan again"
                ),
            }
        });
    }
}
