//! Prometheus metrics at `GET /metrics` (issue 16): the `metrics` facade, recorded where
//! things happen, and `metrics-exporter-prometheus` to render them. Every name the engine
//! exports is here, so a dashboard or an alert finds them in one place.
//!
//! What is counted on the request path is one counter and one histogram per request
//! (route template, method, status: bounded labels). Figures the shop keeps anyway
//! (orders placed, live actors, mailbox depth, shards) are read at scrape time instead of
//! being recorded per order.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::ApiContext;

pub const HTTP_REQUESTS: &str = "flashcart_http_requests_total";
pub const HTTP_DURATION: &str = "flashcart_http_request_duration_seconds";
pub const ORDERS_PLACED: &str = "flashcart_orders_placed_total";
pub const BUY_NOW_REFUSED: &str = "flashcart_buy_now_refused_total";
pub const SHED: &str = "flashcart_shed_total";
pub const PRODUCT_ACTORS_LIVE: &str = "flashcart_product_actors_live";
pub const MAILBOX_DEPTH_MAX: &str = "flashcart_mailbox_depth_max";
pub const PENDING_ORDERS: &str = "flashcart_pending_orders";
pub const WS_CONNECTIONS: &str = "flashcart_ws_connections";
pub const SHARDS_OWNED: &str = "flashcart_shards_owned";
pub const OUTBOX_PENDING: &str = "flashcart_outbox_pending";
pub use persistence::{
    GROUP_COMMIT_BATCH_SIZE_METRIC as GROUP_COMMIT_BATCH_SIZE,
    GROUP_COMMIT_DURATION_METRIC as GROUP_COMMIT_DURATION,
};
pub use workflow::jobs::JOBS_METRIC as JOBS;

/// Seconds: a Buy Now answers in a few milliseconds; a slow one in hundreds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Submissions per group commit: one to thousands.
const BATCH_SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// The process's recorder, installed on first use. One per process: the tests start many
/// engines in one process, and they share it (their counters add up).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(GROUP_COMMIT_DURATION.into()),
                        &LATENCY_BUCKETS,
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(GROUP_COMMIT_BATCH_SIZE.into()),
                        &BATCH_SIZE_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed: /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// A request being counted: its route's handles, its method, when it came in.
pub struct RequestMetrics {
    handles: &'static RouteHandles,
    method: Method,
    started: Instant,
}

impl RequestMetrics {
    /// Starts counting a request (its route template, not its path: bounded labels).
    pub fn begin(request: &Request) -> Self {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        Self {
            handles: route_handles(route),
            method: request.method().clone(),
            started: Instant::now(),
        }
    }

    /// Counts the answer by status and records how long it took.
    pub fn finish(self, status: StatusCode) {
        self.handles.count(&self.method, status);
        self.handles
            .duration
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// One route's handles, made once: recording through a handle is an atomic add, where
/// `counter!` with labels builds and hashes a key (and allocates its labels) on every
/// request. That was most of the metrics' cost on Buy Now.
struct RouteHandles {
    route: String,
    duration: metrics::Histogram,
    /// The usual (method, status) pairs: found with one atomic load, no lock.
    common: [[OnceLock<metrics::Counter>; COMMON_STATUSES.len()]; COMMON_METHODS.len()],
    /// Any other pair.
    rare: std::sync::RwLock<Vec<(Method, u16, metrics::Counter)>>,
}

const COMMON_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];
const COMMON_STATUSES: [u16; 12] = [200, 201, 204, 400, 401, 403, 404, 409, 413, 422, 429, 503];

impl RouteHandles {
    fn count(&self, method: &Method, status: StatusCode) {
        let status = status.as_u16();
        let common = COMMON_METHODS
            .iter()
            .position(|known| known == method)
            .zip(COMMON_STATUSES.iter().position(|known| *known == status));
        match common {
            Some((m, s)) => self.common[m][s]
                .get_or_init(|| self.counter(method, status))
                .increment(1),
            None => self.count_rare(method, status),
        }
    }

