//! Orders on their way: logistics ships, the courier reports positions and the delivery,
//! and the buyer watches it live on `GET /ws/orders/{orderId}` (on a cluster, through any
//! node: the order's node's feed is relayed).

use std::time::Duration;

use actors::{DeliveryStatus, TrackingView};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use engine::OrderId;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Json, Path};
use crate::feed_client::{FeedError, OrderFeedClient};
use crate::forward::{self, Forwarder};
use crate::routes::orders::OrderBody;
use crate::time_format::parse_rfc3339_ms;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(ship))
        .routes(routes!(location))
        .routes(routes!(complete))
}

/// Mounted at the root, next to `/ws/stock`.
pub fn websocket_router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(watch_order))
}

const TEXT_LENGTH_MAX: usize = 200;
const URL_LENGTH_MAX: usize = 2_048;
/// How long a WebSocket client may take to send its token as the first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

fn order_id(text: &str) -> Result<OrderId, ApiError> {
    Uuid::parse_str(text)
        .map(OrderId)
        .map_err(|_| ApiError::Rejected {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "invalid_path",
            message: "the order id must be a UUID".into(),
        })
}

fn check_text(field: &'static str, text: &str, length_max: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() || text.len() > length_max {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {length_max} characters"),
        ));
    }
    Ok(())
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ShipBody {
    tracking_id: String,
    /// RFC 3339.
    estimated_delivery: String,
}

/// Hand a confirmed order to the carrier (logistics, admins).
#[utoipa::path(
    post,
    path = "/orders/{id}/ship",
    tag = "delivery",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID).")),
    request_body = ShipBody,
    responses(
        (status = 200, description = "The shipped order.", body = crate::routes::orders::OrderBody),
        (status = 403, description = "Logistics and admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such order (`not_found`).", body = ErrorBody),
        (status = 409, description = "The order is not confirmed (`illegal_transition`).", body = ErrorBody),
    )
)]
async fn ship(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<ShipBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Logistics, Role::Admin])?;
    let id = order_id(&id)?;
    check_text("trackingId", &body.tracking_id, TEXT_LENGTH_MAX)?;
    let estimated_delivery_ms = parse_rfc3339_ms(&body.estimated_delivery)
        .ok_or_else(|| ApiError::invalid("estimatedDelivery", "must be an RFC 3339 time"))?;
    let path = format!("/api/v1/orders/{id}/ship");
    if let Some(answer) = forward::json_to_order_owner(&ctx, id, &path, &headers, &body).await {
        return answer;
    }
    let order = ctx
        .shop
        .ship(
            id,
            body.tracking_id.trim().to_owned(),
            estimated_delivery_ms,
        )
        .await?;
    Ok(axum::Json(OrderBody::from(&order)).into_response())
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LocationBody {
    lat: f64,
    lng: f64,
    /// PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY or NEARBY.
    #[schema(value_type = String)]
    status: DeliveryStatus,
}

/// The courier's position and what they say of the parcel (delivery partners, admins):
/// the buyer's live view moves.
#[utoipa::path(
    post,
    path = "/deliveries/{id}/location",
    tag = "delivery",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID).")),
    request_body = LocationBody,
    responses(
        (status = 200, description = "The order's live view, as `/ws/orders/{id}` shows it.", body = serde_json::Value),
        (status = 403, description = "Delivery partners and admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such order (`not_found`).", body = ErrorBody),
        (status = 409, description = "The order is not on its way (`not_in_transit`).", body = ErrorBody),
    )
)]
async fn location(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<LocationBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Delivery, Role::Admin])?;
    let id = order_id(&id)?;
    if !(-90.0..=90.0).contains(&body.lat) {
        return Err(ApiError::invalid("lat", "must be between -90 and 90"));
    }
    if !(-180.0..=180.0).contains(&body.lng) {
        return Err(ApiError::invalid("lng", "must be between -180 and 180"));
    }
    let path = format!("/api/v1/deliveries/{id}/location");
    if let Some(answer) = forward::json_to_order_owner(&ctx, id, &path, &headers, &body).await {
        return answer;
    }
    let view = ctx
        .shop
        .record_location(id, body.lat, body.lng, body.status)
        .await?;
    Ok(axum::Json(view).into_response())
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompleteBody {
    signature: String,
    photo_url: String,
}

