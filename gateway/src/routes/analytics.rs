//! Figures kept from the event stream by the `analytics` consumer group: sales per product
//! (admins) and trending products (anyone: the home page shows them). On a cluster each
//! node counts the events of its share of the partitions: the answer sums every live
//! node's share (`/internal/v1/analytics/share`).

use axum::extract::State;
use engine::ProductId;
use serde::{Deserialize, Serialize};
use workflow::analytics::{FiguresShare, ProductSales, Trending};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Path, Query};

/// Longest list either endpoint returns.
const LIMIT_MAX: usize = 1_000;
const LIMIT_DEFAULT: usize = 20;

use crate::api_doc::ErrorBody;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(sales))
        .routes(routes!(sales_of))
        .routes(routes!(trending))
        .routes(routes!(recommendations))
}

/// The schema of `workflow::analytics::ProductSales` as answered (the workflow crate stays
/// free of the API's documentation).
#[derive(ToSchema)]
#[schema(as = ProductSales)]
#[allow(dead_code)]
struct ProductSalesSchema {
    #[schema(rename = "productId")]
    product_id: u64,
    /// Orders placed (reserved), paid or not.
    #[schema(rename = "ordersPlaced")]
    orders_placed: u64,
    /// Units of confirmed (paid) orders.
    #[schema(rename = "unitsSold")]
    units_sold: u64,
    /// Revenue of confirmed orders, in minor units.
    revenue: u64,
}

/// The schema of `workflow::analytics::Trending` as answered.
#[derive(ToSchema)]
#[schema(as = Trending)]
#[allow(dead_code)]
struct TrendingSchema {
    #[schema(rename = "productId")]
    product_id: u64,
    score: u64,
    views: u64,
    #[schema(rename = "ordersPlaced")]
    orders_placed: u64,
}

/// Where an analytics share is asked of a node, on its node channel.
pub const SHARE_PATH: &str = "/internal/v1/analytics/share";

/// Where a node's share of a product's bought-or-viewed-together scores is asked, on its
/// node channel (`{product_id}` in the route).
pub const TOGETHER_PATH: &str = "/internal/v1/analytics/together/{product_id}";

/// Neighbours each node reports for a product: every one it keeps, so the cluster's sum
/// ranks them all.
const TOGETHER_ASKED: usize = 64;

/// The products bought or viewed with `product`, best first: on a cluster, every live
/// node's scores summed (each counted its share of the stream).
pub async fn together(
    ctx: &ApiContext,
    product: ProductId,
    limit: usize,
) -> Result<Vec<(ProductId, f64)>, ApiError> {
    let mut shares: Vec<Vec<(ProductId, f64)>> = match ctx.cluster.as_ref() {
        Some(ops) => {
            let path = TOGETHER_PATH.replace("{product_id}", &product.0.to_string());
            ops.gather(&path).await?
        }
        None => Vec::new(),
    };
    shares.push(together_share(ctx, product));
    Ok(workflow::recommendations::sum_shares(shares, limit))
}

/// This node's share of [`together`], for the node that sums.
pub fn together_share(ctx: &ApiContext, product: ProductId) -> Vec<(ProductId, f64)> {
    ctx.analytics.bought_or_viewed_with(product, TOGETHER_ASKED)
}

