//! Sellers' side of the shop: the orders holding their products, and the payouts their
//! delivered orders released.
//!
//! A payout is written by the order's move to DELIVERED, in the same transaction
//! (`WriteOp::ReleasePayouts`, through the ledger): the status guard refuses a second
//! delivery of one order, and the key (order, seller) refuses a second payout even if a
//! write were replayed, so each seller of an order is paid once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use engine::order::{OrderItem, OrderStatus};
use engine::payout::Payout;
use engine::{Money, OrderId, UserId};

use crate::database::{Database, Sql, Transaction, dialects, ts_to_ms};
use crate::error::StoreError;
use crate::row::{StoredRow, int};

/// A payout as the store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasedPayout {
    pub payout: Payout,
    pub released_at_ms: u64,
}

impl ReleasedPayout {
    /// Released to the seller's balance on delivery; the bank transfer is the payment
    /// provider's business.
    pub const STATUS: &'static str = "RELEASED";
}

/// One order as its seller sees it: only the seller's own lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellerOrder {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub created_at_ms: u64,
    pub items: Vec<OrderItem>,
}

impl SellerOrder {
    /// The price of the seller's lines.
    pub fn subtotal(&self) -> Money {
        Money(
            self.items
                .iter()
                .map(|item| item.unit_price.0.saturating_mul(u64::from(item.quantity)))
                .fold(0, u64::saturating_add),
        )
    }
}

/// A page of a seller's payouts, with the totals of all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutStatement {
    pub payouts: Vec<ReleasedPayout>,
    /// Payouts of the seller in all.
    pub count: u64,
    /// Net paid to the seller in all.
    pub net: Money,
}

