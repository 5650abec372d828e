//! The shopping cart: lines per user, kept for the retention period (in Redis when
//! configured, else in the database). Adding checks that the stock is there now without
//! reserving it (checkout reserves); prices are shown as of now (the sale price while a
//! sale is live).

use engine::flash_sale::SalePhase;
use engine::{Money, ProductId, UserId};
use persistence::{CartChange, CartItem, StoreError};

use crate::checkout::CHECKOUT_LINES_MAX;
use crate::error::AdminError;
use crate::node_channel::ShardMoved;
use crate::shop::Shop;

/// Distinct products in one cart: what one checkout takes.
pub const CART_LINES_MAX: usize = CHECKOUT_LINES_MAX;

/// A cart as its owner sees it, priced as of now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartView {
    pub items: Vec<CartLineView>,
    pub total: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartLineView {
    pub product_id: ProductId,
    pub title: String,
    pub quantity: u32,
    /// What one unit costs now.
    pub unit_price: Money,
    pub line_total: Money,
    /// Units that could be bought now (nothing is held for a cart).
    pub available: u64,
    pub on_sale: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    #[error("must be between 1 and {max}")]
    InvalidQuantity { max: u32 },
    #[error("a cart holds at most {CART_LINES_MAX} products")]
    TooManyProducts,
    #[error("the cart would hold {wanted} of product {product_id}, over the limit of {max}")]
    OverLimit {
        product_id: ProductId,
        wanted: u32,
        max: u32,
    },
    #[error("only {available} left, {wanted} asked for")]
    InsufficientStock { available: u64, wanted: u32 },
    #[error("product {0} is not in the cart")]
    NotInCart(ProductId),
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for CartError {
    fn from(error: StoreError) -> Self {
        CartError::Unavailable(error.to_string())
    }
}

/// The price and units of a product as of now, as its owner has them (on a cluster,
/// another node's products are asked of their node: `node_channel.rs`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    pub title: String,
    pub unit_price: Money,
    pub available: u64,
    pub on_sale: bool,
}

impl Offer {
    fn check(&self, wanted: u32) -> Result<(), CartError> {
        if u64::from(wanted) > self.available {
            return Err(CartError::InsufficientStock {
                available: self.available,
                wanted,
            });
        }
        Ok(())
    }
}

impl Shop {
    /// The user's cart, priced as of now. Products gone from the catalog drop out.
    pub async fn cart(&self, user: UserId) -> Result<CartView, CartError> {
        let mut items = Vec::new();
        let mut total = Money(0);
        for line in self.cart_lines(user).await? {
            let offer = match self.offer(line.product_id).await {
                Ok(offer) => offer,
                Err(CartError::UnknownProduct(_)) => continue,
                Err(error) => return Err(error),
            };
            let line_total = Money(offer.unit_price.0.saturating_mul(u64::from(line.quantity)));
            total = Money(total.0.saturating_add(line_total.0));
            items.push(CartLineView {
                product_id: line.product_id,
                title: offer.title,
                quantity: line.quantity,
                unit_price: offer.unit_price,
                line_total,
                available: offer.available,
                on_sale: offer.on_sale,
            });
        }
        Ok(CartView { items, total })
    }

    /// Adds `quantity` units of a product (to the units already in the cart); emits
    /// `cart_item_added`.
    pub async fn add_to_cart(
        &self,
        user: UserId,
        product_id: ProductId,
        quantity: u32,
    ) -> Result<CartView, CartError> {
        let max = self.check_cart_quantity(quantity)?;
        let offer = self.offer(product_id).await?;
        let current = self.cart_lines(user).await?;
        let existing = current.iter().find(|item| item.product_id == product_id);
        if existing.is_none() && current.len() >= CART_LINES_MAX {
            return Err(CartError::TooManyProducts);
        }
        let wanted = existing
            .map_or(0, |item| item.quantity)
            .saturating_add(quantity);
        if wanted > max {
            return Err(CartError::OverLimit {
                product_id,
                wanted,
                max,
            });
        }
        offer.check(wanted)?;
        let now = self.ctx.now_ms();
        let item = CartItem {
            product_id,
            quantity: wanted,
            added_at_ms: existing.map_or(now, |item| item.added_at_ms),
            updated_at_ms: now,
        };
        self.ctx.stores().carts.put(user, item).await?;
        self.emit_later(crate::events::cart_item_added(
            user, product_id, quantity, wanted, now,
        ));
        self.cart(user).await
    }

