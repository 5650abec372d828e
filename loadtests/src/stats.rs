//! Figures the harness prints itself: Buy Now latency percentiles from every response,
//! outcome counts, and the generator's own CPU time (it shares the machine with the engine).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct Stats {
    /// Microseconds of every Buy Now that placed an order (shed and refused answers are
    /// fast by design and would flatter the figures).
    latencies_us: Mutex<Vec<u32>>,
    pub placed: AtomicU64,
    /// Units in the 201 answers, for the verification.
    pub placed_units: AtomicU64,
    pub sold_out: AtomicU64,
    pub shed: AtomicU64,
    pub other: AtomicU64,
    /// Stock messages received by watcher screens.
    pub watch_messages: AtomicU64,
    /// Cart checkouts that placed an order (mixed scenario), and their units.
    pub checkouts_placed: AtomicU64,
    pub checkout_units: AtomicU64,
}

impl Stats {
    pub fn record(&self, elapsed: Duration, status: u16, quantity: u32) {
        let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        let counter = match status {
            201 => {
                self.latencies_us
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(micros);
                self.placed_units
                    .fetch_add(u64::from(quantity), Ordering::Relaxed);
                &self.placed
            }
            409 => &self.sold_out,
            429 | 503 => &self.shed,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// p50, p90, p99, p99.9 in milliseconds.
    pub fn percentiles_ms(&self) -> [f64; 4] {
        let mut latencies = self
            .latencies_us
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        latencies.sort_unstable();
        [0.50, 0.90, 0.99, 0.999].map(|quantile| {
            if latencies.is_empty() {
                return 0.0;
            }
            let index =
                ((latencies.len() as f64 * quantile).ceil() as usize).clamp(1, latencies.len()) - 1;
            f64::from(latencies[index]) / 1_000.0
        })
    }

    pub fn requests(&self) -> u64 {
        self.placed.load(Ordering::Relaxed)
            + self.sold_out.load(Ordering::Relaxed)
            + self.shed.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
}

/// CPU seconds (user + system) this process has used so far, from /proc.
pub fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after ")".
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&index| fields.get(index)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}
