//! Deliveries: an order's shipment (tracking id, estimated delivery, proof of delivery)
//! and the delivery partner logistics assigned to it.
//!
//! A shipment is written by the order's status change (SHIPPED, DELIVERED) in the same
//! transaction (`WriteOp::PutShipment`, through the ledger); the assignment is the saga's
//! own write, and the first one stands.

use async_trait::async_trait;
use engine::OrderId;

use crate::database::{Database, Sql, Transaction, dialects, ms_to_ts, ts_to_ms};
use crate::error::StoreError;
use crate::row::{StoredRow, int};
use crate::write::{Delivery, Shipment};

#[async_trait]
pub trait Deliveries: Send + Sync + 'static {
    async fn shipment(&self, order: OrderId) -> Result<Option<Shipment>, StoreError>;

    /// Assigns `partner` to the order unless one is already assigned; returns the partner
    /// that stands.
    async fn assign_partner(
        &self,
        order: OrderId,
        partner: &str,
        at_ms: u64,
    ) -> Result<String, StoreError>;

    async fn partner(&self, order: OrderId) -> Result<Option<String>, StoreError>;
}

const SHIPMENT: Sql = Sql::each(
    "SELECT tracking_id, estimated_delivery_ms, shipped_at_ms, delivered_at_ms, signature, \
     photo_url FROM shipments WHERE order_id = $1",
    concat!(
        "SELECT tracking_id, ",
        ts_to_ms!("estimated_delivery"),
        " AS estimated_delivery_ms, ",
        ts_to_ms!("shipped_at"),
        " AS shipped_at_ms, ",
        ts_to_ms!("delivered_at"),
        " AS delivered_at_ms, ",
        "signature, photo_url FROM shipments WHERE order_id = $1"
    ),
);

// The no-op update makes RETURNING answer with the standing row on conflict.
const ASSIGN_PARTNER: Sql = Sql::both(
    "INSERT INTO delivery_assignments (order_id, partner_id, assigned_at_ms) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id \
     RETURNING partner_id",
);

const PARTNER: Sql = Sql::both("SELECT partner_id FROM delivery_assignments WHERE order_id = $1");

#[async_trait]
impl Deliveries for Database {
    async fn shipment(&self, order: OrderId) -> Result<Option<Shipment>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&SHIPMENT))
                .bind(D::order_id(order))
                .fetch_optional(pool)
                .await?
                .map(|row| decode_shipment(order, &row))
                .transpose()
        })
    }

    async fn assign_partner(
        &self,
        order: OrderId,
        partner: &str,
        at_ms: u64,
    ) -> Result<String, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&ASSIGN_PARTNER))
                .bind(D::order_id(order))
                .bind(partner)
                .bind(int(at_ms)?)
                .fetch_one(pool)
                .await?
                .text("partner_id")
        })
    }

    async fn partner(&self, order: OrderId) -> Result<Option<String>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&PARTNER))
                .bind(D::order_id(order))
                .fetch_optional(pool)
                .await?
                .map(|row| row.text("partner_id"))
                .transpose()
        })
    }
}

const PUT_SHIPMENT: Sql = Sql::each(
    "INSERT INTO shipments (order_id, tracking_id, estimated_delivery_ms, shipped_at_ms, \
     delivered_at_ms, signature, photo_url) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (order_id) DO UPDATE SET tracking_id = excluded.tracking_id, \
     estimated_delivery_ms = excluded.estimated_delivery_ms, \
     delivered_at_ms = excluded.delivered_at_ms, signature = excluded.signature, \
     photo_url = excluded.photo_url",
    concat!(
        "INSERT INTO shipments (order_id, tracking_id, estimated_delivery, shipped_at, delivered_at, signature, photo_url) ",
        "VALUES ($1, $2, ",
        ms_to_ts!("$3"),
        ", ",
        ms_to_ts!("$4"),
        ", ",
        ms_to_ts!("$5"),
        ", $6, $7) ",
        "ON CONFLICT (order_id) DO UPDATE SET tracking_id = excluded.tracking_id, ",
        "estimated_delivery = excluded.estimated_delivery, delivered_at = excluded.delivered_at, ",
        "signature = excluded.signature, photo_url = excluded.photo_url"
    ),
);

/// Creates or completes an order's shipment, in the status change's transaction.
pub(crate) async fn put_shipment(
    tx: &mut Transaction<'_>,
    shipment: &Shipment,
) -> Result<(), StoreError> {
    let delivered = shipment.delivered.as_ref();
    dialects!(tx, |tx, D| {
        sqlx::query(D::sql(&PUT_SHIPMENT))
            .bind(D::order_id(shipment.order_id))
            .bind(&shipment.tracking_id)
            .bind(int(shipment.estimated_delivery_ms)?)
            .bind(int(shipment.shipped_at_ms)?)
            .bind(delivered.map(|delivery| int(delivery.at_ms)).transpose()?)
            .bind(delivered.map(|delivery| delivery.signature.as_str()))
            .bind(delivered.map(|delivery| delivery.photo_url.as_str()))
            .execute(&mut **tx)
            .await?;
    });
    Ok(())
}

fn decode_shipment(order_id: OrderId, row: &impl StoredRow) -> Result<Shipment, StoreError> {
    let delivered = match row.opt_uint("delivered_at_ms")? {
        None => None,
        Some(at_ms) => Some(Delivery {
            at_ms,
            signature: row.opt_text("signature")?.unwrap_or_default(),
            photo_url: row.opt_text("photo_url")?.unwrap_or_default(),
        }),
    };
    Ok(Shipment {
        order_id,
        tracking_id: row.text("tracking_id")?,
        estimated_delivery_ms: row.uint("estimated_delivery_ms")?,
        shipped_at_ms: row.uint("shipped_at_ms")?,
        delivered,
    })
}