/// The parcel is delivered: signature and photo (delivery partners, admins).
#[utoipa::path(
    post,
    path = "/deliveries/{id}/complete",
    tag = "delivery",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID).")),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "The delivered order.", body = crate::routes::orders::OrderBody),
        (status = 403, description = "Delivery partners and admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such order (`not_found`).", body = ErrorBody),
        (status = 409, description = "The order is not on its way (`not_in_transit`).", body = ErrorBody),
    )
)]
async fn complete(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<CompleteBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Delivery, Role::Admin])?;
    let id = order_id(&id)?;
    check_text("signature", &body.signature, TEXT_LENGTH_MAX)?;
    check_text("photoUrl", &body.photo_url, URL_LENGTH_MAX)?;
    if !(body.photo_url.starts_with("https://") || body.photo_url.starts_with("http://")) {
        return Err(ApiError::invalid("photoUrl", "must be an http(s) URL"));
    }
    let path = format!("/api/v1/deliveries/{id}/complete");
    if let Some(answer) = forward::json_to_order_owner(&ctx, id, &path, &headers, &body).await {
        return answer;
    }
    let order = ctx
        .shop
        .complete_delivery(id, body.signature, body.photo_url)
        .await?;
    Ok(axum::Json(OrderBody::from(&order)).into_response())
}

#[derive(Deserialize)]
struct TokenMessage {
    token: String,
}

/// The buyer's live view of an order. The token comes in the `Authorization` header or,
/// for browsers (which cannot set headers on a WebSocket), as the first message
/// `{"token": "..."}`. Anyone but the owner or an admin gets a policy-violation close.
/// On a cluster, an order served by another node (its first line's) is relayed from that
/// node's feed, with the same token: the owner's board is the one that changes.
#[utoipa::path(
    get,
    path = "/ws/orders/{id}",
    tag = "live feeds",
    description = "A WebSocket (connect with `Upgrade: websocket`). The buyer's live view of an order:         each text message is the order's tracking view as JSON (status, carrier, tracking id,         estimated delivery, last position), sent when it changes. The token comes in the         `Authorization` header or, from browsers, as the first message `{\"token\": \"...\"}`         within 5 s. Anyone but the owner or an admin gets close code 1008 (policy).",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID).")),
    responses(
        (status = 101, description = "Switching to WebSocket: tracking views follow as text messages."),
        (status = 400, description = "Not a WebSocket request (`websocket_expected`), or a bad id (`invalid_path`).", body = ErrorBody),
        (status = 404, description = "No such order (`not_found`).", body = ErrorBody),
    )
)]
async fn watch_order(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let upgrade = upgrade.map_err(|rejection| ApiError::Rejected {
        status: rejection.status(),
        code: "websocket_expected",
        message: "this route speaks WebSocket: connect with an Upgrade request".into(),
    })?;
    let (order, receiver) = ctx.shop.watch_order(id).await?;
    let permit = ctx
        .websocket_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)?;
    let header_token = crate::auth::bearer_token(&headers).map(str::to_owned);
    // A feed asked for by another node is served here, even if the order moved on: one
    // hop, never a loop.
    let owner = if Forwarder::was_forwarded(&headers) {
        None
    } else {
        owner_elsewhere(&ctx, &order)
    };
    let write_timeout = ctx.limits.websocket_write_timeout;
    let upgrade = crate::websocket::feed_upgrade(upgrade);
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        // A header whose token is not valid is ignored, as if absent: the first message
        // may still bring one.
        let header_caller = match &header_token {
            Some(token) => crate::auth::caller_from_token(&ctx, token)
                .await
                .ok()
                .map(|caller| (token.clone(), caller)),
            None => None,
        };
        let (token, caller) = match header_caller {
            Some((token, caller)) => (Some(token), Some(caller)),
            None => {
                let token = first_message_token(&mut socket).await;
                let caller = match &token {
                    Some(token) => crate::auth::caller_from_token(&ctx, token).await.ok(),
                    None => None,
                };
                (token, caller)
            }
        };
        if !caller.is_some_and(|caller| caller.may_see(order.user_id)) {
            let frame = CloseFrame {
                code: close_code::POLICY,
                reason: "only the order's owner may watch it".into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
            return;
        }
        let _open = crate::metrics::OpenFeed::open("orders");
        match (owner, token) {
            (Some((address, node_id)), Some(token)) => {
                drop(receiver);
                relay(socket, &address, &node_id, id, &token, write_timeout).await;
            }
            _ => stream(socket, receiver, write_timeout).await,
        }
        drop(permit);
    }))
}

