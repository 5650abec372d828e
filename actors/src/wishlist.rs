//! Wishlists: a customer keeps products they want to hear about (a sale of one of them
//! is announced to everyone who has it listed). The list is bounded
//! ([`crate::ShopSettings::wishlist_items_max`]); adding emits `wishlist_item_added`.

use engine::{Money, ProductId, UserId};
use persistence::{StoreError, WishlistAdd, WishlistItem};

use crate::shop::Shop;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WishlistError {
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    #[error("product {0} is not on the wishlist")]
    NotListed(ProductId),
    #[error("a wishlist holds at most {max} products")]
    Full { max: u32 },
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for WishlistError {
    fn from(error: StoreError) -> Self {
        WishlistError::Unavailable(error.to_string())
    }
}

/// A page of a wishlist as its owner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WishlistPage {
    pub items: Vec<WishlistLine>,
    /// Items on the whole list.
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WishlistLine {
    pub product_id: ProductId,
    /// `None` when the product has left the catalog since it was listed.
    pub title: Option<String>,
    pub price: Option<Money>,
    pub added_at_ms: u64,
    /// The next sale of the product not yet over (what a wisher waits for).
    pub sale: Option<engine::FlashSale>,
}

/// Whether an add changed the list (a second add of the same product does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WishlistAdded {
    Added,
    AlreadyListed,
}

impl Shop {
    /// Puts a product on the user's list; emits `wishlist_item_added` when it was not there.
    pub async fn add_to_wishlist(
        &self,
        user: UserId,
        product_id: ProductId,
    ) -> Result<WishlistAdded, WishlistError> {
        if self.product(product_id).is_none() {
            return Err(WishlistError::UnknownProduct(product_id));
        }
        let max = self.settings().wishlist_items_max;
        let now = self.ctx.now_ms();
        let wishlists = &self.ctx.stores().wishlists;
        match wishlists
            .add_to_wishlist(user, product_id, now, max)
            .await?
        {
            WishlistAdd::Added => {
                self.emit_later(crate::events::wishlist_item_added(user, product_id, now));
                Ok(WishlistAdded::Added)
            }
            WishlistAdd::AlreadyListed => Ok(WishlistAdded::AlreadyListed),
            WishlistAdd::Full => Err(WishlistError::Full { max }),
        }
    }

    pub async fn remove_from_wishlist(
        &self,
        user: UserId,
        product_id: ProductId,
    ) -> Result<(), WishlistError> {
        let wishlists = &self.ctx.stores().wishlists;
        if !wishlists.remove_from_wishlist(user, product_id).await? {
            return Err(WishlistError::NotListed(product_id));
        }
        Ok(())
    }

    /// A page of the user's list, newest first, with each product as the catalog has it now.
    pub async fn wishlist(
        &self,
        user: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<WishlistPage, WishlistError> {
        let (items, total) = self
            .ctx
            .stores()
            .wishlists
            .wishlist(user, offset, limit)
            .await?;
        let now = self.ctx.now_ms();
        let sales = self.ctx.sales();
        let items = items
            .into_iter()
            .map(
                |WishlistItem {
                     product_id,
                     added_at_ms,
                 }| {
                    let product = self.product(product_id);
                    let sale = sales
                        .iter()
                        .filter(|sale| sale.product_id == product_id)
                        .filter(|sale| sale.phase(now) != engine::SalePhase::Ended)
                        .min_by_key(|sale| (sale.start_ms, sale.id))
                        .cloned();
                    WishlistLine {
                        product_id,
                        title: product.as_ref().map(|product| product.title.clone()),
                        price: product.as_ref().map(|product| product.price),
                        added_at_ms,
                        sale,
                    }
                },
            )
            .collect();
        Ok(WishlistPage { items, total })
    }

    /// How many users have the product on their list (shown on its page).
    pub async fn wishlist_count(&self, product_id: ProductId) -> Result<u64, WishlistError> {
        Ok(self
            .ctx
            .stores()
            .wishlists
            .wishlist_count(product_id)
            .await?)
    }
}
