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
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Counts every request by route template, method and status, and times it.
pub async fn record_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.to_string(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    response
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
