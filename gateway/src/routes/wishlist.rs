//! The caller's wishlist: products they want to hear about (a sale of one of them is
//! announced to every customer who has it listed). The rules (the product must exist, the
//! list's bound) are the shop's (`actors/src/wishlist.rs`); the rows are the store's
//! (`persistence/src/wishlists.rs`).

use actors::{WishlistAdded, WishlistLine, WishlistPage};
use axum::extract::State;
use axum::http::StatusCode;
use engine::ProductId;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::routes::PageParams;
use crate::routes::flash_sales::FlashSaleBody;
use crate::time_format::format_rfc3339_ms;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Default page size: a phone screen of products.
const PAGE_SIZE_DEFAULT: u32 = 20;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(add))
        .routes(routes!(remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewItem {
    product_id: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WishlistItemBody {
    product_id: u64,
    /// Absent when the product has left the catalog since it was listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    /// The regular price, minor units (absent with the title).
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<u64>,
    added_at: String,
    /// The product's next sale that is not over, if one is scheduled or live.
    #[serde(skip_serializing_if = "Option::is_none")]
    sale: Option<FlashSaleBody>,
}

impl From<WishlistLine> for WishlistItemBody {
    fn from(line: WishlistLine) -> Self {
        Self {
            product_id: line.product_id.0,
            title: line.title,
            price: line.price.map(|price| price.0),
            added_at: format_rfc3339_ms(line.added_at_ms),
            sale: line.sale.as_ref().map(FlashSaleBody::from),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Wishlist)]
struct WishlistBody {
    items: Vec<WishlistItemBody>,
    page: u32,
    page_size: u32,
    /// Items on the whole list.
    total: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AddedBody {
    product_id: u64,
    /// `false` when the product was on the list already (nothing changed).
    added: bool,
}

/// The caller's wishlist, newest first.
#[utoipa::path(
    get,
    path = "/wishlist",
    tag = "wishlist",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of the list.", body = WishlistBody),
        (status = 403, description = "Customers only (`forbidden`).", body = ErrorBody),
        (status = 422, description = "A bad `page` or `pageSize` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<WishlistBody>, ApiError> {
    caller.require(&[Role::Customer])?;
    let (page, page_size, offset) = params.resolve(&ctx.limits, PAGE_SIZE_DEFAULT)?;
    let WishlistPage { items, total } =
        ctx.shop.wishlist(caller.user_id, offset, page_size).await?;
    Ok(axum::Json(WishlistBody {
        items: items.into_iter().map(WishlistItemBody::from).collect(),
        page,
        page_size,
        total,
    }))
}

/// Puts a product on the caller's wishlist (201; 200 when it was there already).
#[utoipa::path(
    post,
    path = "/wishlist/items",
    tag = "wishlist",
    security(("bearer" = [])),
    request_body = NewItem,
    responses(
        (status = 201, description = "Added.", body = AddedBody),
        (status = 200, description = "On the list already; nothing changed.", body = AddedBody),
        (status = 403, description = "Customers only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 422, description = "The list holds its bound already (`invalid_field`, `productId`).", body = ErrorBody),
    )
)]
async fn add(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(item): Json<NewItem>,
) -> Result<(StatusCode, axum::Json<AddedBody>), ApiError> {
    caller.require(&[Role::Customer])?;
    let product_id = ProductId(item.product_id);
    let added = ctx.shop.add_to_wishlist(caller.user_id, product_id).await?;
    let (status, added) = match added {
        WishlistAdded::Added => (StatusCode::CREATED, true),
        WishlistAdded::AlreadyListed => (StatusCode::OK, false),
    };
    Ok((
        status,
        axum::Json(AddedBody {
            product_id: product_id.0,
            added,
        }),
    ))
}

/// Takes a product off the caller's wishlist.
#[utoipa::path(
    delete,
    path = "/wishlist/items/{product_id}",
    tag = "wishlist",
    security(("bearer" = [])),
    params(("product_id" = u64, Path, description = "The product's id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "Customers only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "Not on the list (`not_found`).", body = ErrorBody),
    )
)]
async fn remove(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(product_id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Customer])?;
    ctx.shop
        .remove_from_wishlist(caller.user_id, ProductId(product_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
