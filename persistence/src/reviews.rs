//! Product reviews: one per user and product. Who may review (a delivered order of the
//! product) is the shop's rule (`actors`); this module keeps the reviews and their
//! numbers.

use async_trait::async_trait;
use engine::{ProductId, UserId};

use crate::database::{Database, Sql, dialects};
use crate::error::StoreError;
use crate::row::{StoredRow, int};

/// A customer's review of a product they received.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub product_id: ProductId,
    pub user_id: UserId,
    /// 1 to 5.
    pub rating: u8,
    pub title: String,
    pub body: String,
    pub created_at_ms: u64,
}

/// A product's reviews in numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReviewSummary {
    pub average: f32,
    pub count: u64,
}

#[async_trait]
pub trait ReviewStore: Send + Sync + 'static {
    /// Adds a review and returns the product's new summary; `None` when this user already
    /// reviewed this product (nothing changes).
    async fn add_review(&self, review: &Review) -> Result<Option<ReviewSummary>, StoreError>;

    /// A page of a product's reviews, newest first, and the summary of all of them.
    async fn reviews(
        &self,
        product: ProductId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Review>, ReviewSummary), StoreError>;
}

const ADD: Sql = Sql::both(
    "INSERT INTO reviews (product_id, user_id, rating, title, body, created_at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (product_id, user_id) DO NOTHING",
);

const PAGE: Sql = Sql::both(
    "SELECT product_id, user_id, rating, title, body, created_at_ms FROM reviews \
     WHERE product_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
);

const SUMMARY: Sql = Sql::both(
    "SELECT COUNT(*) AS count, CAST(AVG(rating) AS DOUBLE PRECISION) AS average \
     FROM reviews WHERE product_id = $1",
);

#[async_trait]
impl ReviewStore for Database {
    async fn add_review(&self, review: &Review) -> Result<Option<ReviewSummary>, StoreError> {
        let inserted = dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&ADD))
                .bind(int(review.product_id.0)?)
                .bind(int(review.user_id.0)?)
                .bind(i16::from(review.rating))
                .bind(&review.title)
                .bind(&review.body)
                .bind(int(review.created_at_ms)?)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if inserted == 0 {
            return Ok(None);
        }
        self.summary(review.product_id).await.map(Some)
    }

    async fn reviews(
        &self,
        product: ProductId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Review>, ReviewSummary), StoreError> {
        let reviews = dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&PAGE))
                .bind(int(product.0)?)
                .bind(i64::from(limit))
                .bind(int(offset)?)
                .fetch_all(pool)
                .await?
                .iter()
                .map(decode_review)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok((reviews, self.summary(product).await?))
    }
}

impl Database {
    async fn summary(&self, product: ProductId) -> Result<ReviewSummary, StoreError> {
        dialects!(self.pool(), |pool, D| {
            let row = sqlx::query(D::sql(&SUMMARY))
                .bind(int(product.0)?)
                .fetch_one(pool)
                .await?;
            Ok(ReviewSummary {
                average: row.real("average")?.unwrap_or(0.0) as f32,
                count: row.uint("count")?,
            })
        })
    }
}

fn decode_review(row: &impl StoredRow) -> Result<Review, StoreError> {
    let rating = row.int("rating")?;
    Ok(Review {
        product_id: row.product_id("product_id")?,
        user_id: row.user_id("user_id")?,
        rating: u8::try_from(rating)
            .map_err(|_| StoreError::Decode(format!("review rating {rating}")))?,
        title: row.text("title")?,
        body: row.text("body")?,
        created_at_ms: row.uint("created_at_ms")?,
    })
}
