//! Wishlists: the products a customer wants to hear about, and, per product, who wants
//! to hear (a sale's campaign tells every one of them). Whether the product exists and
//! the list's bound are the shop's rules (`actors/src/wishlist.rs`); this module keeps
//! the rows and the two counts beside them (a user's items, a product's wishers), each
//! changed in the same transaction as the row it counts.

use async_trait::async_trait;
use engine::{ProductId, UserId};

use crate::database::{Database, Sql, dialects, execute};
use crate::error::StoreError;
use crate::row::{StoredRow, int};

/// A product on a user's wishlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WishlistItem {
    pub product_id: ProductId,
    pub added_at_ms: u64,
}

/// What adding a product to a wishlist did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WishlistAdd {
    Added,
    /// It was on the list already; nothing changed.
    AlreadyListed,
    /// The list holds its bound already; nothing changed.
    Full,
}

#[async_trait]
pub trait WishlistStore: Send + Sync + 'static {
    /// Adds a product to a user's list unless it is there or the list holds `max_items`.
    async fn add_to_wishlist(
        &self,
        user: UserId,
        product: ProductId,
        at_ms: u64,
        max_items: u32,
    ) -> Result<WishlistAdd, StoreError>;

    /// Removes a product from a user's list; `false` when it was not on it.
    async fn remove_from_wishlist(
        &self,
        user: UserId,
        product: ProductId,
    ) -> Result<bool, StoreError>;

    /// A page of a user's list, newest first, and how many items the whole list holds.
    async fn wishlist(
        &self,
        user: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<WishlistItem>, u64), StoreError>;

    /// How many users have the product on their list.
    async fn wishlist_count(&self, product: ProductId) -> Result<u64, StoreError>;

    /// Up to `limit` users who have the product on their list, in user id order, after
    /// `after` (a keyset page: a campaign walks a million wishers without an offset).
    async fn wishers(
        &self,
        product: ProductId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;
}

const INSERT_ITEM: Sql = Sql::both(
    "INSERT INTO wishlist_items (user_id, product_id, added_at_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, product_id) DO NOTHING",
);

/// Grows the user's count unless it is at the bound: no row changed means the list is
/// full. On PostgreSQL the conflicting row is locked and the condition read again on its
/// latest version, so two concurrent adds of one user cannot both pass at `max - 1`.
const GROW_SIZE: Sql = Sql::both(
    "INSERT INTO wishlist_sizes (user_id, items) VALUES ($1, 1) \
     ON CONFLICT (user_id) DO UPDATE SET items = wishlist_sizes.items + 1 \
     WHERE wishlist_sizes.items < $2",
);

const GROW_COUNT: Sql = Sql::both(
    "INSERT INTO wishlist_counts (product_id, wishers) VALUES ($1, 1) \
     ON CONFLICT (product_id) DO UPDATE SET wishers = wishlist_counts.wishers + 1",
);

const DELETE_ITEM: Sql =
    Sql::both("DELETE FROM wishlist_items WHERE user_id = $1 AND product_id = $2");

const SHRINK_SIZE: Sql =
    Sql::both("UPDATE wishlist_sizes SET items = items - 1 WHERE user_id = $1 AND items > 0");

const SHRINK_COUNT: Sql = Sql::both(
    "UPDATE wishlist_counts SET wishers = wishers - 1 WHERE product_id = $1 AND wishers > 0",
);

const PAGE: Sql = Sql::both(
    "SELECT product_id, added_at_ms FROM wishlist_items WHERE user_id = $1 \
     ORDER BY added_at_ms DESC, product_id DESC LIMIT $2 OFFSET $3",
);

const SIZE: Sql = Sql::both("SELECT items FROM wishlist_sizes WHERE user_id = $1");

const COUNT: Sql = Sql::both("SELECT wishers FROM wishlist_counts WHERE product_id = $1");

const WISHERS: Sql = Sql::both(
    "SELECT user_id FROM wishlist_items WHERE product_id = $1 AND user_id > $2 \
     ORDER BY user_id LIMIT $3",
);

#[async_trait]
impl WishlistStore for Database {
    async fn add_to_wishlist(
        &self,
        user: UserId,
        product: ProductId,
        at_ms: u64,
        max_items: u32,
    ) -> Result<WishlistAdd, StoreError> {
        let (user, product, at) = (int(user.0)?, int(product.0)?, int(at_ms)?);
        let mut tx = self.begin().await?;
        if execute(&mut tx, &INSERT_ITEM, &[user, product, at]).await? == 0 {
            tx.rollback().await?;
            return Ok(WishlistAdd::AlreadyListed);
        }
        if execute(&mut tx, &GROW_SIZE, &[user, i64::from(max_items)]).await? == 0 {
            tx.rollback().await?;
            return Ok(WishlistAdd::Full);
        }
        execute(&mut tx, &GROW_COUNT, &[product]).await?;
        tx.commit().await?;
        Ok(WishlistAdd::Added)
    }

    async fn remove_from_wishlist(
        &self,
        user: UserId,
        product: ProductId,
    ) -> Result<bool, StoreError> {
        let (user, product) = (int(user.0)?, int(product.0)?);
        let mut tx = self.begin().await?;
        if execute(&mut tx, &DELETE_ITEM, &[user, product]).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        execute(&mut tx, &SHRINK_SIZE, &[user]).await?;
        execute(&mut tx, &SHRINK_COUNT, &[product]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn wishlist(
        &self,
        user: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<WishlistItem>, u64), StoreError> {
        let user = int(user.0)?;
        dialects!(self.pool(), |pool, D| {
            let items = sqlx::query(D::sql(&PAGE))
                .bind(user)
                .bind(i64::from(limit))
                .bind(int(offset)?)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(WishlistItem {
                        product_id: row.product_id("product_id")?,
                        added_at_ms: row.uint("added_at_ms")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let total = sqlx::query(D::sql(&SIZE))
                .bind(user)
                .fetch_optional(pool)
                .await?
                .map(|row| row.uint("items"))
                .transpose()?
                .unwrap_or(0);
            Ok((items, total))
        })
    }

    async fn wishlist_count(&self, product: ProductId) -> Result<u64, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&COUNT))
                .bind(int(product.0)?)
                .fetch_optional(pool)
                .await?
                .map(|row| row.uint("wishers"))
                .transpose()
                .map(|count| count.unwrap_or(0))
        })
    }

    async fn wishers(
        &self,
        product: ProductId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        // Stored ids are never negative: -1 stands for "from the start".
        let after = after.map_or(Ok(-1), |user| int(user.0))?;
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&WISHERS))
                .bind(int(product.0)?)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.user_id("user_id"))
                .collect()
        })
    }
}
