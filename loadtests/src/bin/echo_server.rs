//! The ceiling: the engine's HTTP stack (tokio + axum, same versions and settings) with a
//! handler that parses the Buy Now JSON and echoes it, doing nothing else. Whatever the
//! engine does on top shows up as the distance to this.
//!
//! `echo-server 127.0.0.1:18081`. It also answers the harness's setup calls.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let router = Router::new()
        .route("/api/v1/buy-now", post(echo))
        .route("/api/v1/products", post(created))
        .route("/api/v1/flash-sales", post(created))
        .route(
            "/api/v1/inventory/{id}",
            get(|| async { axum::Json(json!({})) }),
        )
        .route("/readyz", get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("echo server on {address}");
    axum::serve(listener, router).await?;
    Ok(())
}

async fn echo(axum::Json(body): axum::Json<Value>) -> (StatusCode, axum::Json<Value>) {
    (StatusCode::CREATED, axum::Json(body))
}

async fn created() -> (StatusCode, axum::Json<Value>) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    (StatusCode::CREATED, axum::Json(json!({ "id": id })))
}
