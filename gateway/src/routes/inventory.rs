//! A product's stock counters, public: every shopper's screen shows "only N left".

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use engine::ProductId;
use engine::flash_sale::SalePhase;
use engine::stock::Inventory;
use serde::Serialize;

use crate::app::ApiContext;
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Path};
use crate::forward;
use crate::routes::flash_sales::FlashSaleBody;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(show))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct InventoryBody {
    product_id: u64,
    initial: u64,
    reserved: u64,
    sold: u64,
    left: u64,
    /// Units sellable at the regular price now (the shelf minus an open sale pool).
    regular_available: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sale: Option<SaleInventoryBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SaleInventoryBody {
    #[serde(flatten)]
    sale: FlashSaleBody,
    /// scheduled, live or ended.
    #[schema(value_type = String)]
    phase: SalePhase,
    initial: u64,
    reserved: u64,
    sold: u64,
    left: u64,
    /// Units that went back to regular stock when the sale ended.
    returned: u64,
}

impl From<Inventory> for InventoryBody {
    fn from(inventory: Inventory) -> Self {
        let counters = inventory.counters;
        Self {
            product_id: inventory.product_id.0,
            initial: counters.initial,
            reserved: counters.reserved,
            sold: counters.sold,
            left: counters.left,
            regular_available: inventory.regular_available,
            sale: inventory.sale.map(|sale| SaleInventoryBody {
                sale: FlashSaleBody::from(&sale.sale),
                phase: sale.phase,
                initial: sale.counters.initial,
                reserved: sale.counters.reserved,
                sold: sale.counters.sold,
                left: sale.counters.left,
                returned: sale.counters.returned,
            }),
        }
    }
}

/// A product's stock counters, and its sale pool's while a sale is scheduled or live.
#[utoipa::path(
    get,
    path = "/inventory/{product_id}",
    tag = "catalog",
    params(("product_id" = u64, Path, description = "The product's id.")),
    responses(
        (status = 200, description = "The counters.", body = InventoryBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    Path(product_id): Path<u64>,
    ForwardableHeaders(headers): ForwardableHeaders,
) -> Result<Response, ApiError> {
    let product_id = ProductId(product_id);
    // The live counts are the owner's: a cluster node asks it.
    if forward::needed(&ctx, product_id) {
        let path = format!("/api/v1/inventory/{product_id}");
        let forwarded =
            forward::to_owner(&ctx, product_id, Method::GET, &path, &headers, Bytes::new());
        if let Some(answer) = forwarded.await {
            return answer;
        }
    }
    let inventory = ctx.shop.inventory(product_id).await?;
    Ok(axum::Json(InventoryBody::from(inventory)).into_response())
}
