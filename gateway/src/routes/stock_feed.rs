//! `GET /ws/stock?products=1,2,3`: live stock over a WebSocket.
//!
//! On connect, one message per product with its current stock; then a message whenever it
//! changes, at most `stock_feed_rate_per_second` per product (so 100K buyers on one product
//! do not become 100K messages to every screen), except that sold out is sent at once.
//! Values are latest-only: a client that reads slowly skips to the newest; one that stops
//! reading is dropped after the write timeout. Nothing a client does can slow a sale.

use std::time::Duration;

use actors::{StockStatus, StockView};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use engine::ProductId;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::ApiContext;
use crate::error::ApiError;
use crate::extract::Query;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/ws/stock", get(subscribe))
}

/// Products one connection may watch: a page of results, not the catalog.
pub const PRODUCTS_PER_CONNECTION_MAX: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    products: String,
}

async fn subscribe(
    State(ctx): State<ApiContext>,
    Query(params): Query<Params>,
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
        feeds.push(ctx.shop.watch_stock(product_id).await?);
    }
    let limits = ctx.limits.clone();
    Ok(upgrade.on_upgrade(move |socket| async move {
        let min_gap = Duration::from_secs_f64(1.0 / f64::from(limits.stock_feed_rate_per_second));
        serve(socket, feeds, min_gap, limits.websocket_write_timeout).await;
        drop(permit);
    }))
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

/// One watched product of a connection.
struct Feed {
    receiver: watch::Receiver<StockView>,
    /// When this product may be sent again.
    next_send: Instant,
    /// A change arrived before `next_send`; send the newest value then.
    due: bool,
    last_status: StockStatus,
}

async fn serve(
    socket: WebSocket,
    receivers: Vec<watch::Receiver<StockView>>,
    min_gap: Duration,
    write_timeout: Duration,
) {
    let (mut sink, mut incoming) = socket.split();
    let now = Instant::now();
    let mut feeds: Vec<Feed> = receivers
        .into_iter()
        .map(|receiver| {
            let last_status = receiver.borrow().status;
            Feed {
                receiver,
                next_send: now,
                due: true,
                last_status,
            }
        })
        .collect();
    loop {
        // Send what is due now.
        let now = Instant::now();
        for feed in feeds
            .iter_mut()
            .filter(|feed| feed.due && feed.next_send <= now)
        {
            let view = *feed.receiver.borrow_and_update();
            feed.due = false;
            feed.next_send = now + min_gap;
            feed.last_status = view.status;
            let Ok(text) = serde_json::to_string(&view) else {
                continue;
            };
            match tokio::time::timeout(write_timeout, sink.send(Message::Text(text.into()))).await {
                Ok(Ok(())) => {}
                // Closed, or not reading: drop the connection.
                Ok(Err(_)) | Err(_) => return,
            }
        }
        let next_deadline = feeds
            .iter()
            .filter(|feed| feed.due)
            .map(|feed| feed.next_send)
            .min();
        let event = {
            let changes = futures_util::future::select_all(feeds.iter_mut().enumerate().map(
                |(index, feed)| {
                    Box::pin(async move { (index, feed.receiver.changed().await.is_ok()) })
                },
            ));
            tokio::select! {
                ((index, open), _, _) = changes => Event::Changed { index, open },
                () = sleep_until(next_deadline) => Event::Due,
                message = incoming.next() => match message {
                    // Clients only ever send pings or close; anything else is ignored.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Event::Closed,
                    Some(Ok(_)) => Event::Due,
                },
            }
        };
        match event {
            // The product's channel is gone (engine stopping), or the client left.
            Event::Changed { open: false, .. } | Event::Closed => return,
            Event::Changed { index, open: true } => {
                let feed = &mut feeds[index];
                feed.due = true;
                // Sold out is news: send it now, whatever the rate.
                if feed.receiver.borrow().status == StockStatus::SoldOut
                    && feed.last_status != StockStatus::SoldOut
                {
                    feed.next_send = Instant::now();
                }
            }
            Event::Due => {}
        }
    }
}

enum Event {
    Changed { index: usize, open: bool },
    Due,
    Closed,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
