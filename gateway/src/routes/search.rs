//! Product search: `GET /search?q=samsung+galaxy+s24&priceMin=&priceMax=&ratingMin=&brand=&page=`
//! over the tantivy index (`search/`), typo-tolerant, with brand and price facets.

use axum::extract::State;
use engine::Money;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::products::ProductBody;

/// Longest query text; shoppers type a few words.
const QUERY_CHARS_MAX: usize = 200;
const PAGE_SIZE_DEFAULT: u32 = 20;
const PAGE_MAX: u32 = 1_000;
/// Default price histogram bucket: 1,000.00 in minor units.
const PRICE_INTERVAL_DEFAULT: u64 = 100_000;

use crate::api_doc::ErrorBody;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
struct SearchParams {
    q: Option<String>,
    price_min: Option<u64>,
    price_max: Option<u64>,
    rating_min: Option<f32>,
    brand: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
    price_interval: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct HitBody {
    #[serde(flatten)]
    product: ProductBody,
    score: f32,
}

#[derive(Serialize, ToSchema)]
struct BrandCount {
    brand: String,
    count: u64,
}

#[derive(Serialize, ToSchema)]
struct PriceBucket {
    from: u64,
    to: u64,
    count: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Facets {
    brands: Vec<BrandCount>,
    price_histogram: Vec<PriceBucket>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    items: Vec<HitBody>,
    total: u64,
    page: u32,
    page_size: u32,
    facets: Facets,
}

/// Full-text search of the catalog, typo-tolerant, with brand and price facets.
#[utoipa::path(
    get,
    path = "/search",
    tag = "catalog",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of hits, best first, and the facets of all hits.", body = SearchBody),
        (status = 422, description = "A bad query, filter or page (`invalid_field`).", body = ErrorBody),
    )
)]
async fn search(
    State(ctx): State<ApiContext>,
    Query(params): Query<SearchParams>,
) -> Result<axum::Json<SearchBody>, ApiError> {
    let text = params.q.unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid("q", "say what to search for"));
    }
    if text.chars().count() > QUERY_CHARS_MAX {
        return Err(ApiError::invalid(
            "q",
            format!("at most {QUERY_CHARS_MAX} characters"),
        ));
    }
    let (page, page_size) = super::paging(
        &ctx.limits,
        params.page,
        params.page_size,
        PAGE_SIZE_DEFAULT,
    )?;
    // Ranking collects every hit up to the page: deep pages cost, and nobody reads them.
    if page > PAGE_MAX {
        return Err(ApiError::invalid(
            "page",
            format!("must be at most {PAGE_MAX}"),
        ));
    }
    super::check_filters(params.price_min, params.price_max, params.rating_min)?;
    let price_interval = params.price_interval.unwrap_or(PRICE_INTERVAL_DEFAULT);
    if price_interval == 0 {
        return Err(ApiError::invalid("priceInterval", "must be at least 1"));
    }
    let query = search::SearchQuery {
        text: text.to_owned(),
        price_min: params.price_min.map(Money),
        price_max: params.price_max.map(Money),
        rating_min: params.rating_min,
        brand: params.brand,
        page,
        page_size,
        price_interval,
    };
    let index = std::sync::Arc::clone(&ctx.search);
    // Scoring is CPU work: off the async workers.
    let results = tokio::task::spawn_blocking(move || index.search(&query))
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    ctx.shop.emit_later(actors::events::search_performed(
        None,
        text,
        results.total,
        actors::clock::now_ms(),
    ));
    let items = results
        .hits
        .iter()
        .filter_map(|hit| {
            let product = ctx.shop.product(hit.product_id)?;
            Some(HitBody {
                product: ProductBody::from(product.as_ref()),
                score: hit.score,
            })
        })
        .collect();
    Ok(axum::Json(SearchBody {
        items,
        total: results.total,
        page,
        page_size,
        facets: Facets {
            brands: results
                .brands
                .into_iter()
                .map(|(brand, count)| BrandCount { brand, count })
                .collect(),
            price_histogram: results
                .price_histogram
                .into_iter()
                .map(|(from, count)| PriceBucket {
                    from,
                    to: from.saturating_add(price_interval),
                    count,
                })
                .collect(),
        },
    }))
}
