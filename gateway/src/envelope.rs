//! What is done around every request, in one layer: its id and span (`request_trace.rs`),
//! its metrics (`metrics.rs`) and the watch on its body (`unread_body.rs`).
//!
//! Why one layer: each axum `from_fn` layer clones its inner service and boxes a future per
//! request. Three layers for these cost Buy Now a few percent; their work is a few atomic
//! operations.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::app::ApiContext;
use crate::metrics::RequestMetrics;

pub async fn around_request(
    State(ctx): State<ApiContext>,
    mut request: Request,
    next: Next,
) -> Response {
    let trace = crate::request_trace::begin(&ctx.limits, &mut request);
    let metrics = ctx.limits.metrics.then(|| RequestMetrics::begin(&request));
    let (request, body) = crate::unread_body::watch(request);
    let mut response = next.run(request).instrument(trace.span.clone()).await;
    if let Some(metrics) = metrics {
        metrics.finish(response.status());
    }
    body.finish(&mut response);
    trace.finish(&ctx.limits, &mut response);
    response
}
