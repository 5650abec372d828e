//! Any node answers any request: one for a product whose shard another node serves is sent
//! there over the node channel (the owner's internal listener, which serves this same API)
//! and the owner's answer is this node's answer. The owner authenticates it again, applies
//! the idempotency key, and decides; so a retry on any node meets the same order.
//!
//! A forwarded request is marked, and the owner never forwards it again: if the shard left
//! the owner meanwhile, it answers `shard_moved` and this node reads the routes again and
//! retries, a few times within the request timeout. A request is re-routed, never lost
//! between two nodes' views of the lease table.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cluster::ShardRoutes;

use crate::app::ApiContext;
use crate::error::ApiError;

/// Names the node that forwarded a request; its receiver serves it or says `shard_moved`.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-flashcart-forwarded-by");
/// On a `shard_moved` answer: the shard whose route is stale.
pub const SHARD_MOVED: HeaderName = HeaderName::from_static("x-flashcart-shard-moved");

/// Tries of one request, each after reading the routes again: 3 s in all, what a shard's
/// hand-off takes (the holder's actors commit, the next owner sees the placement, takes
/// the lease and loads the shard), so a move or a drain fails no request.
const ATTEMPTS: usize = 15;
/// Pause before a retry: a hand-off (or a take after a node died) takes a moment.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Request headers the owner needs to decide as this node would.
const PASSED_ON: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static(crate::routes::payments::SIGNATURE_HEADER),
    header::ACCEPT,
    crate::request_trace::REQUEST_ID,
];
/// Answer headers passed back.
const PASSED_BACK: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    HeaderName::from_static("idempotent-replayed"),
];

pub struct Forwarder {
    node_id: String,
    routes: Arc<ShardRoutes>,
    client: reqwest::Client,
}

impl Forwarder {
    pub fn new(node_id: String, routes: Arc<ShardRoutes>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "default HTTP client for forwarding");
                reqwest::Client::new()
            });
        Self {
            node_id,
            routes,
            client,
        }
    }

    /// The request was forwarded to this node by another: it must not travel again.
    pub fn was_forwarded(headers: &HeaderMap) -> bool {
        headers.contains_key(FORWARDED_BY)
    }

    /// Sends the request to the node serving `shard` and returns its answer; `None` when
    /// the shard came to this node meanwhile (`served_here` says so): serve it here.
    pub async fn forward(
        &self,
        shard: u32,
        served_here: impl Fn() -> bool,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Option<Response>, ApiError> {
        match self
            .send(shard, served_here, method, path, headers, body)
            .await?
        {
            Some((_, answer)) => Ok(Some(relay(answer).await)),
            None => Ok(None),
        }
    }

    /// [`Self::forward`], with the owner's answer as it came and the address it came from.
    pub async fn send(
        &self,
        shard: u32,
        served_here: impl Fn() -> bool,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Option<(String, reqwest::Response)>, ApiError> {
        let mut last_problem = String::from("no node serves it");
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE).await;
                if let Err(error) = self.routes.refresh().await {
                    last_problem = error.to_string();
                    continue;
                }
            }
            let Some(route) = self.routes.route(shard) else {
                continue;
            };
            if route.node_id == self.node_id {
                if served_here() {
                    return Ok(None);
                }
                // The routes say here, the shop says no: a take or a hand-off is under way.
                last_problem = "the shard is moving".into();
                continue;
            }
            let mut request = self
                .client
                .request(method.clone(), format!("http://{}{path}", route.address))
                .header(FORWARDED_BY, self.node_id.as_str())
                .body(body.clone());
            for name in PASSED_ON {
                if let Some(value) = headers.get(&name) {
                    request = request.header(name, value);
                }
            }
            let answer = match request.send().await {
                Ok(answer) => answer,
                Err(error) => {
                    // Not sent, or sent and unanswered: the owner may have decided. Only the
                    // idempotency key makes a retry safe, and the caller's retry uses it.
                    if error.is_connect() {
                        last_problem = format!("node {} unreachable", route.node_id);
                        continue;
                    }
                    return Err(ApiError::Unavailable(format!(
                        "forwarding to node {}: {error}",
                        route.node_id
                    )));
                }
            };
            if answer.status() == StatusCode::SERVICE_UNAVAILABLE
                && answer.headers().contains_key(SHARD_MOVED)
            {
                last_problem = format!("node {} no longer serves it", route.node_id);
                continue;
            }
            return Ok(Some((route.address.clone(), answer)));
        }
        Err(ApiError::Unavailable(format!(
            "shard {shard} could not be reached from node {}: {last_problem}",
            self.node_id
        )))
    }

    /// The node channel address of the node serving `shard`, when it is another node.
    pub fn address_of(&self, shard: u32) -> Option<String> {
        let route = self.routes.route(shard)?;
        (route.node_id != self.node_id).then_some(route.address)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Posts JSON to a node by its address, once (for messages whose loss is tolerated).
    pub async fn post_json(
        &self,
        address: &str,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<StatusCode, String> {
        let answer = self
            .client
            .post(format!("http://{address}{path}"))
            .header(FORWARDED_BY, self.node_id.as_str())
            .json(body)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        Ok(answer.status())
    }
}

/// Middleware of a cluster node's public API: a request served here whose shard left
/// this node before it was decided (a hand-off under way: the answer is `shard_moved`,
/// and nothing was done) is sent on to the shard's node, as if it had been forwarded from
/// the start. Requests forwarded here by another node are answered as they are: that
/// node re-routes them.
pub async fn reroute_moved(
    axum::extract::State(ctx): axum::extract::State<ApiContext>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(forwarder) = ctx.forwarder.clone() else {
        return next.run(request).await;
    };
    if Forwarder::was_forwarded(request.headers())
        || request.headers().contains_key(header::UPGRADE)
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, ctx.limits.body_limit_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::Rejected {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "payload_too_large",
                message: format!(
                    "the body is over {} bytes, or was cut short",
                    ctx.limits.body_limit_bytes
                ),
            }
            .into_response();
        }
    };
    let method = parts.method.clone();
    let path = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let headers = parts.headers.clone();
    let answer = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(body.clone()),
        ))
        .await;
    let moved = answer
        .headers()
        .get(SHARD_MOVED)
        .and_then(|shard| shard.to_str().ok())
        .and_then(|shard| shard.parse::<u32>().ok());
    let Some(shard) = moved else {
        return answer;
    };
    let served_here = || ctx.shop.serves_shard(shard);
    match forwarder
        .forward(shard, served_here, method, &path, &headers, body)
        .await
    {
        Ok(Some(rerouted)) => rerouted,
        // The shard came back here meanwhile: the caller's retry is served here.
        Ok(None) => answer,
        Err(error) => error.into_response(),
    }
}

