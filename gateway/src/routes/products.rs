//! The catalog: create, replace, show, list.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::{Money, Product, ProductDraft, ProductEdit, ProductId, UserId};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ForwardableHeaders, Json, Path, Query};
use crate::forward;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api_doc::ErrorBody;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, replace))
}

/// A product to create: the body of `POST /products`, and a line of a catalog import.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// Optional: a seller's own id. Allocated when absent.
    id: Option<u64>,
    title: String,
    brand: String,
    category: String,
    #[serde(default)]
    description: String,
    /// Minor units (paise).
    price: u64,
    /// Units on the shelf.
    stock: u64,
    #[serde(default)]
    rating: f32,
    #[serde(default)]
    popularity: u64,
    /// The marketplace seller (a user with role `seller`) paid on delivery; absent for
    /// the shop's own stock.
    seller_id: Option<u64>,
}

impl NewProduct {
    /// The requested id (if any), the record to check, and the units to shelve.
    pub(crate) fn into_parts(self) -> (Option<ProductId>, ProductDraft, u64) {
        let draft = ProductDraft {
            title: self.title,
            brand: self.brand,
            category: self.category,
            description: self.description,
            price: Money(self.price),
            rating: self.rating,
            popularity: self.popularity,
            seller_id: self.seller_id.map(UserId),
        };
        (self.id.map(ProductId), draft, self.stock)
    }
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProductReplacement {
    title: String,
    brand: String,
    category: String,
    #[serde(default)]
    description: String,
    price: u64,
    /// Kept as is when absent (reviews and views maintain them).
    rating: Option<f32>,
    popularity: Option<u64>,
    /// Sets the units on the shelf when present (restock or write-down).
    stock: Option<u64>,
    /// Moves the product to another seller when present (kept as is when absent).
    seller_id: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductBody {
    id: u64,
    title: String,
    brand: String,
    category: String,
    description: String,
    price: u64,
    rating: f32,
    popularity: u64,
    /// The marketplace seller; absent for the shop's own stock.
    #[serde(skip_serializing_if = "Option::is_none")]
    seller_id: Option<u64>,
}

impl From<&Product> for ProductBody {
    fn from(product: &Product) -> Self {
        Self {
            id: product.id.0,
            title: product.title.clone(),
            brand: product.brand.clone(),
            category: product.category.clone(),
            description: product.description.clone(),
            price: product.price.0,
            rating: product.rating,
            popularity: product.popularity,
            seller_id: product.seller_id.map(|seller| seller.0),
        }
    }
}

/// One product as its page shows it: the product, and how many customers wishlisted it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProductDetailBody {
    #[serde(flatten)]
    product: ProductBody,
    /// Customers with the product on their wishlist. Absent when the store cannot say
    /// right now: the page is served from memory and does not fail for a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    wishlist_count: Option<u64>,
}

/// Add a product to the catalog (admins).
#[utoipa::path(
    post,
    path = "/products",
    tag = "catalog",
    security(("bearer" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "The product.", body = ProductBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 409, description = "A product with this id exists (`product_exists`).", body = ErrorBody),
    )
)]
async fn create(
    State(ctx): State<ApiContext>,
    caller: Caller,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<NewProduct>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    // A product is created by its shard's owner, which alone writes the shard. (An id the
    // engine allocates is this node's: see the README's cluster notes.)
    if let Some(id) = body.id {
        let path = "/api/v1/products";
        let forwarded =
            forward::json_to_owner(&ctx, ProductId(id), Method::POST, path, &headers, &body);
        if let Some(answer) = forwarded.await {
            return answer;
        }
    }
    let (id, draft, stock) = body.into_parts();
    let product = ctx.shop.create_product(id, draft, stock).await?;
    Ok((StatusCode::CREATED, axum::Json(ProductBody::from(&product))).into_response())
}

/// Replace a product's record; `stock`, when given, sets the units on the shelf (admins).
#[utoipa::path(
    put,
    path = "/products/{id}",
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "The product's id.")),
    request_body = ProductReplacement,
    responses(
        (status = 200, description = "The product as it is now.", body = ProductBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
    )
)]
async fn replace(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<u64>,
    ForwardableHeaders(headers): ForwardableHeaders,
    Json(body): Json<ProductReplacement>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let path = format!("/api/v1/products/{id}");
    let forwarded =
        forward::json_to_owner(&ctx, ProductId(id), Method::PUT, &path, &headers, &body);
    if let Some(answer) = forwarded.await {
        return answer;
    }
    let edit = ProductEdit {
        title: Some(body.title),
        brand: Some(body.brand),
        category: Some(body.category),
        description: Some(body.description),
        price: Some(Money(body.price)),
        rating: body.rating,
        popularity: body.popularity,
        seller_id: body.seller_id.map(UserId),
    };
    let product = ctx
        .shop
        .update_product(ProductId(id), edit, body.stock)
        .await?;
    Ok(axum::Json(ProductBody::from(&product)).into_response())
}

