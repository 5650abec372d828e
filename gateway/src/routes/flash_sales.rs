//! Scheduling a flash sale (admin).

use actors::SaleChange;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::{FlashSale, FlashSaleDraft, Money, ProductId, SaleId};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Json, Path};
use crate::forward;
use crate::time_format::{format_rfc3339_ms, parse_rfc3339_ms};

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(schedule, list))
        .routes(routes!(reschedule, cancel))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CurrentSale {
    #[serde(flatten)]
    sale: FlashSaleBody,
    title: String,
    brand: String,
}

/// Sales scheduled or live, soonest first: what a sale board shows.
#[utoipa::path(
    get,
    path = "/flash-sales",
    tag = "sales",
    responses((status = 200, description = "Sales scheduled or live, with their product's title and brand.", body = Vec<CurrentSale>))
)]
async fn list(State(ctx): State<ApiContext>) -> axum::Json<Vec<CurrentSale>> {
    let sales = ctx
        .shop
        .current_sales()
        .into_iter()
        .map(|(sale, product)| CurrentSale {
            sale: FlashSaleBody::from(&sale),
            title: product.title.clone(),
            brand: product.brand.clone(),
        })
        .collect();
    axum::Json(sales)
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewFlashSale {
    product_id: u64,
    sale_price: u64,
    original_price: u64,
    /// RFC 3339.
    start_time: String,
    end_time: Option<String>,
    stock: u64,
    per_user_limit: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlashSaleBody {
    pub id: u64,
    pub product_id: u64,
    pub sale_price: u64,
    pub original_price: u64,
    pub start_time: String,
    pub end_time: Option<String>,
    pub stock: u64,
    pub per_user_limit: u32,
    /// Set once an admin cancelled it: it ended then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
}

impl From<&FlashSale> for FlashSaleBody {
    fn from(sale: &FlashSale) -> Self {
        Self {
            id: sale.id.0,
            product_id: sale.product_id.0,
            sale_price: sale.sale_price.0,
            original_price: sale.original_price.0,
            start_time: format_rfc3339_ms(sale.start_ms),
            end_time: sale.end_ms.map(format_rfc3339_ms),
            stock: sale.stock,
            per_user_limit: sale.per_user_limit,
            cancelled_at: sale.cancelled_at_ms.map(format_rfc3339_ms),
        }
    }
}

/// Schedule a flash sale of a product: a pool of its stock at a sale price, with a
/// per-user limit (admins).
#[utoipa::path(
    post,
    path = "/flash-sales",
    tag = "sales",
    security(("bearer" = [])),
    request_body = NewFlashSale,
    responses(
        (status = 201, description = "The sale.", body = FlashSaleBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 409, description = "The product cannot hold this sale now: another sale overlaps, or the shelf lacks the units (`sale_refused`).", body = ErrorBody),
    )
)]
async fn schedule(
    State(ctx): State<ApiContext>,
    caller: Caller,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<NewFlashSale>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let product_id = ProductId(body.product_id);
    let path = "/api/v1/flash-sales";
    let forwarded = forward::json_to_owner(&ctx, product_id, Method::POST, path, &headers, &body);
    if let Some(answer) = forwarded.await {
        return answer;
    }
    let (start_ms, end_ms) = window(&body.start_time, body.end_time.as_deref())?;
    let draft = FlashSaleDraft {
        product_id: ProductId(body.product_id),
        sale_price: Money(body.sale_price),
        original_price: Money(body.original_price),
        start_ms,
        end_ms,
        stock: body.stock,
        per_user_limit: body.per_user_limit,
    };
    let sale = ctx.shop.schedule_sale(draft).await?;
    Ok((StatusCode::CREATED, axum::Json(FlashSaleBody::from(&sale))).into_response())
}