    /// Sets the units of a product already in the cart.
    pub async fn set_cart_quantity(
        &self,
        user: UserId,
        product_id: ProductId,
        quantity: u32,
    ) -> Result<CartView, CartError> {
        self.check_cart_quantity(quantity)?;
        let existing = self
            .cart_lines(user)
            .await?
            .into_iter()
            .find(|item| item.product_id == product_id)
            .ok_or(CartError::NotInCart(product_id))?;
        self.offer(product_id).await?.check(quantity)?;
        let item = CartItem {
            quantity,
            updated_at_ms: self.ctx.now_ms(),
            ..existing
        };
        self.ctx.stores().carts.put(user, item).await?;
        self.cart(user).await
    }

    pub async fn remove_from_cart(
        &self,
        user: UserId,
        product_id: ProductId,
    ) -> Result<(), CartError> {
        let at_ms = self.ctx.now_ms();
        let removed = self
            .ctx
            .stores()
            .carts
            .remove(user, &[product_id], CartChange::Edited { at_ms })
            .await?;
        if removed == 0 {
            return Err(CartError::NotInCart(product_id));
        }
        Ok(())
    }

    async fn cart_lines(&self, user: UserId) -> Result<Vec<CartItem>, CartError> {
        Ok(self
            .ctx
            .stores()
            .carts
            .lines(user, self.ctx.now_ms())
            .await?)
    }

    /// The bound on units of one product, if `quantity` is within it.
    fn check_cart_quantity(&self, quantity: u32) -> Result<u32, CartError> {
        let max = self.ctx.settings().quantity_per_order_max;
        if !(1..=max).contains(&quantity) {
            return Err(CartError::InvalidQuantity { max });
        }
        Ok(max)
    }

    async fn offer(&self, product_id: ProductId) -> Result<Offer, CartError> {
        if let Some(channel) = self.ctx.node_channel()
            && !self.ctx.admits(product_id)
        {
            let shard = self.ctx.shard_of(product_id);
            return match channel.offer(shard, product_id).await {
                Ok(Some(offer)) => Ok(offer),
                Ok(None) => Err(CartError::UnknownProduct(product_id)),
                Err(why) => Err(CartError::Unavailable(why)),
            };
        }
        self.offer_here(product_id).await
    }

    /// Another node's cart wants the offer of a product this node serves: `Ok(None)` for
    /// no such product.
    pub async fn offer_for_peer(
        &self,
        product_id: ProductId,
    ) -> Result<Result<Option<Offer>, CartError>, ShardMoved> {
        if !self.ctx.admits(product_id) {
            return Err(ShardMoved(self.ctx.shard_of(product_id)));
        }
        Ok(match self.offer_here(product_id).await {
            Ok(offer) => Ok(Some(offer)),
            Err(CartError::UnknownProduct(_)) => Ok(None),
            Err(error) => Err(error),
        })
    }

    async fn offer_here(&self, product_id: ProductId) -> Result<Offer, CartError> {
        let product = self
            .product(product_id)
            .ok_or(CartError::UnknownProduct(product_id))?;
        let inventory = self
            .inventory(product_id)
            .await
            .map_err(|error| match error {
                AdminError::UnknownProduct(id) => CartError::UnknownProduct(id),
                other => CartError::Unavailable(other.to_string()),
            })?;
        Ok(match inventory.sale {
            Some(sale) if sale.phase == SalePhase::Live => Offer {
                title: product.title.clone(),
                unit_price: sale.sale.sale_price,
                available: sale.counters.left,
                on_sale: true,
            },
            _ => Offer {
                title: product.title.clone(),
                unit_price: product.price,
                available: inventory.regular_available,
                on_sale: false,
            },
        })
    }
}
