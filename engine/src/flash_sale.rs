//! A flash sale: a pool of units carved out of a product's stock, sold at a lower price in
//! a time window, with a per-user limit.

use serde::{Deserialize, Serialize};

use crate::ids::{ProductId, SaleId};
use crate::money::Money;
use crate::product::{Invalid, check_price, check_stock};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashSale {
    pub id: SaleId,
    pub product_id: ProductId,
    pub sale_price: Money,
    /// The "was" price shown struck through; the product's regular price applies outside.
    pub original_price: Money,
    pub start_ms: u64,
    /// `None`: the sale runs until its pool is sold out.
    pub end_ms: Option<u64>,
    /// Units in the sale pool, carved out of the product's stock when it is scheduled.
    pub stock: u64,
    /// Units one user may hold (reserved or bought) from this sale.
    pub per_user_limit: u32,
    /// When an admin cancelled it: it ended then, whatever its window said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at_ms: Option<u64>,
}

/// Where a sale stands at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalePhase {
    Scheduled,
    Live,
    Ended,
}

impl FlashSale {
    pub fn phase(&self, now_ms: u64) -> SalePhase {
        if self.cancelled_at_ms.is_some_and(|at_ms| now_ms >= at_ms) {
            SalePhase::Ended
        } else if now_ms < self.start_ms {
            SalePhase::Scheduled
        } else if self.end_ms.is_some_and(|end_ms| now_ms >= end_ms) {
            SalePhase::Ended
        } else {
            SalePhase::Live
        }
    }
}

impl FlashSale {
    /// When it ended or ends: cancelled, or the end of its window.
    pub fn ended_at_ms(&self) -> Option<u64> {
        self.cancelled_at_ms.or(self.end_ms)
    }

    /// The same sale in another window, checked as a new sale's window is (whether it may
    /// still move is the stock's call: [`crate::ProductStock::check_move_sale`]).
    pub fn moved_to(
        &self,
        start_ms: u64,
        end_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<FlashSale, Invalid> {
        check_window(start_ms, end_ms, now_ms)?;
        Ok(FlashSale {
            start_ms,
            end_ms,
            ..self.clone()
        })
    }
}

fn check_window(start_ms: u64, end_ms: Option<u64>, now_ms: u64) -> Result<(), Invalid> {
    if let Some(end_ms) = end_ms {
        if end_ms <= start_ms {
            return Err(Invalid::new("endTime", "must be after startTime"));
        }
        if end_ms <= now_ms {
            return Err(Invalid::new("endTime", "must be in the future"));
        }
    }
    Ok(())
}

/// An admin's request to schedule a sale, before it is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlashSaleDraft {
    pub product_id: ProductId,
    pub sale_price: Money,
    pub original_price: Money,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub stock: u64,
    pub per_user_limit: u32,
}

/// A limit above this is no limit at all; it is almost certainly a typo.
pub const PER_USER_LIMIT_MAX: u32 = 1_000;

impl FlashSaleDraft {
    /// Checks the draft on its own. Whether the product has the stock to carve out is the
    /// stock state machine's call ([`crate::ProductStock::schedule_sale`]).
    pub fn validate(self, id: SaleId, now_ms: u64) -> Result<FlashSale, Invalid> {
        check_price("salePrice", self.sale_price)?;
        check_price("originalPrice", self.original_price)?;
        if self.sale_price > self.original_price {
            return Err(Invalid::new("salePrice", "must not be above originalPrice"));
        }
        check_window(self.start_ms, self.end_ms, now_ms)?;
        if self.stock == 0 {
            return Err(Invalid::new("stock", "must be at least 1"));
        }
        check_stock("stock", self.stock)?;
        if self.per_user_limit == 0 || self.per_user_limit > PER_USER_LIMIT_MAX {
            return Err(Invalid::new(
                "perUserLimit",
                format!("must be between 1 and {PER_USER_LIMIT_MAX}"),
            ));
        }
        Ok(FlashSale {
            id,
            product_id: self.product_id,
            sale_price: self.sale_price,
            original_price: self.original_price,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            stock: self.stock,
            per_user_limit: self.per_user_limit,
            cancelled_at_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> FlashSaleDraft {
        FlashSaleDraft {
            product_id: ProductId(1),
            sale_price: Money(49_900),
            original_price: Money(99_900),
            start_ms: 1_000,
            end_ms: Some(2_000),
            stock: 100,
            per_user_limit: 2,
        }
    }

    #[test]
    fn phases_follow_the_window() {
        let sale = draft().validate(SaleId(1), 0).expect("valid");
        assert_eq!(sale.phase(999), SalePhase::Scheduled);
        assert_eq!(sale.phase(1_000), SalePhase::Live);
        assert_eq!(sale.phase(1_999), SalePhase::Live);
        assert_eq!(sale.phase(2_000), SalePhase::Ended);
        let open_ended = FlashSaleDraft {
            end_ms: None,
            ..draft()
        }
        .validate(SaleId(2), 0)
        .expect("valid");
        assert_eq!(open_ended.phase(u64::MAX), SalePhase::Live);
    }

    #[test]
    fn refuses_each_inconsistent_field() {
        let cases: Vec<(FlashSaleDraft, &str)> = vec![
            (
                FlashSaleDraft {
                    sale_price: Money(0),
                    ..draft()
                },
                "salePrice",
            ),
            (
                FlashSaleDraft {
                    sale_price: Money(100_000),
                    ..draft()
                },
                "salePrice",
            ),
            (
                FlashSaleDraft {
                    end_ms: Some(1_000),
                    ..draft()
                },
                "endTime",
            ),
            (
                FlashSaleDraft {
                    stock: 0,
                    ..draft()
                },
                "stock",
            ),
            (
                FlashSaleDraft {
                    per_user_limit: 0,
                    ..draft()
                },
                "perUserLimit",
            ),
            (
                FlashSaleDraft {
                    per_user_limit: 1_001,
                    ..draft()
                },
                "perUserLimit",
            ),
        ];
        for (bad, field) in cases {
            assert_eq!(bad.validate(SaleId(1), 0).unwrap_err().field, field);
        }
        let past = draft().validate(SaleId(1), 5_000).unwrap_err();
        assert_eq!(past.field, "endTime");
    }
}
