//! The operators' view of a cluster (admin only), what `flashcart cluster ...` reads:
//! - `GET /cluster/status`: every node (address, alive, shards, requests in flight, the
//!   busiest product actor, orders a second over the last 10 s, each asked of its node),
//!   the shards group's state, and the shards whose lease changed in the last minute;
//! - `GET /cluster/node`: this node's own figures (what `status` asks each node);
//! - `GET /cluster/where?product=ID`: the product's shard, owner and epoch;
//! - `GET /cluster/inspect?product=ID`: its live actor, asked of its owner;
//! - `POST /cluster/drain {"node"}`: that node hands all its shards to the others, leaves
//!   the group and keeps forwarding; answered once it serves no shard;
//! - `POST /cluster/move {"shard", "to"}`: the shard is placed on that node; its holder
//!   hands it off, then the node takes it (`cluster/src/placement.rs`).
//!
//! A node alone answers 404 to all of them: there is no cluster to look at.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use actors::Shop;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use cluster::ClusterView;
use engine::ProductId;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::forward;
use crate::time_format::format_rfc3339_ms;

use crate::api_doc::ErrorBody;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(node))
        .routes(routes!(where_is))
        .routes(routes!(inspect))
        .routes(routes!(drain))
        .routes(routes!(move_shard))
}

/// The answer of `drain` and `move`: what was asked, done.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ActionDone {
    node: Option<String>,
    drained: Option<bool>,
    shard: Option<u32>,
    to: Option<String>,
}

/// How far back `status` lists shards whose lease changed.
const RECENT_MOVES: Duration = Duration::from_secs(60);
/// The window of the orders-a-second figure.
const RATE_WINDOW: usize = 10;

/// A cluster node's operator state: its view of the cluster, and its order counter sampled
/// every second (for the orders-a-second figure).
pub struct ClusterOps {
    view: ClusterView,
    shop: Shop,
    client: reqwest::Client,
    /// (when, orders placed so far), oldest first, one a second.
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl ClusterOps {
    /// Asks every other live node of the directory for its part of something only the
    /// nodes together have (`path` on their node channel), as JSON. A live node that does
    /// not answer fails the whole: a sum with a missing part would be wrong, not partial.
    pub async fn gather<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ApiError> {
        let directory = self.view.directory().await.map_err(store_failed)?;
        let alive_since = self.view.alive_since_ms();
        let mut parts = Vec::new();
        for entry in directory {
            if entry.node_id == self.view.node_id() || entry.seen_at_ms < alive_since {
                continue;
            }
            let url = format!("http://{}{path}", entry.internal_address);
            let answer = self
                .client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| {
                    ApiError::Unavailable(format!("node {}: {error}", entry.node_id))
                })?;
            let part = answer.json().await.map_err(|error| {
                ApiError::Unavailable(format!("node {}'s answer: {error}", entry.node_id))
            })?;
            parts.push(part);
        }
        Ok(parts)
    }

    pub fn start(view: ClusterView, shop: Shop) -> Arc<Self> {
        let ops = Arc::new(Self {
            view,
            shop,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            samples: Mutex::new(VecDeque::with_capacity(RATE_WINDOW + 1)),
        });
        let weak: Weak<Self> = Arc::downgrade(&ops);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticks.tick().await;
                let Some(ops) = weak.upgrade() else {
                    return;
                };
                ops.sample();
            }
        });
        ops
    }

    fn sample(&self) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back((Instant::now(), self.shop.orders_placed()));
        while samples.len() > RATE_WINDOW + 1 {
            samples.pop_front();
        }
    }

    fn orders_per_second(&self) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        match (samples.front(), samples.back()) {
            (Some((first_at, first)), Some((last_at, last))) if last_at > first_at => {
                (last - first) as f64 / last_at.duration_since(*first_at).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    fn figures(&self) -> NodeFigures {
        let (in_flight, deepest) = self.shop.in_flight_totals();
        let mut shards: Vec<u32> = self
            .shop
            .shard_leases()
            .iter()
            .map(|lease| lease.shard)
            .collect();
        shards.sort_unstable();
        NodeFigures {
            node_id: self.view.node_id().to_owned(),
            shards,
            live_products: self.shop.live_product_count(),
            in_flight,
            deepest_mailbox: deepest,
            orders_per_second: (self.orders_per_second() * 10.0).round() / 10.0,
        }
    }
}

/// One node's own figures.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeFigures {
    pub node_id: String,
    pub shards: Vec<u32>,
    pub live_products: usize,
    /// Buy Now requests admitted and not answered yet, over every product actor.
    pub in_flight: u64,
    /// The most of them waiting on one product actor (its mailbox and its batch in commit).
    pub deepest_mailbox: u32,
    /// Buy Now orders made durable a second, over the last 10 s.
    pub orders_per_second: f64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    answered_by: String,
    group: GroupBody,
    nodes: Vec<NodeBody>,
    recently_moved: Vec<MovedBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    state: String,
    members: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NodeBody {
    node_id: String,
    address: String,
    alive: bool,
    seen_at: String,
    /// Shards leased to it, from the store.
    shards: Vec<u32>,
    /// What it says of itself; `null` when it did not answer.
    figures: Option<NodeFigures>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MovedBody {
    shard: u32,
    node: String,
    epoch: u64,
    taken_at: String,
}

fn ops(ctx: &ApiContext) -> Result<&Arc<ClusterOps>, ApiError> {
    ctx.cluster
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this engine runs alone: there is no cluster".into()))
}

fn store_failed(error: cluster::ClusterError) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

/// This node's own figures (admins).
#[utoipa::path(
    get,
    path = "/cluster/node",
    tag = "cluster",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures.", body = NodeFigures),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "This engine runs alone: there is no cluster (`not_found`).", body = ErrorBody),
    )
)]
async fn node(State(ctx): State<ApiContext>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(axum::Json(ops(&ctx)?.figures()).into_response())
}

