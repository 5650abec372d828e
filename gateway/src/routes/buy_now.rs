//! Buy Now: the hot path. Authenticate, validate, hand to the shop, map the outcome.

use actors::{BuyNowReply, BuyNowRequest, Placement};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::ProductId;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, IdempotencyKeyHeader, Json};
use crate::forward;
use crate::time_format::format_rfc3339_ms;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(buy_now))
}

/// The request body. Public for the JSON benchmark.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuyNowBody {
    pub product_id: u64,
    pub quantity: u32,
}

/// The 201 body. Public for the JSON benchmark.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacedBody {
    pub order_id: String,
    pub product_id: u64,
    pub quantity: u32,
    pub status: &'static str,
    pub unit_price: u64,
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<u64>,
    pub expires_at: String,
}

/// Buy one product now: the order is durable when the answer comes. Retries with the same
/// `Idempotency-Key` get the same order (`Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/buy-now",
    tag = "buying",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "A unique id per purchase attempt, reused on retries (at most 64 printable characters).")),
    request_body = BuyNowBody,
    responses(
        (status = 201, description = "The order, reserved until `expiresAt`.", body = PlacedBody),
        (status = 403, description = "Only customers and admins buy (`forbidden`).", body = crate::api_doc::ErrorBody),
        (status = 404, description = "No such product (`not_found`).", body = crate::api_doc::ErrorBody),
        (status = 409, description = "`sold_out`, or the sale's per-user limit (`limit_reached`).", body = crate::api_doc::ErrorBody),
        (status = 422, description = "A bad field (`invalid_field`), the sale has not started (`sale_not_started`) or has ended (`sale_ended`), or the key was used for another request (`idempotency_key_reused`).", body = crate::api_doc::ErrorBody),
    )
)]
async fn buy_now(
    State(ctx): State<ApiContext>,
    caller: Caller,
    key_header: IdempotencyKeyHeader,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<BuyNowBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let idempotency_key = key_header.key()?;
    let quantity_max = ctx.shop.settings().quantity_per_order_max;
    if body.quantity == 0 || body.quantity > quantity_max {
        return Err(ApiError::invalid(
            "quantity",
            format!("must be between 1 and {quantity_max}"),
        ));
    }
    let product_id = ProductId(body.product_id);
    if let Some(elsewhere) = elsewhere(&ctx, product_id, &headers, &body).await {
        return elsewhere;
    }
    let request = BuyNowRequest {
        product_id,
        user_id: caller.user_id,
        quantity: body.quantity,
        idempotency_key,
    };
    match ctx.shop.buy_now(request).await? {
        BuyNowReply::Placed(placement) => Ok(placed(product_id, placement)),
        BuyNowReply::Refused(refusal) => Err(refusal.into()),
        BuyNowReply::Unavailable(why) => {
            // The shard left this node while the request was on its way: nothing was
            // written here, so the new owner decides.
            if let Some(elsewhere) = elsewhere(&ctx, product_id, &headers, &body).await {
                return elsewhere;
            }
            Err(ApiError::Unavailable(format!("{why:?}")))
        }
    }
}

/// The answer of the node serving the product, when it is not this one.
async fn elsewhere(
    ctx: &ApiContext,
    product_id: ProductId,
    headers: &HeaderMap,
    body: &BuyNowBody,
) -> Option<Result<Response, ApiError>> {
    let path = "/api/v1/buy-now";
    forward::json_to_owner(ctx, product_id, Method::POST, path, headers, body).await
}

fn placed(product_id: ProductId, placement: Placement) -> Response {
    let body = PlacedBody {
        order_id: placement.order_id.to_string(),
        product_id: product_id.0,
        quantity: placement.quantity,
        status: placement.status.as_str(),
        unit_price: placement.unit_price.0,
        total: placement.total.0,
        sale_id: placement.sale_id.map(|sale| sale.0),
        expires_at: format_rfc3339_ms(placement.expires_at_ms),
    };
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if placement.duplicate {
        // The same answer as the first time, marked so clients and logs can tell.
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
