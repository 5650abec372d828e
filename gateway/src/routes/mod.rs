//! One module per resource; each exposes `router()`, merged here under `/api/v1`.

mod analytics;
pub mod buy_now;
mod cart;
mod flash_sales;
mod health;
mod inventory;
mod notifications;
mod orders;
mod page;
pub mod payments;
pub mod products;
mod reviews;
mod search;
mod stock_feed;
mod tracking;

use axum::Router;
use axum::http::StatusCode;

use crate::app::ApiContext;
use crate::error::ApiError;

pub fn router() -> Router<ApiContext> {
    let api = Router::new()
        .merge(products::router())
        .merge(flash_sales::router())
        .merge(buy_now::router())
        .merge(orders::router())
        .merge(payments::router())
        .merge(tracking::router())
        .merge(inventory::router())
        .merge(analytics::router())
        .merge(notifications::router())
        .merge(cart::router())
        .merge(search::router())
        .merge(reviews::router());
    Router::new()
        .nest("/api/v1", api)
        .merge(stock_feed::router())
        .merge(tracking::websocket_router())
        .merge(health::router())
        .merge(page::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "this route does not take that method".into(),
    }
}