/// Every node (alive, shards, figures), the consumer group, recent shard moves (admins).
#[utoipa::path(
    get,
    path = "/cluster/status",
    tag = "cluster",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cluster as this node sees it.", body = StatusBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "This engine runs alone: there is no cluster (`not_found`).", body = ErrorBody),
    )
)]
async fn status(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let ops = ops(&ctx)?;
    let view = &ops.view;
    let directory = view.directory().await.map_err(store_failed)?;
    let leases = view.lease_records().await.map_err(store_failed)?;
    let group = match view.group_state().await {
        Ok(group) => GroupBody {
            state: group.state,
            members: group.members,
        },
        Err(error) => GroupBody {
            state: format!("unknown ({error})"),
            members: Vec::new(),
        },
    };
    let now_ms = actors::clock::now_ms();
    let alive_since = view.alive_since_ms();
    let mut nodes = Vec::with_capacity(directory.len());
    for entry in directory {
        let alive = entry.seen_at_ms >= alive_since;
        let shards = leases
            .iter()
            .filter(|record| record.lease.owner_node == entry.node_id)
            .map(|record| record.lease.shard)
            .collect();
        let figures = if entry.node_id == view.node_id() {
            Some(ops.figures())
        } else if alive {
            figures_of(ops, &entry.internal_address, &headers).await
        } else {
            None
        };
        nodes.push(NodeBody {
            node_id: entry.node_id,
            address: entry.internal_address,
            alive,
            seen_at: format_rfc3339_ms(entry.seen_at_ms),
            shards,
            figures,
        });
    }
    let moved_since = now_ms.saturating_sub(RECENT_MOVES.as_millis() as u64);
    let recently_moved = leases
        .into_iter()
        .filter(|record| record.taken_at_ms >= moved_since)
        .map(|record| MovedBody {
            shard: record.lease.shard,
            node: record.lease.owner_node,
            epoch: record.lease.epoch,
            taken_at: format_rfc3339_ms(record.taken_at_ms),
        })
        .collect();
    Ok(axum::Json(StatusBody {
        answered_by: view.node_id().to_owned(),
        group,
        nodes,
        recently_moved,
    })
    .into_response())
}