    fn count_rare(&self, method: &Method, status: u16) {
        let known = self
            .rare
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(m, s, _)| m == method && *s == status)
            .map(|(_, _, counter)| counter.clone());
        let counter = known.unwrap_or_else(|| {
            let counter = self.counter(method, status);
            self.rare
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((method.clone(), status, counter.clone()));
            counter
        });
        counter.increment(1);
    }

    fn counter(&self, method: &Method, status: u16) -> metrics::Counter {
        metrics::counter!(
            HTTP_REQUESTS,
            "route" => self.route.clone(),
            "method" => method.to_string(),
            "status" => status.to_string()
        )
    }
}

/// The handles of `route`. Routes are the router's templates (and "unmatched"), so the
/// handles live as long as the process: leaked once each, read without reference counts.
fn route_handles(route: &str) -> &'static RouteHandles {
    static ROUTES: OnceLock<DashMap<String, &'static RouteHandles>> = OnceLock::new();
    let routes = ROUTES.get_or_init(DashMap::new);
    if let Some(handles) = routes.get(route) {
        return *handles;
    }
    *routes.entry(route.to_owned()).or_insert_with(|| {
        Box::leak(Box::new(RouteHandles {
            route: route.to_owned(),
            duration: metrics::histogram!(HTTP_DURATION, "route" => route.to_owned()),
            common: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            rare: std::sync::RwLock::new(Vec::new()),
        }))
    })
}

/// An answer the engine gave instead of a decision: counted by its error code.
pub fn count_refusal(code: &'static str) {
    metrics::counter!(BUY_NOW_REFUSED, "reason" => code).increment(1);
}

/// A request turned away to protect the engine (503 overloaded; 429 rate limited).
pub fn count_shed(reason: &'static str) {
    metrics::counter!(SHED, "reason" => reason).increment(1);
}

/// An open WebSocket of a feed (`stock`, `orders`), counted while it lives.
pub struct OpenFeed(&'static str);

impl OpenFeed {
    pub fn open(feed: &'static str) -> Self {
        metrics::gauge!(WS_CONNECTIONS, "feed" => feed).increment(1.0);
        Self(feed)
    }
}

impl Drop for OpenFeed {
    fn drop(&mut self) {
        metrics::gauge!(WS_CONNECTIONS, "feed" => self.0).decrement(1.0);
    }
}

/// `GET /metrics`: the shop's figures as of now, then everything recorded.
pub async fn scrape(State(ctx): State<ApiContext>) -> Response {
    if !ctx.limits.metrics {
        return crate::error::ApiError::NotFound(
            "metrics are off on this engine ([telemetry] metrics)".into(),
        )
        .into_response();
    }
    let Some(handle) = handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded in this process\n",
        )
            .into_response();
    };
    let shop = &ctx.shop;
    metrics::counter!(ORDERS_PLACED, "path" => "buy_now").absolute(shop.orders_placed());
    metrics::counter!(ORDERS_PLACED, "path" => "checkout").absolute(shop.checkouts_placed());
    metrics::gauge!(PRODUCT_ACTORS_LIVE).set(shop.live_product_count() as f64);
    metrics::gauge!(PENDING_ORDERS).set(shop.pending_order_count() as f64);
    let (_, deepest) = shop.in_flight_totals();
    metrics::gauge!(MAILBOX_DEPTH_MAX).set(f64::from(deepest));
    // One sum over a table the relay keeps near empty; on a cluster, the shared outbox.
    match ctx.outbox.pending_events().await {
        Ok(pending) => metrics::gauge!(OUTBOX_PENDING).set(pending as f64),
        Err(error) => tracing::warn!(%error, "cannot count the outbox for /metrics"),
    }
    if shop.is_clustered() {
        metrics::gauge!(SHARDS_OWNED).set(shop.shard_leases().len() as f64);
    }
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
