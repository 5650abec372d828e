//! Money in integer minor units (paise, cents). Never floats: a float cannot hold 0.10
//! exactly, and a shop that loses a paisa per order loses lakhs per sale.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in minor units of the shop's one currency.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub u64);

impl Money {
    /// The largest price the engine accepts for one unit: 10^12 minor units (ten billion
    /// rupees). Anything above is a typo, and with [`crate::order::QUANTITY_MAX`] the bound
    /// keeps `price * quantity` far from overflowing `u64`.
    pub const UNIT_PRICE_MAX: Money = Money(1_000_000_000_000);

    pub const fn minor_units(self) -> u64 {
        self.0
    }

    /// The price of `quantity` units, or `None` if it does not fit.
    pub fn times(self, quantity: u32) -> Option<Money> {
        self.0.checked_mul(u64::from(quantity)).map(Money)
    }
}

impl fmt::Display for Money {
    /// Shown as major.minor with two decimals; the engine itself never divides.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_without_overflow_or_reports_it() {
        assert_eq!(Money(129_900).times(3), Some(Money(389_700)));
        assert_eq!(Money(u64::MAX).times(2), None);
        assert!(
            Money::UNIT_PRICE_MAX
                .times(crate::order::QUANTITY_MAX)
                .is_some()
        );
        assert_eq!(Money::UNIT_PRICE_MAX.times(u32::MAX), None);
        assert_eq!(Money(129_905).to_string(), "1299.05");
    }
}
