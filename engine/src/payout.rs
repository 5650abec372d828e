//! What a delivered order pays its sellers: each seller gets the price of their lines
//! (gross) less the marketplace's commission, one payout per order and seller.
//!
//! The rate is per line, since it depends on the product's category; a seller's commission
//! is the sum of their lines' commissions, each rounded to the nearest minor unit (halves
//! up). Lines of the shop's own products (no seller) pay no one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, ProductId, UserId};
use crate::money::Money;
use crate::order::Order;

/// Commission rates are in basis points: 10,000 is the whole price.
pub const BPS_WHOLE: u32 = 10_000;

/// The seller of a product and the commission the marketplace takes on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SellerTerms {
    pub seller_id: UserId,
    /// Basis points of the line's price, at most [`BPS_WHOLE`].
    pub commission_bps: u32,
}

/// One seller's share of one delivered order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payout {
    pub order_id: OrderId,
    pub seller_id: UserId,
    /// The price of the seller's lines.
    pub gross: Money,
    pub commission: Money,
    /// `gross - commission`: what the seller receives.
    pub net: Money,
}

/// The payouts of `order`, one per seller of its lines, by seller id. `terms_of` says who
/// sells a product and at what commission (`None`: the shop's own product).
pub fn payouts_of(
    order: &Order,
    terms_of: impl Fn(ProductId) -> Option<SellerTerms>,
) -> Vec<Payout> {
    let mut by_seller: BTreeMap<UserId, (u128, u128)> = BTreeMap::new();
    for item in &order.items {
        let Some(terms) = terms_of(item.product_id) else {
            continue;
        };
        let bps = u128::from(terms.commission_bps.min(BPS_WHOLE));
        let line = u128::from(item.unit_price.0) * u128::from(item.quantity);
        let commission = (line * bps + u128::from(BPS_WHOLE / 2)) / u128::from(BPS_WHOLE);
        let share = by_seller.entry(terms.seller_id).or_default();
        share.0 += line;
        share.1 += commission;
    }
    by_seller
        .into_iter()
        .map(|(seller_id, (gross, commission))| {
            // Lines are bounded (unit price and quantity, see `Money::UNIT_PRICE_MAX`), and
            // an order's total fits in u64, so the sums do too.
            let gross = u64::try_from(gross).unwrap_or(u64::MAX);
            let commission = u64::try_from(commission).unwrap_or(u64::MAX).min(gross);
            Payout {
                order_id: order.id,
                seller_id,
                gross: Money(gross),
                commission: Money(commission),
                net: Money(gross - commission),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::IdempotencyKey;
    use crate::order::{OrderItem, OrderStatus};

    fn order(lines: &[(u64, u32, u64)]) -> Order {
        let items: Vec<OrderItem> = lines
            .iter()
            .map(|&(product, quantity, price)| OrderItem {
                product_id: ProductId(product),
                sale_id: None,
                quantity,
                unit_price: Money(price),
            })
            .collect();
        let total = items
            .iter()
            .map(|item| item.unit_price.0 * u64::from(item.quantity))
            .sum();
        Order {
            id: OrderId(uuid::Uuid::from_u128(1)),
            user_id: UserId(1),
            status: OrderStatus::Delivered,
            items,
            total: Money(total),
            idempotency_key: IdempotencyKey::parse("k").expect("a valid key"),
            created_at_ms: 0,
            expires_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn each_seller_is_paid_their_lines_less_the_commission() {
        // Products 1 and 2 are seller 10's (10% and 5%), 3 is seller 20's, 4 the shop's.
        let terms = |product: ProductId| match product.0 {
            1 => Some(SellerTerms {
                seller_id: UserId(10),
                commission_bps: 1_000,
            }),
            2 => Some(SellerTerms {
                seller_id: UserId(10),
                commission_bps: 500,
            }),
            3 => Some(SellerTerms {
                seller_id: UserId(20),
                commission_bps: 1_000,
            }),
            _ => None,
        };
        let payouts = payouts_of(
            &order(&[(1, 2, 1_000), (2, 1, 2_000), (3, 1, 555), (4, 9, 100)]),
            terms,
        );
        assert_eq!(payouts.len(), 2);
        assert_eq!(payouts[0].seller_id, UserId(10));
        assert_eq!(payouts[0].gross, Money(4_000));
        assert_eq!(payouts[0].commission, Money(200 + 100));
        assert_eq!(payouts[0].net, Money(3_700));
        assert_eq!(payouts[1].seller_id, UserId(20));
        // 55.5 rounds up to 56.
        assert_eq!(payouts[1].commission, Money(56));
        assert_eq!(payouts[1].net, Money(499));
    }

    #[test]
    fn an_order_of_the_shops_own_products_pays_no_one() {
        assert!(payouts_of(&order(&[(4, 1, 100)]), |_| None).is_empty());
    }

    proptest! {
        #[test]
        fn payouts_split_the_sellers_lines_exactly(
            lines in prop::collection::vec((1u64..8, 1u32..=10, 1u64..=1_000_000_000_000), 1..12),
            rates in prop::collection::vec(0u32..=12_000, 8),
        ) {
            // Products 1..=7: seller = product % 3 (0: the shop's own), rate per product.
            let terms = |product: ProductId| {
                let seller = product.0 % 3;
                (seller != 0).then(|| SellerTerms {
                    seller_id: UserId(seller),
                    commission_bps: rates[product.0 as usize],
                })
            };
            let order = order(&lines);
            let payouts = payouts_of(&order, terms);
            let mut sellers: Vec<UserId> = payouts.iter().map(|p| p.seller_id).collect();
            sellers.dedup();
            prop_assert_eq!(sellers.len(), payouts.len(), "one payout per seller");
            for payout in &payouts {
                prop_assert_eq!(payout.net.0 + payout.commission.0, payout.gross.0);
                prop_assert!(payout.commission.0 <= payout.gross.0);
                let gross: u64 = lines
                    .iter()
                    .filter(|(product, _, _)| product % 3 == payout.seller_id.0)
                    .map(|(_, quantity, price)| price * u64::from(*quantity))
                    .sum();
                prop_assert_eq!(payout.gross.0, gross);
            }
            let paid: u64 = payouts.iter().map(|p| p.gross.0).sum();
            let sellers_lines: u64 = lines
                .iter()
                .filter(|(product, _, _)| product % 3 != 0)
                .map(|(_, quantity, price)| price * u64::from(*quantity))
                .sum();
            prop_assert_eq!(paid, sellers_lines);
        }
    }
}
