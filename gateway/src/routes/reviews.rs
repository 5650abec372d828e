//! Reviews: customers who received a product rate it once (1-5 stars, a title, a body);
//! the product's rating becomes the reviews' average and feeds browse and search. The
//! rules are the engine's (`engine/src/review.rs`) and the shop's (`actors/src/reviews.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use engine::ProductId;
use engine::review::ReviewDraft;
use persistence::{Review, ReviewSummary};
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::routes::PageParams;

const PAGE_SIZE_DEFAULT: u32 = 20;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list, add))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewReview {
    /// 1 to 5 stars.
    rating: i64,
    title: String,
    #[serde(default)]
    body: String,
}

#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AddedBody {
    review: ReviewBody,
    product_rating: f32,
    review_count: u64,
}

/// Rate a product received (customers, once per product).
#[utoipa::path(
    post,
    path = "/products/{id}/reviews",
    tag = "reviews",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "The product's id.")),
    request_body = NewReview,
    responses(
        (status = 201, description = "The review, and the product's new rating.", body = AddedBody),
        (status = 403, description = "Customers only (`forbidden`), who received the product (`not_received`).", body = ErrorBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 409, description = "Already reviewed by this customer (`already_reviewed`).", body = ErrorBody),
    )
)]
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ReviewPage)]
struct ListBody {
    items: Vec<ReviewBody>,
    page: u32,
    page_size: u32,
    total: u64,
    average_rating: f32,
}

/// A product's reviews, newest first, and its average rating.
#[utoipa::path(
    get,
    path = "/products/{id}/reviews",
    tag = "reviews",
    params(("id" = u64, Path, description = "The product's id."), PageParams),
    responses(
        (status = 200, description = "A page of reviews.", body = ListBody),
        (status = 404, description = "No such product (`not_found`).", body = ErrorBody),
        (status = 422, description = "A bad page (`invalid_field`).", body = ErrorBody),
    )
)]
async fn list(
    State(ctx): State<ApiContext>,
    Path(id): Path<u64>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<ListBody>, ApiError> {
    let (page, page_size, offset) = params.resolve(&ctx.limits, PAGE_SIZE_DEFAULT)?;
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
