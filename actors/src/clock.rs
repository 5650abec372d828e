//! Wall-clock time for the actors. The engine never reads a clock; the actors read this one
//! and pass the value in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        // A clock before 1970 is a broken host; 0 keeps every comparison defined.
        .unwrap_or(0)
}
