//! Scheduling a flash sale (admin).

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::{FlashSale, FlashSaleDraft, Money, ProductId};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Json};
use crate::forward;
use crate::time_format::{format_rfc3339_ms, parse_rfc3339_ms};

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(schedule, list))
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
    let start_ms = parse_rfc3339_ms(&body.start_time).ok_or_else(|| {
        ApiError::invalid(
            "startTime",
            "must be an RFC 3339 time, like 2026-11-25T12:00:00Z",
        )
    })?;
    let end_ms = match &body.end_time {
        None => None,
        Some(text) => Some(parse_rfc3339_ms(text).ok_or_else(|| {
            ApiError::invalid(
                "endTime",
                "must be an RFC 3339 time, like 2026-11-25T13:00:00Z",
            )
        })?),
    };
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
