//! Reviews: customers who received a product rate it once (1-5 stars, a title, a body);
//! the product's rating becomes the reviews' average and feeds browse and search.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use engine::ProductId;
use engine::product::ProductDraft;
use persistence::{Review, ReviewSummary};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};

const TITLE_CHARS_MAX: usize = 200;
const BODY_CHARS_MAX: usize = 5_000;
const PAGE_SIZE_DEFAULT: u32 = 20;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/products/{id}/reviews", get(list).post(add))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewReview {
    rating: i64,
    title: String,
    #[serde(default)]
    body: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewBody {
    user_id: u64,
    rating: u8,
    title: String,
    body: String,
    created_at_ms: u64,
}

impl From<Review> for ReviewBody {
    fn from(review: Review) -> Self {
        Self {
            user_id: review.user_id.0,
            rating: review.rating,
            title: review.title,
            body: review.body,
            created_at_ms: review.created_at_ms,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddedBody {
    review: ReviewBody,
    product_rating: f32,
    review_count: u64,
}

async fn add(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<u64>,
    Json(body): Json<NewReview>,
) -> Result<(StatusCode, axum::Json<AddedBody>), ApiError> {
    caller.require(&[Role::Customer])?;
    let product_id = ProductId(id);
    let product = ctx
        .shop
        .product(product_id)
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    let rating = u8::try_from(body.rating)
        .ok()
        .filter(|rating| (1..=5).contains(rating))
        .ok_or_else(|| ApiError::invalid("rating", "must be a whole number from 1 to 5"))?;
    let title = body.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > TITLE_CHARS_MAX {
        return Err(ApiError::invalid(
            "title",
            format!("must be 1 to {TITLE_CHARS_MAX} characters"),
        ));
    }
    if body.body.chars().count() > BODY_CHARS_MAX {
        return Err(ApiError::invalid(
            "body",
            format!("at most {BODY_CHARS_MAX} characters"),
        ));
    }
    let unavailable = |error: persistence::StoreError| ApiError::Unavailable(error.to_string());
    if !ctx
        .store
        .received(caller.user_id, product_id)
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::Rejected {
            status: StatusCode::FORBIDDEN,
            code: "not_received",
            message: format!("only customers with a delivered order of product {id} may review it"),
        });
    }
    let review = Review {
        product_id,
        user_id: caller.user_id,
        rating,
        title,
        body: body.body,
        created_at_ms: actors::clock::now_ms(),
    };
    let summary = ctx
        .store
        .add_review(&review)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::Conflict {
            code: "already_reviewed",
            message: format!("you already reviewed product {id}"),
        })?;
    // The rating is part of the product's record: its actor writes it, and the catalog
    // (browse) and the search index follow.
    let draft = ProductDraft {
        title: product.title.clone(),
        brand: product.brand.clone(),
        category: product.category.clone(),
        description: product.description.clone(),
        price: product.price,
        rating: (summary.average * 10.0).round() / 10.0,
        popularity: product.popularity,
    };
    let updated = ctx.shop.update_product(product_id, draft, None).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AddedBody {
            review: review.into(),
            product_rating: updated.rating,
            review_count: summary.count,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PageParams {
    page: Option<u32>,
    page_size: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    items: Vec<ReviewBody>,
    page: u32,
    page_size: u32,
    total: u64,
    average_rating: f32,
}

async fn list(
    State(ctx): State<ApiContext>,
    Path(id): Path<u64>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<ListBody>, ApiError> {
    let product_id = ProductId(id);
    if ctx.shop.product(product_id).is_none() {
        return Err(ApiError::NotFound(format!("no product {id}")));
    }
    let (page, page_size) = super::paging(
        &ctx.limits,
        params.page,
        params.page_size,
        PAGE_SIZE_DEFAULT,
    )?;
    let offset = u64::from(page - 1) * u64::from(page_size);
    let (reviews, ReviewSummary { average, count }) = ctx
        .store
        .reviews(product_id, offset, page_size)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    Ok(axum::Json(ListBody {
        items: reviews.into_iter().map(ReviewBody::from).collect(),
        page,
        page_size,
        total: count,
        average_rating: average,
    }))
}
