//! What is done around every request, in one layer: its id and span (`request_trace.rs`),
//! its metrics (`metrics.rs`), its rate limit (`rate_limit.rs`) and the watch on its body
//! (`unread_body.rs`).
//!
//! Why one layer: each axum `from_fn` layer clones its inner service and boxes a future per
//! request. Separate layers for these cost Buy Now a few percent; their work is a few atomic
//! operations.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::app::ApiContext;
use crate::metrics::RequestMetrics;

/// Around every request of the public listener: rate-limited when `[rate_limits]` is on.
pub async fn around_request(
    State(ctx): State<ApiContext>,
    request: Request,
    next: Next,
) -> Response {
    around(ctx, request, next, true).await
}

/// Around every request of the node channel: what comes there was limited where it came
/// in.
pub async fn around_node_request(
    State(ctx): State<ApiContext>,
    request: Request,
    next: Next,
) -> Response {
    around(ctx, request, next, false).await
}

async fn around(ctx: ApiContext, mut request: Request, next: Next, public: bool) -> Response {
    let trace = crate::request_trace::begin(&ctx.limits, &mut request);
    let metrics = ctx.limits.metrics.then(|| RequestMetrics::begin(&request));
    let admitted = match ctx.rate_limiter.as_deref() {
        Some(limiter) if public => {
            crate::rate_limit::admit(limiter, &ctx, &mut request)
                .instrument(trace.span.clone())
                .await
        }
        _ => Ok(()),
    };
    let mut response = match admitted {
        Ok(()) => {
            let (request, body) = crate::unread_body::watch(request);
            let mut response = next.run(request).instrument(trace.span.clone()).await;
            body.finish(&mut response);
            response
        }
        Err(mut refused) => {
            // Answered before the body was read.
            crate::unread_body::close_unread(&request, &mut refused);
            refused
        }
    };
    if let Some(metrics) = metrics {
        metrics.finish(response.status());
    }
    trace.finish(&ctx.limits, &mut response);
    response
}
