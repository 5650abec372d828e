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

    /// The key a cart checkout's order carries for a client's key. The space, which no
    /// client key may hold, keeps checkout keys apart from Buy Now keys: a product's stock
    /// remembers both kinds in one map, and a client reusing one key for a Buy Now and a
    /// checkout must get two orders, not one answer for both.
    pub fn for_checkout(client_key: &IdempotencyKey) -> Self {
        Self(format!("{CHECKOUT_PREFIX}{}", client_key.0).into())
    }

    /// Reads a key back from the store: a client's key or a checkout key.
    pub fn parse_stored(text: &str) -> Result<Self, InvalidIdempotencyKey> {
        match text.strip_prefix(CHECKOUT_PREFIX) {
            Some(client) => Ok(Self::for_checkout(&Self::parse(client)?)),
            None => Self::parse(text),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For serde fields holding keys the engine made (a checkout's too), not a client's:
    /// `#[serde(deserialize_with = "IdempotencyKey::deserialize_stored")]`.
    pub fn deserialize_stored<'de, D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        Self::parse_stored(&text).map_err(serde::de::Error::custom)
    }
}

const CHECKOUT_PREFIX: &str = "checkout ";

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
    fn checkout_keys_never_equal_a_client_key_and_survive_storage() {
        let client = IdempotencyKey::parse("k-1").unwrap();
        let checkout = IdempotencyKey::for_checkout(&client);
        assert_ne!(checkout, client);
        assert!(IdempotencyKey::parse(checkout.as_str()).is_err());
        assert_eq!(
            IdempotencyKey::parse_stored(checkout.as_str()),
            Ok(checkout)
        );
        assert_eq!(IdempotencyKey::parse_stored("k-1"), Ok(client));
        assert!(IdempotencyKey::parse_stored("checkout ").is_err());
    }

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
