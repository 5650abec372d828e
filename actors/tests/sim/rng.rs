//! The simulation's only source of randomness: one seeded generator, so a seed replays.
//! SplitMix64 (Steele, Lea and Flood): tiny, fast, and good enough to pick actions;
//! nothing here needs cryptographic or even statistical perfection.

pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        low + self.next_u64() % (high - low + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1_000 < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let index = self.between(0, items.len() as u64 - 1) as usize;
        items.get(index)
    }

    /// One of `options`, each as likely.
    pub fn one_of<T: Copy>(&mut self, options: &[T]) -> T {
        *self.pick(options).expect("at least one option")
    }
}
