//! Sellers and their payouts: a product may belong to a seller; when an order is
//! delivered, each seller of its lines is paid their lines' price less the marketplace's
//! commission ([`engine::payout`]), in the delivery's own transaction, with a
//! `payout_released` event (the workflow tells the seller). A cancelled or expired order
//! never reaches DELIVERED, so it never pays.
//!
//! The seller and the category (hence the rate) are the product's as the catalog holds
//! them at delivery.

use std::collections::HashMap;

use engine::order::Order;
use engine::payout::{BPS_WHOLE, SellerTerms, payouts_of};
use engine::{ProductId, UserId};
use persistence::{PayoutStatement, ReleasedPayout, SellerOrder, StoreError, WriteOp};

use crate::error::OrderError;
use crate::shop::Shop;

/// The marketplace's commission, in basis points of a line's price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommissionRates {
    /// For every category not named below (1,000 = 10%).
    pub default_bps: u32,
    /// category -> rate.
    pub by_category: HashMap<String, u32>,
}

impl Default for CommissionRates {
    fn default() -> Self {
        Self {
            default_bps: 1_000,
            by_category: HashMap::new(),
        }
    }
}

impl CommissionRates {
    pub fn of_category(&self, category: &str) -> u32 {
        self.by_category
            .get(category)
            .copied()
            .unwrap_or(self.default_bps)
            .min(BPS_WHOLE)
    }
}

impl Shop {
    /// The writes that pay `order`'s sellers on its delivery at `at_ms`: the payout rows
    /// and one `payout_released` event each (nothing for an order of the shop's own
    /// products).
    pub(crate) fn payouts_of(&self, order: &Order, at_ms: u64) -> Result<Vec<WriteOp>, OrderError> {
        let mut terms: HashMap<ProductId, Option<SellerTerms>> = HashMap::new();
        for item in &order.items {
            // Products never leave the catalog; one missing is a catalog not loaded yet,
            // and paying no one for it would be a silent loss for its seller.
            let product = self.product(item.product_id).ok_or_else(|| {
                OrderError::Unavailable(format!(
                    "product {} is not in the catalog yet",
                    item.product_id
                ))
            })?;
            let rates = &self.settings().commission;
            terms.insert(
                item.product_id,
                product.seller_id.map(|seller_id| SellerTerms {
                    seller_id,
                    commission_bps: rates.of_category(&product.category),
                }),
            );
        }
        let released: Vec<ReleasedPayout> =
            payouts_of(order, |product| terms.get(&product).copied().flatten())
                .into_iter()
                .map(|payout| ReleasedPayout {
                    payout,
                    released_at_ms: at_ms,
                })
                .collect();
        if released.is_empty() {
            return Ok(Vec::new());
        }
        let mut writes: Vec<WriteOp> = released
            .iter()
            .map(|payout| WriteOp::Emit(crate::events::payout_released(payout)))
            .collect();
        writes.push(WriteOp::ReleasePayouts(released));
        Ok(writes)
    }

    /// A page of the orders holding the seller's products (only their lines), newest first.
    pub async fn seller_orders(
        &self,
        seller: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SellerOrder>, StoreError> {
        self.ctx
            .stores()
            .sellers
            .seller_orders(seller, offset, limit)
            .await
    }

    /// A page of the seller's payouts, newest first, with their totals.
    pub async fn seller_payouts(
        &self,
        seller: UserId,
        offset: u64,
        limit: u32,
    ) -> Result<PayoutStatement, StoreError> {
        self.ctx
            .stores()
            .sellers
            .seller_payouts(seller, offset, limit)
            .await
    }
}