/// The node channel of the node serving the order (its first line's product), and this
/// node's id, when that is another node.
fn owner_elsewhere(ctx: &ApiContext, order: &engine::order::Order) -> Option<(String, String)> {
    let forwarder = ctx.forwarder.as_ref()?;
    let product_id = order.items.first()?.product_id;
    if ctx.shop.serves(product_id) {
        return None;
    }
    let address = forwarder.address_of(ctx.shop.shard_of(product_id))?;
    Some((address, forwarder.node_id().to_owned()))
}

async fn first_message_token(socket: &mut WebSocket) -> Option<String> {
    let message = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, socket.next())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = message else {
        return None;
    };
    let token: TokenMessage = serde_json::from_str(&text).ok()?;
    Some(token.token)
}

/// Passes the owner's feed on: each view as it comes (coalesced there), its end as the
/// end. If the owner cannot be reached or goes away mid-feed, the screen is told to come
/// back (1012, "service restart"): reconnecting finds the order's node again.
async fn relay(
    socket: WebSocket,
    address: &str,
    node_id: &str,
    id: OrderId,
    token: &str,
    write_timeout: Duration,
) {
    let (mut sink, mut incoming) = socket.split();
    let restart = || {
        Message::Close(Some(CloseFrame {
            code: close_code::RESTART,
            reason: "the order's node is moving; reconnect".into(),
        }))
    };
    let base = format!("http://{address}");
    let mut source = match OrderFeedClient::connect_from_node(&base, id, token, node_id).await {
        Ok(source) => source,
        Err(error) => {
            tracing::info!(order_id = %id, %error, "the order's node could not be reached for its feed");
            let _ = sink.send(restart()).await;
            return;
        }
    };
    loop {
        tokio::select! {
            view = source.next() => match view {
                Ok(view) => {
                    let Ok(text) = serde_json::to_string(&view) else {
                        return;
                    };
                    let sent = tokio::time::timeout(write_timeout, sink.send(Message::Text(text.into())));
                    if !matches!(sent.await, Ok(Ok(()))) {
                        return;
                    }
                }
                // Delivered: the owner's board let go of the order.
                Err(FeedError::Closed(None)) => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
                Err(_) => {
                    let _ = sink.send(restart()).await;
                    return;
                }
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn stream(
    socket: WebSocket,
    mut receiver: watch::Receiver<TrackingView>,
    write_timeout: Duration,
) {
    let (mut sink, mut incoming) = socket.split();
    loop {
        let view = receiver.borrow_and_update().clone();
        let Ok(text) = serde_json::to_string(&view) else {
            return;
        };
        match tokio::time::timeout(write_timeout, sink.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        tokio::select! {
            changed = receiver.changed() => if changed.is_err() {
                // Delivered: the board let go of the order; the last view was sent.
                let _ = sink.send(Message::Close(None)).await;
                return;
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