/// This node is a cluster node and does not serve the product's shard.
pub fn needed(ctx: &ApiContext, product_id: engine::ProductId) -> bool {
    ctx.forwarder.is_some() && !ctx.shop.serves(product_id)
}

/// The answer of the node serving `product_id`, when it is not this one: forwarded, or
/// `shard_moved` for a request that was forwarded here already. `None`: serve it here.
pub async fn to_owner(
    ctx: &ApiContext,
    product_id: engine::ProductId,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<Result<Response, ApiError>> {
    let forwarder = ctx.forwarder.as_ref()?;
    if ctx.shop.serves(product_id) {
        return None;
    }
    let shard = ctx.shop.shard_of(product_id);
    if Forwarder::was_forwarded(headers) {
        return Some(Err(ApiError::ShardMoved(shard)));
    }
    let served_here = || ctx.shop.serves(product_id);
    forwarder
        .forward(shard, served_here, method, path, headers, body)
        .await
        .transpose()
}

/// [`to_owner`] for a JSON body the handler has parsed (and checked) already.
pub async fn json_to_owner(
    ctx: &ApiContext,
    product_id: engine::ProductId,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: &impl serde::Serialize,
) -> Option<Result<Response, ApiError>> {
    if !needed(ctx, product_id) {
        return None;
    }
    let body = match serde_json::to_vec(body) {
        Ok(body) => body,
        Err(error) => return Some(Err(ApiError::Unavailable(error.to_string()))),
    };
    to_owner(ctx, product_id, method, path, headers, body.into()).await
}

/// The answer of the node serving the order's products (the product of its first line),
/// when it is not this one: where its stock moves and its reservation clock runs. An
/// order this node cannot read is served here (which answers it as unknown or failed).
pub async fn to_order_owner(
    ctx: &ApiContext,
    order_id: engine::OrderId,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<Result<Response, ApiError>> {
    ctx.forwarder.as_ref()?;
    let order = ctx.shop.order(order_id).await.ok().flatten()?;
    let product_id = order.items.first()?.product_id;
    to_owner(ctx, product_id, method, path, headers, body).await
}

/// [`to_order_owner`] for a JSON body the handler has parsed (and checked) already.
pub async fn json_to_order_owner(
    ctx: &ApiContext,
    order_id: engine::OrderId,
    path: &str,
    headers: &HeaderMap,
    body: &impl serde::Serialize,
) -> Option<Result<Response, ApiError>> {
    ctx.forwarder.as_ref()?;
    let body = match serde_json::to_vec(body) {
        Ok(body) => body,
        Err(error) => return Some(Err(ApiError::Unavailable(error.to_string()))),
    };
    to_order_owner(ctx, order_id, Method::POST, path, headers, body.into()).await
}

/// The owner's answer as this node's: status, the headers that matter, the body.
async fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(value) = answer.headers().get(&name)
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            headers.insert(name, value);
        }
    }
    match answer.bytes().await {
        Ok(body) => (status, headers, body).into_response(),
        Err(error) => {
            ApiError::Unavailable(format!("reading a forwarded answer: {error}")).into_response()
        }
    }
}
