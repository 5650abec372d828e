//! Reviews: a customer who received a product rates it once; the product's rating becomes
//! the reviews' average, written by its actor like any change of its record, so browse
//! and search follow.

use engine::ProductEdit;
use engine::product::Invalid;
use engine::review::ReviewDraft;
use engine::{ProductId, UserId};
use persistence::{Review, ReviewSummary};

use crate::error::AdminError;
use crate::shop::Shop;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("only customers with a delivered order of product {0} may review it")]
    NotReceived(ProductId),
    #[error("you already reviewed product {0}")]
    AlreadyReviewed(ProductId),
    #[error("{0}")]
    Unavailable(String),
}

/// A review that was added, and where it left the product.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewAdded {
    pub review: Review,
    /// The product's rating now, to one decimal.
    pub product_rating: f32,
    pub review_count: u64,
}

impl Shop {
    /// `user` reviews `product_id`: only with a delivered order of it, once.
    pub async fn add_review(
        &self,
        user: UserId,
        product_id: ProductId,
        draft: ReviewDraft,
    ) -> Result<ReviewAdded, ReviewError> {
        if self.product(product_id).is_none() {
            return Err(ReviewError::UnknownProduct(product_id));
        }
        let valid = draft.validate()?;
        let stores = self.ctx.stores();
        let unavailable =
            |error: persistence::StoreError| ReviewError::Unavailable(error.to_string());
        if !stores
            .orders
            .delivered_to(user, product_id)
            .await
            .map_err(unavailable)?
        {
            return Err(ReviewError::NotReceived(product_id));
        }
        let review = Review {
            product_id,
            user_id: user,
            rating: valid.rating,
            title: valid.title,
            body: valid.body,
            created_at_ms: self.ctx.now_ms(),
        };
        let summary = stores
            .reviews
            .add_review(&review)
            .await
            .map_err(unavailable)?
            .ok_or(ReviewError::AlreadyReviewed(product_id))?;
        // The rating is part of the product's record: its actor writes it, and the catalog
        // (browse) and the search index follow.
        let edit = ProductEdit {
            rating: Some((summary.average * 10.0).round() / 10.0),
            ..ProductEdit::default()
        };
        let updated =
            self.update_product(product_id, edit, None)
                .await
                .map_err(|error| match error {
                    AdminError::UnknownProduct(id) => ReviewError::UnknownProduct(id),
                    other => ReviewError::Unavailable(other.to_string()),
                })?;
        Ok(ReviewAdded {
            review,
            product_rating: updated.rating,
            review_count: summary.count,
        })
    }

    /// A page of a product's reviews, newest first, and the summary of all of them.
    pub async fn reviews(
        &self,
        product_id: ProductId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Review>, ReviewSummary), ReviewError> {
        if self.product(product_id).is_none() {
            return Err(ReviewError::UnknownProduct(product_id));
        }
        self.ctx
            .stores()
            .reviews
            .reviews(product_id, offset, limit)
            .await
            .map_err(|error| ReviewError::Unavailable(error.to_string()))
    }
}
