//! Reviews: customers who received a product rate it once (1-5 stars, a title, a body);
//! the product's rating becomes the reviews' average and feeds browse and search. The
//! rules are the engine's (`engine/src/review.rs`) and the shop's (`actors/src/reviews.rs`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use engine::ProductId;
use engine::review::ReviewDraft;
use persistence::{Review, ReviewSummary};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};

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
    let draft = ReviewDraft {
        rating: body.rating,
        title: body.title,
        body: body.body,
    };
    let added = ctx
        .shop
        .add_review(caller.user_id, ProductId(id), draft)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AddedBody {
            review: added.review.into(),
            product_rating: added.product_rating,
            review_count: added.review_count,
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
    let (page, page_size) = super::paging(
        &ctx.limits,
        params.page,
        params.page_size,
        PAGE_SIZE_DEFAULT,
    )?;
    let offset = u64::from(page - 1) * u64::from(page_size);
    let (reviews, ReviewSummary { average, count }) =
        ctx.shop.reviews(ProductId(id), offset, page_size).await?;
    Ok(axum::Json(ListBody {
        items: reviews.into_iter().map(ReviewBody::from).collect(),
        page,
        page_size,
        total: count,
        average_rating: average,
    }))
}
