//! The shopping cart: lines per user, kept 30 days (in Redis when configured). Adding checks that the stock is there
//! now without reserving it (checkout reserves); prices are shown as of now (the sale price
//! while a sale is live).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use engine::flash_sale::SalePhase;
use engine::{Money, ProductId};
use persistence::CartItem;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path};

/// Distinct products in one cart.
const LINES_MAX: usize = 100;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/cart/items", get(show).post(add))
        .route("/cart/items/{product_id}", patch(change).delete(remove))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewLine {
    product_id: u64,
    quantity: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Quantity {
    quantity: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CartLineBody {
    product_id: ProductId,
    title: String,
    quantity: u32,
    /// What one unit costs now.
    unit_price: Money,
    line_total: Money,
    /// Units that could be bought now (nothing is held for a cart).
    available: u64,
    on_sale: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CartBody {
    items: Vec<CartLineBody>,
    total: Money,
}

/// The price and units of a product as of now.
struct Offer {
    unit_price: Money,
    available: u64,
    on_sale: bool,
}

async fn offer(ctx: &ApiContext, product_id: ProductId) -> Result<Offer, ApiError> {
    let product = ctx
        .shop
        .product(product_id)
        .ok_or_else(|| ApiError::NotFound(format!("no product {product_id}")))?;
    let inventory = ctx
        .shop
        .inventory(product_id)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    Ok(match inventory.sale {
        Some(sale) if sale.phase == SalePhase::Live => Offer {
            unit_price: sale.sale.sale_price,
            available: sale.counters.left,
            on_sale: true,
        },
        _ => Offer {
            unit_price: product.price,
            available: inventory.regular_available,
            on_sale: false,
        },
    })
}

fn quantity(ctx: &ApiContext, quantity: i64) -> Result<u32, ApiError> {
    let max = ctx.limits.quantity_per_order_max;
    u32::try_from(quantity)
        .ok()
        .filter(|quantity| (1..=max).contains(quantity))
        .ok_or_else(|| ApiError::invalid("quantity", format!("must be between 1 and {max}")))
}

fn enough(offer: &Offer, wanted: u32) -> Result<(), ApiError> {
    if u64::from(wanted) > offer.available {
        return Err(ApiError::Conflict {
            code: "insufficient_stock",
            message: format!("only {} left, {wanted} asked for", offer.available),
        });
    }
    Ok(())
}

pub(crate) async fn lines(ctx: &ApiContext, caller: &Caller) -> Result<Vec<CartItem>, ApiError> {
    ctx.carts
        .lines(caller.user_id, actors::clock::now_ms())
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))
}

async fn cart_body(ctx: &ApiContext, caller: &Caller) -> Result<CartBody, ApiError> {
    let mut items = Vec::new();
    let mut total = Money(0);
    for line in lines(ctx, caller).await? {
        // A product removed from the catalog drops out of the cart view.
        let Some(product) = ctx.shop.product(line.product_id) else {
            continue;
        };
        let offer = offer(ctx, line.product_id).await?;
        let line_total = Money(offer.unit_price.0.saturating_mul(u64::from(line.quantity)));
        total = Money(total.0.saturating_add(line_total.0));
        items.push(CartLineBody {
            product_id: line.product_id,
            title: product.title.clone(),
            quantity: line.quantity,
            unit_price: offer.unit_price,
            line_total,
            available: offer.available,
            on_sale: offer.on_sale,
        });
    }
    Ok(CartBody { items, total })
}

async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
) -> Result<axum::Json<CartBody>, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    Ok(axum::Json(cart_body(&ctx, &caller).await?))
}

/// Adds units of a product (to the units already in the cart).
async fn add(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(line): Json<NewLine>,
) -> Result<(StatusCode, axum::Json<CartBody>), ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let added = quantity(&ctx, line.quantity)?;
    let product_id = ProductId(line.product_id);
    let offer = offer(&ctx, product_id).await?;
    let current = lines(&ctx, &caller).await?;
    let existing = current.iter().find(|item| item.product_id == product_id);
    if existing.is_none() && current.len() >= LINES_MAX {
        return Err(ApiError::invalid(
            "productId",
            format!("a cart holds at most {LINES_MAX} products"),
        ));
    }
    let wanted = existing
        .map_or(0, |item| item.quantity)
        .saturating_add(added);
    quantity(&ctx, i64::from(wanted)).map_err(|_| {
        ApiError::invalid(
            "quantity",
            format!(
                "the cart would hold {wanted} of product {product_id}, over the limit of {}",
                ctx.limits.quantity_per_order_max
            ),
        )
    })?;
    enough(&offer, wanted)?;
    let now = actors::clock::now_ms();
    let item = CartItem {
        product_id,
        quantity: wanted,
        added_at_ms: existing.map_or(now, |item| item.added_at_ms),
        updated_at_ms: now,
    };
    ctx.carts
        .put(caller.user_id, item)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    ctx.shop.emit_later(actors::events::cart_item_added(
        caller.user_id,
        product_id,
        added,
        wanted,
        now,
    ));
    Ok((
        StatusCode::CREATED,
        axum::Json(cart_body(&ctx, &caller).await?),
    ))
}

/// Sets the units of a product already in the cart.
async fn change(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(product_id): Path<u64>,
    Json(body): Json<Quantity>,
) -> Result<axum::Json<CartBody>, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let wanted = quantity(&ctx, body.quantity)?;
    let product_id = ProductId(product_id);
    let existing = lines(&ctx, &caller)
        .await?
        .into_iter()
        .find(|item| item.product_id == product_id)
        .ok_or_else(|| ApiError::NotFound(format!("product {product_id} is not in the cart")))?;
    enough(&offer(&ctx, product_id).await?, wanted)?;
    let item = CartItem {
        quantity: wanted,
        updated_at_ms: actors::clock::now_ms(),
        ..existing
    };
    ctx.carts
        .put(caller.user_id, item)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    Ok(axum::Json(cart_body(&ctx, &caller).await?))
}

async fn remove(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(product_id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Customer, Role::Admin])?;
    let removed = ctx
        .carts
        .remove(caller.user_id, &[ProductId(product_id)])
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    if removed == 0 {
        return Err(ApiError::NotFound(format!(
            "product {product_id} is not in the cart"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
