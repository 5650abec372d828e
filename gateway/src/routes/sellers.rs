//! A marketplace seller's own view: the orders holding their products (only their lines)
//! and the payouts their delivered orders released. How a payout is computed and when it
//! is written are the shop's (`actors/src/payouts.rs`); the rows are the store's
//! (`persistence/src/payouts.rs`).

use axum::extract::State;
use persistence::{PayoutStatement, ReleasedPayout, SellerOrder};
use serde::Serialize;

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::PageParams;
use crate::time_format::format_rfc3339_ms;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Default page size: a screen of a seller's dashboard.
const PAGE_SIZE_DEFAULT: u32 = 20;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(orders))
        .routes(routes!(payouts))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SellerLineBody {
    product_id: u64,
    quantity: u32,
    /// Minor units.
    unit_price: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SellerOrderBody {
    order_id: String,
    /// PENDING_PAYMENT, PAID, SHIPPED, DELIVERED, CANCELLED or EXPIRED.
    #[schema(value_type = String)]
    status: &'static str,
    created_at: String,
    /// The seller's lines only.
    items: Vec<SellerLineBody>,
    /// The price of the seller's lines, minor units.
    subtotal: u64,
}

impl From<&SellerOrder> for SellerOrderBody {
    fn from(order: &SellerOrder) -> Self {
        Self {
            order_id: order.order_id.to_string(),
            status: order.status.as_str(),
            created_at: format_rfc3339_ms(order.created_at_ms),
            items: order
                .items
                .iter()
                .map(|item| SellerLineBody {
                    product_id: item.product_id.0,
                    quantity: item.quantity,
                    unit_price: item.unit_price.0,
                })
                .collect(),
            subtotal: order.subtotal().0,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SellerOrdersBody {
    orders: Vec<SellerOrderBody>,
    page: u32,
    page_size: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PayoutBody {
    order_id: String,
    seller_id: u64,
    /// The price of the seller's lines, minor units.
    gross: u64,
    /// The marketplace's commission, minor units.
    commission: u64,
    /// What the seller receives: gross less commission.
    net: u64,
    /// RELEASED: on the seller's balance.
    status: &'static str,
    released_at: String,
}

impl From<&ReleasedPayout> for PayoutBody {
    fn from(released: &ReleasedPayout) -> Self {
        let payout = &released.payout;
        Self {
            order_id: payout.order_id.to_string(),
            seller_id: payout.seller_id.0,
            gross: payout.gross.0,
            commission: payout.commission.0,
            net: payout.net.0,
            status: ReleasedPayout::STATUS,
            released_at: format_rfc3339_ms(released.released_at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PayoutsBody {
    payouts: Vec<PayoutBody>,
    page: u32,
    page_size: u32,
    /// The seller's payouts in all.
    total: u64,
    /// Net paid to the seller in all, minor units.
    total_net: u64,
}

/// The orders holding the caller's products, newest first, with only their lines.
#[utoipa::path(
    get,
    path = "/seller/orders",
    tag = "sellers",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of the seller's orders.", body = SellerOrdersBody),
        (status = 403, description = "Sellers only (`forbidden`).", body = ErrorBody),
        (status = 422, description = "A bad `page` or `pageSize` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn orders(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<SellerOrdersBody>, ApiError> {
    caller.require(&[Role::Seller])?;
    let (page, page_size, offset) = params.resolve(&ctx.limits, PAGE_SIZE_DEFAULT)?;
    let orders = ctx
        .shop
        .seller_orders(caller.user_id, offset, page_size)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    Ok(axum::Json(SellerOrdersBody {
        orders: orders.iter().map(SellerOrderBody::from).collect(),
        page,
        page_size,
    }))
}

/// The caller's payouts, newest first: one per delivered order and seller.
#[utoipa::path(
    get,
    path = "/seller/payouts",
    tag = "sellers",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of the seller's payouts, with their totals.", body = PayoutsBody),
        (status = 403, description = "Sellers only (`forbidden`).", body = ErrorBody),
        (status = 422, description = "A bad `page` or `pageSize` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn payouts(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<PayoutsBody>, ApiError> {
    caller.require(&[Role::Seller])?;
    let (page, page_size, offset) = params.resolve(&ctx.limits, PAGE_SIZE_DEFAULT)?;
    let PayoutStatement {
        payouts,
        count,
        net,
    } = ctx
        .shop
        .seller_payouts(caller.user_id, offset, page_size)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    Ok(axum::Json(PayoutsBody {
        payouts: payouts.iter().map(PayoutBody::from).collect(),
        page,
        page_size,
        total: count,
        total_net: net.0,
    }))
}
