//! `POST /payments/webhook`: the payment provider's verdict on an order.
//!
//! Authenticated by an HMAC-SHA256 of the raw body with the shared webhook secret, sent as
//! `X-Payment-Signature: sha256=<hex>`; a bad or missing signature is 401 and changes
//! nothing. Replays are harmless: the same verdict again answers the order as it is.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use engine::OrderId;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::app::ApiContext;
use crate::error::ApiError;
use crate::forward;
use crate::routes::orders::OrderBody;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(webhook))
}

pub const SIGNATURE_HEADER: &str = "x-payment-signature";
const TRANSACTION_ID_LENGTH_MAX: usize = 128;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Verdict {
    /// The order's id (a UUID).
    #[schema(value_type = String)]
    order_id: Uuid,
    /// SUCCESS or FAILED.
    status: String,
    transaction_id: String,
}

/// The payment provider's verdict on an order: SUCCESS confirms it, FAILED releases its
/// units. Signed, never rate-limited; replays answer the order as it is.
#[utoipa::path(
    post,
    path = "/payments/webhook",
    tag = "payments",
    security(("webhook_signature" = [])),
    request_body = Verdict,
    responses(
        (status = 200, description = "The order after the verdict.", body = crate::routes::orders::OrderBody),
        (status = 401, description = "No signature, or not the body's (`unauthorized`); nothing changed.", body = ErrorBody),
        (status = 404, description = "No such order (`not_found`).", body = ErrorBody),
        (status = 409, description = "The order cannot take this payment now (`order_not_payable`).", body = ErrorBody),
        (status = 422, description = "Not a verdict (`invalid_body`), or a bad `status` or `transactionId` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn webhook(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify_signature(&ctx, &headers, &body)?;
    let verdict: Verdict = serde_json::from_slice(&body).map_err(|error| ApiError::Rejected {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
        message: format!("the webhook body is not a payment verdict: {error}"),
    })?;
    let order_id = OrderId(verdict.order_id);
    // The order's stock moves on its products' owner.
    let path = "/api/v1/payments/webhook";
    let forwarded = forward::to_order_owner(&ctx, order_id, Method::POST, path, &headers, body);
    if let Some(answer) = forwarded.await {
        return answer;
    }
    let succeeded = match verdict.status.as_str() {
        "SUCCESS" => true,
        "FAILED" => false,
        _ => return Err(ApiError::invalid("status", "must be SUCCESS or FAILED")),
    };
    let transaction_id = verdict.transaction_id.trim();
    if transaction_id.is_empty()
        || transaction_id.len() > TRANSACTION_ID_LENGTH_MAX
        || !transaction_id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(ApiError::invalid(
            "transactionId",
            format!("must be 1 to {TRANSACTION_ID_LENGTH_MAX} printable characters"),
        ));
    }
    let order = ctx
        .shop
        .settle_payment(order_id, transaction_id.to_owned(), succeeded)
        .await
        .map_err(|error| match error {
            actors::OrderError::Illegal(illegal) => ApiError::Conflict {
                code: "order_not_payable",
                message: format!("the order is {} and cannot take this payment", illegal.from),
            },
            other => other.into(),
        })?;
    Ok(axum::Json(OrderBody::from(&order)).into_response())
}

fn verify_signature(ctx: &ApiContext, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("sha256="))
        .and_then(decode_hex)
        .ok_or(ApiError::Unauthorized(
            "missing or malformed X-Payment-Signature",
        ))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&ctx.webhook_secret).expect("HMAC accepts any key length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| ApiError::Unauthorized("the payment signature does not match"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

/// `sha256=<hex>` of `body` with `secret`: what a provider sends (and tests sign with).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}
