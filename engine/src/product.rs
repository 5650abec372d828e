//! A product of the catalog: what a shopper browses. Its stock lives in [`crate::stock`].

use serde::{Deserialize, Serialize};

use crate::ids::{ProductId, UserId};
use crate::money::Money;

/// Catalog attributes of one product. Stock is not here: it has a single writer, the
/// product's actor, and its own state machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub title: String,
    pub brand: String,
    pub category: String,
    pub description: String,
    /// Regular price of one unit.
    pub price: Money,
    /// Average review rating, 0.0 to 5.0.
    pub rating: f32,
    /// Relative demand used to sort listings (views, sales); higher is more popular.
    pub popularity: u64,
    /// The marketplace seller who ships it and is paid on delivery; none for the shop's
    /// own stock.
    #[serde(default)]
    pub seller_id: Option<UserId>,
}

/// What an admin sends to create or replace a product, before it is checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductDraft {
    pub title: String,
    pub brand: String,
    pub category: String,
    pub description: String,
    pub price: Money,
    pub rating: f32,
    pub popularity: u64,
    pub seller_id: Option<UserId>,
}

/// A change of a product's record: a field left out keeps its current value. Applied by
/// the product's actor onto the record it holds, so two changes never undo each other (a
/// review's new rating and an admin's new title both stand).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProductEdit {
    pub title: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub rating: Option<f32>,
    pub popularity: Option<u64>,
    pub seller_id: Option<UserId>,
}

impl ProductEdit {
    /// The draft of `current` with this edit applied (still to be validated).
    pub fn applied_to(self, current: &Product) -> ProductDraft {
        ProductDraft {
            title: self.title.unwrap_or_else(|| current.title.clone()),
            brand: self.brand.unwrap_or_else(|| current.brand.clone()),
            category: self.category.unwrap_or_else(|| current.category.clone()),
            description: self
                .description
                .unwrap_or_else(|| current.description.clone()),
            price: self.price.unwrap_or(current.price),
            rating: self.rating.unwrap_or(current.rating),
            popularity: self.popularity.unwrap_or(current.popularity),
            seller_id: self.seller_id.or(current.seller_id),
        }
    }
}

/// One field of a request that the rules refuse, and why, in words a client can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

impl Invalid {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

pub const TITLE_LENGTH_MAX: usize = 200;
pub const BRAND_LENGTH_MAX: usize = 100;
pub const CATEGORY_LENGTH_MAX: usize = 64;
pub const DESCRIPTION_LENGTH_MAX: usize = 5_000;
/// Units one product may hold. A billion is beyond any real warehouse and keeps every
/// counter sum far from overflow.
pub const STOCK_MAX: u64 = 1_000_000_000;

impl ProductDraft {
    /// Checks every field and builds the product with the given id.
    pub fn validate(self, id: ProductId) -> Result<Product, Invalid> {
        check_text("title", &self.title, TITLE_LENGTH_MAX)?;
        check_text("brand", &self.brand, BRAND_LENGTH_MAX)?;
        check_category(&self.category)?;
        if self.description.chars().count() > DESCRIPTION_LENGTH_MAX {
            return Err(Invalid::new(
                "description",
                format!("must be at most {DESCRIPTION_LENGTH_MAX} characters"),
            ));
        }
        check_price("price", self.price)?;
        if !(0.0..=5.0).contains(&self.rating) {
            // Also refuses NaN, which `contains` never matches.
            return Err(Invalid::new("rating", "must be between 0 and 5"));
        }
        if self.seller_id == Some(UserId(0)) {
            return Err(Invalid::new(
                "sellerId",
                "must be a user id greater than zero",
            ));
        }
        Ok(Product {
            id,
            title: self.title.trim().to_owned(),
            brand: self.brand.trim().to_owned(),
            category: self.category,
            description: self.description,
            price: self.price,
            rating: self.rating,
            popularity: self.popularity,
            seller_id: self.seller_id,
        })
    }
}

pub fn check_price(field: &'static str, price: Money) -> Result<(), Invalid> {
    if price.0 == 0 {
        return Err(Invalid::new(field, "must be greater than zero"));
    }
    if price > Money::UNIT_PRICE_MAX {
        return Err(Invalid::new(
            field,
            format!(
                "must be at most {} minor units",
                Money::UNIT_PRICE_MAX.minor_units()
            ),
        ));
    }
    Ok(())
}

pub fn check_stock(field: &'static str, stock: u64) -> Result<(), Invalid> {
    if stock > STOCK_MAX {
        return Err(Invalid::new(field, format!("must be at most {STOCK_MAX}")));
    }
    Ok(())
}

fn check_text(field: &'static str, text: &str, length_max: usize) -> Result<(), Invalid> {
    if text.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if text.chars().count() > length_max {
        return Err(Invalid::new(
            field,
            format!("must be at most {length_max} characters"),
        ));
    }
    Ok(())
}

/// Categories are slugs (`mobiles`, `home-kitchen`): they appear in URLs and cache keys.
fn check_category(category: &str) -> Result<(), Invalid> {
    check_text("category", category, CATEGORY_LENGTH_MAX)?;
    let is_slug = category
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if !is_slug {
        return Err(Invalid::new(
            "category",
            "must be lowercase letters, digits and '-'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ProductDraft {
        ProductDraft {
            title: "Galaxy S24".into(),
            brand: "Samsung".into(),
            category: "mobiles".into(),
            description: "A phone".into(),
            price: Money(7_999_900),
            rating: 4.4,
            popularity: 10,
            seller_id: None,
        }
    }

    #[test]
    fn a_sound_draft_becomes_a_product() {
        let product = draft().validate(ProductId(7)).expect("valid");
        assert_eq!(product.id, ProductId(7));
        assert_eq!(product.price, Money(7_999_900));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(ProductDraft, &str)> = vec![
            (
                ProductDraft {
                    title: "  ".into(),
                    ..draft()
                },
                "title",
            ),
            (
                ProductDraft {
                    brand: "b".repeat(101),
                    ..draft()
                },
                "brand",
            ),
            (
                ProductDraft {
                    category: "Mobiles".into(),
                    ..draft()
                },
                "category",
            ),
            (
                ProductDraft {
                    price: Money(0),
                    ..draft()
                },
                "price",
            ),
            (
                ProductDraft {
                    price: Money(u64::MAX),
                    ..draft()
                },
                "price",
            ),
            (
                ProductDraft {
                    rating: f32::NAN,
                    ..draft()
                },
                "rating",
            ),
            (
                ProductDraft {
                    rating: 5.5,
                    ..draft()
                },
                "rating",
            ),
            (
                ProductDraft {
                    description: "d".repeat(5_001),
                    ..draft()
                },
                "description",
            ),
        ];
        for (bad, field) in cases {
            assert_eq!(bad.validate(ProductId(1)).unwrap_err().field, field);
        }
    }
}
