//! Checkout: `POST /api/v1/orders` turns the caller's cart into one order (every line
//! reserved or none; the cart emptied of them once the order is durable). The rules are
//! the shop's (`actors/src/checkout.rs`); this route parses and maps.

use actors::{CartCheckout, CheckoutReply, PrepareRefused};
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, line_problem};
use crate::extract::{ForwardableHeaders, IdempotencyKeyHeader, Json};
use crate::forward;
use crate::routes::orders::OrderBody;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(checkout))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckoutBody {
    address_id: String,
    payment_method: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PlacedOrderBody {
    #[serde(flatten)]
    order: OrderBody,
    address_id: String,
    payment_method: String,
}

/// Order the caller's cart: every line reserved in one order, or none (the refused lines
/// are named). Retries with the same `Idempotency-Key` get the same order.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "A unique id per checkout attempt, reused on retries.")),
    request_body = CheckoutBody,
    responses(
        (status = 201, description = "The order, reserved until `expiresAt`; the cart no longer holds its lines.", body = PlacedOrderBody),
        (status = 403, description = "Only customers and admins check out (`forbidden`).", body = ErrorBody),
        (status = 409, description = "Some lines cannot be ordered, nothing was reserved (`lines_refused`, with `lines`), or another checkout of this user is running (`checkout_in_progress`).", body = ErrorBody),
    )
)]
async fn checkout(
    State(ctx): State<ApiContext>,
    caller: Caller,
    key_header: IdempotencyKeyHeader,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<CheckoutBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let request = CartCheckout {
        user_id: caller.user_id,
        idempotency_key: key_header.key()?,
        address_id: body.address_id.clone(),
        payment_method: body.payment_method.clone(),
    };
    let mut reply = ctx.shop.checkout_cart(request.clone()).await?;
    if let CheckoutReply::Elsewhere(product_id) = reply {
        let path = "/api/v1/orders";
        match forward::json_to_owner(&ctx, product_id, Method::POST, path, &headers, &body).await {
            Some(answer) => return answer,
            // The product's shard came here meanwhile.
            None => reply = ctx.shop.checkout_cart(request).await?,
        }
    }
    match reply {
        CheckoutReply::Placed { order, duplicate } => {
            let body = PlacedOrderBody {
                order: OrderBody::from(&order),
                address_id: body.address_id.trim().to_owned(),
                payment_method: body.payment_method,
            };
            let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
            if duplicate {
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(response)
        }
        CheckoutReply::Refused(refusals) => {
            // Only trouble on our side (a product restarting): the client should retry.
            if refusals
                .iter()
                .all(|line| matches!(line.reason, PrepareRefused::Unavailable(_)))
            {
                let causes: Vec<String> = refusals
                    .iter()
                    .map(|line| line.reason.to_string())
                    .collect();
                return Err(ApiError::Unavailable(causes.join("; ")));
            }
            let lines = refusals
                .iter()
                .map(|line| {
                    let (code, message) = line_problem(&line.reason);
                    json!({
                        "productId": line.product_id,
                        "quantity": line.quantity,
                        "code": code,
                        "message": message,
                    })
                })
                .collect();
            let products: Vec<String> = refusals
                .iter()
                .map(|line| line.product_id.to_string())
                .collect();
            Err(ApiError::LinesRefused {
                message: format!(
                    "nothing was reserved: the cart's line(s) for product {} cannot be ordered",
                    products.join(", ")
                ),
                lines,
            })
        }
        CheckoutReply::InProgress => Err(ApiError::Conflict {
            code: "checkout_in_progress",
            message:
                "another checkout of this user is running; retry with the same Idempotency-Key"
                    .into(),
        }),
        CheckoutReply::Unavailable(why) => Err(ApiError::Unavailable(format!("{why:?}"))),
        CheckoutReply::Elsewhere(product_id) => Err(ApiError::Unavailable(format!(
            "product {product_id}'s shard is moving; retry with the same Idempotency-Key"
        ))),
    }
}
