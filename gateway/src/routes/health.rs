use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::app::ApiContext;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Liveness: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers, so writes can be made durable.
async fn readyz(State(ctx): State<ApiContext>) -> (StatusCode, &'static str) {
    if ctx.shop.ready().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
    }
}
