//! Identifiers, parsed once at the edge so that nothing deeper handles raw strings.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A product of the catalog. Products are sharded by this id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(pub u64);

/// A shopper (or an admin, a courier...): the `sub` claim of their token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

/// A flash sale. Ids grow with time, so the newest sale of a product is its current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SaleId(pub u64);

/// An order. A UUIDv7 made by the caller: time-ordered, so new rows land at the end of
/// the primary-key index instead of at random pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub Uuid);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(ProductId, UserId, SaleId, OrderId);

/// The client's name for one purchase attempt (the `Idempotency-Key` header). A retry with
/// the same key, by the same user, for the same product, gets the first answer again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(Box<str>);

impl IdempotencyKey {
    /// Long enough for a UUID with a prefix, short enough to keep the index small.
    pub const LENGTH_MAX: usize = 64;

    pub fn parse(text: &str) -> Result<Self, InvalidIdempotencyKey> {
        if text.is_empty() {
            return Err(InvalidIdempotencyKey::Empty);
        }
        if text.len() > Self::LENGTH_MAX {
            return Err(InvalidIdempotencyKey::TooLong);
        }
        // Printable ASCII without spaces: keys end up in logs, headers and SQL parameters.
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(InvalidIdempotencyKey::BadCharacter);
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidIdempotencyKey;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0.into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdempotencyKey {
    #[error("the idempotency key is empty")]
    Empty,
    #[error("the idempotency key is longer than 64 characters")]
    TooLong,
    #[error("the idempotency key may only hold printable ASCII characters without spaces")]
    BadCharacter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_and_printable() {
        assert!(IdempotencyKey::parse("order-7f3a:1").is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(InvalidIdempotencyKey::Empty));
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(65)),
            Err(InvalidIdempotencyKey::TooLong)
        );
        assert!(IdempotencyKey::parse(&"k".repeat(64)).is_ok());
        assert_eq!(
            IdempotencyKey::parse("has space"),
            Err(InvalidIdempotencyKey::BadCharacter)
        );
        assert_eq!(
            IdempotencyKey::parse("naïve"),
            Err(InvalidIdempotencyKey::BadCharacter)
        );
    }
}