#[async_trait]
pub trait SellerStore: Send + Sync + 'static {
    /// A page of the orders holding `seller`'s products, newest first.
    async fn seller_orders(
        &self,
        seller: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SellerOrder>, StoreError>;

    /// A page of `seller`'s payouts, newest first, and their totals.
    async fn seller_payouts(
        &self,
        seller: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<PayoutStatement, StoreError>;
}

// Order ids are UUIDv7 (time-ordered, and so is their text), so the newest orders are the
// largest ids.
const SELLER_LINES: Sql = Sql::each(
    "SELECT i.order_id AS item_order_id, i.product_id, i.sale_id, i.quantity, \
     i.unit_price_minor, o.status, o.created_at_ms \
     FROM order_items i JOIN products p ON p.id = i.product_id \
     JOIN orders o ON o.id = i.order_id \
     WHERE p.seller_id = $1 AND i.order_id IN (\
       SELECT DISTINCT s.order_id FROM order_items s JOIN products sp ON sp.id = s.product_id \
       WHERE sp.seller_id = $1 ORDER BY s.order_id DESC LIMIT $2 OFFSET $3) \
     ORDER BY i.order_id DESC, i.line_no",
    concat!(
        "SELECT i.order_id AS item_order_id, i.product_id, i.sale_id, i.quantity, ",
        "i.unit_price_minor, o.status::text AS status, ",
        ts_to_ms!("o.created_at"),
        " AS created_at_ms ",
        "FROM order_items i JOIN products p ON p.id = i.product_id ",
        "JOIN orders o ON o.id = i.order_id ",
        "WHERE p.seller_id = $1 AND i.order_id IN (",
        "SELECT DISTINCT s.order_id FROM order_items s JOIN products sp ON sp.id = s.product_id ",
        "WHERE sp.seller_id = $1 ORDER BY s.order_id DESC LIMIT $2 OFFSET $3) ",
        "ORDER BY i.order_id DESC, i.line_no"
    ),
);

const PAYOUTS: Sql = Sql::both(
    "SELECT order_id, seller_id, gross_minor, commission_minor, net_minor, released_at_ms \
     FROM payouts WHERE seller_id = $1 \
     ORDER BY released_at_ms DESC, order_id DESC LIMIT $2 OFFSET $3",
);

const PAYOUT_TOTALS: Sql = Sql::both(
    "SELECT COUNT(*) AS payouts, CAST(COALESCE(SUM(net_minor), 0) AS BIGINT) AS net \
     FROM payouts WHERE seller_id = $1",
);

// A payout already written stays as it is: the first release stands.
const PUT_PAYOUT: Sql = Sql::both(
    "INSERT INTO payouts (order_id, seller_id, gross_minor, commission_minor, net_minor, \
     status, released_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (order_id, seller_id) DO NOTHING",
);

#[async_trait]
impl SellerStore for Database {
    async fn seller_orders(
        &self,
        seller: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SellerOrder>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let rows = sqlx::query(D::sql(&SELLER_LINES))
                .bind(int(seller.0)?)
                .bind(i64::from(limit))
                .bind(int(offset)?)
                .fetch_all(pool)
                .await?;
            let mut orders: Vec<SellerOrder> = Vec::new();
            for row in &rows {
                let order_id = row.order_id("item_order_id")?;
                let item = crate::orders::decode_item(row)?;
                match orders.last_mut() {
                    Some(order) if order.order_id == order_id => order.items.push(item),
                    _ => orders.push(SellerOrder {
                        order_id,
                        status: row.status("status")?,
                        created_at_ms: row.uint("created_at_ms")?,
                        items: vec![item],
                    }),
                }
            }
            Ok(orders)
        })
    }

    async fn seller_payouts(
        &self,
        seller: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<PayoutStatement, StoreError> {
        let seller_id = int(seller.0)?;
        dialects!(self.pool(), |pool, D| {
            let payouts = sqlx::query(D::sql(&PAYOUTS))
                .bind(seller_id)
                .bind(i64::from(limit))
                .bind(int(offset)?)
                .fetch_all(pool)
                .await?
                .iter()
                .map(decode_payout)
                .collect::<Result<Vec<_>, StoreError>>()?;
            let totals = sqlx::query(D::sql(&PAYOUT_TOTALS))
                .bind(seller_id)
                .fetch_one(pool)
                .await?;
            Ok(PayoutStatement {
                payouts,
                count: totals.uint("payouts")?,
                net: totals.money("net")?,
            })
        })
    }
}

fn decode_payout(row: &impl StoredRow) -> Result<ReleasedPayout, StoreError> {
    Ok(ReleasedPayout {
        payout: Payout {
            order_id: row.order_id("order_id")?,
            seller_id: row.user_id("seller_id")?,
            gross: row.money("gross_minor")?,
            commission: row.money("commission_minor")?,
            net: row.money("net_minor")?,
        },
        released_at_ms: row.uint("released_at_ms")?,
    })
}

/// Records the payouts of a delivery, in its transaction; a payout of the same order and
/// seller already there stays.
pub(crate) async fn put_payouts(
    tx: &mut Transaction<'_>,
    payouts: &[ReleasedPayout],
) -> Result<(), StoreError> {
    // One row per seller of the order: a handful.
    let mut by_key: BTreeMap<(OrderId, UserId), &ReleasedPayout> = BTreeMap::new();
    for released in payouts {
        by_key.insert(
            (released.payout.order_id, released.payout.seller_id),
            released,
        );
    }
    for released in by_key.values() {
        let payout = &released.payout;
        dialects!(&mut *tx, |tx, D| {
            sqlx::query(D::sql(&PUT_PAYOUT))
                .bind(D::order_id(payout.order_id))
                .bind(int(payout.seller_id.0)?)
                .bind(int(payout.gross.0)?)
                .bind(int(payout.commission.0)?)
                .bind(int(payout.net.0)?)
                .bind(ReleasedPayout::STATUS)
                .bind(int(released.released_at_ms)?)
                .execute(&mut **tx)
                .await?;
        });
    }
    Ok(())
}
