//! What only other nodes ask, on the node channel (the internal listener) and nowhere
//! else: holding lines of this node's shards for an order another node coordinates,
//! hearing how it ended (`actors/src/remote_hold.rs`), a product's offer for another
//! node's cart (`node_channel.rs` is the asking side), and this node's share of the
//! analytics figures and of a product's bought-or-viewed-together scores (`analytics.rs`
//! sums them).

use actors::{HoldAnswer, HoldRequest, HoldSettlement, ShardMoved};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::ProductId;
use workflow::analytics::FiguresShare;

use crate::app::ApiContext;
use crate::error::ApiError;
use crate::extract::Json;
use crate::node_channel::{HOLDS_PATH, OFFERS_PATH, SETTLEMENTS_PATH};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route(HOLDS_PATH, post(hold))
        .route(SETTLEMENTS_PATH, post(settle))
        .route(OFFERS_PATH, get(offer))
        .route(super::analytics::SHARE_PATH, get(analytics_share))
        .route(super::analytics::TOGETHER_PATH, get(together_share))
}

async fn hold(
    State(ctx): State<ApiContext>,
    Json(request): Json<HoldRequest>,
) -> Result<Response, ApiError> {
    match ctx.shop.hold_for_peer(request).await {
        HoldAnswer::Held(reply) => Ok(axum::Json(reply).into_response()),
        HoldAnswer::Moved(shard) => Err(ApiError::ShardMoved(shard)),
        HoldAnswer::Failed(why) => Err(ApiError::Unavailable(why)),
    }
}

async fn settle(
    State(ctx): State<ApiContext>,
    Json(settlement): Json<HoldSettlement>,
) -> StatusCode {
    ctx.shop.settle_for_peer(settlement);
    StatusCode::NO_CONTENT
}

async fn offer(
    State(ctx): State<ApiContext>,
    Path(product_id): Path<u64>,
) -> Result<Response, ApiError> {
    match ctx.shop.offer_for_peer(ProductId(product_id)).await {
        Ok(Ok(Some(offer))) => Ok(axum::Json(offer).into_response()),
        Ok(Ok(None)) => Err(ApiError::NotFound(format!("no product {product_id}"))),
        Ok(Err(error)) => Err(error.into()),
        Err(ShardMoved(shard)) => Err(ApiError::ShardMoved(shard)),
    }
}

async fn analytics_share(State(ctx): State<ApiContext>) -> axum::Json<FiguresShare> {
    axum::Json(ctx.analytics.share())
}

async fn together_share(
    State(ctx): State<ApiContext>,
    Path(product_id): Path<u64>,
) -> axum::Json<Vec<(ProductId, f64)>> {
    axum::Json(super::analytics::together_share(
        &ctx,
        ProductId(product_id),
    ))
}
