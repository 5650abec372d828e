//! Figures kept from the event stream by the `analytics` consumer group: sales per product
//! (admins) and trending products (anyone: the home page shows them). On a cluster each
//! node counts the events of its share of the partitions: the answer sums every live
//! node's share (`/internal/v1/analytics/share`).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
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

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/analytics/sales", get(sales))
        .route("/analytics/sales/{product_id}", get(sales_of))
        .route("/analytics/trending", get(trending))
}

/// Where an analytics share is asked of a node, on its node channel.
pub const SHARE_PATH: &str = "/internal/v1/analytics/share";

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitParams {
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

#[derive(Serialize)]
struct SalesBody {
    products: Vec<ProductSales>,
}

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

#[derive(Serialize)]
struct TrendingBody {
    products: Vec<Trending>,
}

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
