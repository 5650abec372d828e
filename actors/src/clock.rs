//! Time and fresh order ids for the actors. The engine never reads a clock; the actors read
//! this one and pass the value in.
//!
//! Both are injected rather than read from the system, so a test can replay a run
//! exactly: the simulation (`tests/simulation.rs`) runs on tokio's paused clock and a
//! seeded id sequence, and the same seed then makes the same orders at the same times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::OrderId;
use uuid::Uuid;

/// Milliseconds since the Unix epoch, from the system's wall clock. For what lives outside
/// the actors (tokens, event stamps in the gateway); actors use their shop's [`Clock`].
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        // A clock before 1970 is a broken host; 0 keeps every comparison defined.
        .unwrap_or(0)
}

/// Where a shop's time comes from.
#[derive(Debug)]
pub enum Clock {
    /// The wall clock (production).
    System,
    /// `start_ms` plus the time elapsed on tokio's clock since the shop was built: with
    /// tokio's clock paused, time only moves when the test moves it.
    Tokio {
        start_ms: u64,
        started: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that reads `start_ms` now and follows tokio's clock from here.
    pub fn tokio_from(start_ms: u64) -> Self {
        Clock::Tokio {
            start_ms,
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Tokio { start_ms, started } => {
                start_ms + u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
        }
    }
}

/// Where new order ids come from: UUID v7, time-ordered so the database's indexes stay
/// append-mostly, whose random part is drawn from a seeded sequence.
///
/// Production seeds it once from the system ([`OrderIds::random`]); tests seed it
/// themselves, and the same seed then gives the same ids. Drawing from the system per id
/// (`Uuid::now_v7`) cost a `getrandom` call and a lock on every Buy Now: 2.4% of the
/// engine's CPU under load. Ids of one process differ by construction (each draw mixes a
/// different counter value); ids of two processes differ by their random seeds.
#[derive(Debug)]
pub struct OrderIds {
    seed: u64,
    drawn: AtomicU64,
}

impl OrderIds {
    /// A sequence seeded from the system's randomness (one draw, here: the random bits
    /// of a v7 id, with its clock reading).
    pub fn random() -> Self {
        let (high, low) = Uuid::now_v7().as_u64_pair();
        Self::seeded(splitmix64(high) ^ low)
    }

    pub fn seeded(seed: u64) -> Self {
        OrderIds {
            seed,
            drawn: AtomicU64::new(0),
        }
    }

    /// A fresh id stamped with `now_ms`.
    pub fn next(&self, now_ms: u64) -> OrderId {
        let n = self.drawn.fetch_add(1, Ordering::Relaxed);
        let high = splitmix64(self.seed ^ n.wrapping_mul(2));
        let low = splitmix64(self.seed ^ n.wrapping_mul(2).wrapping_add(1));
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&high.to_le_bytes());
        random[8..].copy_from_slice(&low.to_le_bytes()[..2]);
        OrderId(uuid::Builder::from_unix_timestamp_millis(now_ms, &random).into_uuid())
    }
}

/// A well-mixed 64-bit value from any input (Steele, Lea and Flood's SplitMix64).
fn splitmix64(input: u64) -> u64 {
    let mut z = input.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_with_their_seed_and_differ_between_seeds() {
        let first: Vec<OrderId> = {
            let ids = OrderIds::seeded(7);
            (0..100).map(|n| ids.next(1_000 + n)).collect()
        };
        let again: Vec<OrderId> = {
            let ids = OrderIds::seeded(7);
            (0..100).map(|n| ids.next(1_000 + n)).collect()
        };
        assert_eq!(first, again);
        let other = OrderIds::seeded(8).next(1_000);
        assert_ne!(other, first[0]);
        let unique: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(unique.len(), 100);
        assert_eq!(first[0].0.get_version_num(), 7);
    }

    #[test]
    fn ids_of_one_millisecond_are_unique_and_random_sequences_differ() {
        let ids = OrderIds::random();
        let same_millisecond: std::collections::HashSet<OrderId> =
            (0..100_000).map(|_| ids.next(1_000)).collect();
        assert_eq!(same_millisecond.len(), 100_000);
        assert_ne!(
            OrderIds::random().next(1_000),
            OrderIds::random().next(1_000)
        );
        let id = ids.next(1_234);
        assert_eq!(id.0.get_version_num(), 7);
        assert_eq!(id.0.get_timestamp().map(|t| t.to_unix().0), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_with_tokio_time() {
        let clock = Clock::tokio_from(5_000);
        assert_eq!(clock.now_ms(), 5_000);
        tokio::time::advance(std::time::Duration::from_millis(250)).await;
        assert_eq!(clock.now_ms(), 5_250);
    }
}