/// A node's own figures, asked over its node channel with the caller's token.
async fn figures_of(ops: &ClusterOps, address: &str, headers: &HeaderMap) -> Option<NodeFigures> {
    let mut request = ops
        .client
        .get(format!("http://{address}/api/v1/cluster/node"));
    if let Some(token) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, token);
    }
    let answer = request.send().await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    answer.json().await.ok()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ProductParam {
    /// The product's id.
    product: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WhereBody {
    product_id: u64,
    shard: u32,
    node: Option<String>,
    address: Option<String>,
    epoch: Option<u64>,
}

/// The shard, owner node and epoch of a product (admins).
#[utoipa::path(
    get,
    path = "/cluster/where",
    tag = "cluster",
    security(("bearer" = [])),
    params(ProductParam),
    responses(
        (status = 200, description = "Where the product lives.", body = WhereBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "This engine runs alone: there is no cluster (`not_found`).", body = ErrorBody),
    )
)]
async fn where_is(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(param): Query<ProductParam>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let ops = ops(&ctx)?;
    let shard = ctx.shop.shard_of(ProductId(param.product));
    let route = ops.view.routes().route(shard);
    Ok(axum::Json(WhereBody {
        product_id: param.product,
        shard,
        node: route.as_ref().map(|route| route.node_id.clone()),
        address: route.as_ref().map(|route| route.address.clone()),
        epoch: route.map(|route| route.epoch),
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct InspectBody {
    product_id: u64,
    node: String,
    /// The actor was running when asked (else it was passivated or never started, and
    /// this answer started it).
    was_live: bool,
    initial: u64,
    reserved: u64,
    sold: u64,
    left: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sale: Option<SaleBody>,
    in_flight: u32,
    recovering: bool,
    open_writes: usize,
    committing_batches: usize,
    held_lines: usize,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ClusterSale)]
struct SaleBody {
    sale_id: u64,
    initial: u64,
    reserved: u64,
    sold: u64,
    left: u64,
}

/// A product's live actor, asked of its owner (admins).
#[utoipa::path(
    get,
    path = "/cluster/inspect",
    tag = "cluster",
    security(("bearer" = [])),
    params(ProductParam),
    responses(
        (status = 200, description = "The actor's state.", body = InspectBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "This engine runs alone: there is no cluster (`not_found`).", body = ErrorBody),
    )
)]
async fn inspect(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(param): Query<ProductParam>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let ops = ops(&ctx)?;
    let product_id = ProductId(param.product);
    let path = format!("/api/v1/cluster/inspect?product={product_id}");
    let forwarded = forward::to_owner(&ctx, product_id, Method::GET, &path, &headers, Bytes::new());
    if let Some(answer) = forwarded.await {
        return answer;
    }
    let was_live = ctx.shop.product_actor(product_id).is_some();
    let inspection = ctx.shop.inspect(product_id).await?;
    let counters = inspection.counters;
    Ok(axum::Json(InspectBody {
        product_id: product_id.0,
        node: ops.view.node_id().to_owned(),
        was_live,
        initial: counters.initial,
        reserved: counters.reserved,
        sold: counters.sold,
        left: counters.left,
        sale: inspection.sale.map(|(sale, counters)| SaleBody {
            sale_id: sale.id.0,
            initial: counters.initial,
            reserved: counters.reserved,
            sold: counters.sold,
            left: counters.left,
        }),
        in_flight: ctx.shop.in_flight(product_id).unwrap_or(0),
        recovering: inspection.recovering,
        open_writes: inspection.open_writes,
        committing_batches: inspection.committing_batches,
        held_lines: inspection.held_lines,
    })
    .into_response())
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DrainBody {
    node: String,
}

/// Hand every shard of a node to the others; it keeps answering by forwarding (admins).
#[utoipa::path(
    post,
    path = "/cluster/drain",
    tag = "cluster",
    security(("bearer" = [])),
    request_body = DrainBody,
    responses(
        (status = 200, description = "`{node, drained: true}`.", body = ActionDone),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "This engine runs alone: there is no cluster (`not_found`).", body = ErrorBody),
    )
)]
async fn drain(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<DrainBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let ops = ops(&ctx)?;
    if body.node == ops.view.node_id() {
        ops.view.drain().await.map_err(store_failed)?;
        return Ok(
            axum::Json(serde_json::json!({ "node": body.node, "drained": true })).into_response(),
        );
    }
    if forward::Forwarder::was_forwarded(&headers) {
        return Err(ApiError::Unavailable(format!(
            "node {} is not this one",
            body.node
        )));
    }
    let address = alive_address(ops, &body.node).await?;
    let mut request = ops
        .client
        .post(format!("http://{address}/api/v1/cluster/drain"))
        .header(forward::FORWARDED_BY, ops.view.node_id())
        .timeout(Duration::from_secs(60))
        .json(&body);
    if let Some(token) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, token);
    }
    let answer = request
        .send()
        .await
        .map_err(|error| ApiError::Unavailable(format!("node {}: {error}", body.node)))?;
    let status = answer.status();
    let value: serde_json::Value = answer
        .json()
        .await
        .map_err(|error| ApiError::Unavailable(format!("node {}: {error}", body.node)))?;
    Ok((status, axum::Json(value)).into_response())
}

/// The node channel of a live node of the directory, or 404/422 naming what is wrong.
async fn alive_address(ops: &ClusterOps, node: &str) -> Result<String, ApiError> {
    let directory = ops.view.directory().await.map_err(store_failed)?;
    let Some(entry) = directory.into_iter().find(|entry| entry.node_id == node) else {
        return Err(ApiError::NotFound(format!("no node {node} in the cluster")));
    };
    let alive_since = ops.view.alive_since_ms();
    if entry.seen_at_ms < alive_since {
        return Err(ApiError::invalid(
            "node",
            format!("node {node} is not alive"),
        ));
    }
    Ok(entry.internal_address)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MoveBody {
    shard: u32,
    to: String,
}

/// Move one shard to a node; its holder hands it off first (admins).
#[utoipa::path(
    post,
    path = "/cluster/move",
    tag = "cluster",
    security(("bearer" = [])),
    request_body = MoveBody,
    responses(
        (status = 200, description = "`{shard, to}`.", body = ActionDone),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "This engine runs alone: there is no cluster (`not_found`).", body = ErrorBody),
    )
)]
async fn move_shard(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(body): Json<MoveBody>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let ops = ops(&ctx)?;
    let shard_count = ctx.shop.settings().shard_count;
    if body.shard >= shard_count {
        return Err(ApiError::invalid(
            "shard",
            format!("must be below {shard_count}"),
        ));
    }
    alive_address(ops, &body.to).await?;
    ops.view
        .place(body.shard, &body.to)
        .await
        .map_err(store_failed)?;
    Ok(axum::Json(serde_json::json!({ "shard": body.shard, "to": body.to })).into_response())
}
