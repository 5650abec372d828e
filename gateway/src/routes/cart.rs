//! The shopping cart of the caller. The rules (quantity bounds, stock checked without
//! holding it, prices as of now) are the shop's (`actors/src/cart.rs`).

use actors::{CartLineView, CartView};
use axum::extract::State;
use axum::http::StatusCode;
use engine::{Money, ProductId};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path};

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(show, add))
        .routes(routes!(change, remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewLine {
    product_id: u64,
    quantity: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Quantity {
    quantity: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CartLineBody {
    #[schema(value_type = u64)]
    product_id: ProductId,
    title: String,
    quantity: u32,
    /// The price now (the sale's while one is live), minor units.
    #[schema(value_type = u64)]
    unit_price: Money,
    #[schema(value_type = u64)]
    line_total: Money,
    available: u64,
    on_sale: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CartBody {
    items: Vec<CartLineBody>,
    #[schema(value_type = u64)]
    total: Money,
}

impl From<CartView> for CartBody {
    fn from(cart: CartView) -> Self {
        Self {
            items: cart.items.into_iter().map(CartLineBody::from).collect(),
            total: cart.total,
        }
    }
}

impl From<CartLineView> for CartLineBody {
    fn from(line: CartLineView) -> Self {
        Self {
            product_id: line.product_id,
            title: line.title,
            quantity: line.quantity,
            unit_price: line.unit_price,
            line_total: line.line_total,
            available: line.available,
            on_sale: line.on_sale,
        }
    }
}

/// A quantity from the body: negative or huge numbers become ones the shop's bound
/// refuses, so the answer names its rule either way.
fn units(quantity: i64) -> u32 {
    u32::try_from(quantity).unwrap_or(if quantity < 0 { 0 } else { u32::MAX })
}

/// The caller's cart, priced as of now.
#[utoipa::path(
    get,
    path = "/cart/items",
    tag = "cart",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart.", body = CartBody),
        (status = 403, description = "Customers and admins only (`forbidden`).", body = ErrorBody),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
) -> Result<axum::Json<CartBody>, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    Ok(axum::Json(ctx.shop.cart(caller.user_id).await?.into()))
}

/// Adds units of a product (to the units already in the cart).
#[utoipa::path(
    post,
    path = "/cart/items",
    tag = "cart",
    security(("bearer" = [])),
    request_body = NewLine,
    responses(
        (status = 201, description = "The cart.", body = CartBody),
        (status = 403, description = "Customers and admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 409, description = "Not that many units left (`insufficient_stock`).", body = ErrorBody),
    )
)]
async fn add(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(line): Json<NewLine>,
) -> Result<(StatusCode, axum::Json<CartBody>), ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let cart = ctx
        .shop
        .add_to_cart(
            caller.user_id,
            ProductId(line.product_id),
            units(line.quantity),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(cart.into())))
}

/// Sets the units of a product already in the cart.
#[utoipa::path(
    patch,
    path = "/cart/items/{product_id}",
    tag = "cart",
    security(("bearer" = [])),
    params(("product_id" = u64, Path, description = "The product's id.")),
    request_body = Quantity,
    responses(
        (status = 200, description = "The cart.", body = CartBody),
        (status = 403, description = "Customers and admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "The product is not in the cart (`not_found`).", body = ErrorBody),
        (status = 409, description = "Not that many units left (`insufficient_stock`).", body = ErrorBody),
    )
)]
async fn change(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(product_id): Path<u64>,
    Json(body): Json<Quantity>,
) -> Result<axum::Json<CartBody>, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let cart = ctx
        .shop
        .set_cart_quantity(caller.user_id, ProductId(product_id), units(body.quantity))
        .await?;
    Ok(axum::Json(cart.into()))
}

/// Takes a product out of the cart.
#[utoipa::path(
    delete,
    path = "/cart/items/{product_id}",
    tag = "cart",
    security(("bearer" = [])),
    params(("product_id" = u64, Path, description = "The product's id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "Customers and admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "The product is not in the cart (`not_found`).", body = ErrorBody),
    )
)]
async fn remove(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(product_id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    ctx.shop
        .remove_from_cart(caller.user_id, ProductId(product_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
