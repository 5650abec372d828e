//! Checkout: `POST /api/v1/orders` turns the caller's cart into one order. Every line is
//! reserved or none is (the shop holds a line in each product actor and commits them in
//! one transaction); the order then waits for payment like a Buy Now order. The cart is
//! emptied of the ordered lines once the order is durable.

use actors::{CheckoutError, CheckoutLine, CheckoutReply, CheckoutRequest, PrepareRefused};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{IdempotencyKeyHeader, Json};
use crate::routes::buy_now::refused;
use crate::routes::orders::OrderBody;

/// How an order may be paid; each goes through the payment provider's webhook.
const PAYMENT_METHODS: [&str; 4] = ["UPI", "CARD", "NETBANKING", "WALLET"];
const ADDRESS_ID_LENGTH_MAX: usize = 64;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/orders", post(checkout))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckoutBody {
    address_id: String,
    payment_method: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlacedOrderBody {
    #[serde(flatten)]
    order: OrderBody,
    address_id: String,
    payment_method: String,
}

async fn checkout(
    State(ctx): State<ApiContext>,
    caller: Caller,
    key_header: IdempotencyKeyHeader,
    Json(body): Json<CheckoutBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let idempotency_key = key_header.key()?;
    let address_id = body.address_id.trim();
    if address_id.is_empty()
        || address_id.len() > ADDRESS_ID_LENGTH_MAX
        || address_id.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "addressId",
            format!("must be 1 to {ADDRESS_ID_LENGTH_MAX} printable characters"),
        ));
    }
    if !PAYMENT_METHODS.contains(&body.payment_method.as_str()) {
        return Err(ApiError::invalid(
            "paymentMethod",
            format!("must be one of {}", PAYMENT_METHODS.join(", ")),
        ));
    }
    let cart = crate::routes::cart::lines(&ctx, &caller).await?;
    let lines: Vec<CheckoutLine> = cart
        .iter()
        .map(|item| CheckoutLine {
            product_id: item.product_id,
            quantity: item.quantity,
        })
        .collect();
    let request = CheckoutRequest {
        user_id: caller.user_id,
        lines,
        idempotency_key,
        address_id: address_id.to_owned(),
        payment_method: body.payment_method.clone(),
    };
    let reply = ctx
        .shop
        .checkout(request)
        .await
        .map_err(|error| match error {
            CheckoutError::Empty => ApiError::invalid(
                "cart",
                "the cart is empty: add items with POST /api/v1/cart/items first",
            ),
            other => ApiError::invalid("cart", other.to_string()),
        })?;
    match reply {
        CheckoutReply::Placed { order, duplicate } => {
            if !duplicate {
                let ordered: Vec<_> = order.items.iter().map(|item| item.product_id).collect();
                // The order stands either way; a cart that could not be emptied only shows
                // lines already ordered, and the key answers a retry with this order.
                if let Err(error) = ctx.carts.remove(caller.user_id, &ordered).await {
                    tracing::warn!(order_id = %order.id, %error, "cart not emptied after checkout");
                }
            }
            let body = PlacedOrderBody {
                order: OrderBody::from(&order),
                address_id: address_id.to_owned(),
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
    }
}

/// The code and message of one refused line.
fn line_problem(reason: &PrepareRefused) -> (&'static str, String) {
    match reason {
        PrepareRefused::UnknownProduct => ("not_found", "the product no longer exists".into()),
        PrepareRefused::Refused(refusal) => {
            let error = refused(refusal.clone());
            (error.code(), error.to_string())
        }
        PrepareRefused::Stock(error) => ("unavailable", error.to_string()),
        PrepareRefused::Unavailable(cause) => ("unavailable", cause.clone()),
    }
}