/// A sale's `startTime` and optional `endTime`, in milliseconds.
fn window(start_time: &str, end_time: Option<&str>) -> Result<(u64, Option<u64>), ApiError> {
    let start_ms = parse_rfc3339_ms(start_time).ok_or_else(|| {
        ApiError::invalid(
            "startTime",
            "must be an RFC 3339 time, like 2026-11-25T12:00:00Z",
        )
    })?;
    let end_ms = match end_time {
        None => None,
        Some(text) => Some(parse_rfc3339_ms(text).ok_or_else(|| {
            ApiError::invalid(
                "endTime",
                "must be an RFC 3339 time, like 2026-11-25T13:00:00Z",
            )
        })?),
    };
    Ok((start_ms, end_ms))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewWindow {
    /// RFC 3339.
    start_time: String,
    /// RFC 3339; absent: until the pool is sold out.
    end_time: Option<String>,
}

/// The product of a sale this node knows (scheduled or live), and the answer of the node
/// that serves it when that is not this one.
async fn owner_of(
    ctx: &ApiContext,
    sale_id: u64,
    method: Method,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Result<Option<Response>, ApiError> {
    let sale = ctx
        .shop
        .sale(SaleId(sale_id))
        .ok_or_else(|| ApiError::NotFound(format!("no sale {sale_id} scheduled or live")))?;
    let path = format!("/api/v1/flash-sales/{sale_id}");
    match forward::to_owner(ctx, sale.product_id, method, &path, headers, body).await {
        Some(answer) => answer.map(Some),
        None => Ok(None),
    }
}

/// Move a sale that has not started to another window (admins). Its campaign follows: the
/// reminder is re-timed to the new start (see README, "Sale campaigns").
#[utoipa::path(
    patch,
    path = "/flash-sales/{sale_id}",
    tag = "sales",
    security(("bearer" = [])),
    params(("sale_id" = u64, Path, description = "The sale's id.")),
    request_body = NewWindow,
    responses(
        (status = 200, description = "The sale in its new window.", body = FlashSaleBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such sale scheduled or live (`not_found`).", body = ErrorBody),
        (status = 409, description = "The sale has started or is over (`sale_refused`).", body = ErrorBody),
        (status = 422, description = "A time that is not RFC 3339, or an end not after the start and now (`invalid_field`).", body = ErrorBody),
    )
)]
async fn reschedule(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(sale_id): Path<u64>,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<NewWindow>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let (start_ms, end_ms) = window(&body.start_time, body.end_time.as_deref())?;
    let forwarded = serde_json::to_vec(&body).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if let Some(answer) = owner_of(&ctx, sale_id, Method::PATCH, &headers, forwarded.into()).await?
    {
        return Ok(answer);
    }
    let change = SaleChange::Move {
        sale_id: SaleId(sale_id),
        start_ms,
        end_ms,
    };
    let sale = ctx.shop.change_sale(change).await?;
    Ok(axum::Json(FlashSaleBody::from(&sale)).into_response())
}

/// Cancel a sale, scheduled or live (admins): it ends now, a sale not started never
/// starts, its leftover goes back to the shelf (units sold stay sold, reservations run
/// their course), and its campaign stops: nothing more is queued or sent.
#[utoipa::path(
    delete,
    path = "/flash-sales/{sale_id}",
    tag = "sales",
    security(("bearer" = [])),
    params(("sale_id" = u64, Path, description = "The sale's id.")),
    responses(
        (status = 200, description = "The sale as cancelled (`cancelledAt`).", body = FlashSaleBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such sale scheduled or live (`not_found`).", body = ErrorBody),
        (status = 409, description = "The sale is over (`sale_refused`).", body = ErrorBody),
    )
)]
async fn cancel(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(sale_id): Path<u64>,
    ForwardableHeaders(headers): ForwardableHeaders,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    if let Some(answer) = owner_of(&ctx, sale_id, Method::DELETE, &headers, Bytes::new()).await? {
        return Ok(answer);
    }
    let sale = ctx
        .shop
        .change_sale(SaleChange::Cancel(SaleId(sale_id)))
        .await?;
    Ok(axum::Json(FlashSaleBody::from(&sale)).into_response())
}
