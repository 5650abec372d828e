//! `GET /ws/stock?products=1,2,3`: live stock over a WebSocket.
//!
//! On connect, one message per product with its current stock; then a message whenever it
//! changes, at most `stock_feed_rate_per_second` per product (so 100K buyers on one product
//! do not become 100K messages to every screen), except that sold out is sent at once. The
//! product's feed (`actors::stock_feed`) does that coalescing, once for all its screens.
//! Values are latest-only: a client that reads slowly skips to the newest; one that stops
//! reading is dropped after the write timeout. Nothing a client does can slow a sale.

use std::time::Duration;

use actors::StockUpdate;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use engine::ProductId;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;

use crate::app::ApiContext;
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Query};
use crate::forward::Forwarder;

use crate::api_doc::ErrorBody;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(subscribe))
}

/// Products one connection may watch: a page of results, not the catalog.
pub const PRODUCTS_PER_CONNECTION_MAX: usize = 50;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Params {
    /// Product ids, comma-separated (at most 50).
    products: String,
}

#[utoipa::path(
    get,
    path = "/ws/stock",
    tag = "live feeds",
    description = "A WebSocket (connect with `Upgrade: websocket`), no token needed. Live stock: \
        on connect one text message per product with its current stock, then one whenever it \
        changes, at most `stock_feed_rate_per_second` a product (sold out at once). Each message \
        is `{\"productId\", \"left\", \"reserved\", \"sold\", \"price\", \"salePrice\", \"status\"}`; \
        a client that reads slowly skips to the newest, one that stops reading is dropped.",
    params(Params),
    responses(
        (status = 101, description = "Switching to WebSocket: stock messages follow as text."),
        (status = 400, description = "Not a WebSocket request (`websocket_expected`), or no readable product list (`invalid_query`).", body = ErrorBody),
        (status = 404, description = "A product does not exist (`not_found`).", body = ErrorBody),
        (status = 422, description = "Too many products, or none (`invalid_field`).", body = ErrorBody),
    )
)]
async fn subscribe(
    State(ctx): State<ApiContext>,
    Query(params): Query<Params>,
    ForwardableHeaders(headers): ForwardableHeaders,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let product_ids = parse_products(&params.products)?;
    let upgrade = upgrade.map_err(|rejection| ApiError::Rejected {
        status: rejection.status(),
        code: "websocket_expected",
        message: "this route speaks WebSocket: connect with an Upgrade request".into(),
    })?;
    let permit = ctx
        .websocket_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)?;
    let mut feeds = Vec::with_capacity(product_ids.len());
    for product_id in product_ids {
        feeds.push(feed_of(&ctx, product_id, &headers).await?);
    }
    let limits = ctx.limits.clone();
    let upgrade = crate::websocket::feed_upgrade(upgrade);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _open = crate::metrics::OpenFeed::open("stock");
        serve(socket, feeds, limits.websocket_write_timeout).await;
        drop(permit);
    }))
}

/// The product's feed: this node's, or a relay of its owner's on a cluster node.
async fn feed_of(
    ctx: &ApiContext,
    product_id: ProductId,
    headers: &HeaderMap,
) -> Result<watch::Receiver<StockUpdate>, ApiError> {
    match &ctx.remote_feeds {
        Some(remote) if !ctx.shop.serves(product_id) => {
            if Forwarder::was_forwarded(headers) {
                return Err(ApiError::ShardMoved(ctx.shop.shard_of(product_id)));
            }
            remote.watch(product_id).await
        }
        _ => Ok(ctx.shop.watch_stock(product_id).await?),
    }
}

fn parse_products(text: &str) -> Result<Vec<ProductId>, ApiError> {
    let mut product_ids = Vec::new();
    for part in text.split(',') {
        let id = part.trim().parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "products",
                "must be product ids separated by commas, like 1,2,3",
            )
        })?;
        if !product_ids.contains(&ProductId(id)) {
            product_ids.push(ProductId(id));
        }
    }
    if product_ids.is_empty() || product_ids.len() > PRODUCTS_PER_CONNECTION_MAX {
        return Err(ApiError::invalid(
            "products",
            format!("must list between 1 and {PRODUCTS_PER_CONNECTION_MAX} products"),
        ));
    }
    Ok(product_ids)
}

/// Writes each product's current value, then every value its feed sends. The feed has
/// already coalesced them (at most the rate a second, sold out at once), so a connection
/// only forwards: one wake-up and one write per value, with bytes shared by all screens.
/// The products' feeds are merged into one stream once, for the life of the connection:
/// a frame costs no allocation of its own (rebuilding a `select_all` over the receivers
/// for every frame did, and 1,000 screens of one product make 10,000 frames a second).
/// Polling `recv` on every wake-up is why the read buffer is small (`websocket.rs`).
async fn serve(
    mut socket: WebSocket,
    mut receivers: Vec<watch::Receiver<StockUpdate>>,
    write_timeout: Duration,
) {
    for receiver in &mut receivers {
        let json = receiver.borrow_and_update().json.clone();
        if !send(&mut socket, json, write_timeout).await {
            return;
        }
    }
    let mut changes = futures_util::stream::select_all(receivers.into_iter().map(changes_of));
    loop {
        tokio::select! {
            change = changes.next() => match change {
                Some(Some(json)) => {
                    if !send(&mut socket, json, write_timeout).await {
                        return;
                    }
                }
                // A product's channel is gone: the engine is stopping.
                Some(None) | None => return,
            },
            message = socket.recv() => match message {
                // Clients only ever send pings or close; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// A product's values after the one already sent: `None` once, when its channel closes.
fn changes_of(
    receiver: watch::Receiver<StockUpdate>,
) -> std::pin::Pin<Box<dyn Stream<Item = Option<Bytes>> + Send>> {
    Box::pin(futures_util::stream::unfold(
        Some(receiver),
        |receiver| async move {
            let mut receiver = receiver?;
            match receiver.changed().await {
                Ok(()) => {
                    let json = receiver.borrow_and_update().json.clone();
                    Some((Some(json), Some(receiver)))
                }
                Err(_) => Some((None, None)),
            }
        },
    ))
}

/// Sends one value; false when the client is gone or not reading.
async fn send(socket: &mut WebSocket, json: Bytes, write_timeout: Duration) -> bool {
    // The bytes every screen of this product shares, not a copy.
    let Ok(text) = Utf8Bytes::try_from(json) else {
        return true;
    };
    matches!(
        tokio::time::timeout(write_timeout, socket.send(Message::Text(text))).await,
        Ok(Ok(()))
    )
}