/// The cluster's figures (every live node's share, summed), or `None` for a node alone,
/// whose own figures are the whole.
async fn cluster_figures(ctx: &ApiContext) -> Result<Option<FiguresShare>, ApiError> {
    let Some(ops) = ctx.cluster.as_ref() else {
        return Ok(None);
    };
    let mut shares: Vec<FiguresShare> = ops.gather(SHARE_PATH).await?;
    shares.push(ctx.analytics.share());
    Ok(Some(FiguresShare::merge(shares)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LimitParams {
    /// How many, 1 to 1,000 (default 20).
    limit: Option<usize>,
}

impl LimitParams {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(LIMIT_DEFAULT),
            Some(limit) if (1..=LIMIT_MAX).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {LIMIT_MAX}"),
            )),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct SalesBody {
    #[schema(value_type = Vec<ProductSalesSchema>)]
    products: Vec<ProductSales>,
}

/// Sales per product, best first (admins).
#[utoipa::path(
    get,
    path = "/analytics/sales",
    tag = "analytics",
    security(("bearer" = [])),
    params(LimitParams),
    responses(
        (status = 200, description = "Products by orders placed.", body = SalesBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 422, description = "A bad `limit` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn sales(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<LimitParams>,
) -> Result<axum::Json<SalesBody>, ApiError> {
    caller.require(&[Role::Admin])?;
    let limit = params.limit()?;
    let products = match cluster_figures(&ctx).await? {
        Some(cluster) => cluster.sales(limit),
        None => ctx.analytics.sales(limit),
    };
    Ok(axum::Json(SalesBody { products }))
}

/// One product's sales (admins).
#[utoipa::path(
    get,
    path = "/analytics/sales/{product_id}",
    tag = "analytics",
    security(("bearer" = [])),
    params(("product_id" = u64, Path, description = "The product's id.")),
    responses(
        (status = 200, description = "The product's figures.", body = ProductSalesSchema),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No sales recorded for it (`not_found`).", body = ErrorBody),
    )
)]
async fn sales_of(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(product_id): Path<u64>,
) -> Result<axum::Json<ProductSales>, ApiError> {
    caller.require(&[Role::Admin])?;
    let sales = match cluster_figures(&ctx).await? {
        Some(cluster) => cluster.sales_of(ProductId(product_id)),
        None => ctx.analytics.sales_of(ProductId(product_id)),
    };
    sales
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no sales recorded for product {product_id}")))
}

#[derive(Serialize, ToSchema)]
struct TrendingBody {
    #[schema(value_type = Vec<TrendingSchema>)]
    products: Vec<Trending>,
}

/// What is trending: views and orders of the last window, scored.
#[utoipa::path(
    get,
    path = "/analytics/trending",
    tag = "analytics",
    params(LimitParams),
    responses(
        (status = 200, description = "Products by score.", body = TrendingBody),
        (status = 422, description = "A bad `limit` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn trending(
    State(ctx): State<ApiContext>,
    Query(params): Query<LimitParams>,
) -> Result<axum::Json<TrendingBody>, ApiError> {
    let limit = params.limit()?;
    let products = match cluster_figures(&ctx).await? {
        Some(cluster) => cluster.trending(limit),
        None => ctx.analytics.trending(limit),
    };
    Ok(axum::Json(TrendingBody { products }))
}

/// One recommended product.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Recommended {
    product_id: u64,
    title: String,
    /// Minor units.
    price: u64,
    /// Purchases together weigh 3, views in one session 1, halved every week; for
    /// trending products, their trending score.
    score: f64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RecommendationsBody {
    product_id: u64,
    /// `together`: bought or viewed with it; `trending`: nothing is known of it yet, so
    /// what is trending (itself left out).
    source: &'static str,
    items: Vec<Recommended>,
}

/// Products bought together with this one (lines of one order) and viewed in the same
/// session (one signed-in user's views under 30 minutes apart), best first; the trending
/// products for a product nothing is known of yet.
#[utoipa::path(
    get,
    path = "/products/{id}/recommendations",
    tag = "analytics",
    params(("id" = u64, Path, description = "The product's id."), LimitParams),
    responses(
        (status = 200, description = "Recommended products, best first.", body = RecommendationsBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 422, description = "A bad `limit` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn recommendations(
    State(ctx): State<ApiContext>,
    Path(product_id): Path<u64>,
    Query(params): Query<LimitParams>,
) -> Result<axum::Json<RecommendationsBody>, ApiError> {
    let limit = params.limit()?;
    let product = ProductId(product_id);
    if ctx.shop.product(product).is_none() {
        return Err(ApiError::NotFound(format!("no product {product_id}")));
    }
    let together = together(&ctx, product, limit).await?;
    let (source, scored) = if together.is_empty() {
        let trending = match cluster_figures(&ctx).await? {
            Some(cluster) => cluster.trending(limit + 1),
            None => ctx.analytics.trending(limit + 1),
        };
        let trending = trending
            .into_iter()
            .filter(|trend| trend.product_id != product)
            .take(limit)
            .map(|trend| (trend.product_id, trend.score as f64))
            .collect();
        ("trending", trending)
    } else {
        ("together", together)
    };
    let items = scored
        .into_iter()
        .filter_map(|(id, score)| {
            let found = ctx.shop.product(id)?;
            Some(Recommended {
                product_id: id.0,
                title: found.title.clone(),
                price: found.price.0,
                score,
            })
        })
        .collect();
    Ok(axum::Json(RecommendationsBody {
        product_id,
        source,
        items,
    }))
}