/// One product.
#[utoipa::path(
    get,
    path = "/products/{id}",
    tag = "catalog",
    params(("id" = u64, Path, description = "The product's id.")),
    responses(
        (status = 200, description = "The product.", body = ProductDetailBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Option<Caller>,
    Path(id): Path<u64>,
) -> Result<axum::Json<ProductDetailBody>, ApiError> {
    let product = ctx
        .shop
        .product(ProductId(id))
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    // A signed-in viewer's views pair within their session (recommendations).
    ctx.shop.emit_later(actors::events::product_viewed(
        product.id,
        caller.map(|caller| caller.user_id),
        actors::clock::now_ms(),
    ));
    let wishlist_count = match ctx.shop.wishlist_count(product.id).await {
        Ok(count) => Some(count),
        Err(error) => {
            tracing::debug!(%error, product = id, "wishlist count unavailable");
            None
        }
    };
    Ok(axum::Json(ProductDetailBody {
        product: ProductBody::from(product.as_ref()),
        wishlist_count,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
struct ListParams {
    category: Option<String>,
    price_min: Option<u64>,
    price_max: Option<u64>,
    rating_min: Option<f32>,
    brand: Option<String>,
    sort: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProductPage)]
struct ListBody {
    items: Vec<ProductBody>,
    page: u32,
    page_size: u32,
    total: u64,
}

/// Default page size: a phone screen of results.
const PAGE_SIZE_DEFAULT: u32 = 20;

/// A listing, cache-aside: served from the page cache when the catalog has not changed
/// since it was rendered (`x-cache: hit`), else rendered from memory and stored (`miss`).
#[utoipa::path(
    get,
    path = "/products",
    tag = "catalog",
    params(ListParams),
    responses(
        (status = 200, description = "A page of products; `x-cache` says whether it came from the page cache.", body = ListBody),
        (status = 422, description = "A bad filter, sort or page (`invalid_field`).", body = ErrorBody),
    )
)]
async fn list(
    State(ctx): State<ApiContext>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let sort = match params.sort.as_deref() {
        None | Some("popularity") => actors::ListSort::Popularity,
        Some("price") => actors::ListSort::Price,
        Some("rating") => actors::ListSort::Rating,
        Some(_) => {
            return Err(ApiError::invalid(
                "sort",
                "must be popularity, price or rating",
            ));
        }
    };
    let (page, page_size) = super::paging(
        &ctx.limits,
        params.page,
        params.page_size,
        PAGE_SIZE_DEFAULT,
    )?;
    super::check_filters(params.price_min, params.price_max, params.rating_min)?;
    let query = actors::ListQuery {
        category: params.category,
        price_min: params.price_min.map(Money),
        price_max: params.price_max.map(Money),
        rating_min: params.rating_min,
        brand: params.brand,
        sort,
        page,
        page_size,
    };
    // The generation is read before rendering, so a page stored under it is at least as
    // new as the catalog it names.
    let generation = ctx.shop.catalog_generation(query.category.as_deref());
    let key = format!("products:{generation}:{query:?}");
    if let Some(page) = ctx.pages.get(&key).await {
        return Ok(json_page(page, "hit"));
    }
    let result = ctx.shop.list_products(&query);
    let body = ListBody {
        items: result
            .items
            .iter()
            .map(|product| ProductBody::from(product.as_ref()))
            .collect(),
        page,
        page_size,
        total: result.total,
    };
    let page: Arc<[u8]> = serde_json::to_vec(&body)
        .map_err(|error| ApiError::Unavailable(format!("encoding a listing: {error}")))?
        .into();
    let pages = ctx.pages.clone();
    let stored = Arc::clone(&page);
    // Storing is off the reply path: the buyer does not wait for Redis.
    tokio::spawn(async move { pages.put(&key, stored).await });
    Ok(json_page(page, "miss"))
}

fn json_page(page: Arc<[u8]>, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("x-cache"),
                HeaderValue::from_static(cache),
            ),
        ],
        Body::from(Bytes::from_owner(ArcBytes(page))),
    )
        .into_response()
}

/// A cached page handed to the response body without copying it.
struct ArcBytes(Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
