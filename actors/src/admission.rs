//! The in-flight bound of one product actor.
//!
//! ractor mailboxes are unbounded: under a flash sale, an actor that falls behind would
//! queue requests until memory runs out and every buyer waits. Instead each product keeps a
//! count of requests admitted and not yet answered; past the bound a caller is refused at
//! once (HTTP 503 with Retry-After), while admitted requests keep their latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicU32,
}

impl InFlight {
    /// A permit if fewer than `limit` requests are in flight. The permit gives its slot back
    /// when dropped, which happens when the request is answered (or abandoned).
    pub fn admit(self: &Arc<Self>, limit: u32) -> Option<Permit> {
        // fetch_update instead of fetch_add-then-check: a refused caller never pushes the
        // count past the limit, even for a moment.
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < limit).then_some(count + 1)
            })
            .ok()
            .map(|_| Permit {
                in_flight: Arc::clone(self),
            })
    }

    pub fn current(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }
}

/// One admitted request. Dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    in_flight: Arc<InFlight>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let before = self.in_flight.count.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a permit was released twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let in_flight = Arc::new(InFlight::default());
        let permits: Vec<_> = (0..3).map(|_| in_flight.admit(3).expect("room")).collect();
        assert!(in_flight.admit(3).is_none());
        assert_eq!(in_flight.current(), 3);
        drop(permits);
        assert_eq!(in_flight.current(), 0);
        assert!(in_flight.admit(3).is_some());
    }
}
