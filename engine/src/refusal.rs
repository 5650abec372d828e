//! Why a purchase was refused. Every business reason is named here, once: the stock state
//! machine decides it, the actors carry it unchanged (Buy Now, and each line of a
//! checkout), and the gateway maps it to a status and an error code in one place.

/// A refused Buy Now or checkout line. Nothing was reserved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    /// Not enough units where this purchase would come from (the live sale's pool, else
    /// the shelf): `left` is what there is.
    OutOfStock { left: u64 },
    /// The product sells only in its coming sale, which starts at `starts_at_ms`.
    SaleNotStarted { starts_at_ms: u64 },
    /// The product's sale ended at `ended_at_ms` and nothing else is on the shelf.
    SaleEnded { ended_at_ms: u64 },
    /// The buyer already holds `held` units of the sale, whose per-user limit is `limit`.
    LimitExceeded { limit: u32, held: u32 },
    /// The same idempotency key came with a different quantity: a client bug, never a
    /// purchase.
    KeyReused,
}
