//! One module per resource; each exposes `router()`, merged here under `/api/v1`.

mod analytics;
pub mod buy_now;
mod campaigns;
pub(crate) mod cart;
mod checkout;
pub mod cluster;
mod flash_sales;
mod health;
mod internal;
mod inventory;
mod notifications;
pub(crate) mod orders;
mod page;
pub mod payments;
pub mod products;
mod reviews;
mod search;
mod sellers;
mod stock_feed;
mod tracking;
mod wishlist;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::app::ApiContext;
use crate::error::ApiError;

/// The public routes, and the OpenAPI document describing them (`api_doc.rs`): every
/// route under `/api/v1` and the two live feeds are registered with their description, so
/// one cannot be served undocumented. Health checks, `/metrics`, the page and the document
/// itself are not part of the API.
pub fn router() -> Router<ApiContext> {
    let api = OpenApiRouter::new()
        .merge(products::router())
        .merge(flash_sales::router())
        .merge(buy_now::router())
        .merge(orders::router())
        .merge(checkout::router())
        .merge(payments::router())
        .merge(tracking::router())
        .merge(inventory::router())
        .merge(analytics::router())
        .merge(notifications::router())
        .merge(cart::router())
        .merge(search::router())
        .merge(reviews::router())
        .merge(wishlist::router())
        .merge(sellers::router())
        .merge(campaigns::router())
        .merge(cluster::router());
    let (documented, document) = OpenApiRouter::with_openapi(crate::api_doc::ApiDoc::openapi())
        .nest("/api/v1", api)
        .merge(stock_feed::router())
        .merge(tracking::websocket_router())
        .split_for_parts();
    let document: Arc<[u8]> = crate::api_doc::render(&crate::api_doc::complete(document)).into();
    documented
        .route(
            crate::api_doc::DOCUMENT_PATH,
            axum::routing::get(move || {
                let document = Arc::clone(&document);
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        axum::body::Bytes::copy_from_slice(&document),
                    )
                }
            }),
        )
        .merge(health::router())
        .route("/metrics", axum::routing::get(crate::metrics::scrape))
        .merge(page::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// `page` (1-based, default 1) and `pageSize` (default `size_default`, at most the
/// configured maximum) of a listing, or the 422 naming the bad one.
pub(crate) fn paging(
    limits: &crate::app::Limits,
    page: Option<u32>,
    page_size: Option<u32>,
    size_default: u32,
) -> Result<(u32, u32), ApiError> {
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid("page", "must be at least 1"));
    }
    let page_size = page_size.unwrap_or(size_default);
    let page_size_max = limits.page_size_max;
    if page_size == 0 || page_size > page_size_max {
        return Err(ApiError::invalid(
            "pageSize",
            format!("must be between 1 and {page_size_max}"),
        ));
    }
    Ok((page, page_size))
}

/// `?page=&pageSize=` of a listing that takes nothing else.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(crate) struct PageParams {
    /// 1-based, default 1.
    page: Option<u32>,
    /// The listing's default when absent, at most the server's page size bound.
    page_size: Option<u32>,
}

impl PageParams {
    /// The page, its size and the offset of its first item ([`paging`]'s rules).
    pub(crate) fn resolve(
        &self,
        limits: &crate::app::Limits,
        size_default: u32,
    ) -> Result<(u32, u32, u64), ApiError> {
        let (page, page_size) = paging(limits, self.page, self.page_size, size_default)?;
        Ok((page, page_size, u64::from(page - 1) * u64::from(page_size)))
    }
}

/// The filters browse and search share: a price range and a lowest rating.
pub(crate) fn check_filters(
    price_min: Option<u64>,
    price_max: Option<u64>,
    rating_min: Option<f32>,
) -> Result<(), ApiError> {
    if let (Some(min), Some(max)) = (price_min, price_max)
        && min > max
    {
        return Err(ApiError::invalid("priceMin", "must not be above priceMax"));
    }
    if let Some(rating) = rating_min
        && !(0.0..=5.0).contains(&rating)
    {
        return Err(ApiError::invalid("ratingMin", "must be between 0 and 5"));
    }
    Ok(())
}

/// The public API plus what only other nodes ask: served on a node's internal listener.
pub fn internal_router() -> Router<ApiContext> {
    router().merge(internal::router())
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
