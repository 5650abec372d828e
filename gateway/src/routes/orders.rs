//! Reading and cancelling an order (its owner, or an admin).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use engine::OrderId;
use engine::order::{Order, OrderEvent};
use serde::Serialize;
use uuid::Uuid;

use crate::app::ApiContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Path};
use crate::forward;
use crate::time_format::format_rfc3339_ms;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(cancel))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderBody {
    order_id: String,
    user_id: u64,
    /// pending_payment, confirmed, shipped, delivered, cancelled, expired or failed.
    #[schema(value_type = String)]
    status: &'static str,
    items: Vec<ItemBody>,
    total: u64,
    created_at: String,
    updated_at: String,
    expires_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ItemBody {
    product_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sale_id: Option<u64>,
    quantity: u32,
    unit_price: u64,
}

impl From<&Order> for OrderBody {
    fn from(order: &Order) -> Self {
        Self {
            order_id: order.id.to_string(),
            user_id: order.user_id.0,
            status: order.status.as_str(),
            items: order
                .items
                .iter()
                .map(|item| ItemBody {
                    product_id: item.product_id.0,
                    sale_id: item.sale_id.map(|sale| sale.0),
                    quantity: item.quantity,
                    unit_price: item.unit_price.0,
                })
                .collect(),
            total: order.total.0,
            created_at: format_rfc3339_ms(order.created_at_ms),
            updated_at: format_rfc3339_ms(order.updated_at_ms),
            expires_at: format_rfc3339_ms(order.expires_at_ms),
        }
    }
}

fn order_id(text: &str) -> Result<OrderId, ApiError> {
    Uuid::parse_str(text)
        .map(OrderId)
        .map_err(|_| ApiError::Rejected {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "invalid_path",
            message: "the order id must be a UUID".into(),
        })
}

/// Someone else's order answers 404, not 403: ids must not be probeable.
async fn visible_order(ctx: &ApiContext, caller: &Caller, id: OrderId) -> Result<Order, ApiError> {
    match ctx.shop.order(id).await? {
        Some(order) if caller.may_see(order.user_id) => Ok(order),
        _ => Err(ApiError::NotFound(format!("no order {id}"))),
    }
}

/// An order, to its owner or an admin.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID).")),
    responses(
        (status = 200, description = "The order.", body = OrderBody),
        (status = 404, description = "No such order, or not the caller's (`not_found`).", body = ErrorBody),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderBody>, ApiError> {
    let order = visible_order(&ctx, &caller, order_id(&id)?).await?;
    Ok(axum::Json(OrderBody::from(&order)))
}

/// Cancel an order not yet shipped: its units go back on the shelf (or the sale's pool).
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID).")),
    responses(
        (status = 200, description = "The cancelled order.", body = OrderBody),
        (status = 404, description = "No such order, or not the caller's (`not_found`).", body = ErrorBody),
        (status = 409, description = "Too late to cancel (`illegal_transition`).", body = ErrorBody),
    )
)]
async fn cancel(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    ForwardableHeaders(headers): ForwardableHeaders,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    visible_order(&ctx, &caller, id).await?;
    // The released units go back on the products' owner.
    let path = format!("/api/v1/orders/{id}/cancel");
    let forwarded = forward::to_order_owner(&ctx, id, Method::POST, &path, &headers, Bytes::new());
    if let Some(answer) = forwarded.await {
        return answer;
    }
    let order = ctx.shop.apply_to_order(id, OrderEvent::Cancel).await?;
    Ok(axum::Json(OrderBody::from(&order)).into_response())
}
